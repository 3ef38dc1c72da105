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
//! Every part runs even when an earlier one failed; the exit status is non-zero if any did.
//! `device_check cpu` is a dry run of the whole program on a machine without a GPU.

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
    // Half width keeps the check quick; LeNet-5 has only its one size.
    let width = if kind == ModelKind::Lenet5 { 1.0 } else { 0.5 };
    let model = kind.build_scaled(classes, width, 7, dev)?;
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

/// Elementary ops one by one, each printed with its outcome, so a failing driver call is
/// named by the op that hit it.
fn probe(dev: &Device, label: &str) -> bool {
    type Probe = fn(&Device) -> candle_core::Result<()>;
    let steps: [(&str, Probe); 8] = [
        ("zeros", |d| Tensor::zeros(16, DType::F32, d).map(drop)),
        ("copy to device", |d| {
            Tensor::from_vec((0..16).map(|i| i as f32).collect::<Vec<_>>(), 16, d).map(drop)
        }),
        ("copy back", |d| {
            let t = Tensor::from_vec(vec![1f32, 2.0, 3.0], 3, d)?;
            let v: Vec<f32> = t.to_device(&Device::Cpu)?.to_vec1()?;
            if v != [1.0, 2.0, 3.0] {
                candle_core::bail!("read back {v:?}");
            }
            Ok(())
        }),
        ("affine kernel", |d| {
            Tensor::ones(16, DType::F32, d)?
                .affine(2.0, 1.0)?
                .sum_all()?
                .to_scalar::<f32>()
                .map(drop)
        }),
        ("exp kernel", |d| {
            Tensor::ones(16, DType::F32, d)?
                .exp()?
                .to_vec1::<f32>()
                .map(drop)
        }),
        ("matmul (cuBLAS)", |d| {
            let a = Tensor::ones((64, 64), DType::F32, d)?;
            a.matmul(&a)?.sum_all()?.to_scalar::<f32>().map(drop)
        }),
        ("randn (cuRAND)", |d| {
            Tensor::randn(0f32, 1.0, 64, d)?.to_vec1::<f32>().map(drop)
        }),
        ("conv2d", |d| {
            let x = Tensor::ones((2, 3, 8, 8), DType::F32, d)?;
            let w = Tensor::ones((4, 3, 3, 3), DType::F32, d)?;
            x.conv2d(&w, 1, 1, 1, 1)?
                .sum_all()?
                .to_scalar::<f32>()
                .map(drop)
        }),
    ];
    let mut ok = true;
    for (name, f) in steps {
        let r = f(dev).and_then(|_| dev.synchronize());
        println!(
            "probe {label:<22} {name:<16} {}",
            r.as_ref()
                .map_or_else(|e| format!("FAILED: {e}"), |_| "ok".into())
        );
        ok &= r.is_ok();
    }
    ok
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

fn throughput(dev: &Device, steps: usize) -> Result<()> {
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
    // `cpu` is a dry run of every part on a machine without a GPU (the CPU against itself,
    // 2 throughput steps instead of 40).
    println!(
        "device_check on {name} ({dev:?}){}, safs {}",
        if dev.is_cpu() { " (dry run)" } else { "" },
        env!("CARGO_PKG_VERSION")
    );
    // Each part runs whatever the others did, so one call on a lent GPU says all it can.
    let mut failed = Vec::new();
    let mut dev = dev;
    if !probe(&dev, "default device") {
        failed.push("elementary ops failed on the default device".to_string());
        // Candle's default CUDA device uses the per-thread default stream; try a stream of
        // its own, and go on with it if it works.
        if let Some(ordinal) = name.strip_prefix("cuda") {
            let ordinal = ordinal.trim_start_matches(':').parse().unwrap_or(0);
            match Device::new_cuda_with_stream(ordinal) {
                Ok(d) if probe(&d, "device with own stream") => {
                    println!("continuing on the device with its own stream");
                    dev = d;
                }
                Ok(_) => {}
                Err(e) => println!("probe device with own stream: cannot create it: {e}"),
            }
        }
    }
    match compare_models(&dev) {
        Ok(true) => {}
        Ok(false) => failed.push(format!(
            "a model's step differs from the CPU's beyond {TOLERANCE}"
        )),
        Err(e) => failed.push(format!("compare: {e:#}")),
    }
    if let Err(e) = throughput(&dev, if dev.is_cpu() { 2 } else { 40 }) {
        failed.push(format!("throughput: {e:#}"));
    }
    if !args.iter().any(|a| a == "--skip-smoke") {
        if let Err(e) = smoke(&dev) {
            failed.push(format!("smoke: {e:#}"));
        }
    }
    if !failed.is_empty() {
        bail!("device_check failed:\n  {}", failed.join("\n  "));
    }
    println!("device_check: all models agree within {TOLERANCE}, throughput and smoke run done");
    Ok(())
}
