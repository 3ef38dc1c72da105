//! Times one training step (forward in train mode, cross-entropy, backward) of each model.
//!
//! `cargo run --release -p safs --example model_step_time -- [STEPS] [BATCH] [WIDTH] [MODEL...]`
//! (defaults: 3 steps after one warm-up step, batch 64, width 1, every CIFAR/ImageNet-16
//! model). VGG and ResNet get 32x32 input with 10 classes, EfficientNet-B0 16x16 with 1000
//! classes (ImageNet-16). Prints milliseconds per step.

use std::time::Instant;

use candle_core::{Device, Tensor};
use safs::model::ModelKind;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: usize = args.first().map(|s| s.parse()).transpose()?.unwrap_or(3);
    let batch: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let width: f64 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    let kinds: Vec<ModelKind> = if args.len() > 3 {
        args[3..]
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?
    } else {
        vec![
            ModelKind::Vgg11,
            ModelKind::Vgg16,
            ModelKind::Resnet18,
            ModelKind::EfficientnetB0,
        ]
    };
    let dev = Device::Cpu;
    println!("batch {batch}, width {width}, {steps} timed steps after 1 warm-up");
    for kind in kinds {
        let (hw, classes) = match kind {
            ModelKind::EfficientnetB0 => (16, 1000),
            ModelKind::Lenet5 => (28, 10),
            _ => (32, 10),
        };
        let channels = if kind == ModelKind::Lenet5 { 1 } else { 3 };
        let model = kind.build_scaled(classes, width, 0, &dev)?;
        let x = Tensor::randn(0f32, 1.0, (batch, channels, hw, hw), &dev)?;
        let labels: Vec<u32> = (0..batch).map(|i| (i % classes) as u32).collect();
        let y = Tensor::from_vec(labels, batch, &dev)?;
        let step = || -> anyhow::Result<(f64, f64)> {
            let t0 = Instant::now();
            let logits = model.forward_t(&x, true)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            let t1 = Instant::now();
            let grads = loss.backward()?;
            let t2 = Instant::now();
            drop(grads);
            Ok(((t1 - t0).as_secs_f64() * 1e3, (t2 - t1).as_secs_f64() * 1e3))
        };
        step()?;
        let (mut fwd, mut bwd) = (0.0, 0.0);
        for _ in 0..steps {
            let (f, b) = step()?;
            fwd += f;
            bwd += b;
        }
        let n = steps.max(1) as f64;
        println!(
            "{:<16} {:>10} params  {:>3} slots  input {}x{}  step {:>8.0} ms  (forward {:.0} ms, backward {:.0} ms)",
            kind.name(),
            model.num_parameters(),
            model.num_slots(),
            hw,
            hw,
            (fwd + bwd) / n,
            fwd / n,
            bwd / n
        );
    }
    Ok(())
}
