//! Custom CPU kernels against Candle's stock ops: the same gradients for every model on the
//! same weights and batch, the same LeNet-5 accuracy on real MNIST from the same seed
//! (within noise), and sparse inference giving the dense path's predictions.
//!
//! One test function, because the kernel switch is process-wide.

use candle_core::{Device, Tensor};
use safs::data::DatasetKind;
use safs::kernels;
use safs::model::ModelKind;
use safs::prune::layerwise_magnitude;
use safs::train::{evaluate, evaluate_sparse, fit, OptimizerConfig, TrainConfig};
use safs_e2e::mnist_root;

/// Every parameter's gradient of one cross-entropy step, by name.
fn gradients(kind: ModelKind, x: &Tensor, y: &Tensor) -> Vec<(String, Tensor)> {
    let width = if kind == ModelKind::Lenet5 { 1.0 } else { 0.25 };
    let model = kind
        .build_scaled(10, width, 1, &Device::Cpu)
        .expect("model");
    let logits = model.forward_t(x, true).expect("forward");
    let loss = candle_nn::loss::cross_entropy(&logits, y).expect("loss");
    let grads = loss.backward().expect("backward");
    model
        .parameters()
        .into_iter()
        .map(|p| {
            (
                p.name.clone(),
                grads.get(p.var.as_tensor()).expect("gradient").clone(),
            )
        })
        .collect()
}

fn max_abs(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap() as f64
}

fn check_gradients() {
    for (kind, shape) in [
        (ModelKind::Lenet5, (32, 1, 28, 28)),
        (ModelKind::Vgg16, (8, 3, 32, 32)),
        (ModelKind::Resnet18, (8, 3, 32, 32)),
        (ModelKind::EfficientnetB0, (8, 3, 16, 16)),
    ] {
        let dev = Device::Cpu;
        // A fixed batch (Candle's CPU RNG cannot be seeded).
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let vals: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 1999) as f32 / 999.5) - 1.0)
            .collect();
        let x = Tensor::from_vec(vals, shape, &dev).unwrap();
        let labels: Vec<u32> = (0..shape.0 as u32).map(|i| i % 10).collect();
        let y = Tensor::from_vec(labels, shape.0, &dev).unwrap();
        kernels::set_enabled(true);
        let custom = gradients(kind, &x, &y);
        kernels::set_enabled(false);
        let stock = gradients(kind, &x, &y);
        kernels::set_enabled(true);
        // Relative to the largest gradient of the model: the conv biases in front of a
        // BatchNorm have an exact gradient of 0, so their own scale is rounding noise. In
        // f32, summation-order differences grow through every BatchNorm's backward pass
        // (seen up to 4e-3 on ResNet-18's first layer), hence the looser bound for the
        // deep models; the ops themselves are checked in f64 to 1e-12 in safs::kernels.
        let tol = if kind == ModelKind::Lenet5 {
            1e-4
        } else {
            2e-2
        };
        let scale = stock.iter().map(|(_, g)| max_abs(g)).fold(0.0, f64::max);
        for ((name, a), (_, b)) in custom.iter().zip(&stock) {
            let d = max_abs(&a.sub(b).unwrap());
            assert!(
                d <= tol * scale,
                "{kind:?} {name}: custom vs stock gradient {d} (scale {scale})"
            );
        }
    }
}

/// Test accuracy of LeNet-5 after 2 epochs on 6,000 MNIST images; then, pruned 90%, the
/// dense and sparse inference paths' accuracies.
fn train_lenet(seed: u64) -> (f64, f64, f64) {
    let dev = Device::Cpu;
    let splits = DatasetKind::Mnist
        .load(&mnist_root(), None, 0)
        .expect("MNIST");
    let train = splits.train.subset(seed, 6000);
    let test = splits.test.take(2000);
    let mut model = ModelKind::Lenet5.build(10, seed, &dev).expect("model");
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 64,
        eval_batch_size: 1000,
        max_batches: None,
        optimizer: OptimizerConfig::sgd(0.02),
        schedule: Default::default(),
        decay: Default::default(),
        restore_best: false,
    };
    fit(
        model.as_mut(),
        None,
        &train,
        None,
        &cfg,
        seed,
        &dev,
        &mut |_, _| Ok(()),
    )
    .expect("fit");
    let dense = evaluate(model.as_ref(), &test, 1000, &dev)
        .expect("eval")
        .top1;
    layerwise_magnitude(model.as_ref(), 0.9)
        .expect("prune")
        .apply(model.as_ref())
        .expect("mask");
    let pruned = evaluate(model.as_ref(), &test, 1000, &dev).expect("eval");
    let sparse = evaluate_sparse(model.as_ref(), &test, 1000).expect("sparse eval");
    assert_eq!(pruned.n, sparse.n);
    assert!(
        (pruned.loss - sparse.loss).abs() < 1e-5,
        "sparse path loss {} vs dense {}",
        sparse.loss,
        pruned.loss
    );
    (dense, pruned.top1, sparse.top1)
}

#[test]
fn custom_kernels_agree_with_stock_ops() {
    check_gradients();
    kernels::set_enabled(true);
    let (dense_c, pruned_c, sparse_c) = train_lenet(3);
    kernels::set_enabled(false);
    let (dense_s, _, _) = train_lenet(3);
    kernels::set_enabled(true);
    eprintln!("LeNet-5 2 epochs on 6k MNIST: custom {dense_c:.2}, stock {dense_s:.2}");
    assert!(
        dense_c > 93.0 && dense_s > 93.0,
        "2 epochs on 6k images train LeNet-5"
    );
    // Same seed and data order; rounding differences grow during training, so "the same"
    // means within a seed-to-seed spread.
    assert!(
        (dense_c - dense_s).abs() < 1.5,
        "dense {dense_c} vs {dense_s}"
    );
    assert_eq!(pruned_c, sparse_c, "sparse inference changes no prediction");
}
