//! The CUDA device check: one call on a GPU machine, output committed to docs/cuda.md.
//!
//! `device_check [cuda|cuda:N] [--skip-smoke]` (in a `--features cuda` build):
//! 1. every model, built from the same seed on the CPU and on the GPU, runs one training
//!    step (forward, cross-entropy, backward) on the same batch; logits, loss and every
//!    parameter's gradient must agree within tolerance;
//! 2. VGG-16 and ResNet-18 at paper width train for a slice of an epoch on CIFAR-shaped
//!    batches (128 images, SGD momentum); prints images per second;
//! 3. the smoke budget of `experiments/vgg16_cifar10.toml` runs end to end on the GPU on
//!    stand-in CIFAR-10 files written into a temporary folder.
//!
//! Exits non-zero on any mismatch. In a CPU-only build it stops at once with the reason.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use safs::experiment::{BudgetPreset, Experiment, ExperimentConfig};
use safs::model::ModelKind;
use safs::train::OptimizerConfig;

/// Relative tolerance (to the largest magnitude of each compared tensor set).
const TOLERANCE: f64 = 2e-3;

fn max_abs(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()?)
}

/// Logits, loss and named gradients of one step.
type StepResult = (Tensor, f64, Vec<(String, Tensor)>);

/// Logits, loss and named gradients of one step, all copied back to the CPU.
fn step(
    kind: ModelKind,
    classes: usize,
    x: &Tensor,
    y: &Tensor,
    dev: &Device,
) -> Result<StepResult> {
    let model = kind.build_scaled(classes, 0.5, 7, dev)?;
    let (x, y) = (x.to_device(dev)?, y.to_device(dev)?);
    let logits = model.forward_t(&x, true)?;
    let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
    let grads = loss.backward()?;
    let named = model
        .parameters()
        .into_iter()
        .map(|p| {
            let g = grads
                .get(p.var.as_tensor())
                .with_context(|| format!("no gradient for {}", p.name))?;
            Ok((p.name.clone(), g.to_device(&Device::Cpu)?))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((
        logits.to_device(&Device::Cpu)?,
        loss.to_scalar::<f32>()? as f64,
        named,
    ))
}

fn compare_models(dev: &Device) -> Result<bool> {
    let mut ok = true;
    for (kind, shape, classes) in [
        (ModelKind::Lenet5, (64, 1, 28, 28), 10),
        (ModelKind::Vgg16, (32, 3, 32, 32), 10),
        (ModelKind::Resnet18, (32, 3, 32, 32), 10),
        (ModelKind::EfficientnetB0, (32, 3, 16, 16), 1000),
    ] {
        let x = Tensor::randn(0f32, 1.0, shape, &Device::Cpu)?;
        let labels: Vec<u32> = (0..shape.0 as u32)
            .map(|i| i * 7 % classes as u32)
            .collect();
        let y = Tensor::from_vec(labels, shape.0, &Device::Cpu)?;
        let (lc, losc, gc) = step(kind, classes, &x, &y, &Device::Cpu)?;
        let (lg, losg, gg) = step(kind, classes, &x, &y, dev)?;
        let logit_err = max_abs(&lc.sub(&lg)?)? / max_abs(&lc)?.max(1e-12);
        let scale = gc
            .iter()
            .map(|(_, g)| max_abs(g))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .fold(0.0, f64::max);
        let mut grad_err: (f64, String) = (0.0, String::new());
        for ((name, a), (_, b)) in gc.iter().zip(&gg) {
            let e = max_abs(&a.sub(b)?)? / scale.max(1e-12);
            if e > grad_err.0 {
                grad_err = (e, name.clone());
            }
        }
        let pass = logit_err < TOLERANCE
            && grad_err.0 < TOLERANCE
            && (losc - losg).abs() < TOLERANCE * losc.abs().max(1.0);
        ok &= pass;
        println!(
            "compare {:<16} loss cpu {losc:.6} gpu {losg:.6}  logits rel err {logit_err:.2e}  worst grad rel err {:.2e} ({})  {}",
            kind.name(),
            grad_err.0,
            grad_err.1,
            if pass { "OK" } else { "MISMATCH" }
        );
    }
    Ok(ok)
}

fn throughput(dev: &Device) -> Result<()> {
    for kind in [ModelKind::Vgg16, ModelKind::Resnet18] {
        let model = kind.build(10, 0, dev)?;
        let vars: Vec<Var> = model.parameters().into_iter().map(|p| p.var).collect();
        let mut opt = OptimizerConfig::sgd(0.05).build(vars)?;
        let batch = 128;
        let x = Tensor::randn(0f32, 1.0, (batch, 3, 32, 32), dev)?;
        let y = Tensor::from_vec(
            (0..batch as u32).map(|i| i % 10).collect::<Vec<_>>(),
            batch,
            dev,
        )?;
        let mut run = |steps: usize| -> Result<f64> {
            let t = Instant::now();
            for _ in 0..steps {
                let loss = candle_nn::loss::cross_entropy(&model.forward_t(&x, true)?, &y)?;
                opt.backward_step(&loss)?;
            }
            dev.synchronize()?;
            Ok(t.elapsed().as_secs_f64())
        };
        run(3)?;
        let steps = 40;
        let secs = run(steps)?;
        println!(
            "throughput {:<10} width 1, batch {batch}: {:.0} images/s ({:.1} ms per step, {steps} steps; an epoch of 50,000 images ~{:.0} s)",
            kind.name(),
            (steps * batch) as f64 / secs,
            secs / steps as f64 * 1e3,
            50_000.0 / ((steps * batch) as f64 / secs)
        );
    }
    Ok(())
}

fn smoke(dev: &Device) -> Result<()> {
    let root = std::env::temp_dir().join(format!("safs-device-check-{}", std::process::id()));
    let data = root.join("data");
    let mut cfg = ExperimentConfig::from_file("experiments/vgg16_cifar10.toml".as_ref())?;
    cfg.budget = BudgetPreset::Smoke;
    // Enough stand-in images for the validation split plus the smoke budget's slices.
    let valid = cfg.valid_size.unwrap_or(cfg.dataset.default_valid());
    safs::data::standin::write_cifar10_standin(&data, (valid + 512).div_ceil(5), 256, 0)?;
    let t = Instant::now();
    let mut exp = Experiment::new(cfg, &root.join("run"), &data, dev.clone())?;
    let row = exp.run(&mut |_| Ok(()))?;
    println!(
        "smoke vgg16_cifar10 on {dev:?}: {:.1} s, dense {:?} magnitude pruning {:?} stage1 {:?} stage2 {:?} safs {:?} (stand-in data)",
        t.elapsed().as_secs_f64(),
        row.dense,
        row.magnitude_pruning,
        row.stage1,
        row.stage2,
        row.safs
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "cuda".into());
    let dev = safs::device::parse_device(&name)?;
    if dev.is_cpu() {
        bail!("device_check compares a GPU with the CPU; give it cuda or cuda:N");
    }
    println!(
        "device_check on {name} ({dev:?}), safs {}",
        env!("CARGO_PKG_VERSION")
    );
    let ok = compare_models(&dev)?;
    throughput(&dev)?;
    if !args.iter().any(|a| a == "--skip-smoke") {
        smoke(&dev)?;
    }
    if !ok {
        bail!("a model's CUDA step differs from its CPU step beyond {TOLERANCE}");
    }
    println!("device_check: all models agree within {TOLERANCE}");
    Ok(())
}
