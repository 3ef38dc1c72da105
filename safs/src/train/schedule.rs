//! Learning-rate schedules, stepped once per epoch like PyTorch's `torch.optim.lr_scheduler`
//! (or once per iteration, by building the [`Scheduler`] with the number of iterations).
//!
//! Every schedule except `plateau` uses PyTorch's closed form (`_get_closed_form_lr`), so the
//! learning rate at epoch `t` does not depend on rounding accumulated over earlier steps:
//!
//! | `name`                 | PyTorch class                  | lr at main-schedule epoch `t`                               |
//! |------------------------|--------------------------------|-------------------------------------------------------------|
//! | `constant`             | –                              | `base`                                                      |
//! | `step`                 | `StepLR`                       | `base * gamma^floor(t / step_size)`                         |
//! | `multi_step`           | `MultiStepLR`                  | `base * gamma^bisect_right(milestones, t)`                  |
//! | `exponential`          | `ExponentialLR`                | `base * gamma^t`                                            |
//! | `cosine`               | `CosineAnnealingLR`            | `eta_min + (base - eta_min) * (1 + cos(pi t / t_max)) / 2`  |
//! | `cosine_warm_restarts` | `CosineAnnealingWarmRestarts`  | same with `T_cur / T_i`, `T_i` growing by `t_mult`          |
//! | `linear`               | `LinearLR`                     | `base * (s + (e - s) * min(t, total_iters) / total_iters)`  |
//! | `plateau`              | `ReduceLROnPlateau`            | reduced by `factor` after `patience + 1` bad epochs         |
//!
//! An optional linear warm-up (`warmup_epochs = W`) behaves like PyTorch's
//! `SequentialLR([LinearLR(start_factor, 1.0, W), main], milestones=[W])`: epochs `0..W` use
//! `base * (s + (1 - s) * e / W)` and the main schedule then starts at its own epoch 0, so its
//! milestones, `t_max` and `total_iters` count from the end of the warm-up, and the defaults of
//! `t_max` / `total_iters` are `epochs - W`.
//!
//! ```toml
//! [schedule]
//! name = "cosine"
//! eta_min = 0.0
//! warmup_epochs = 5
//! ```

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

fn default_gamma() -> f64 {
    0.1
}
fn default_one_usize() -> usize {
    1
}
fn default_start_factor() -> f64 {
    1.0
}
fn default_factor() -> f64 {
    0.1
}
fn default_patience() -> usize {
    10
}
fn default_threshold() -> f64 {
    1e-4
}
fn default_plateau_eps() -> f64 {
    1e-8
}

/// Whether a larger (`max`, e.g. accuracy) or smaller (`min`, e.g. loss) metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlateauMode {
    /// Larger is better (accuracy).
    #[default]
    Max,
    /// Smaller is better (loss).
    Min,
}

/// What `plateau` watches at the end of every epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlateauMetric {
    /// Validation top-1 accuracy (use with `mode = "max"`).
    #[default]
    ValidAcc,
    /// Mean training loss of the epoch (use with `mode = "min"`; the SAFS authors' choice).
    TrainLoss,
}

/// How `threshold` defines a significant improvement (PyTorch's `threshold_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdMode {
    /// `best * (1 + threshold)` (max) or `best * (1 - threshold)` (min).
    #[default]
    Rel,
    /// `best + threshold` (max) or `best - threshold` (min).
    Abs,
}

/// The shape of a learning-rate schedule (see the module docs for the formulas).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleConfig {
    /// The base learning rate throughout.
    #[default]
    Constant,
    /// `StepLR`: multiply by `gamma` every `step_size` epochs.
    Step {
        /// Epochs between decays (> 0).
        step_size: usize,
        /// Decay factor.
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// `MultiStepLR`: multiply by `gamma` at each milestone (any order; repeats compound).
    MultiStep {
        /// Epochs at which the rate decays.
        milestones: Vec<usize>,
        /// Decay factor.
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// `ExponentialLR`: multiply by `gamma` every epoch.
    Exponential {
        /// Decay factor.
        gamma: f64,
    },
    /// `CosineAnnealingLR` (closed form).
    Cosine {
        /// Half-period in epochs; `None` = the epochs after warm-up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        t_max: Option<usize>,
        /// Minimum learning rate.
        #[serde(default)]
        eta_min: f64,
    },
    /// `CosineAnnealingWarmRestarts` (SGDR).
    CosineWarmRestarts {
        /// Length of the first period (> 0, unless `periods` is given).
        #[serde(default)]
        t_0: usize,
        /// Instead of `t_0`: the first period is `max(1, E / periods)` of the `E` epochs after
        /// warm-up (the SAFS authors' `T_0 = epochs // 4` is `periods = 4`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        periods: Option<usize>,
        /// Growth factor of the period after each restart (>= 1).
        #[serde(default = "default_one_usize")]
        t_mult: usize,
        /// Minimum learning rate.
        #[serde(default)]
        eta_min: f64,
    },
    /// `LinearLR`: factor interpolated from `start_factor` to `end_factor` over `total_iters`.
    /// (Defaults differ from PyTorch: a linear decay from the base rate to 0.)
    Linear {
        /// Factor at epoch 0, in `[0, 1]`.
        #[serde(default = "default_start_factor")]
        start_factor: f64,
        /// Factor from `total_iters` on, in `[0, 1]`.
        #[serde(default)]
        end_factor: f64,
        /// Epochs of interpolation; `None` = the epochs after warm-up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        total_iters: Option<usize>,
    },
    /// `ReduceLROnPlateau` driven by the metric passed to [`Scheduler::step`].
    Plateau {
        /// The metric watched: validation accuracy (default) or training loss.
        #[serde(default)]
        metric: PlateauMetric,
        /// `max` (accuracy, default) or `min` (loss).
        #[serde(default)]
        mode: PlateauMode,
        /// Multiplier applied on a reduction, in `(0, 1)`.
        #[serde(default = "default_factor")]
        factor: f64,
        /// Bad epochs tolerated; the rate drops on the `patience + 1`-th.
        #[serde(default = "default_patience")]
        patience: usize,
        /// Minimum significant improvement.
        #[serde(default = "default_threshold")]
        threshold: f64,
        /// `rel` (default) or `abs`.
        #[serde(default)]
        threshold_mode: ThresholdMode,
        /// Epochs to wait after a reduction before counting bad epochs again.
        #[serde(default)]
        cooldown: usize,
        /// Lower bound of the learning rate.
        #[serde(default)]
        min_lr: f64,
        /// Reductions smaller than this are skipped.
        #[serde(default = "default_plateau_eps")]
        eps: f64,
    },
}

/// A schedule plus an optional linear warm-up; this is the `[schedule]` table of an experiment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// The main schedule (its fields sit in the same table, tagged by `name`).
    #[serde(flatten)]
    pub kind: ScheduleConfig,
    /// Epochs of linear warm-up before the main schedule starts (0 = none).
    #[serde(default)]
    pub warmup_epochs: usize,
    /// Warm-up factor at epoch 0 in `[0, 1]`; `None` = `1 / (warmup_epochs + 1)`, i.e. the
    /// rate at warm-up epoch `e` is `base * (e + 1) / (warmup_epochs + 1)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup_start_factor: Option<f64>,
}

impl From<ScheduleConfig> for ScheduleSpec {
    fn from(kind: ScheduleConfig) -> Self {
        ScheduleSpec {
            kind,
            warmup_epochs: 0,
            warmup_start_factor: None,
        }
    }
}

fn bad(field: &str, value: impl std::fmt::Display, want: &str) -> Error {
    Error::Config(format!(
        "schedule: {field} = {value} is invalid; it must be {want}"
    ))
}

fn check(ok: bool, field: &str, value: impl std::fmt::Display, want: &str) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(bad(field, value, want))
    }
}

fn check_unit(field: &str, value: f64, closed_at_zero: bool) -> Result<()> {
    if closed_at_zero {
        check((0.0..=1.0).contains(&value), field, value, "in [0, 1]")
    } else {
        check(value > 0.0 && value <= 1.0, field, value, "in (0, 1]")
    }
}

fn check_nonneg(field: &str, value: f64) -> Result<()> {
    check(
        value.is_finite() && value >= 0.0,
        field,
        value,
        "finite and >= 0",
    )
}

impl ScheduleConfig {
    /// The schedule's name as written in TOML.
    pub fn name(&self) -> &'static str {
        match self {
            ScheduleConfig::Constant => "constant",
            ScheduleConfig::Step { .. } => "step",
            ScheduleConfig::MultiStep { .. } => "multi_step",
            ScheduleConfig::Exponential { .. } => "exponential",
            ScheduleConfig::Cosine { .. } => "cosine",
            ScheduleConfig::CosineWarmRestarts { .. } => "cosine_warm_restarts",
            ScheduleConfig::Linear { .. } => "linear",
            ScheduleConfig::Plateau { .. } => "plateau",
        }
    }

    /// The metric `plateau` watches (`None` for every other schedule).
    pub fn plateau_metric(&self) -> Option<PlateauMetric> {
        match self {
            ScheduleConfig::Plateau { metric, .. } => Some(*metric),
            _ => None,
        }
    }

    /// Checks the values that do not depend on the base rate or the number of epochs.
    pub fn validate(&self) -> Result<()> {
        match self {
            ScheduleConfig::Constant => {}
            ScheduleConfig::Step { step_size, gamma } => {
                check(*step_size > 0, "step_size", step_size, "> 0")?;
                check_unit("gamma", *gamma, false)?;
            }
            ScheduleConfig::MultiStep { gamma, .. } => check_unit("gamma", *gamma, false)?,
            ScheduleConfig::Exponential { gamma } => check_unit("gamma", *gamma, false)?,
            ScheduleConfig::Cosine { t_max, eta_min } => {
                if let Some(t) = t_max {
                    check(*t > 0, "t_max", t, "> 0")?;
                }
                check_nonneg("eta_min", *eta_min)?;
            }
            ScheduleConfig::CosineWarmRestarts {
                t_0,
                periods,
                t_mult,
                eta_min,
            } => {
                match periods {
                    None => check(*t_0 > 0, "t_0", t_0, "> 0 (or give periods)")?,
                    Some(p) => {
                        check(*p > 0, "periods", p, "> 0")?;
                        check(*t_0 == 0, "t_0", t_0, "left out when periods is given")?;
                    }
                }
                check(*t_mult >= 1, "t_mult", t_mult, ">= 1")?;
                check_nonneg("eta_min", *eta_min)?;
            }
            ScheduleConfig::Linear {
                start_factor,
                end_factor,
                total_iters,
            } => {
                check_unit("start_factor", *start_factor, true)?;
                check_unit("end_factor", *end_factor, true)?;
                if let Some(n) = total_iters {
                    check(*n > 0, "total_iters", n, "> 0")?;
                }
            }
            ScheduleConfig::Plateau {
                metric,
                mode,
                factor,
                threshold,
                min_lr,
                eps,
                ..
            } => {
                let want = match metric {
                    PlateauMetric::ValidAcc => PlateauMode::Max,
                    PlateauMetric::TrainLoss => PlateauMode::Min,
                };
                check(
                    *mode == want,
                    "mode",
                    format!("{mode:?} for metric {metric:?}").to_lowercase(),
                    "max for valid_acc and min for train_loss",
                )?;
                check(
                    *factor > 0.0 && *factor < 1.0,
                    "factor",
                    factor,
                    "in (0, 1)",
                )?;
                check_nonneg("threshold", *threshold)?;
                check_nonneg("min_lr", *min_lr)?;
                check_nonneg("eps", *eps)?;
            }
        }
        Ok(())
    }
}

impl ScheduleSpec {
    /// Checks the values that do not depend on the base rate or the number of epochs.
    pub fn validate(&self) -> Result<()> {
        self.kind.validate()?;
        if let Some(s) = self.warmup_start_factor {
            check_unit("warmup_start_factor", s, true)?;
        }
        Ok(())
    }

    /// Builds the scheduler for a run of `epochs` epochs (or iterations) starting at `base_lr`.
    pub fn build(&self, base_lr: f64, epochs: usize) -> Result<Scheduler> {
        Scheduler::new(self, base_lr, epochs)
    }
}

/// ReduceLROnPlateau's bookkeeping.
#[derive(Debug, Clone)]
struct PlateauState {
    best: f64,
    num_bad_epochs: usize,
    cooldown_counter: usize,
    lr: f64,
}

/// A learning-rate schedule in progress; epoch 0's rate is available right after [`Scheduler::new`].
#[derive(Debug, Clone)]
pub struct Scheduler {
    kind: ScheduleConfig,
    base_lr: f64,
    epochs: usize,
    warmup: usize,
    warmup_start: f64,
    /// Resolved `t_max` / `total_iters`.
    horizon: usize,
    epoch: usize,
    lr: f64,
    plateau: PlateauState,
}

impl Scheduler {
    /// Validates `spec` against `base_lr` and `epochs` and positions the schedule at epoch 0.
    pub fn new(spec: &ScheduleSpec, base_lr: f64, epochs: usize) -> Result<Self> {
        spec.validate()?;
        check(
            base_lr.is_finite() && base_lr > 0.0,
            "base lr",
            base_lr,
            "finite and > 0",
        )?;
        check(epochs > 0, "epochs", epochs, "> 0")?;
        let warmup = spec.warmup_epochs;
        if warmup >= epochs {
            return Err(bad(
                "warmup_epochs",
                warmup,
                &format!("smaller than the run's {epochs} epochs"),
            ));
        }
        let main_epochs = epochs - warmup;
        let mut kind = spec.kind.clone();
        let horizon = match &mut kind {
            ScheduleConfig::Cosine { t_max, eta_min } => {
                check(
                    *eta_min <= base_lr,
                    "eta_min",
                    *eta_min,
                    &format!("<= the base lr {base_lr}"),
                )?;
                t_max.unwrap_or(main_epochs)
            }
            ScheduleConfig::CosineWarmRestarts {
                eta_min,
                t_0,
                periods,
                ..
            } => {
                check(
                    *eta_min <= base_lr,
                    "eta_min",
                    *eta_min,
                    &format!("<= the base lr {base_lr}"),
                )?;
                if let Some(p) = *periods {
                    *t_0 = (main_epochs / p).max(1);
                }
                main_epochs
            }
            ScheduleConfig::Linear { total_iters, .. } => total_iters.unwrap_or(main_epochs),
            ScheduleConfig::MultiStep { milestones, .. } => {
                milestones.sort_unstable();
                main_epochs
            }
            _ => main_epochs,
        };
        let warmup_start = spec
            .warmup_start_factor
            .unwrap_or(1.0 / (warmup as f64 + 1.0));
        let mode = match kind {
            ScheduleConfig::Plateau { mode, .. } => mode,
            _ => PlateauMode::Max,
        };
        let mut s = Scheduler {
            kind,
            base_lr,
            epochs,
            warmup,
            warmup_start,
            horizon,
            epoch: 0,
            lr: base_lr,
            plateau: PlateauState {
                best: match mode {
                    PlateauMode::Max => f64::NEG_INFINITY,
                    PlateauMode::Min => f64::INFINITY,
                },
                num_bad_epochs: 0,
                cooldown_counter: 0,
                lr: base_lr,
            },
        };
        s.lr = s.compute_lr();
        Ok(s)
    }

    /// The learning rate for the current epoch.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// The current epoch (0 until the first [`Scheduler::step`]).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// The base learning rate.
    pub fn base_lr(&self) -> f64 {
        self.base_lr
    }

    /// The number of epochs the schedule was built for.
    pub fn epochs(&self) -> usize {
        self.epochs
    }

    /// Ends the current epoch and returns the rate for the next one. `metric` is the finished
    /// epoch's validation metric; only `plateau` uses it (ignored during warm-up; `None` leaves
    /// the plateau state unchanged).
    pub fn step(&mut self, metric: Option<f64>) -> f64 {
        let finished = self.epoch;
        if let Some(metric) = metric.filter(|_| finished >= self.warmup) {
            self.plateau_step(metric);
        }
        self.epoch += 1;
        self.lr = self.compute_lr();
        self.lr
    }

    /// `ReduceLROnPlateau.step(metric)`.
    fn plateau_step(&mut self, current: f64) {
        let ScheduleConfig::Plateau {
            mode,
            factor,
            patience,
            threshold,
            threshold_mode,
            cooldown,
            min_lr,
            eps,
            ..
        } = self.kind
        else {
            return;
        };
        let st = &mut self.plateau;
        let best = st.best;
        let better = match (mode, threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => current < best * (1.0 - threshold),
            (PlateauMode::Min, ThresholdMode::Abs) => current < best - threshold,
            (PlateauMode::Max, ThresholdMode::Rel) => current > best * (threshold + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => current > best + threshold,
        };
        if better {
            st.best = current;
            st.num_bad_epochs = 0;
        } else {
            st.num_bad_epochs += 1;
        }
        if st.cooldown_counter > 0 {
            st.cooldown_counter -= 1;
            st.num_bad_epochs = 0;
        }
        if st.num_bad_epochs > patience {
            let new_lr = (st.lr * factor).max(min_lr);
            if st.lr - new_lr > eps {
                st.lr = new_lr;
            }
            st.cooldown_counter = cooldown;
            st.num_bad_epochs = 0;
        }
    }

    /// The rate at `self.epoch` (closed forms; plateau reads its state).
    fn compute_lr(&self) -> f64 {
        let base = self.base_lr;
        if self.epoch < self.warmup {
            let s = self.warmup_start;
            return base * (s + (1.0 - s) * self.epoch as f64 / self.warmup as f64);
        }
        let t = self.epoch - self.warmup;
        let cosine = |eta_min: f64, t_cur: f64, t_i: f64| {
            eta_min + (base - eta_min) * (1.0 + (std::f64::consts::PI * t_cur / t_i).cos()) / 2.0
        };
        match &self.kind {
            ScheduleConfig::Constant => base,
            ScheduleConfig::Step { step_size, gamma } => base * gamma.powf((t / step_size) as f64),
            ScheduleConfig::MultiStep { milestones, gamma } => {
                let passed = milestones.partition_point(|&m| m <= t);
                base * gamma.powf(passed as f64)
            }
            ScheduleConfig::Exponential { gamma } => base * gamma.powf(t as f64),
            ScheduleConfig::Cosine { eta_min, .. } => {
                cosine(*eta_min, t as f64, self.horizon as f64)
            }
            ScheduleConfig::CosineWarmRestarts {
                t_0,
                t_mult,
                eta_min,
                ..
            } => {
                // Exact integer version of PyTorch's T_cur / T_i bookkeeping.
                let (mut t_cur, mut t_i) = (t, *t_0);
                while t_cur >= t_i {
                    t_cur -= t_i;
                    t_i *= t_mult;
                }
                cosine(*eta_min, t_cur as f64, t_i as f64)
            }
            ScheduleConfig::Linear {
                start_factor,
                end_factor,
                ..
            } => {
                let n = self.horizon;
                base * (start_factor + (end_factor - start_factor) * t.min(n) as f64 / n as f64)
            }
            ScheduleConfig::Plateau { .. } => self.plateau.lr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    const BASE: f64 = 0.1;

    fn trace(spec: impl Into<ScheduleSpec>, epochs: usize, n: usize) -> Vec<f64> {
        let mut s = spec.into().build(BASE, epochs).unwrap();
        let mut out = vec![s.lr()];
        for _ in 1..n {
            out.push(s.step(None));
        }
        out
    }

    fn assert_trace(got: &[f64], want: impl Fn(usize) -> f64, what: &str) {
        for (t, g) in got.iter().enumerate() {
            let w = want(t);
            assert!((g - w).abs() < 1e-12, "{what} epoch {t}: got {g}, want {w}");
        }
    }

    #[test]
    fn constant() {
        let got = trace(ScheduleConfig::Constant, 25, 25);
        assert_trace(&got, |_| BASE, "constant");
    }

    #[test]
    fn step_lr() {
        let got = trace(
            ScheduleConfig::Step {
                step_size: 3,
                gamma: 0.5,
            },
            25,
            25,
        );
        assert_trace(&got, |t| BASE * 0.5f64.powi((t / 3) as i32), "step");
        assert_eq!(got[2], BASE);
        assert!((got[3] - 0.05).abs() < 1e-15);
        assert!((got[24] - BASE * 0.5f64.powi(8)).abs() < 1e-15);
    }

    #[test]
    fn multi_step_lr() {
        let got = trace(
            ScheduleConfig::MultiStep {
                milestones: vec![15, 5, 10, 15],
                gamma: 0.1,
            },
            25,
            25,
        );
        let want = |t: usize| match t {
            0..=4 => 0.1,
            5..=9 => 0.01,
            10..=14 => 0.001,
            _ => 0.00001, // 15 appears twice: gamma^2 more
        };
        assert_trace(&got, want, "multi_step");
    }

    #[test]
    fn exponential_lr() {
        let got = trace(ScheduleConfig::Exponential { gamma: 0.9 }, 25, 25);
        assert_trace(&got, |t| BASE * 0.9f64.powi(t as i32), "exponential");
    }

    #[test]
    fn cosine_lr() {
        let cfg = ScheduleConfig::Cosine {
            t_max: Some(10),
            eta_min: 0.001,
        };
        let got = trace(cfg, 25, 25);
        let want = |t: usize| 0.001 + (BASE - 0.001) * (1.0 + (PI * t as f64 / 10.0).cos()) / 2.0;
        assert_trace(&got, want, "cosine");
        assert!((got[0] - BASE).abs() < 1e-15);
        assert!((got[5] - (BASE + 0.001) / 2.0).abs() < 1e-12);
        assert!((got[10] - 0.001).abs() < 1e-15);
        assert!((got[20] - BASE).abs() < 1e-12); // PyTorch's closed form is periodic

        // t_max = None: the run's epochs.
        let got = trace(
            ScheduleConfig::Cosine {
                t_max: None,
                eta_min: 0.0,
            },
            20,
            21,
        );
        assert_trace(
            &got,
            |t| BASE * (1.0 + (PI * t as f64 / 20.0).cos()) / 2.0,
            "cosine t_max=None",
        );
        assert!(got[20].abs() < 1e-15);
    }

    #[test]
    fn cosine_warm_restarts() {
        let eta = 0.01;
        let f = |t_cur: usize, t_i: usize| {
            eta + (BASE - eta) * (1.0 + (PI * t_cur as f64 / t_i as f64).cos()) / 2.0
        };
        let got = trace(
            ScheduleConfig::CosineWarmRestarts {
                t_0: 3,
                periods: None,
                t_mult: 2,
                eta_min: eta,
            },
            30,
            25,
        );
        // Periods: [0, 3) of length 3, [3, 9) of 6, [9, 21) of 12, [21, 45) of 24.
        let want = |t: usize| match t {
            0..=2 => f(t, 3),
            3..=8 => f(t - 3, 6),
            9..=20 => f(t - 9, 12),
            _ => f(t - 21, 24),
        };
        assert_trace(&got, want, "warm restarts t_mult=2");
        for restart in [0, 3, 9, 21] {
            assert!((got[restart] - BASE).abs() < 1e-15, "restart at {restart}");
        }
        assert!(got[2] < got[1] && got[8] < got[7]);

        let got = trace(
            ScheduleConfig::CosineWarmRestarts {
                t_0: 4,
                periods: None,
                t_mult: 1,
                eta_min: 0.0,
            },
            30,
            25,
        );
        assert_trace(
            &got,
            |t| BASE * (1.0 + (PI * (t % 4) as f64 / 4.0).cos()) / 2.0,
            "warm restarts t_mult=1",
        );
    }

    #[test]
    fn linear_lr() {
        // Defaults: decay from base to 0 over the run.
        let cfg: ScheduleSpec = toml::from_str("name = \"linear\"").unwrap();
        let got = trace(cfg, 20, 25);
        assert_trace(&got, |t| BASE * (1.0 - t.min(20) as f64 / 20.0), "linear");
        assert_eq!(got[24], 0.0);
        // PyTorch's defaults: start 1/3, end 1, 5 iterations.
        let got = trace(
            ScheduleConfig::Linear {
                start_factor: 1.0 / 3.0,
                end_factor: 1.0,
                total_iters: Some(5),
            },
            25,
            25,
        );
        assert_trace(
            &got,
            |t| BASE * (1.0 / 3.0 + (1.0 - 1.0 / 3.0) * t.min(5) as f64 / 5.0),
            "linear pytorch defaults",
        );
        assert!((got[5] - BASE).abs() < 1e-15 && (got[24] - BASE).abs() < 1e-15);
    }

    #[test]
    fn warmup_then_cosine() {
        let spec = ScheduleSpec {
            kind: ScheduleConfig::Cosine {
                t_max: None,
                eta_min: 0.0,
            },
            warmup_epochs: 5,
            warmup_start_factor: None,
        };
        let got = trace(spec, 25, 26);
        let want = |t: usize| {
            if t < 5 {
                BASE * (t + 1) as f64 / 6.0
            } else {
                BASE * (1.0 + (PI * (t - 5) as f64 / 20.0).cos()) / 2.0
            }
        };
        assert_trace(&got, want, "warmup + cosine");
        assert!((got[5] - BASE).abs() < 1e-15);
        assert!(got[25].abs() < 1e-15);

        // Explicit start factor 0 and a step schedule whose epochs count after warm-up.
        let spec = ScheduleSpec {
            kind: ScheduleConfig::Step {
                step_size: 4,
                gamma: 0.5,
            },
            warmup_epochs: 2,
            warmup_start_factor: Some(0.0),
        };
        let got = trace(spec, 25, 25);
        let want = |t: usize| match t {
            0 => 0.0,
            1 => BASE * 0.5,
            _ => BASE * 0.5f64.powi(((t - 2) / 4) as i32),
        };
        assert_trace(&got, want, "warmup + step");
    }

    fn plateau(mode: PlateauMode, patience: usize, cooldown: usize, min_lr: f64) -> ScheduleConfig {
        ScheduleConfig::Plateau {
            metric: match mode {
                PlateauMode::Max => PlateauMetric::ValidAcc,
                PlateauMode::Min => PlateauMetric::TrainLoss,
            },
            mode,
            factor: 0.1,
            patience,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown,
            min_lr,
            eps: 1e-8,
        }
    }

    fn run_metrics(cfg: ScheduleConfig, base: f64, metrics: &[f64]) -> Vec<f64> {
        let mut s = ScheduleSpec::from(cfg).build(base, 100).unwrap();
        metrics.iter().map(|&m| s.step(Some(m))).collect()
    }

    #[test]
    fn plateau_reduces_after_patience_plus_one_bad_epochs() {
        // Accuracy improves twice, then stalls; 0.60005 is within the 1e-4 relative threshold
        // of 0.6 (needs > 0.60006), so it counts as bad.
        let metrics = [0.5, 0.6, 0.6, 0.60005, 0.59, 0.6, 0.6, 0.6, 0.7, 0.7];
        let got = run_metrics(plateau(PlateauMode::Max, 2, 0, 0.0), 1.0, &metrics);
        let want = [1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01];
        assert_trace(&got, |t| want[t], "plateau max");

        // Min mode on a loss.
        let metrics = [2.0, 1.5, 1.6, 1.5, 1.49999, 1.4];
        let got = run_metrics(plateau(PlateauMode::Min, 1, 0, 0.0), 1.0, &metrics);
        let want = [1.0, 1.0, 1.0, 0.1, 0.1, 0.1];
        assert_trace(&got, |t| want[t], "plateau min");

        // Absolute threshold: 0.6 -> 0.605 is below an abs threshold of 0.01.
        let cfg = ScheduleConfig::Plateau {
            metric: PlateauMetric::ValidAcc,
            mode: PlateauMode::Max,
            factor: 0.5,
            patience: 0,
            threshold: 0.01,
            threshold_mode: ThresholdMode::Abs,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        };
        let got = run_metrics(cfg, 1.0, &[0.6, 0.605, 0.62]);
        assert_trace(&got, |t| [1.0, 0.5, 0.5][t], "plateau abs");
    }

    #[test]
    fn plateau_cooldown_and_min_lr() {
        // patience 1, cooldown 2: reduce on the 2nd bad epoch, then 2 epochs of cooldown during
        // which bad epochs are not counted, then 2 more bad epochs before the next reduction.
        let metrics = [0.9; 9];
        let got = run_metrics(plateau(PlateauMode::Max, 1, 2, 0.0), 1.0, &metrics);
        // epoch:        0(best) 1(bad1) 2(bad2->red) 3(cd) 4(cd) 5(bad1) 6(bad2->red) 7(cd) 8(cd)
        let want = [1.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01];
        assert_trace(&got, |t| want[t], "plateau cooldown");

        // min_lr clamps, after which reductions are no-ops.
        let got = run_metrics(plateau(PlateauMode::Max, 0, 0, 0.05), 1.0, &[0.9; 5]);
        assert_trace(&got, |t| [1.0, 0.1, 0.05, 0.05, 0.05][t], "plateau min_lr");

        // Without a metric nothing changes; with warm-up the metrics of warm-up epochs are ignored.
        let mut s = ScheduleSpec::from(plateau(PlateauMode::Max, 0, 0, 0.0))
            .build(1.0, 10)
            .unwrap();
        for _ in 0..5 {
            assert_eq!(s.step(None), 1.0);
        }
        let spec = ScheduleSpec {
            kind: plateau(PlateauMode::Max, 0, 0, 0.0),
            warmup_epochs: 2,
            warmup_start_factor: Some(0.5),
        };
        let mut s = spec.build(1.0, 10).unwrap();
        assert_eq!(s.lr(), 0.5);
        assert_eq!(s.step(Some(0.9)), 0.75);
        assert_eq!(s.step(Some(0.9)), 1.0);
        assert_eq!(s.step(Some(0.9)), 1.0); // first main epoch sets best
        assert!((s.step(Some(0.9)) - 0.1).abs() < 1e-15);
        assert_eq!(s.epoch(), 4);
    }

    #[test]
    fn toml_shapes_and_round_trip() {
        let cases: Vec<(&str, ScheduleSpec)> = vec![
            ("name = \"constant\"", ScheduleConfig::Constant.into()),
            (
                "name = \"cosine\"\neta_min = 0.0",
                ScheduleConfig::Cosine {
                    t_max: None,
                    eta_min: 0.0,
                }
                .into(),
            ),
            (
                "name = \"step\"\nstep_size = 30",
                ScheduleConfig::Step {
                    step_size: 30,
                    gamma: 0.1,
                }
                .into(),
            ),
            (
                "name = \"multi_step\"\nmilestones = [60, 120, 160]\ngamma = 0.2",
                ScheduleConfig::MultiStep {
                    milestones: vec![60, 120, 160],
                    gamma: 0.2,
                }
                .into(),
            ),
            (
                "name = \"exponential\"\ngamma = 0.95",
                ScheduleConfig::Exponential { gamma: 0.95 }.into(),
            ),
            (
                "name = \"cosine_warm_restarts\"\nt_0 = 10\nt_mult = 2\nwarmup_epochs = 3",
                ScheduleSpec {
                    kind: ScheduleConfig::CosineWarmRestarts {
                        t_0: 10,
                        periods: None,
                        t_mult: 2,
                        eta_min: 0.0,
                    },
                    warmup_epochs: 3,
                    warmup_start_factor: None,
                },
            ),
            (
                "name = \"linear\"\ntotal_iters = 50\nend_factor = 0.01",
                ScheduleConfig::Linear {
                    start_factor: 1.0,
                    end_factor: 0.01,
                    total_iters: Some(50),
                }
                .into(),
            ),
            (
                "name = \"plateau\"\nmetric = \"train_loss\"\nmode = \"min\"\npatience = 5\nwarmup_epochs = 2\nwarmup_start_factor = 0.1",
                ScheduleSpec {
                    kind: ScheduleConfig::Plateau {
                        metric: PlateauMetric::TrainLoss,
                        mode: PlateauMode::Min,
                        factor: 0.1,
                        patience: 5,
                        threshold: 1e-4,
                        threshold_mode: ThresholdMode::Rel,
                        cooldown: 0,
                        min_lr: 0.0,
                        eps: 1e-8,
                    },
                    warmup_epochs: 2,
                    warmup_start_factor: Some(0.1),
                },
            ),
        ];
        for (text, want) in cases {
            let got: ScheduleSpec = toml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
            let back = toml::to_string(&got).unwrap();
            let again: ScheduleSpec =
                toml::from_str(&back).unwrap_or_else(|e| panic!("{back}: {e}"));
            assert_eq!(again, want, "round trip of {back}");
        }

        // As a table inside an experiment file.
        #[derive(Deserialize)]
        struct Experiment {
            #[serde(default)]
            schedule: ScheduleSpec,
        }
        let e: Experiment =
            toml::from_str("[schedule]\nname = \"cosine\"\neta_min = 0.0\n").unwrap();
        assert_eq!(e.schedule.kind.name(), "cosine");
        let e: Experiment = toml::from_str("").unwrap();
        assert_eq!(e.schedule, ScheduleSpec::default());

        assert!(toml::from_str::<ScheduleSpec>("name = \"cosine\"\netamin = 0.0").is_err());
        assert!(toml::from_str::<ScheduleSpec>("name = \"onecycle\"").is_err());
        assert!(toml::from_str::<ScheduleSpec>("name = \"step\"").is_err());
    }

    #[test]
    fn validation_errors() {
        let cases: Vec<(ScheduleSpec, f64, usize, &str)> = vec![
            (
                ScheduleConfig::Step {
                    step_size: 0,
                    gamma: 0.1,
                }
                .into(),
                BASE,
                10,
                "step_size = 0",
            ),
            (
                ScheduleConfig::Exponential { gamma: 0.0 }.into(),
                BASE,
                10,
                "gamma = 0",
            ),
            (
                ScheduleConfig::MultiStep {
                    milestones: vec![1],
                    gamma: 1.5,
                }
                .into(),
                BASE,
                10,
                "gamma = 1.5",
            ),
            (
                ScheduleConfig::Cosine {
                    t_max: Some(0),
                    eta_min: 0.0,
                }
                .into(),
                BASE,
                10,
                "t_max = 0",
            ),
            (
                ScheduleConfig::Cosine {
                    t_max: None,
                    eta_min: 0.5,
                }
                .into(),
                BASE,
                10,
                "eta_min = 0.5",
            ),
            (
                ScheduleConfig::CosineWarmRestarts {
                    t_0: 0,
                    periods: None,
                    t_mult: 1,
                    eta_min: 0.0,
                }
                .into(),
                BASE,
                10,
                "t_0 = 0",
            ),
            (
                ScheduleConfig::CosineWarmRestarts {
                    t_0: 2,
                    periods: None,
                    t_mult: 0,
                    eta_min: 0.0,
                }
                .into(),
                BASE,
                10,
                "t_mult = 0",
            ),
            (
                ScheduleConfig::Linear {
                    start_factor: 1.5,
                    end_factor: 0.0,
                    total_iters: None,
                }
                .into(),
                BASE,
                10,
                "start_factor = 1.5",
            ),
            (
                ScheduleConfig::Linear {
                    start_factor: 1.0,
                    end_factor: 0.0,
                    total_iters: Some(0),
                }
                .into(),
                BASE,
                10,
                "total_iters = 0",
            ),
            (
                ScheduleConfig::Plateau {
                    metric: PlateauMetric::ValidAcc,
                    mode: PlateauMode::Max,
                    factor: 1.0,
                    patience: 10,
                    threshold: 1e-4,
                    threshold_mode: ThresholdMode::Rel,
                    cooldown: 0,
                    min_lr: 0.0,
                    eps: 1e-8,
                }
                .into(),
                BASE,
                10,
                "factor = 1",
            ),
            (
                ScheduleConfig::Plateau {
                    metric: PlateauMetric::ValidAcc,
                    mode: PlateauMode::Max,
                    factor: 0.1,
                    patience: 10,
                    threshold: 1e-4,
                    threshold_mode: ThresholdMode::Rel,
                    cooldown: 0,
                    min_lr: -1.0,
                    eps: 1e-8,
                }
                .into(),
                BASE,
                10,
                "min_lr = -1",
            ),
            (ScheduleConfig::Constant.into(), 0.0, 10, "base lr = 0"),
            (ScheduleConfig::Constant.into(), BASE, 0, "epochs = 0"),
            (
                ScheduleSpec {
                    kind: ScheduleConfig::Constant,
                    warmup_epochs: 10,
                    warmup_start_factor: None,
                },
                BASE,
                10,
                "warmup_epochs = 10",
            ),
            (
                ScheduleSpec {
                    kind: ScheduleConfig::Constant,
                    warmup_epochs: 2,
                    warmup_start_factor: Some(-0.1),
                },
                BASE,
                10,
                "warmup_start_factor = -0.1",
            ),
        ];
        for (spec, base, epochs, needle) in cases {
            let err = spec.build(base, epochs).unwrap_err();
            assert!(matches!(err, Error::Config(_)));
            assert!(err.to_string().contains(needle), "{err} lacks '{needle}'");
        }
    }
}
