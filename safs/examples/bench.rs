//! The Rust side of the benchmark harness (`benches/compare.py` runs it beside PyTorch).
//!
//! `bench --list` names the rows; `bench ROW [--reps N]` times one row and prints one JSON
//! line: median milliseconds per repetition, items (images) per second, the process's peak
//! resident memory, and the parameter count where a model is involved. Rows:
//! - `train/<model>`: forward in train mode, cross-entropy, backward, SGD-momentum update
//!   (`train/<model>@<plan>`: with that activation plan; not in `--list`, no PyTorch twin);
//! - `op/<op>/fwd` and `op/<op>/fwdbwd`: one op alone, forward, or forward plus the backward
//!   of the sum of its output;
//! - `infer/<model>/<impl>/<rate>/b<batch>` (`bench --list-infer`): eval-mode forward of
//!   the model pruned `rate`% layer-wise, through the dense kernels (`dense`) or the
//!   sparse inference graph (`graph`, [`safs::infer::InferenceGraph`]), on `batch` images.
//!
//! Threads follow `RAYON_NUM_THREADS`; `SAFS_KERNELS=stock` switches to stock Candle ops;
//! `SAFS_MALLOC=default` leaves glibc's malloc untuned ([`safs::kernels::tune_allocator`]);
//! `SAFS_CANDLE_SPIN=default` leaves Candle's pool spinning ([`safs::kernels::tune_candle_threads`]).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var};
use safs::infer::InferenceGraph;
use safs::kernels;
use safs::model::{ModelKind, Network};
use safs::prune::layerwise_magnitude;
use safs::train::OptimizerConfig;

const MODELS: [(&str, ModelKind, usize, usize, usize, usize); 4] = [
    // name, kind, batch, channels, side, classes
    ("lenet5", ModelKind::Lenet5, 256, 1, 28, 10),
    ("vgg16", ModelKind::Vgg16, 64, 3, 32, 10),
    ("resnet18", ModelKind::Resnet18, 64, 3, 32, 10),
    (
        "efficientnet_b0",
        ModelKind::EfficientnetB0,
        64,
        3,
        16,
        1000,
    ),
];

const OPS: [&str; 7] = [
    "conv3x3",
    "conv3x3_s2",
    "depthwise3x3",
    "batchnorm",
    "maxpool2",
    "relu",
    "linear",
];

/// Train-mode passes that set BatchNorm's running statistics before an inference row.
const CALIBRATION_PASSES: usize = 3;

/// Pruning rates (percent), batch sizes and implementations of the inference rows.
const INFER_RATES: [u32; 3] = [90, 95, 99];
const INFER_BATCHES: [usize; 2] = [64, 1];
const INFER_IMPLS: [&str; 2] = ["dense", "graph"];

fn rows() -> Vec<String> {
    let mut out = Vec::new();
    for (m, ..) in MODELS {
        out.push(format!("train/{m}"));
    }
    for op in OPS {
        out.push(format!("op/{op}/fwd"));
        out.push(format!("op/{op}/fwdbwd"));
    }
    out
}

fn infer_rows() -> Vec<String> {
    let mut out = Vec::new();
    for (m, ..) in MODELS {
        for rate in INFER_RATES {
            for b in INFER_BATCHES {
                for imp in INFER_IMPLS {
                    out.push(format!("infer/{m}/{imp}/{rate}/b{b}"));
                }
            }
        }
    }
    out
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`), if readable.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Runs `f` once to warm up, then `reps` times; returns the per-run milliseconds.
fn time(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
    f()?;
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f()?;
            Ok(t.elapsed().as_secs_f64() * 1e3)
        })
        .collect()
}

fn model_spec(name: &str) -> Result<(ModelKind, usize, usize, usize, usize)> {
    MODELS
        .iter()
        .find(|m| m.0 == name)
        .map(|&(_, k, b, c, s, n)| (k, b, c, s, n))
        .with_context(|| format!("unknown model {name:?}"))
}

fn batch(
    b: usize,
    c: usize,
    side: usize,
    classes: usize,
    dev: &Device,
) -> Result<(Tensor, Tensor)> {
    let x = Tensor::randn(0f32, 1.0, (b, c, side, side), dev)?;
    let y: Vec<u32> = (0..b).map(|i| (i * 7 % classes) as u32).collect();
    Ok((x, Tensor::from_vec(y, b, dev)?))
}

/// `name` is a model, or `model@plan` (e.g. `lenet5@swish,gelu,srs,symexp`) for a plan
/// other than the model's default, its slots as a Stage 1 candidate's (operator parameters
/// learnt, scales constant).
fn train_row(name: &str, reps: usize, dev: &Device) -> Result<(Vec<f64>, usize, usize)> {
    let (name, plan) = match name.split_once('@') {
        Some((m, p)) => (m, Some(p.parse::<safs::activation::ActivationPlan>()?)),
        None => (name, None),
    };
    let (kind, b, c, side, classes) = model_spec(name)?;
    let mut model = kind.build(classes, 0, dev)?;
    if let Some(plan) = plan {
        model.set_plan(&plan)?;
        for slot in model.activations_mut() {
            slot.set_params_mode(safs::activation::OpParams::LearntFromOne);
        }
    }
    let (x, y) = batch(b, c, side, classes, dev)?;
    let vars: Vec<Var> = model.parameters().into_iter().map(|p| p.var).collect();
    let mut opt = OptimizerConfig::sgd(0.01).build(vars)?;
    let times = time(reps, || {
        let logits = model.forward_t(&x, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
        opt.backward_step(&loss)?;
        Ok(())
    })?;
    Ok((times, b, model.num_parameters()))
}

fn infer_row(
    name: &str,
    imp: &str,
    rate: &str,
    batch_size: &str,
    reps: usize,
    dev: &Device,
) -> Result<(Vec<f64>, usize, usize)> {
    let (kind, b, c, side, classes) = model_spec(name)?;
    let rate: f64 = rate.parse::<f64>().context("rate in percent")? / 100.0;
    let n: usize = batch_size
        .strip_prefix('b')
        .context("batch as b<N>")?
        .parse()?;
    let model: Box<dyn Network> = kind.build(classes, 0, dev)?;
    layerwise_magnitude(model.as_ref(), rate)?.apply(model.as_ref())?;
    let (x, _) = batch(b, c, side, classes, dev)?;
    // BatchNorm statistics of the pruned network, as fine-tuning would leave them; with the
    // initial ones, activations shrink layer by layer into slow subnormal floats.
    for _ in 0..CALIBRATION_PASSES {
        model.forward_t(&x, true)?;
    }
    let x = x.narrow(0, 0, n.min(b))?.contiguous()?;
    let times = match imp {
        "dense" => time(reps, || {
            model.forward_t(&x, false)?;
            Ok(())
        })?,
        "graph" => {
            let graph = InferenceGraph::build(model.as_ref(), [c, side, side])?;
            time(reps, || {
                graph.forward(&x)?;
                Ok(())
            })?
        }
        other => bail!("unknown inference implementation {other:?}"),
    };
    Ok((times, x.dim(0)?, model.num_parameters()))
}

/// One op applied to its input variables.
type OpFn = dyn Fn(&[Var]) -> Result<Tensor>;

fn op_row(op: &str, mode: &str, reps: usize, dev: &Device) -> Result<(Vec<f64>, usize, usize)> {
    let var = |shape: &[usize]| -> Result<Var> {
        Ok(Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, dev)?)?)
    };
    let b = 64;
    let (inputs, f): (Vec<Var>, Box<OpFn>) = match op {
        "conv3x3" => (
            vec![var(&[b, 64, 32, 32])?, var(&[64, 64, 3, 3])?],
            Box::new(|v| {
                Ok(kernels::conv2d(
                    v[0].as_tensor(),
                    v[1].as_tensor(),
                    1,
                    1,
                    1,
                )?)
            }),
        ),
        "conv3x3_s2" => (
            vec![var(&[b, 64, 32, 32])?, var(&[128, 64, 3, 3])?],
            Box::new(|v| {
                Ok(kernels::conv2d(
                    v[0].as_tensor(),
                    v[1].as_tensor(),
                    2,
                    1,
                    1,
                )?)
            }),
        ),
        "depthwise3x3" => (
            vec![var(&[b, 96, 16, 16])?, var(&[96, 1, 3, 3])?],
            Box::new(|v| {
                Ok(kernels::depthwise_conv2d(
                    v[0].as_tensor(),
                    v[1].as_tensor(),
                    1,
                    1,
                )?)
            }),
        ),
        "batchnorm" => (
            vec![var(&[b, 64, 32, 32])?, var(&[64])?, var(&[64])?],
            Box::new(|v| {
                Ok(kernels::batch_norm_train(
                    v[0].as_tensor(),
                    v[1].as_tensor(),
                    v[2].as_tensor(),
                    1e-5,
                )?
                .0)
            }),
        ),
        "maxpool2" => (
            vec![var(&[b, 64, 32, 32])?],
            Box::new(|v| Ok(kernels::max_pool2d(v[0].as_tensor(), 2)?)),
        ),
        "relu" => (
            vec![var(&[b, 64, 32, 32])?],
            Box::new(|v| Ok(kernels::relu(v[0].as_tensor())?)),
        ),
        "linear" => (
            vec![var(&[b, 1024])?, var(&[1024, 1024])?],
            Box::new(|v| Ok(v[0].as_tensor().matmul(&v[1].as_tensor().t()?)?)),
        ),
        other => bail!("unknown op {other:?}"),
    };
    let times = match mode {
        "fwd" => time(reps, || {
            f(&inputs)?;
            Ok(())
        })?,
        "fwdbwd" => time(reps, || {
            f(&inputs)?.sum_all()?.backward()?;
            Ok(())
        })?,
        other => bail!("unknown op mode {other:?}"),
    };
    Ok((times, b, 0))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--list") {
        println!("{}", rows().join("\n"));
        return Ok(());
    }
    if args.first().map(String::as_str) == Some("--list-infer") {
        println!("{}", infer_rows().join("\n"));
        return Ok(());
    }
    let row = args
        .first()
        .context("usage: bench ROW [--reps N] | --list | --list-infer")?
        .clone();
    let reps: usize = match args.iter().position(|a| a == "--reps") {
        Some(i) => args.get(i + 1).context("--reps needs a value")?.parse()?,
        None => 5,
    };
    if std::env::var("SAFS_MALLOC").as_deref() != Ok("default") {
        kernels::tune_allocator();
    }
    if std::env::var("SAFS_CANDLE_SPIN").as_deref() != Ok("default") {
        kernels::tune_candle_threads();
    }
    let dev = Device::Cpu;
    let parts: Vec<&str> = row.split('/').collect();
    let run = || match parts.as_slice() {
        ["train", m] => train_row(m, reps, &dev),
        ["infer", m, imp, rate, b] => infer_row(m, imp, rate, b, reps, &dev),
        ["op", op, mode] => op_row(op, mode, reps, &dev),
        _ => bail!("unknown row {row:?}; see --list"),
    };
    // As the training and evaluation loops run their batches (`SAFS_BENCH_THREAD=caller`
    // keeps the row on the main thread, for A/B runs).
    let (times, items, params) = if std::env::var("SAFS_BENCH_THREAD").as_deref() == Ok("caller") {
        run()?
    } else {
        kernels::on_pool(run)?
    };
    let ms = median(times.clone());
    let line = serde_json::json!({
        "row": row,
        "impl": if kernels::enabled() { "safs" } else { "candle-stock" },
        "threads": rayon::current_num_threads(),
        "median_ms": ms,
        "items_per_s": items as f64 / (ms / 1e3),
        "peak_rss_mib": peak_rss_mib(),
        "params": params,
        "times_ms": times,
        "dtype": format!("{:?}", DType::F32),
    });
    println!("{line}");
    Ok(())
}
