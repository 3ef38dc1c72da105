//! `safs train`: dense training, or fine-tuning a pruned checkpoint with `--from`.

use std::path::PathBuf;

use anyhow::Context;

use safs::data::default_data_dir;
use safs::model::Network;
use safs::train::{evaluate, fit, load_checkpoint, save_checkpoint, CheckpointMeta, TrainEvent};

use crate::config::JobFile;
use crate::progress::Bars;
use crate::Common;

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The job's TOML file (model, dataset, seed, hyperparameters).
    config: PathBuf,
    /// Start from this checkpoint (its weights, plan and masks) instead of fresh weights.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Where to write the trained checkpoint (.safetensors; metadata goes beside it).
    #[arg(long, short)]
    out: PathBuf,
    /// Override the number of epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Override the learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// Override the seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override the batch size.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Stop each epoch after this many batches.
    #[arg(long)]
    max_batches: Option<usize>,
    /// Train on only the first N training images.
    #[arg(long)]
    train_subset: Option<usize>,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: TrainArgs) -> anyhow::Result<()> {
    let mut job = JobFile::read(&a.config)?;
    if let Some(e) = a.epochs {
        job.train.epochs = e;
    }
    if let Some(lr) = a.lr {
        job.train.optimizer.set_lr(lr);
    }
    if let Some(s) = a.seed {
        job.seed = s;
    }
    if let Some(b) = a.batch_size {
        job.train.batch_size = b;
    }
    if a.max_batches.is_some() {
        job.train.max_batches = a.max_batches;
    }
    if a.train_subset.is_some() {
        job.train_subset = a.train_subset;
    }
    job.train.validate()?;
    let device = safs::device::parse_device(&a.common.device)?;
    let root = a.common.data_dir.clone().unwrap_or_else(default_data_dir);
    let splits = job.load_data(&root)?;
    let classes = splits.train.num_classes();

    let mut model = job
        .model
        .build_scaled(classes, job.model_width, job.seed, &device)?;
    let mut masks = None;
    let mut note = "dense".to_string();
    if let Some(from) = &a.from {
        let (meta, m) = load_checkpoint(from, model.as_mut(), &device)
            .with_context(|| format!("loading {}", from.display()))?;
        masks = m;
        note = format!("fine-tuned from {} ({})", from.display(), meta.note);
    }

    let started = std::time::Instant::now();
    let mut bars = Bars::new(if a.from.is_some() {
        "fine-tune"
    } else {
        "train"
    });
    let out = a.out.clone();
    let mut observer = |ev: &TrainEvent, m: &dyn Network| -> safs::Result<()> {
        bars.on_event(ev);
        if let TrainEvent::Epoch(s) = ev {
            // Saved after every epoch: an interrupted run keeps its last finished epoch.
            let meta = CheckpointMeta {
                model: m.name().to_string(),
                num_classes: classes,
                width: job.model_width,
                plan: m.plan(),
                epoch: s.epoch + 1,
                valid_acc: s.valid.map(|v| v.top1),
                note: note.clone(),
                safs_version: env!("CARGO_PKG_VERSION").to_string(),
            };
            save_checkpoint(&out, m, masks.as_ref(), &meta)?;
        }
        Ok(())
    };
    let report = fit(
        model.as_mut(),
        masks.as_ref(),
        &splits.train,
        Some(&splits.valid),
        &job.train,
        job.seed,
        &device,
        &mut observer,
    )?;
    let test = evaluate(
        model.as_ref(),
        &splits.test,
        job.train.eval_batch_size,
        &device,
    )?;
    let valid = report.final_valid().map(|v| v.top1).unwrap_or(f64::NAN);
    println!(
        "result: model={} epochs={} valid_top1={valid:.2} test_top1={:.2} test_top5={:.2} seconds={:.1} checkpoint={}",
        model.name(),
        report.epochs.len(),
        test.top1,
        test.top5,
        started.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}
