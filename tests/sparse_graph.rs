//! The sparse inference graph on real MNIST: the dense LeNet-5 of a committed paper-budget
//! run (98.99% test accuracy), pruned 70% layer-wise, predicts the 10,000 test images
//! exactly as the dense path does, with its ReLU plan and with other operators and scales.

use std::path::Path;

use candle_core::Device;
use safs::activation::{ActivationPlan, OpParams};
use safs::data::DatasetKind;
use safs::model::{ModelKind, Network};
use safs::prune::layerwise_magnitude;
use safs::train::{evaluate, evaluate_sparse, load_checkpoint, read_meta};
use safs_e2e::mnist_root;

/// The dense network of paper-budget seed 2, pruned 70% per layer (no fine-tune: the
/// committed pruned checkpoint is at 99%, where an untuned network predicts one class).
fn pruned_lenet() -> Box<dyn Network> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/runs/lenet5_mnist-paper-sh-seed2/dense.safetensors");
    let meta = read_meta(&path).expect("checkpoint meta");
    let mut model = ModelKind::Lenet5
        .build(meta.num_classes, 0, &Device::Cpu)
        .expect("model");
    load_checkpoint(&path, model.as_mut(), &Device::Cpu).expect("checkpoint");
    layerwise_magnitude(model.as_ref(), 0.7)
        .and_then(|m| m.apply(model.as_ref()))
        .expect("prune");
    model
}

/// Top-1 predictions of the whole test set, image by image, through `forward`.
fn predictions(
    set: &safs::data::ImageSet,
    forward: impl Fn(&candle_core::Tensor) -> candle_core::Tensor,
) -> Vec<u32> {
    let mut out = Vec::new();
    for batch in set.batches(1000, None, &Device::Cpu) {
        let (x, _) = batch.expect("batch");
        let logits = forward(&x);
        out.extend(logits.argmax(1).unwrap().to_vec1::<u32>().unwrap());
    }
    out
}

#[test]
fn a_pruned_lenet5_predicts_mnist_exactly_as_the_dense_path() {
    let splits = DatasetKind::Mnist
        .load(&mnist_root(), None, 0)
        .expect("MNIST");
    let test = &splits.test;
    let mut model = pruned_lenet();
    let zeros = safs::prune::sparsity_report(model.as_ref()).expect("sparsity");
    assert!(
        zeros
            .iter()
            .all(|l| l.zeros as f64 >= 0.69 * l.total as f64),
        "pruned 70% per layer"
    );
    for plan in ["relu,relu,relu,relu", "swish,gelu,elu,srs"] {
        model
            .set_plan(&plan.parse::<ActivationPlan>().unwrap())
            .unwrap();
        for (i, slot) in model.activations_mut().iter_mut().enumerate() {
            slot.set_params_mode(OpParams::Fixed);
            if plan != "relu,relu,relu,relu" {
                slot.set_scales(1.0 + 0.1 * i as f64, 0.9).unwrap();
            }
        }
        let graph = safs::infer::InferenceGraph::build(model.as_ref(), [1, 28, 28]).unwrap();
        let dense = predictions(test, |x| model.forward_t(x, false).unwrap());
        let sparse = predictions(test, |x| graph.forward(x).unwrap());
        assert_eq!(dense.len(), 10_000);
        let differ = dense.iter().zip(&sparse).filter(|(a, b)| a != b).count();
        assert_eq!(differ, 0, "{plan}: {differ} of 10,000 predictions differ");
        let d = evaluate(model.as_ref(), test, 1000, &Device::Cpu).unwrap();
        let s = evaluate_sparse(model.as_ref(), test, 1000).unwrap();
        assert_eq!((d.top1, d.top5, d.n), (s.top1, s.top5, s.n), "{plan}");
        assert!(
            (d.loss - s.loss).abs() < 1e-5,
            "{plan}: loss {} vs {}",
            d.loss,
            s.loss
        );
        let mut classes = dense.clone();
        classes.sort_unstable();
        classes.dedup();
        assert!(
            classes.len() >= 5,
            "{plan}: predictions vary ({classes:?}, top-1 {})",
            d.top1
        );
    }
}
