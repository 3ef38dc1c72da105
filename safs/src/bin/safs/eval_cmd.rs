//! `safs eval`: accuracy of a checkpoint on the validation or test set.

use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;

use safs::data::{default_data_dir, DatasetKind};
use safs::model::ModelKind;
use safs::train::{evaluate, evaluate_sparse, load_checkpoint, read_meta};

use crate::Common;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SplitArg {
    Valid,
    Test,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The checkpoint to evaluate.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset the checkpoint was trained on.
    #[arg(long, default_value = "mnist")]
    dataset: String,
    /// Which split.
    #[arg(long, value_enum, default_value = "test")]
    split: SplitArg,
    /// Seed of the train/validation split (for --split valid; default validation size).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run the sparse inference graph (BatchNorm folded, zeros skipped); CPU, f32.
    #[arg(long)]
    sparse: bool,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let device = safs::device::parse_device(&a.common.device)?;
    let kind: DatasetKind = a.dataset.parse()?;
    let meta = read_meta(&a.checkpoint)?;
    let model_kind: ModelKind = meta.model.parse()?;
    let mut model = model_kind.build_scaled(meta.num_classes, meta.width, 0, &device)?;
    load_checkpoint(&a.checkpoint, model.as_mut(), &device)
        .with_context(|| format!("loading {}", a.checkpoint.display()))?;
    let root = a.common.data_dir.clone().unwrap_or_else(default_data_dir);
    let splits = kind.load(&root, None, a.seed)?;
    let set = match a.split {
        SplitArg::Valid => &splits.valid,
        SplitArg::Test => &splits.test,
    };
    let started = std::time::Instant::now();
    let m = if a.sparse {
        if !device.is_cpu() {
            anyhow::bail!("--sparse runs on the CPU; drop --device or --sparse");
        }
        evaluate_sparse(model.as_ref(), set, 1000)?
    } else {
        evaluate(model.as_ref(), set, 1000, &device)?
    };
    let secs = started.elapsed().as_secs_f64();
    println!(
        "result: checkpoint={} plan={} split={:?} top1={:.2} top5={:.2} loss={:.4} n={} path={} seconds={secs:.2}",
        a.checkpoint.display(),
        meta.plan,
        a.split,
        m.top1,
        m.top5,
        m.loss,
        m.n,
        if a.sparse { "sparse" } else { "dense" }
    );
    Ok(())
}
