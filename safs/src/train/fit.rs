//! The training loop: seeded batches, optimiser steps, masks re-applied, events out.

use std::time::Instant;

use candle_core::Device;

use super::{correct_counts, evaluate, EpochSummary, Metrics, TrainConfig, TrainEvent};
use crate::data::ImageSet;
use crate::model::{Network, ParamKind};
use crate::prune::Masks;
use crate::{Error, Result};

/// The outcome of [`fit`]: one summary per epoch.
#[derive(Clone, Debug, Default)]
pub struct FitReport {
    /// Every finished epoch in order.
    pub epochs: Vec<EpochSummary>,
}

impl FitReport {
    /// Validation metrics after the last epoch, if a validation set was given.
    pub fn final_valid(&self) -> Option<Metrics> {
        self.epochs.last().and_then(|e| e.valid)
    }
}

/// Something that watches a run: gets every event and read access to the model
/// (to draw progress, save a checkpoint after an epoch, or stop by returning an error).
pub type Observer<'a> = dyn FnMut(&TrainEvent, &dyn Network) -> Result<()> + 'a;

/// Trains `model` on `train` for `cfg.epochs` epochs.
///
/// Data order comes from `seed` (epoch `e` shuffles with `seed + e`). After every
/// optimiser step the `masks` are re-applied, so pruned weights stay exactly zero.
/// Weight decay applies to conv/linear weights only. The activation scales alpha, beta
/// are trained when the model's slots are trainable. A non-finite loss stops the run with
/// [`Error::Diverged`].
#[allow(clippy::too_many_arguments)]
pub fn fit(
    model: &mut dyn Network,
    masks: Option<&Masks>,
    train: &ImageSet,
    valid: Option<&ImageSet>,
    cfg: &TrainConfig,
    seed: u64,
    device: &Device,
    observer: &mut Observer<'_>,
) -> Result<FitReport> {
    cfg.validate()?;
    if train.is_empty() {
        return Err(Error::Config("the training set is empty".into()));
    }
    let mut decay = Vec::new();
    let mut no_decay = Vec::new();
    for p in model.parameters() {
        match p.kind {
            ParamKind::Weight => decay.push(p.var),
            ParamKind::Bias | ParamKind::Norm => no_decay.push(p.var),
        }
    }
    for slot in model.activations() {
        if slot.trainable() {
            no_decay.extend(slot.vars());
        }
    }
    let mut opt = cfg.optimizer.build_with_groups(decay, no_decay)?;
    let mut sched = cfg.schedule.build(cfg.optimizer.lr(), cfg.epochs)?;
    if let Some(m) = masks {
        m.apply(model)?;
    }

    let full = train.len().div_ceil(cfg.batch_size);
    let batches = cfg.max_batches.map_or(full, |m| m.min(full));
    observer(
        &TrainEvent::Started {
            epochs: cfg.epochs,
            batches,
        },
        model,
    )?;

    let mut report = FitReport::default();
    for epoch in 0..cfg.epochs {
        let start = Instant::now();
        let lr = sched.lr();
        opt.set_lr(lr);
        let (mut loss_sum, mut seen, mut correct) = (0f64, 0usize, 0usize);
        let order_seed = seed.wrapping_add(epoch as u64);
        for (batch, item) in train
            .batches(cfg.batch_size, Some(order_seed), device)
            .take(batches)
            .enumerate()
        {
            let (x, y) = item?;
            let logits = model.forward_t(&x, true)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y)?;
            let value = loss.to_scalar::<f32>()? as f64;
            if !value.is_finite() {
                return Err(Error::Diverged(format!(
                    "{}: loss {value} at epoch {epoch}, batch {batch} (lr {lr:e})",
                    model.name()
                )));
            }
            let grads = loss.backward()?;
            opt.step(&grads)?;
            if let Some(m) = masks {
                m.apply(model)?;
            }
            let b = y.dims1()?;
            loss_sum += value * b as f64;
            seen += b;
            correct += correct_counts(&logits, &y)?.0;
            observer(
                &TrainEvent::Batch {
                    epoch,
                    batch,
                    batches,
                    loss: value,
                    lr,
                },
                model,
            )?;
        }
        let valid = match valid {
            Some(v) => Some(evaluate(model, v, cfg.eval_batch_size, device)?),
            None => None,
        };
        sched.step(valid.map(|m| m.top1));
        let summary = EpochSummary {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: 100.0 * correct as f64 / seen.max(1) as f64,
            valid,
            lr,
            seconds: start.elapsed().as_secs_f64(),
        };
        observer(&TrainEvent::Epoch(summary.clone()), model)?;
        report.epochs.push(summary);
    }
    Ok(report)
}
