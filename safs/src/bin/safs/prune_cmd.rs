//! `safs prune`: magnitude-prune a checkpoint.

use std::path::PathBuf;

use anyhow::Context;

use safs::model::ModelKind;
use safs::prune::{sparsity_report, PruneMethod};
use safs::train::{load_checkpoint, read_meta, save_checkpoint};

use crate::Common;

#[derive(clap::Args)]
pub struct PruneArgs {
    /// The checkpoint to prune.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Fraction of weights to zero, e.g. 0.99.
    #[arg(long)]
    rate: f64,
    /// layerwise (the paper's LWM) or global.
    #[arg(long, default_value = "layerwise")]
    method: PruneMethod,
    /// Where to write the pruned checkpoint.
    #[arg(long, short)]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: PruneArgs) -> anyhow::Result<()> {
    let device = safs::device::parse_device(&a.common.device)?;
    let meta = read_meta(&a.checkpoint)?;
    let kind: ModelKind = meta.model.parse()?;
    let mut model = kind.build_scaled(meta.num_classes, meta.width, 0, &device)?;
    load_checkpoint(&a.checkpoint, model.as_mut(), &device)
        .with_context(|| format!("loading {}", a.checkpoint.display()))?;
    let masks = a.method.masks(model.as_ref(), a.rate)?;
    masks.apply(model.as_ref())?;
    let mut out_meta = meta.clone();
    out_meta.note = format!("{} pruned {:.2}%", a.method, a.rate * 100.0);
    save_checkpoint(&a.out, model.as_ref(), Some(&masks), &out_meta)?;
    let report = sparsity_report(model.as_ref())?;
    let (mut zeros, mut total) = (0, 0);
    for l in &report {
        println!(
            "{:<16} {:>8} weights {:>8} zero  {:6.2}%",
            l.name,
            l.total,
            l.zeros,
            100.0 * l.sparsity()
        );
        zeros += l.zeros;
        total += l.total;
    }
    println!(
        "result: pruned {} -> {} sparsity={:.2}% ({zeros}/{total} zero)",
        a.checkpoint.display(),
        a.out.display(),
        100.0 * zeros as f64 / total.max(1) as f64
    );
    Ok(())
}
