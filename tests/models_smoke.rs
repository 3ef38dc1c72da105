//! The VGG, ResNet and EfficientNet experiment files end to end at the smoke budget, on
//! stand-in CIFAR-10 / ImageNet-16 files (synthetic images in the real formats; the real
//! data sets cannot be downloaded on a machine without internet).

use std::path::Path;
use std::time::Instant;

use candle_core::Device;

use safs::experiment::{Arm, BudgetPreset, Experiment, ExperimentConfig};
use safs::model::ModelKind;
use safs::train::OptimizerConfig;
use safs_e2e::{experiments_dir, standin_root, temp_dir};

const FILES: [&str; 4] = [
    "vgg11_cifar10.toml",
    "vgg16_cifar10.toml",
    "resnet18_cifar10.toml",
    "efficientnet_b0_imagenet16.toml",
];

fn config(file: &str) -> ExperimentConfig {
    ExperimentConfig::from_file(&experiments_dir().join(file))
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Runs `file` at the smoke budget on stand-in data and checks the Table 1 row and files.
fn smoke(file: &str) {
    let start = Instant::now();
    let mut cfg = config(file);
    cfg.budget = BudgetPreset::Smoke;
    let tag = Path::new(file).file_stem().unwrap().to_str().unwrap();
    let valid = cfg.valid_size.unwrap_or(cfg.dataset.default_valid());
    let root = standin_root(tag, cfg.dataset, valid);
    let out = temp_dir(&format!("{tag}-run"));
    let mut exp = Experiment::new(cfg.clone(), &out, &root, Device::Cpu).unwrap();
    let row = exp.run(&mut |_| Ok(())).unwrap();
    assert_eq!(row.model, cfg.model.name());
    assert_eq!(row.dataset, cfg.dataset.name());
    for (arm, v) in [
        ("dense", row.dense),
        ("magnitude_pruning", row.magnitude_pruning),
        ("stage1", row.stage1),
        ("stage2", row.stage2),
        ("safs", row.safs),
    ] {
        let v = v.unwrap_or_else(|| panic!("{file}: {arm} missing"));
        assert!((0.0..=100.0).contains(&v), "{file}: {arm} = {v}");
    }
    for f in ["table1.csv", "evals.jsonl", "finals/safs_final.safetensors"] {
        assert!(out.join(f).exists(), "{file}: {f} missing");
    }
    let table = std::fs::read_to_string(out.join("table1.csv")).unwrap();
    assert!(table.contains(cfg.model.name()), "{file}: {table}");
    eprintln!(
        "{file}: smoke run in {:.1} s: {row:?}",
        start.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn smoke_vgg11_cifar10() {
    smoke("vgg11_cifar10.toml");
}

#[test]
fn smoke_vgg16_cifar10() {
    smoke("vgg16_cifar10.toml");
}

#[test]
fn smoke_resnet18_cifar10() {
    smoke("resnet18_cifar10.toml");
}

#[test]
fn smoke_efficientnet_b0_imagenet16() {
    smoke("efficientnet_b0_imagenet16.toml");
}

/// The files carry the SAFS authors' recipes (docs/protocol.md): every arm at 99%
/// layer-wise pruning, SGD 1e-3 / momentum 0.9 / L2 5e-4 on every parameter at batch 256
/// with each model's scheduler, their protocol choices, 200 dense and 80 fine-tune epochs at
/// the paper budget, and scaled-down cpu and smoke budgets.
#[test]
fn experiment_files_follow_the_protocol() {
    use safs::experiment::{EpochChoice, StartPlan};
    use safs::train::{DecayScope, PlateauMetric, ScheduleConfig};
    for file in FILES {
        let cfg = config(file);
        assert_eq!(cfg.arms, Arm::ALL.to_vec(), "{file}");
        assert_eq!(cfg.prune.rate, 0.99, "{file}");
        assert_eq!(
            cfg.prune.method,
            safs::prune::PruneMethod::Layerwise,
            "{file}"
        );
        assert_eq!(
            cfg.dense.optimizer,
            OptimizerConfig::Sgd {
                lr: 1e-3,
                momentum: 0.9,
                nesterov: false,
                weight_decay: 5e-4
            },
            "{file}"
        );
        assert_eq!(
            (cfg.dense.batch_size, cfg.dense.decay),
            (256, DecayScope::All),
            "{file}"
        );
        let kind = &cfg.dense.schedule.kind;
        match cfg.model {
            ModelKind::Vgg11 | ModelKind::Vgg16 => assert_eq!(
                kind,
                &ScheduleConfig::Step {
                    step_size: 20,
                    gamma: 0.5
                },
                "{file}"
            ),
            ModelKind::Resnet18 => assert!(
                matches!(kind, ScheduleConfig::Plateau { metric: PlateauMetric::TrainLoss, factor, patience: 2, .. } if *factor == 0.05),
                "{file}: {kind:?}"
            ),
            ModelKind::EfficientnetB0 => {
                assert!(
                    matches!(kind, ScheduleConfig::CosineWarmRestarts { periods: Some(4), eta_min, .. } if *eta_min == 5e-5),
                    "{file}: {kind:?}"
                );
                assert_eq!(cfg.prune.keep_dense.len(), 2, "{file}");
            }
            ModelKind::Lenet5 => unreachable!(),
        }
        let p = &cfg.protocol;
        assert_eq!(
            (p.score, p.end_weights, p.stage1_start, p.final_repeats),
            (
                EpochChoice::BestEpoch,
                EpochChoice::BestEpoch,
                StartPlan::Random,
                1
            ),
            "{file}"
        );
        assert!(p.hpo_default_first && !p.scales_on_parametric_ops, "{file}");
        let paper = cfg.budgets.resolve(BudgetPreset::Paper);
        assert_eq!(
            (paper.dense_epochs, paper.finetune_epochs, paper.model_width),
            (200, 80, 1.0),
            "{file}"
        );
        assert_eq!((paper.search_steps, paper.hpo_trials), (20, 20), "{file}");
        let cpu = cfg.budgets.resolve(BudgetPreset::Cpu);
        assert_eq!((cpu.search_steps, cpu.hpo_trials), (8, 6), "{file}");
        assert!(
            cpu.model_width < 1.0 && cpu.train_subset.is_some(),
            "{file}"
        );
        let smoke = cfg.budgets.resolve(BudgetPreset::Smoke);
        assert_eq!(smoke.max_batches, Some(1), "{file}");
        assert!(smoke.train_subset.unwrap() <= 128, "{file}");
        for b in [paper, cpu, smoke] {
            b.validate().unwrap();
        }
    }
}
