//! The Stage 2 search spaces and their mapping onto a fine-tuning [`TrainConfig`].
//!
//! **`reference`** follows the SAFS authors' SMAC space (`optimization/smac_opt.py`) and their
//! schedule definitions (`utility.py`, `Set_Lr_Policy`; `E` = epochs of the fine-tune):
//!
//! | name           | domain                                                  | active when          |
//! |----------------|---------------------------------------------------------|----------------------|
//! | `optimizer`    | `sgd`, `tadam`, `fromage`, `adam`                       | always               |
//! | `lr`           | float, log, `[1e-4, 1e-1]`                              | always               |
//! | `weight_decay` | float, uniform, `[1e-5, 1e-1]`                          | not `fromage`        |
//! | `momentum`     | float `[0.1, 0.999]`                                    | `optimizer = sgd`    |
//! | `schedule`     | `step`, `cosine_warm_restarts`, `constant`, `cosine`, `linear`, `plateau`, `halving` | `optimizer = sgd` |
//!
//! | schedule               | as the authors define it                                          |
//! |------------------------|-------------------------------------------------------------------|
//! | `step`                 | `StepLR(step_size = E // 4, gamma = 0.1)`                         |
//! | `cosine_warm_restarts` | `CosineAnnealingWarmRestarts(T_0 = E // 4, T_mult = 1, eta_min = 5e-5)` (`periods = 4`) |
//! | `constant`             | constant (their `Constant` has no branch in `Set_Lr_Policy` and crashes) |
//! | `cosine`               | `CosineAnnealingLR(T_max = E, eta_min = 0)`                       |
//! | `linear`               | `LinearLR(start_factor = 0.1, total_iters = 5)`: a 5-epoch ramp   |
//! | `plateau`              | `ReduceLROnPlateau(factor 0.05, patience 2, threshold 1e-4 rel)` on the training loss |
//! | `halving`              | their `VGG_lr_scheduler`: `0.5 ** (epoch // 20)`                 |
//!
//! The Adam family runs at a constant rate (the authors switch their scheduler off for it)
//! with betas (0.9, 0.99), TAdam in the form of the `tmomentum` package they ran; Fromage
//! has no weight decay. The authors give every optimiser
//! its own `lr_*` and `wd_*` hyperparameter; here one `lr` and one `weight_decay` are shared
//! by the branches (the same set of configurations).
//!
//! **`extended`** is this project's earlier space: SGD (with Nesterov), Adam, AdamW; log-scale
//! weight decay `[1e-6, 1e-2]`; seven schedules for every optimiser.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::space::{Config, Space, Value};
use crate::train::{
    OptimizerConfig, PlateauMetric, PlateauMode, ScheduleConfig, ScheduleSpec, TadamVariant,
    ThresholdMode, TrainConfig,
};
use crate::{Error, Result};

/// Which Stage 2 space an experiment searches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HpoSpace {
    /// The SAFS authors' space (see the module docs).
    #[default]
    Reference,
    /// SGD/Adam/AdamW with seven schedules each.
    Extended,
}

impl fmt::Display for HpoSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HpoSpace::Reference => "reference",
            HpoSpace::Extended => "extended",
        })
    }
}

impl HpoSpace {
    /// The conditional space.
    pub fn space(self) -> Space {
        match self {
            HpoSpace::Reference => reference_space(),
            HpoSpace::Extended => safs_space(),
        }
    }

    /// The fine-tuning run for `config`: epochs, batch sizes, `max_batches`, decay scope,
    /// restore and warm-up come from `base`; the optimiser and schedule from `config`.
    pub fn train_config(self, config: &Config, base: &TrainConfig) -> Result<TrainConfig> {
        match self {
            HpoSpace::Reference => reference_train_config(config, base),
            HpoSpace::Extended => train_config_from(config, base),
        }
    }

    /// `recipe` as a point of the space (for Stage 2's first trial): an error naming what the
    /// space cannot express.
    pub fn point_of(self, recipe: &TrainConfig) -> Result<Config> {
        let opt = &recipe.optimizer;
        let mut c = Config::new();
        let f = |x: f64| Value::Float(x);
        let cat = |s: &str| Value::Cat(s.into());
        c.insert("lr".into(), f(opt.lr()));
        let sched = match &recipe.schedule.kind {
            ScheduleConfig::Constant => "constant",
            ScheduleConfig::Cosine { .. } => "cosine",
            ScheduleConfig::CosineWarmRestarts { .. } => "cosine_warm_restarts",
            ScheduleConfig::Linear { .. } => "linear",
            ScheduleConfig::Plateau { .. } => "plateau",
            ScheduleConfig::Step {
                step_size: 20,
                gamma,
            } if *gamma == 0.5 => "halving",
            ScheduleConfig::Step { .. } => "step",
            ScheduleConfig::Exponential { .. } => "exponential",
            ScheduleConfig::MultiStep { .. } => "multi_step",
        };
        match (self, opt) {
            (
                _,
                OptimizerConfig::Sgd {
                    momentum,
                    nesterov,
                    weight_decay,
                    ..
                },
            ) => {
                c.insert("optimizer".into(), cat("sgd"));
                c.insert("momentum".into(), f(*momentum));
                c.insert("weight_decay".into(), f(*weight_decay));
                c.insert("schedule".into(), cat(sched));
                if self == HpoSpace::Extended {
                    c.insert(
                        "nesterov".into(),
                        cat(if *nesterov { "true" } else { "false" }),
                    );
                }
            }
            (_, o) => {
                c.insert("optimizer".into(), cat(o.name()));
                if !matches!(o, OptimizerConfig::Fromage { .. }) {
                    c.insert("weight_decay".into(), f(o.weight_decay()));
                }
                if self == HpoSpace::Extended {
                    c.insert("schedule".into(), cat(sched));
                }
            }
        }
        if self == HpoSpace::Extended {
            match &recipe.schedule.kind {
                ScheduleConfig::Step { gamma, .. } => {
                    c.insert("step_gamma".into(), f(*gamma));
                }
                ScheduleConfig::Exponential { gamma } => {
                    c.insert("exp_gamma".into(), f(*gamma));
                }
                ScheduleConfig::CosineWarmRestarts { t_0, .. } => {
                    c.insert("restart_t0".into(), Value::Int(*t_0 as i64));
                }
                _ => {}
            }
        }
        let cannot = |why: String| {
            Error::Config(format!(
                "Stage 2's first trial: the dense recipe ({} with {} schedule) is not a point of \
                 the {self} space: {why}; change hpo_space or set hpo_default_first = false",
                opt.name(),
                recipe.schedule.kind.name()
            ))
        };
        self.space().check(&c).map_err(|e| cannot(e.to_string()))?;
        let back = self
            .train_config(&c, recipe)
            .map_err(|e| cannot(e.to_string()))?;
        if back.optimizer != recipe.optimizer || back.schedule != recipe.schedule {
            return Err(cannot(format!(
                "the space maps that point to {:?} / {:?}",
                back.optimizer, back.schedule.kind
            )));
        }
        Ok(c)
    }
}

/// The SAFS authors' Stage 2 space (see the module tables).
pub fn reference_space() -> Space {
    Space::new()
        .categorical("optimizer", &["sgd", "tadam", "fromage", "adam"])
        .float("lr", 1e-4, 1e-1, true)
        .float("weight_decay", 1e-5, 1e-1, false)
        .when("optimizer", &["sgd", "tadam", "adam"])
        .float("momentum", 0.1, 0.999, false)
        .when("optimizer", &["sgd"])
        .categorical(
            "schedule",
            &[
                "step",
                "cosine_warm_restarts",
                "constant",
                "cosine",
                "linear",
                "plateau",
                "halving",
            ],
        )
        .when("optimizer", &["sgd"])
}

/// The authors' betas for Adam and TAdam (`settings.py`, `update_optimizer`).
const REFERENCE_BETAS: (f64, f64) = (0.9, 0.99);

fn reference_train_config(config: &Config, base: &TrainConfig) -> Result<TrainConfig> {
    reference_space().check(config)?;
    let num = |k: &str| config[k].as_f64().expect("checked numeric");
    let cat = |k: &str| config[k].as_str().expect("checked categorical");
    let lr = num("lr");
    let e = base
        .epochs
        .saturating_sub(base.schedule.warmup_epochs)
        .max(1);
    let quarter = (e / 4).max(1); // their `epochs // 4`
    let (optimizer, kind) = match cat("optimizer") {
        "sgd" => {
            let kind = match cat("schedule") {
                "step" => ScheduleConfig::Step {
                    step_size: quarter,
                    gamma: 0.1,
                },
                "cosine_warm_restarts" => ScheduleConfig::CosineWarmRestarts {
                    t_0: 0,
                    periods: Some(4),
                    t_mult: 1,
                    eta_min: 5e-5,
                },
                "constant" => ScheduleConfig::Constant,
                "cosine" => ScheduleConfig::Cosine {
                    t_max: None,
                    eta_min: 0.0,
                },
                "linear" => ScheduleConfig::Linear {
                    start_factor: 0.1,
                    end_factor: 1.0,
                    total_iters: Some(5),
                },
                "plateau" => plateau(PlateauMetric::TrainLoss, 0.05),
                _ => ScheduleConfig::Step {
                    step_size: 20,
                    gamma: 0.5,
                },
            };
            let opt = OptimizerConfig::Sgd {
                lr,
                momentum: num("momentum"),
                nesterov: false,
                weight_decay: num("weight_decay"),
            };
            (opt, kind)
        }
        "adam" => (
            OptimizerConfig::Adam {
                lr,
                beta1: REFERENCE_BETAS.0,
                beta2: REFERENCE_BETAS.1,
                eps: 1e-8,
                weight_decay: num("weight_decay"),
            },
            ScheduleConfig::Constant,
        ),
        "tadam" => (
            OptimizerConfig::Tadam {
                lr,
                beta1: REFERENCE_BETAS.0,
                beta2: REFERENCE_BETAS.1,
                eps: 1e-8,
                weight_decay: num("weight_decay"),
                dof_scale: 1.0,
                variant: TadamVariant::Tmomentum,
            },
            ScheduleConfig::Constant,
        ),
        _ => (
            OptimizerConfig::Fromage { lr, p_bound: None },
            ScheduleConfig::Constant,
        ),
    };
    finish(base, optimizer, kind)
}

/// `ReduceLROnPlateau` on `metric` with patience 2 and PyTorch's other defaults.
fn plateau(metric: PlateauMetric, factor: f64) -> ScheduleConfig {
    ScheduleConfig::Plateau {
        metric,
        mode: match metric {
            PlateauMetric::ValidAcc => PlateauMode::Max,
            PlateauMetric::TrainLoss => PlateauMode::Min,
        },
        factor,
        patience: 2,
        threshold: 1e-4,
        threshold_mode: ThresholdMode::Rel,
        cooldown: 0,
        min_lr: 0.0,
        eps: 1e-8,
    }
}

fn finish(
    base: &TrainConfig,
    optimizer: OptimizerConfig,
    kind: ScheduleConfig,
) -> Result<TrainConfig> {
    let out = TrainConfig {
        optimizer,
        schedule: ScheduleSpec {
            kind,
            ..base.schedule.clone()
        },
        ..base.clone()
    };
    out.validate()?;
    out.schedule.build(out.optimizer.lr(), out.epochs)?;
    Ok(out)
}

/// The `extended` Stage 2 space:
///
/// | name           | domain                                                   | active when               |
/// |----------------|----------------------------------------------------------|---------------------------|
/// | `optimizer`    | `sgd`, `adam`, `adamw`                                   | always                    |
/// | `lr`           | float, log, `[1e-4, 1e-1]`                               | always                    |
/// | `momentum`     | float `[0.1, 0.999]`                                     | `optimizer = sgd`         |
/// | `nesterov`     | `false`, `true`                                          | `optimizer = sgd`         |
/// | `weight_decay` | float, log, `[1e-6, 1e-2]`                               | always                    |
/// | `schedule`     | `constant`, `step`, `cosine`, `cosine_warm_restarts`, `linear`, `plateau`, `exponential` | always |
/// | `step_gamma`   | float `[0.1, 0.9]`                                       | `schedule = step`         |
/// | `exp_gamma`    | float `[0.8, 0.99]`                                      | `schedule = exponential`  |
/// | `restart_t0`   | int `[1, 10]`                                            | `schedule = cosine_warm_restarts` |
pub fn safs_space() -> Space {
    Space::new()
        .categorical("optimizer", &["sgd", "adam", "adamw"])
        .float("lr", 1e-4, 1e-1, true)
        .float("momentum", 0.1, 0.999, false)
        .when("optimizer", &["sgd"])
        .categorical("nesterov", &["false", "true"])
        .when("optimizer", &["sgd"])
        .float("weight_decay", 1e-6, 1e-2, true)
        .categorical(
            "schedule",
            &[
                "constant",
                "step",
                "cosine",
                "cosine_warm_restarts",
                "linear",
                "plateau",
                "exponential",
            ],
        )
        .float("step_gamma", 0.1, 0.9, false)
        .when("schedule", &["step"])
        .float("exp_gamma", 0.8, 0.99, false)
        .when("schedule", &["exponential"])
        .int("restart_t0", 1, 10, false)
        .when("schedule", &["cosine_warm_restarts"])
}

/// The fine-tuning run for `config` (a point of [`safs_space`], the `extended` space).
///
/// Step decays every `max(1, E / 3)` epochs and warm restarts use `t_0 = min(restart_t0, E)`,
/// where `E` is the main schedule's epochs (`epochs - warmup_epochs`); plateau watches an
/// accuracy (`mode = max`) with patience 2; cosine and linear anneal over `E` to 0. Adam's
/// betas and eps keep PyTorch's defaults. The result is validated, scheduler included.
pub fn train_config_from(config: &Config, base: &TrainConfig) -> Result<TrainConfig> {
    safs_space().check(config)?;
    let num = |k: &str| config[k].as_f64().expect("checked numeric");
    let cat = |k: &str| config[k].as_str().expect("checked categorical");
    let (lr, weight_decay) = (num("lr"), num("weight_decay"));
    let mut optimizer = match cat("optimizer") {
        "sgd" => OptimizerConfig::Sgd {
            lr,
            momentum: num("momentum"),
            nesterov: cat("nesterov") == "true",
            weight_decay,
        },
        "adam" => OptimizerConfig::adam(lr),
        _ => OptimizerConfig::adamw(lr),
    };
    optimizer.set_weight_decay(weight_decay);
    let main_epochs = base
        .epochs
        .saturating_sub(base.schedule.warmup_epochs)
        .max(1);
    let kind = match cat("schedule") {
        "constant" => ScheduleConfig::Constant,
        "step" => ScheduleConfig::Step {
            step_size: (main_epochs / 3).max(1),
            gamma: num("step_gamma"),
        },
        "cosine" => ScheduleConfig::Cosine {
            t_max: None,
            eta_min: 0.0,
        },
        "cosine_warm_restarts" => ScheduleConfig::CosineWarmRestarts {
            t_0: (num("restart_t0") as usize).clamp(1, main_epochs),
            periods: None,
            t_mult: 1,
            eta_min: 0.0,
        },
        "linear" => ScheduleConfig::Linear {
            start_factor: 1.0,
            end_factor: 0.0,
            total_iters: None,
        },
        "plateau" => plateau(PlateauMetric::ValidAcc, 0.1),
        _ => ScheduleConfig::Exponential {
            gamma: num("exp_gamma"),
        },
    };
    finish(base, optimizer, kind)
}

/// The configuration as JSON values, for logs and tables (non-finite floats become null).
pub fn flatten_config(config: &Config) -> BTreeMap<String, serde_json::Value> {
    config
        .iter()
        .map(|(k, v)| {
            let j = match v {
                Value::Int(i) => serde_json::Value::from(*i),
                Value::Float(x) => serde_json::Number::from_f64(*x)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                Value::Cat(s) => serde_json::Value::String(s.clone()),
            };
            (k.clone(), j)
        })
        .collect()
}

#[cfg(test)]
mod tests;
