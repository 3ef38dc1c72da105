//! Fine-tune epochs per hour of LeNet-5 / MNIST at 99% with one worker and with two: how
//! much `safs run --workers 2` buys on this machine (issue 12).
//!
//! `cargo run --release -p safs --example finetune_throughput -- [PLAN] [EPOCHS]`
//! (default plan `relu,relu,relu,relu`, 1 epoch per fine-tune). Runs the recipe of
//! `experiments/lenet5_mnist.toml` on a freshly initialised network pruned layer-wise 99%:
//! one fine-tune with 1 thread, one with 2 threads, then two at once with 1 thread each.
//! Needs MNIST (`safs data fetch mnist`) and a quiet machine.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use candle_core::Device;
use safs::activation::ActivationPlan;
use safs::data::{default_data_dir, Normalize, Splits};
use safs::experiment::ExperimentConfig;
use safs::prune::layerwise_magnitude;
use safs::train::fit;

fn one_finetune(
    cfg: &ExperimentConfig,
    data: &Splits,
    plan: &ActivationPlan,
    epochs: usize,
) -> Result<()> {
    let dev = Device::Cpu;
    let mut model = cfg.model.build(data.train.num_classes(), cfg.seed, &dev)?;
    model.set_plan(plan)?;
    let masks = layerwise_magnitude(model.as_ref(), cfg.prune.rate)?;
    let recipe = cfg.recipe(epochs);
    fit(
        model.as_mut(),
        Some(&masks),
        &data.train,
        Some(&data.valid),
        &recipe,
        cfg.seed,
        &dev,
        &mut |_, _| Ok(()),
    )?;
    Ok(())
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?)
}

fn main() -> Result<()> {
    safs::kernels::tune_allocator();
    safs::kernels::tune_candle_threads();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan: ActivationPlan = args.first().map_or("relu,relu,relu,relu", |s| s).parse()?;
    let epochs: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let cfg = ExperimentConfig::from_file(Path::new("experiments/lenet5_mnist.toml"))?;
    let splits = cfg
        .dataset
        .load(&default_data_dir(), cfg.valid_size, cfg.seed)?;
    let plain = Normalize::identity(splits.train.shape()[0]);
    let data = Splits {
        train: splits.train.with_normalize(plain.clone())?,
        valid: splits.valid.with_normalize(plain.clone())?,
        test: splits.test.with_normalize(plain)?,
    };
    println!(
        "plan {plan}, {epochs} epoch(s) per fine-tune, {} training images",
        data.train.len()
    );
    let per_hour = |n: usize, secs: f64| n as f64 * epochs as f64 * 3600.0 / secs;
    for threads in [1, 2] {
        let t = Instant::now();
        pool(threads)?.install(|| one_finetune(&cfg, &data, &plan, epochs))?;
        let s = t.elapsed().as_secs_f64();
        println!(
            "1 worker x {threads} thread(s): {s:.1} s, {:.0} epochs/hour",
            per_hour(1, s)
        );
    }
    let t = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let jobs: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| pool(1)?.install(|| one_finetune(&cfg, &data, &plan, epochs))))
            .collect();
        for j in jobs {
            j.join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        Ok(())
    })?;
    let s = t.elapsed().as_secs_f64();
    println!(
        "2 workers x 1 thread:    {s:.1} s, {:.0} epochs/hour",
        per_hour(2, s)
    );
    Ok(())
}
