//! The training loop: seeded batches, optimiser steps, masks re-applied, events out.

use std::time::Instant;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::{
    correct_counts, evaluate, DecayScope, EpochSummary, Metrics, Optimizer, PlateauMetric,
    Scheduler, TrainConfig, TrainEvent,
};
use crate::data::ImageSet;
use crate::model::{Network, ParamKind};
use crate::prune::Masks;
use crate::{Error, Result};

/// The outcome of [`fit`]: one summary per epoch and the best validation epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// Every finished epoch in order.
    pub epochs: Vec<EpochSummary>,
    /// Index of the epoch with the highest validation top-1 (the earliest on ties).
    pub best_epoch: Option<usize>,
    /// Whether the model now holds the best epoch's weights (`restore_best`) rather than
    /// the last epoch's.
    pub restored: bool,
}

impl FitReport {
    /// Validation metrics after the last epoch, if a validation set was given.
    pub fn final_valid(&self) -> Option<Metrics> {
        self.epochs.last().and_then(|e| e.valid)
    }

    /// Validation metrics of the best epoch, if a validation set was given.
    pub fn best_valid(&self) -> Option<Metrics> {
        self.best_epoch.and_then(|i| self.epochs.get(i)?.valid)
    }

    /// Validation metrics of the weights the model holds now.
    pub fn held_valid(&self) -> Option<Metrics> {
        if self.restored {
            self.best_valid()
        } else {
            self.final_valid()
        }
    }
}

/// Something that watches a run: gets every event and read access to the model
/// (to draw progress, save a checkpoint after an epoch, or stop by returning an error).
pub type Observer<'a> = dyn FnMut(&TrainEvent, &dyn Network) -> Result<()> + 'a;

/// Trains `model` on `train` for `cfg.epochs` epochs.
///
/// Data order comes from `seed` (epoch `e` shuffles with `seed + e`). After every
/// optimiser step the `masks` are re-applied, so pruned weights stay exactly zero.
/// Weight decay applies to conv/linear weights, or to everything trained with
/// `decay = "all"`. The activation scales alpha, beta are trained when the model's slots are
/// trainable, the operators' own parameters when their mode says so. With a validation
/// set, every epoch is scored and the best epoch remembered; `restore_best` puts its
/// weights back at the end. A non-finite loss stops the run with [`Error::Diverged`].
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
    let mut trainer = Trainer::new(model, cfg)?;
    let data = FitData {
        masks,
        train,
        valid,
        seed,
        device,
    };
    trainer.train_until(model, &data, cfg.epochs, observer)?;
    trainer.finish(model)
}

/// What a [`Trainer`] trains on: the masks, the data, the data-order seed and the device.
#[derive(Clone, Copy)]
pub struct FitData<'a> {
    /// Pruning masks re-applied after every step.
    pub masks: Option<&'a Masks>,
    /// Training images.
    pub train: &'a ImageSet,
    /// Validation images scored after every epoch.
    pub valid: Option<&'a ImageSet>,
    /// Data-order seed (epoch `e` shuffles with `seed + e`).
    pub seed: u64,
    /// Where the batches go.
    pub device: &'a Device,
}

/// A training run that can stop after any epoch and continue later, in this process or
/// from its saved state ([`super::resume`]): the epochs it trains are those [`fit`] trains,
/// so a run stopped at epoch `r` and continued to `cfg.epochs` ends where `fit` ends.
pub struct Trainer {
    cfg: TrainConfig,
    pub(super) opt: Optimizer,
    sched: Scheduler,
    pub(super) report: FitReport,
    best: Option<(f64, Vec<candle_core::Tensor>)>,
    started: bool,
}

impl Trainer {
    /// The optimiser (decayed group first, see [`fit`]) and schedule for `cfg.epochs` epochs.
    pub fn new(model: &dyn Network, cfg: &TrainConfig) -> Result<Self> {
        cfg.validate()?;
        let mut decay = Vec::new();
        let mut no_decay = Vec::new();
        let all = cfg.decay == DecayScope::All;
        for p in model.parameters() {
            match p.kind {
                ParamKind::Weight => decay.push(p.var),
                ParamKind::Bias | ParamKind::Norm if all => decay.push(p.var),
                ParamKind::Bias | ParamKind::Norm => no_decay.push(p.var),
            }
        }
        let mut extra = Vec::new();
        for slot in model.activations() {
            if slot.trainable() {
                extra.extend(slot.vars());
            }
            if slot.params_trainable() {
                extra.push(slot.params_var().clone());
            }
        }
        if all {
            decay.extend(extra);
        } else {
            no_decay.extend(extra);
        }
        Ok(Trainer {
            opt: cfg.optimizer.build_with_groups(decay, no_decay)?,
            sched: cfg.schedule.build(cfg.optimizer.lr(), cfg.epochs)?,
            cfg: cfg.clone(),
            report: FitReport::default(),
            best: None,
            started: false,
        })
    }

    /// The configuration being trained.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Epochs finished so far.
    pub fn epochs_done(&self) -> usize {
        self.report.epochs.len()
    }

    /// The report so far.
    pub fn report(&self) -> &FitReport {
        &self.report
    }

    /// Positions a fresh trainer after the epochs of `report`, with the optimiser state
    /// already loaded: the schedule replays their metrics, the best epoch is taken from them.
    pub(super) fn replay(&mut self, report: FitReport) -> Result<()> {
        if report.epochs.len() > self.cfg.epochs {
            return Err(Error::Config(format!(
                "a saved training state has {} epochs, the run has {}",
                report.epochs.len(),
                self.cfg.epochs
            )));
        }
        if let Some(b) = report.best_epoch.filter(|&b| b >= report.epochs.len()) {
            return Err(Error::Config(format!(
                "a saved training state names epoch {b} as its best but has {} epochs",
                report.epochs.len()
            )));
        }
        if self.cfg.restore_best && report.best_epoch.is_some() {
            return Err(Error::Config(
                "a training that restores its best epoch cannot continue from a saved state".into(),
            ));
        }
        let on_loss = self.plateau_on_loss();
        for e in &report.epochs {
            self.sched.step(if on_loss {
                Some(e.train_loss)
            } else {
                e.valid.map(|m| m.top1)
            });
        }
        self.best = report.best_valid().map(|m| (m.top1, Vec::new()));
        self.report = report;
        self.started = true;
        Ok(())
    }

    fn plateau_on_loss(&self) -> bool {
        self.cfg.schedule.kind.plateau_metric() == Some(PlateauMetric::TrainLoss)
    }

    /// Trains until `until` epochs are done (at most `cfg.epochs`).
    pub fn train_until(
        &mut self,
        model: &mut dyn Network,
        data: &FitData<'_>,
        until: usize,
        observer: &mut Observer<'_>,
    ) -> Result<()> {
        let cfg = &self.cfg;
        let train = data.train;
        if train.is_empty() {
            return Err(Error::Config("the training set is empty".into()));
        }
        let full = train.len().div_ceil(cfg.batch_size);
        let batches = cfg.max_batches.map_or(full, |m| m.min(full));
        if !self.started {
            if let Some(m) = data.masks {
                m.apply(model)?;
            }
            observer(
                &TrainEvent::Started {
                    epochs: cfg.epochs,
                    batches,
                },
                model,
            )?;
            self.started = true;
        }
        let plateau_on_loss = self.plateau_on_loss();
        let cfg = &self.cfg;
        for epoch in self.report.epochs.len()..until.min(cfg.epochs) {
            let start = Instant::now();
            let lr = self.sched.lr();
            self.opt.set_lr(lr);
            let (mut loss_sum, mut seen, mut correct) = (0f64, 0usize, 0usize);
            let order_seed = data.seed.wrapping_add(epoch as u64);
            for (batch, item) in train
                .batches(cfg.batch_size, Some(order_seed), data.device)
                .take(batches)
                .enumerate()
            {
                let (x, y) = item?;
                // The step on a thread of the kernels' pool (on the CPU): their parallel loops
                // then start in place, without a hand-off each.
                let (opt, y_ref) = (&mut self.opt, &y);
                let model_on_pool = &mut *model;
                let (logits, value) =
                    crate::kernels::on_pool_for(data.device, move || -> Result<_> {
                        let logits = model_on_pool.forward_t(&x, true)?;
                        let loss = candle_nn::loss::cross_entropy(&logits, y_ref)?;
                        let value = loss.to_scalar::<f32>()? as f64;
                        if !value.is_finite() {
                            return Err(Error::Diverged(format!(
                                "{}: loss {value} at epoch {epoch}, batch {batch} (lr {lr:e})",
                                model_on_pool.name()
                            )));
                        }
                        let grads = loss.backward()?;
                        opt.step(&grads)?;
                        if let Some(m) = data.masks {
                            m.apply(model_on_pool)?;
                        }
                        Ok((logits, value))
                    })?;
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
            let valid = match data.valid {
                Some(v) => Some(evaluate(model, v, cfg.eval_batch_size, data.device)?),
                None => None,
            };
            let train_loss = loss_sum / seen.max(1) as f64;
            self.sched.step(if plateau_on_loss {
                Some(train_loss)
            } else {
                valid.map(|m| m.top1)
            });
            if let Some(m) = valid.filter(|m| !m.top1.is_nan()) {
                // Ties keep the earlier epoch.
                if self.best.as_ref().is_none_or(|(b, _)| m.top1 > *b) {
                    let snapshot = if cfg.restore_best {
                        model.snapshot()?
                    } else {
                        Vec::new()
                    };
                    self.best = Some((m.top1, snapshot));
                    self.report.best_epoch = Some(epoch);
                }
            }
            let summary = EpochSummary {
                epoch,
                train_loss,
                train_acc: 100.0 * correct as f64 / seen.max(1) as f64,
                valid,
                lr,
                seconds: start.elapsed().as_secs_f64(),
            };
            observer(&TrainEvent::Epoch(summary.clone()), model)?;
            self.report.epochs.push(summary);
        }
        Ok(())
    }

    /// Ends the run: with `restore_best`, puts the best epoch's weights back.
    pub fn finish(self, model: &mut dyn Network) -> Result<FitReport> {
        let mut report = self.report;
        if let (true, Some((_, snapshot))) = (self.cfg.restore_best, &self.best) {
            if report.best_epoch != Some(self.cfg.epochs - 1) {
                model.restore(snapshot)?;
            }
            report.restored = true;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ImageSet, Normalize};
    use crate::model::LeNet5;
    use crate::train::{OptimizerConfig, ScheduleConfig, ScheduleSpec};
    use rand::{Rng, SeedableRng};

    /// Random 28x28 images; labels follow the mean brightness of the top half (learnable)
    /// unless `noise`, when they are random (so validation accuracy wanders).
    fn images(n: usize, seed: u64, noise: bool) -> ImageSet {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut data = vec![0u8; n * 784];
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let img = &mut data[i * 784..(i + 1) * 784];
            rng.fill(img);
            let top: u32 = img[..392].iter().map(|&b| b as u32).sum::<u32>() / 392;
            labels.push(if noise {
                rng.gen_range(0..10)
            } else {
                (top % 10) as u32
            });
        }
        ImageSet::new(data, labels, [1, 28, 28], 10, Normalize::identity(1)).unwrap()
    }

    fn cfg(epochs: usize, lr: f64) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 32,
            eval_batch_size: 200,
            max_batches: None,
            optimizer: OptimizerConfig::adam(lr),
            schedule: ScheduleSpec::from(ScheduleConfig::Constant),
            decay: DecayScope::Weights,
            restore_best: true,
        }
    }

    fn weights(m: &dyn Network) -> Vec<Vec<f32>> {
        m.parameters()
            .iter()
            .map(|p| p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    }

    #[test]
    fn restore_best_puts_back_the_best_epochs_weights() {
        let dev = Device::Cpu;
        let train = images(256, 1, false);
        let valid = images(200, 2, true);
        let mut checked = false;
        for seed in 0..6 {
            let mut model = LeNet5::new(10, seed, &dev).unwrap();
            let mut seen: Vec<(f64, Vec<Vec<f32>>)> = Vec::new();
            let mut obs = |ev: &TrainEvent, m: &dyn Network| {
                if let TrainEvent::Epoch(e) = ev {
                    seen.push((e.valid.unwrap().top1, weights(m)));
                }
                Ok(())
            };
            let c = cfg(5, 3e-3);
            let r = fit(
                &mut model,
                None,
                &train,
                Some(&valid),
                &c,
                seed,
                &dev,
                &mut obs,
            )
            .unwrap();
            // The best epoch is the first maximum of what the observer saw.
            let accs: Vec<f64> = seen.iter().map(|s| s.0).collect();
            let top = accs.iter().cloned().fold(f64::MIN, f64::max);
            let first = accs.iter().position(|&a| a == top).unwrap();
            assert_eq!(r.best_epoch, Some(first), "{accs:?}");
            assert!(r.restored);
            assert_eq!(r.held_valid().unwrap().top1, top);
            let now = weights(&model);
            assert_eq!(
                now, seen[first].1,
                "seed {seed}: not the best epoch's weights"
            );
            if first != 4 {
                assert_ne!(
                    now, seen[4].1,
                    "the best and the last epoch's weights are distinct"
                );
                checked = true;
            }
        }
        assert!(
            checked,
            "no seed had its best epoch before the last; the test shows nothing"
        );
    }

    #[test]
    fn without_restore_the_last_epoch_stays() {
        let dev = Device::Cpu;
        let (train, valid) = (images(128, 1, false), images(100, 2, true));
        let mut model = LeNet5::new(10, 0, &dev).unwrap();
        let mut last = Vec::new();
        let mut obs = |ev: &TrainEvent, m: &dyn Network| {
            if let TrainEvent::Epoch(_) = ev {
                last = weights(m);
            }
            Ok(())
        };
        let c = TrainConfig {
            restore_best: false,
            ..cfg(3, 3e-3)
        };
        let r = fit(
            &mut model,
            None,
            &train,
            Some(&valid),
            &c,
            0,
            &dev,
            &mut obs,
        )
        .unwrap();
        assert!(!r.restored && r.best_epoch.is_some());
        assert_eq!(weights(&model), last);
        assert_eq!(r.held_valid(), r.final_valid());
    }

    #[test]
    fn decay_scope_all_shrinks_biases_and_scales() {
        // With a zero learning signal (lr tiny) the only visible change comes from decay:
        // compare a bias and an activation scale after one SGD epoch with a huge decay.
        let dev = Device::Cpu;
        let train = images(64, 3, false);
        let run = |decay: DecayScope| {
            let mut model = LeNet5::new(10, 0, &dev).unwrap();
            model.set_scales_trainable(true);
            let c = TrainConfig {
                optimizer: OptimizerConfig::Sgd {
                    lr: 0.1,
                    momentum: 0.0,
                    nesterov: false,
                    weight_decay: 5.0,
                },
                decay,
                restore_best: false,
                max_batches: Some(1),
                ..cfg(1, 0.1)
            };
            fit(&mut model, None, &train, None, &c, 0, &dev, &mut |_, _| {
                Ok(())
            })
            .unwrap();
            let bias = model
                .parameters()
                .into_iter()
                .find(|p| p.name.ends_with(".bias"))
                .unwrap();
            let b: Vec<f32> = bias.var.as_tensor().to_vec1().unwrap();
            (b, model.activations()[0].beta().unwrap())
        };
        let (b_weights, beta_weights) = run(DecayScope::Weights);
        let (b_all, beta_all) = run(DecayScope::All);
        // p <- p - lr * (g + wd * p): decay takes 0.1 * 5 = half of every decayed value.
        let norm = |v: &[f32]| v.iter().map(|x| x.abs()).sum::<f32>();
        assert!(
            norm(&b_all) < 0.75 * norm(&b_weights),
            "{b_all:?} vs {b_weights:?}"
        );
        assert!(
            beta_all < 0.75 * beta_weights,
            "{beta_all} vs {beta_weights}"
        );
    }

    /// A saved state naming a best epoch it does not have is an error (found by the fuzz
    /// tests: it panicked, index out of bounds, in `FitReport::best_valid`).
    #[test]
    fn replay_refuses_a_best_epoch_past_the_epochs() {
        let model = LeNet5::new(10, 0, &Device::Cpu).unwrap();
        let cfg = TrainConfig {
            restore_best: false,
            ..cfg(3, 1e-3)
        };
        let mut t = Trainer::new(&model, &cfg).unwrap();
        let report = FitReport {
            epochs: Vec::new(),
            best_epoch: Some(10),
            restored: false,
        };
        assert_eq!(report.best_valid(), None);
        let e = t.replay(report).unwrap_err().to_string();
        assert!(e.contains("epoch 10") && e.contains("0 epochs"), "{e}");
    }
}
