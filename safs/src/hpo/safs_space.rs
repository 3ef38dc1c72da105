//! The SAFS Stage 2 search space and its mapping onto a fine-tuning [`TrainConfig`].
//!
//! | name           | domain                                                   | active when               |
//! |----------------|----------------------------------------------------------|---------------------------|
//! | `optimizer`    | `sgd`, `adam`, `adamw`                                   | always                    |
//! | `lr`           | float, log, `[1e-4, 1e-1]`                               | always                    |
//! | `momentum`     | float `[0.1, 0.999]`                                     | `optimizer = sgd`         |
//! | `nesterov`     | `false`, `true`                                          | `optimizer = sgd`         |
//! | `weight_decay` | float, log, `[1e-6, 1e-2]`                               | always                    |
//! | `schedule`     | `constant`, `step`, `cosine`, `cosine_warm_restarts`, `linear`, `plateau`, `exponential` | always |
//! | `step_gamma`   | float `[0.1, 0.9]`                                       | `schedule = step`         |
//! | `exp_gamma`    | float `[0.8, 0.99]`                                      | `schedule = exponential`  |
//! | `restart_t0`   | int `[1, 10]`                                            | `schedule = cosine_warm_restarts` |

use std::collections::BTreeMap;

use super::space::{Config, Space, Value};
use crate::train::{
    OptimizerConfig, PlateauMode, ScheduleConfig, ScheduleSpec, ThresholdMode, TrainConfig,
};
use crate::Result;

/// The reference Stage 2 space (see the module table).
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

/// The fine-tuning run for `config` (a point of [`safs_space`]): epochs, batch sizes,
/// `max_batches` and warm-up come from `base`; the optimiser and schedule from `config`.
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
    if let OptimizerConfig::Adam {
        weight_decay: wd, ..
    }
    | OptimizerConfig::AdamW {
        weight_decay: wd, ..
    } = &mut optimizer
    {
        *wd = weight_decay;
    }
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
            t_mult: 1,
            eta_min: 0.0,
        },
        "linear" => ScheduleConfig::Linear {
            start_factor: 1.0,
            end_factor: 0.0,
            total_iters: None,
        },
        "plateau" => ScheduleConfig::Plateau {
            mode: PlateauMode::Max,
            factor: 0.1,
            patience: 2,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        },
        _ => ScheduleConfig::Exponential {
            gamma: num("exp_gamma"),
        },
    };
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
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn base(epochs: usize, warmup: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 64,
            eval_batch_size: 500,
            max_batches: Some(7),
            optimizer: OptimizerConfig::sgd(0.1),
            schedule: ScheduleSpec {
                kind: ScheduleConfig::Constant,
                warmup_epochs: warmup,
                warmup_start_factor: None,
            },
        }
    }

    fn cfg(pairs: &[(&str, Value)]) -> Config {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn cat(s: &str) -> Value {
        Value::Cat(s.into())
    }

    #[test]
    fn every_sample_maps_to_a_valid_train_config() {
        let space = safs_space();
        space.validate().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut kinds = std::collections::BTreeSet::new();
        for i in 0..200 {
            let c = space.sample(&mut rng);
            for b in [base(1, 0), base(5, 0), base(12, 2)] {
                let t = train_config_from(&c, &b).unwrap_or_else(|e| panic!("{c:?}: {e}"));
                t.validate().unwrap();
                t.schedule.build(t.optimizer.lr(), t.epochs).unwrap();
                assert_eq!(
                    (t.epochs, t.batch_size, t.eval_batch_size, t.max_batches),
                    (b.epochs, 64, 500, Some(7))
                );
                assert_eq!(t.schedule.warmup_epochs, b.schedule.warmup_epochs);
                assert_eq!(t.optimizer.lr(), c["lr"].as_f64().unwrap(), "{i}");
                kinds.insert((t.optimizer.name(), t.schedule.kind.name()));
            }
        }
        assert_eq!(kinds.len(), 21, "{kinds:?}");
    }

    #[test]
    fn hand_written_configs_map_as_expected() {
        let c = cfg(&[
            ("optimizer", cat("sgd")),
            ("lr", Value::Float(0.01)),
            ("momentum", Value::Float(0.9)),
            ("nesterov", cat("true")),
            ("weight_decay", Value::Float(5e-4)),
            ("schedule", cat("step")),
            ("step_gamma", Value::Float(0.5)),
        ]);
        let t = train_config_from(&c, &base(10, 0)).unwrap();
        assert_eq!(
            t.optimizer,
            OptimizerConfig::Sgd {
                lr: 0.01,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 5e-4
            }
        );
        assert_eq!(
            t.schedule.kind,
            ScheduleConfig::Step {
                step_size: 3,
                gamma: 0.5
            }
        );

        let c = cfg(&[
            ("optimizer", cat("adamw")),
            ("lr", Value::Float(1e-3)),
            ("weight_decay", Value::Float(1e-4)),
            ("schedule", cat("cosine_warm_restarts")),
            ("restart_t0", Value::Int(8)),
        ]);
        let t = train_config_from(&c, &base(5, 0)).unwrap();
        assert_eq!(
            t.optimizer,
            OptimizerConfig::AdamW {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                weight_decay: 1e-4
            }
        );
        assert_eq!(
            t.schedule.kind,
            ScheduleConfig::CosineWarmRestarts {
                t_0: 5,
                t_mult: 1,
                eta_min: 0.0
            }
        );

        let c = cfg(&[
            ("optimizer", cat("adam")),
            ("lr", Value::Float(1e-3)),
            ("weight_decay", Value::Float(1e-5)),
            ("schedule", cat("plateau")),
        ]);
        let t = train_config_from(&c, &base(5, 0)).unwrap();
        assert!(
            matches!(t.optimizer, OptimizerConfig::Adam { weight_decay, .. } if weight_decay == 1e-5)
        );
        assert!(matches!(
            t.schedule.kind,
            ScheduleConfig::Plateau {
                mode: PlateauMode::Max,
                patience: 2,
                ..
            }
        ));
    }

    #[test]
    fn missing_keys_are_named() {
        let c = cfg(&[("optimizer", cat("sgd")), ("schedule", cat("exponential"))]);
        let m = train_config_from(&c, &base(5, 0)).unwrap_err().to_string();
        for k in ["lr", "momentum", "nesterov", "weight_decay", "exp_gamma"] {
            assert!(m.contains(k), "{k} not in {m}");
        }
        let m = train_config_from(&Config::new(), &base(5, 0))
            .unwrap_err()
            .to_string();
        assert!(m.contains("optimizer") && m.contains("schedule"), "{m}");
    }

    #[test]
    fn flatten_gives_json_scalars() {
        let c = cfg(&[
            ("lr", Value::Float(0.5)),
            ("restart_t0", Value::Int(3)),
            ("schedule", cat("step")),
        ]);
        let f = flatten_config(&c);
        assert_eq!(f["lr"], serde_json::json!(0.5));
        assert_eq!(f["restart_t0"], serde_json::json!(3));
        assert_eq!(f["schedule"], serde_json::json!("step"));
    }
}
