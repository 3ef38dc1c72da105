//! Tests of the Stage 2 spaces.

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
        decay: crate::train::DecayScope::Weights,
        restore_best: false,
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
            periods: None,
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

fn f(x: f64) -> Value {
    Value::Float(x)
}

#[test]
fn reference_samples_map_to_valid_train_configs() {
    let space = reference_space();
    space.validate().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut kinds = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let c = space.sample(&mut rng);
        for b in [base(1, 0), base(5, 0), base(50, 0)] {
            let t = HpoSpace::Reference
                .train_config(&c, &b)
                .unwrap_or_else(|e| panic!("{c:?}: {e}"));
            assert_eq!(
                (t.epochs, t.batch_size, t.max_batches),
                (b.epochs, 64, Some(7))
            );
            assert_eq!(t.optimizer.lr(), c["lr"].as_f64().unwrap());
            if t.optimizer.name() != "sgd" {
                assert_eq!(t.schedule.kind, ScheduleConfig::Constant, "{c:?}");
            }
            kinds.insert((t.optimizer.name(), t.schedule.kind.name()));
        }
    }
    // 3 constant-rate optimisers + SGD with 7 schedules (halving and step are both "step").
    assert_eq!(kinds.len(), 3 + 6, "{kinds:?}");
}

#[test]
fn reference_schedules_as_the_authors_define_them() {
    let sgd = |sched: &str| {
        cfg(&[
            ("optimizer", cat("sgd")),
            ("lr", f(0.01)),
            ("momentum", f(0.9)),
            ("weight_decay", f(5e-4)),
            ("schedule", cat(sched)),
        ])
    };
    let kind = |sched: &str, epochs: usize| {
        HpoSpace::Reference
            .train_config(&sgd(sched), &base(epochs, 0))
            .unwrap()
            .schedule
            .kind
    };
    // E = 50: E // 4 = 12.
    assert_eq!(
        kind("step", 50),
        ScheduleConfig::Step {
            step_size: 12,
            gamma: 0.1
        }
    );
    assert_eq!(
        kind("cosine_warm_restarts", 50),
        ScheduleConfig::CosineWarmRestarts {
            t_0: 0,
            periods: Some(4),
            t_mult: 1,
            eta_min: 5e-5
        }
    );
    // ... whose first period is E // 4 = 12 epochs: the rate is back at the base at epoch 12.
    let t = HpoSpace::Reference
        .train_config(&sgd("cosine_warm_restarts"), &base(50, 0))
        .unwrap();
    let mut s = t.schedule.build(0.01, 50).unwrap();
    let lrs: Vec<f64> = (0..13)
        .map(|_| {
            let l = s.lr();
            s.step(None);
            l
        })
        .collect();
    assert_eq!(lrs[0], 0.01);
    assert!(lrs[11] < 1e-3 && (lrs[12] - 0.01).abs() < 1e-15, "{lrs:?}");
    assert_eq!(
        kind("step", 3),
        ScheduleConfig::Step {
            step_size: 1,
            gamma: 0.1
        }
    );
    assert_eq!(
        kind("linear", 50),
        ScheduleConfig::Linear {
            start_factor: 0.1,
            end_factor: 1.0,
            total_iters: Some(5)
        }
    );
    assert_eq!(
        kind("halving", 50),
        ScheduleConfig::Step {
            step_size: 20,
            gamma: 0.5
        }
    );
    assert!(matches!(
        kind("plateau", 50),
        ScheduleConfig::Plateau { metric: PlateauMetric::TrainLoss, mode: PlateauMode::Min, patience: 2, factor, .. }
            if factor == 0.05
    ));
    let t = HpoSpace::Reference
        .train_config(&sgd("constant"), &base(5, 0))
        .unwrap();
    assert_eq!(
        t.optimizer,
        OptimizerConfig::Sgd {
            lr: 0.01,
            momentum: 0.9,
            nesterov: false,
            weight_decay: 5e-4
        }
    );
    let adam = cfg(&[
        ("optimizer", cat("adam")),
        ("lr", f(1e-3)),
        ("weight_decay", f(5e-4)),
    ]);
    let t = HpoSpace::Reference
        .train_config(&adam, &base(5, 0))
        .unwrap();
    assert_eq!(
        t.optimizer,
        OptimizerConfig::Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 5e-4
        }
    );
    let fromage = cfg(&[("optimizer", cat("fromage")), ("lr", f(0.01))]);
    let t = HpoSpace::Reference
        .train_config(&fromage, &base(5, 0))
        .unwrap();
    assert_eq!(
        t.optimizer,
        OptimizerConfig::Fromage {
            lr: 0.01,
            p_bound: None
        }
    );
    // An unknown parameter is refused, a missing one named.
    let mut bad = fromage.clone();
    bad.insert("nesterov".into(), cat("true"));
    assert!(HpoSpace::Reference.train_config(&bad, &base(5, 0)).is_err());
    let m = HpoSpace::Reference
        .train_config(
            &cfg(&[("optimizer", cat("sgd")), ("lr", f(0.1))]),
            &base(5, 0),
        )
        .unwrap_err()
        .to_string();
    assert!(m.contains("momentum") && m.contains("schedule"), "{m}");
}

#[test]
fn the_dense_recipe_is_the_first_trial() {
    // The authors' LeNet-5 recipe: Adam 1e-3, betas (0.9, 0.99), L2 5e-4, constant.
    let recipe = TrainConfig {
        optimizer: OptimizerConfig::Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 5e-4,
        },
        ..base(5, 0)
    };
    let p = HpoSpace::Reference.point_of(&recipe).unwrap();
    assert_eq!(
        p,
        cfg(&[
            ("optimizer", cat("adam")),
            ("lr", f(1e-3)),
            ("weight_decay", f(5e-4))
        ])
    );
    let back = HpoSpace::Reference.train_config(&p, &recipe).unwrap();
    assert_eq!(back, recipe);
    // PyTorch's default beta2 is not the authors' 0.99: not representable, and said so.
    let other = TrainConfig {
        optimizer: OptimizerConfig::adam(1e-3),
        ..base(5, 0)
    };
    let m = HpoSpace::Reference
        .point_of(&other)
        .unwrap_err()
        .to_string();
    assert!(m.contains("not a point of the reference space"), "{m}");
    // Nesterov SGD with cosine is a point of the extended space only.
    let sgd = TrainConfig {
        optimizer: OptimizerConfig::Sgd {
            lr: 0.05,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
        },
        schedule: ScheduleSpec::from(ScheduleConfig::Cosine {
            t_max: None,
            eta_min: 0.0,
        }),
        ..base(8, 0)
    };
    assert!(HpoSpace::Reference.point_of(&sgd).is_err());
    let p = HpoSpace::Extended.point_of(&sgd).unwrap();
    assert_eq!(HpoSpace::Extended.train_config(&p, &sgd).unwrap(), sgd);
    // Weight decay out of the reference range (uniform [1e-5, 1e-1]).
    let tiny = TrainConfig {
        optimizer: OptimizerConfig::Adam {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        },
        ..base(5, 0)
    };
    assert!(HpoSpace::Reference.point_of(&tiny).is_err());
}
