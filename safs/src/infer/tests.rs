//! The graph against the dense eval-mode forward pass of every model.

use candle_core::{DType, Device, Tensor};

use super::InferenceGraph;
use crate::activation::{Op, OpParams};
use crate::model::testutil::pseudo_random;
use crate::model::{ModelKind, Network, ParamKind, Scale};
use crate::prune::layerwise_magnitude;
use crate::Result;

/// Gives a model a state where every folding and fusion matters: BatchNorm statistics and
/// affine parameters away from 0/1, operators cycling through all 17 from `first`, scales
/// and operator parameters away from 1; then prunes `rate` of each layer by magnitude.
fn prepare(model: &mut dyn Network, first: usize, rate: f64, salt: u64) -> Result<()> {
    for (i, (name, var)) in model.buffers().into_iter().enumerate() {
        let r = pseudo_random(var.dims(), salt + i as u64)?;
        let v = if name.ends_with("running_var") {
            r.affine(0.4, 1.0)?
        } else {
            r.affine(0.3, 0.0)?
        };
        var.set(&v.to_dtype(var.dtype())?)?;
    }
    for (i, p) in model.parameters().into_iter().enumerate() {
        if p.kind == ParamKind::Norm {
            let r = pseudo_random(p.var.dims(), salt + 500 + i as u64)?;
            let shift = if p.name.ends_with("weight") { 1.0 } else { 0.0 };
            p.var.set(&r.affine(0.3, shift)?.to_dtype(p.var.dtype())?)?;
        }
    }
    for (i, slot) in model.activations_mut().iter_mut().enumerate() {
        let op = Op::ALL[(first + i) % Op::ALL.len()];
        slot.set_op(op);
        slot.set_params_mode(OpParams::Fixed);
        let k = op.num_params();
        let theta: Vec<f64> = op.default_params().iter().map(|t| t * 1.1).collect();
        slot.set_params(&theta[..k])?;
        slot.set_scales(0.9 + 0.02 * (i % 7) as f64, 1.1 - 0.03 * (i % 5) as f64)?;
    }
    if rate > 0.0 {
        layerwise_magnitude(model, rate)?.apply(model)?;
    }
    Ok(())
}

/// Largest difference relative to the largest dense logit (at least 1).
fn rel_diff(graph: &Tensor, dense: &Tensor) -> Result<f64> {
    let d = graph
        .to_dtype(DType::F64)?
        .sub(&dense.to_dtype(DType::F64)?)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()?;
    let scale = dense
        .to_dtype(DType::F64)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()?;
    Ok(d / scale.max(1.0))
}

fn check(kind: ModelKind, width: f64, input: [usize; 4], rate: f64, first: usize) -> Result<()> {
    let dev = Device::Cpu;
    let classes = if kind == ModelKind::EfficientnetB0 {
        100
    } else {
        10
    };
    let scale = Scale { width, depth: 1.0 };
    let mut model = kind.build_with(classes, scale, 3, &dev)?;
    prepare(model.as_mut(), first, rate, 40 + first as u64)?;
    let [n, c, h, w] = input;
    let x = pseudo_random(&input, 77)?
        .affine(2.0, 0.0)?
        .to_dtype(DType::F32)?;
    let graph = InferenceGraph::build(model.as_ref(), [c, h, w])?;
    let dense = model.forward_t(&x, false)?;
    let got = graph.forward(&x)?;
    assert_eq!(got.dims(), &[n, classes]);
    let d = rel_diff(&got, &dense)?;
    assert!(
        d <= 1e-4,
        "{kind:?} width {width} rate {rate} ops from {first}: relative difference {d}"
    );
    Ok(())
}

#[test]
fn lenet5_logits_equal_the_dense_path_for_every_operator() -> Result<()> {
    for first in 0..Op::ALL.len() {
        check(ModelKind::Lenet5, 1.0, [3, 1, 28, 28], 0.9, first)?;
    }
    check(ModelKind::Lenet5, 1.0, [1, 1, 28, 28], 0.0, 0)
}

#[test]
fn vgg_logits_equal_the_dense_path() -> Result<()> {
    check(ModelKind::Vgg16, 0.25, [10, 3, 32, 32], 0.9, 0)?;
    check(ModelKind::Vgg11, 0.25, [3, 3, 32, 32], 0.0, 5)?;
    check(ModelKind::Vgg16, 1.0, [1, 3, 32, 32], 0.99, 11)
}

#[test]
fn resnet18_logits_equal_the_dense_path() -> Result<()> {
    check(ModelKind::Resnet18, 0.25, [2, 3, 32, 32], 0.9, 3)?;
    check(ModelKind::Resnet18, 0.25, [1, 3, 32, 32], 0.0, 9)?;
    check(ModelKind::Resnet18, 1.0, [2, 3, 32, 32], 0.99, 14)
}

#[test]
fn efficientnet_b0_logits_equal_the_dense_path() -> Result<()> {
    check(ModelKind::EfficientnetB0, 0.5, [9, 3, 16, 16], 0.9, 1)?;
    check(ModelKind::EfficientnetB0, 0.5, [1, 3, 16, 16], 0.0, 8)?;
    check(ModelKind::EfficientnetB0, 1.0, [2, 3, 16, 16], 0.99, 12)
}

#[test]
fn the_graph_keeps_only_non_zero_weights_and_names_its_fusions() -> Result<()> {
    let dev = Device::Cpu;
    let mut model = ModelKind::Vgg11.build_with(
        10,
        Scale {
            width: 0.25,
            depth: 1.0,
        },
        1,
        &dev,
    )?;
    prepare(model.as_mut(), 0, 0.95, 9)?;
    let graph = InferenceGraph::build(model.as_ref(), [3, 32, 32])?;
    let layers = graph.layers();
    assert_eq!(layers.len(), model.prunable().len());
    let first = &layers[0];
    assert_eq!(first.name, "features.0");
    assert_eq!(first.fused, "bn+relu+pool", "conv 1 is followed by a pool");
    assert_eq!(
        layers[2].fused, "bn+hardswish",
        "the third slot's operator, no pool"
    );
    for (layer, p) in layers.iter().zip(model.prunable()) {
        let nz: f32 = p
            .var
            .as_tensor()
            .ne(0f32)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .to_scalar()?;
        assert_eq!(layer.stored, nz as usize, "{}", layer.name);
        assert_eq!(layer.weights, p.var.elem_count(), "{}", layer.name);
    }
    Ok(())
}

#[test]
fn a_wrong_input_size_or_an_unsupported_model_is_an_error() -> Result<()> {
    let dev = Device::Cpu;
    let model = ModelKind::Lenet5.build(10, 1, &dev)?;
    let graph = InferenceGraph::build(model.as_ref(), [1, 28, 28])?;
    let x = Tensor::zeros((2, 1, 32, 32), DType::F32, &dev)?;
    let err = graph.forward(&x).unwrap_err().to_string();
    assert!(
        err.contains("(N, 1, 28, 28)") && err.contains("lenet5"),
        "{err}"
    );
    // LeNet-5's conv2 leaves 1x1 maps from 12x12 input: its pool cannot be fused.
    let err = InferenceGraph::build(model.as_ref(), [1, 14, 14])
        .unwrap_err()
        .to_string();
    assert!(err.contains("conv2"), "{err}");
    Ok(())
}

#[test]
fn a_batch_split_across_threads_gives_the_same_bits_as_one_image_at_a_time() -> Result<()> {
    let dev = Device::Cpu;
    let mut model = ModelKind::Resnet18.build_with(
        10,
        Scale {
            width: 0.125,
            depth: 1.0,
        },
        2,
        &dev,
    )?;
    prepare(model.as_mut(), 4, 0.95, 21)?;
    let graph = InferenceGraph::build(model.as_ref(), [3, 32, 32])?;
    let x = pseudo_random(&[19, 3, 32, 32], 5)?.to_dtype(DType::F32)?;
    let whole: Vec<Vec<f32>> = graph.forward(&x)?.to_vec2()?;
    for (i, row) in whole.iter().enumerate() {
        let one: Vec<Vec<f32>> = graph.forward(&x.narrow(0, i, 1)?)?.to_vec2()?;
        assert_eq!(&one[0], row, "image {i}");
    }
    let dense = model.forward_t(&x, false)?;
    assert!(rel_diff(&Tensor::new(whole, &dev)?, &dense)? <= 1e-4);
    Ok(())
}
