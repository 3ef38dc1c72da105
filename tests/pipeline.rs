//! End to end on real MNIST at the smoke budget: the whole pipeline, kill and resume,
//! and a diverging candidate recorded as failed.

use candle_core::Device;

use safs::experiment::{
    Arm, BudgetPreset, EvalStatus, Experiment, ExperimentConfig, ExperimentEvent, Stage,
};
use safs::model::{LeNet5, Network};
use safs::train::{save_checkpoint, CheckpointMeta};
use safs::Error;
use safs_e2e::{experiments_dir, mnist_root, smoke_config, temp_dir, untimed_sorted};

#[test]
fn smoke_run_produces_every_arm_and_its_files() {
    let root = mnist_root();
    let out = temp_dir("smoke");
    let mut exp = Experiment::new(smoke_config(), &out, &root, Device::Cpu).unwrap();
    let mut stages = Vec::new();
    let row = exp
        .run(&mut |ev| {
            if let ExperimentEvent::Evaluated { record, .. } = ev {
                stages.push(record.stage);
            }
            Ok(())
        })
        .unwrap();
    for (arm, v) in [
        ("dense", row.dense),
        ("mp", row.magnitude_pruning),
        ("stage1", row.stage1),
        ("stage2", row.stage2),
        ("safs", row.safs),
    ] {
        let v = v.unwrap_or_else(|| panic!("{arm} missing"));
        assert!((0.0..=100.0).contains(&v), "{arm} = {v}");
    }
    // A dense LeNet-5 after 3 epochs on 4k images is far above chance (10%).
    assert!(row.dense.unwrap() > 50.0, "dense {:?}", row.dense);
    let budget = exp.budget().clone();
    let count = |s: Stage| stages.iter().filter(|&&x| x == s).count();
    // LAHC makes at least search_steps + 1 moves after the start plan.
    let trace = exp
        .run_dir()
        .load_trace(Stage::Search(Arm::Stage1))
        .unwrap()
        .expect("the Stage 1 trace is written");
    assert!(count(Stage::Search(Arm::Stage1)) >= budget.search_steps + 2);
    assert_eq!(trace.len(), count(Stage::Search(Arm::Stage1)));
    assert!(trace[0].accepted);
    assert_eq!(count(Stage::Search(Arm::Stage2)), budget.hpo_trials);
    assert_eq!(count(Stage::Search(Arm::Safs)), budget.hpo_trials);

    // Every fine-tune, candidates, trials and finals alike, trains the same epochs on the
    // same images (a candidate predicts its final); each epoch is in the log, the score
    // is the best epoch's, and Stage 2's first trial is the dense recipe.
    let records = exp.records();
    for r in records.iter().filter(|r| r.stage != Stage::Dense) {
        assert_eq!(
            r.epochs.len(),
            budget.finetune_epochs,
            "{} {}",
            r.stage,
            r.step
        );
        assert_eq!(
            r.hparams["epochs"].as_u64(),
            Some(budget.finetune_epochs as u64)
        );
        assert_eq!(r.train_images, budget.train_subset.unwrap());
        let best = r
            .epochs
            .iter()
            .filter_map(|e| e.valid_acc)
            .fold(f64::MIN, f64::max);
        assert_eq!(
            r.valid_acc, best,
            "{} {}: scored by the best epoch",
            r.stage, r.step
        );
        assert_eq!(r.epochs[r.best_epoch.unwrap()].valid_acc, Some(best));
    }
    let dense_recipe = &records
        .iter()
        .find(|r| r.stage == Stage::Final(Arm::MagnitudePruning))
        .unwrap()
        .hparams["optimizer"];
    for arm in [Arm::Stage2, Arm::Safs] {
        let first = records
            .iter()
            .find(|r| r.stage == Stage::Search(arm) && r.step == 0)
            .unwrap();
        assert_eq!(&first.hparams["optimizer"], dense_recipe, "{arm:?}");
        // Its scales were learnt (ReLU slots: alpha and beta move off 1).
        if arm == Arm::Stage2 {
            assert!(first.alphas.iter().chain(&first.betas).any(|&v| v != 1.0));
        }
    }
    // Stage 1 learns the parametric operators' own parameters from 1.0.
    for r in records
        .iter()
        .filter(|r| r.stage == Stage::Search(Arm::Stage1))
    {
        for (op, p) in r.plan.ops().iter().zip(&r.op_params) {
            assert_eq!(p.len(), op.num_params(), "{op}");
            assert!(p.iter().all(|v| v.is_finite()));
        }
        assert!(
            r.alphas.iter().chain(&r.betas).all(|&v| v == 1.0),
            "Stage 1 keeps scales at 1"
        );
    }
    for f in [
        "config.json",
        "evals.jsonl",
        "dense.safetensors",
        "pruned.safetensors",
        "table1.csv",
        "table1.parquet",
        "evals.csv",
        "evals.parquet",
        "finals/safs_final.safetensors",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    // Pruned weights stay exactly zero in the SAFS network after fine-tuning.
    let mut m = LeNet5::new(10, 0, &Device::Cpu).unwrap();
    safs::train::load_checkpoint(
        &out.join("finals/safs_final.safetensors"),
        &mut m,
        &Device::Cpu,
    )
    .unwrap();
    // Per layer, l1_unstructured zeroes round(0.99 n) weights (Python's round).
    for layer in safs::prune::sparsity_report(&m).unwrap() {
        let want = (0.99 * layer.total as f64).round_ties_even() as usize;
        assert!(
            layer.zeros >= want,
            "{}: {} zeros, want {want}",
            layer.name,
            layer.zeros
        );
    }
}

#[test]
fn killed_run_resumes_to_the_same_table() {
    let root = mnist_root();
    let cfg = smoke_config();

    let straight_dir = temp_dir("straight");
    let mut straight = Experiment::new(cfg.clone(), &straight_dir, &root, Device::Cpu).unwrap();
    let want = straight.run(&mut |_| Ok(())).unwrap();

    // Stop after 6 finished evaluations (dense, baseline, 4 Stage 1 candidates).
    let dir = temp_dir("resumed");
    let mut finished = 0;
    let mut first = Experiment::new(cfg.clone(), &dir, &root, Device::Cpu).unwrap();
    let err = first
        .run(&mut |ev| {
            if let ExperimentEvent::Evaluated { cached: false, .. } = ev {
                finished += 1;
                if finished == 6 {
                    return Err(Error::Config("stopped by the test".into()));
                }
            }
            Ok(())
        })
        .unwrap_err();
    assert!(err.to_string().contains("stopped by the test"));
    drop(first);

    let mut replayed = 0;
    let mut second = Experiment::new(cfg, &dir, &root, Device::Cpu).unwrap();
    let got = second
        .run(&mut |ev| {
            if let ExperimentEvent::Evaluated { cached: true, .. } = ev {
                replayed += 1;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        replayed, 6,
        "every finished evaluation is read back, none recomputed"
    );
    assert_eq!(got, want);
    let a = untimed_sorted(straight.run_dir().load_evals().unwrap());
    let b = untimed_sorted(second.run_dir().load_evals().unwrap());
    assert_eq!(a, b);
}

#[test]
fn resuming_with_another_config_is_refused() {
    let root = mnist_root();
    let dir = temp_dir("other-config");
    let mut cfg = smoke_config();
    cfg.arms = vec![Arm::MagnitudePruning];
    Experiment::new(cfg.clone(), &dir, &root, Device::Cpu).unwrap();
    cfg.prune.rate = 0.9;
    let err = Experiment::new(cfg, &dir, &root, Device::Cpu)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("different configuration"), "{err}");
}

#[test]
fn diverging_candidates_are_recorded_as_failed() {
    let root = mnist_root();
    let dir = temp_dir("diverge");
    // A dense checkpoint whose output bias is NaN: whatever the operators, every
    // fine-tune sees a NaN loss at its first step, as a diverged run does.
    let m = LeNet5::new(10, 0, &Device::Cpu).unwrap();
    let bias = m
        .parameters()
        .into_iter()
        .find(|p| p.name == "fc3.bias")
        .unwrap();
    bias.var
        .set(&bias.var.as_tensor().affine(0.0, f64::NAN).unwrap())
        .unwrap();
    let ckpt = dir.join("huge.safetensors");
    let meta = CheckpointMeta {
        model: m.name().into(),
        num_classes: 10,
        width: 1.0,
        plan: m.plan(),
        epoch: 0,
        valid_acc: None,
        note: "diverging".into(),
        safs_version: "test".into(),
    };
    save_checkpoint(&ckpt, &m, None, &meta).unwrap();

    // Every arm: the Stage 1 search, the Stage 2 trials and every final diverge.
    let mut cfg = smoke_config();
    cfg.dense_checkpoint = Some(ckpt);
    let mut exp = Experiment::new(cfg, &dir.join("run"), &root, Device::Cpu).unwrap();
    let row = exp.run(&mut |_| Ok(())).unwrap();
    for arm in [row.magnitude_pruning, row.stage1, row.stage2, row.safs] {
        assert_eq!(arm, Some(0.0), "{row:?}");
    }
    let evals = exp.run_dir().load_evals().unwrap();
    let of = |stage: Stage| evals.iter().filter(|r| r.stage == stage).count();
    assert!(
        of(Stage::Search(Arm::Stage1)) >= exp.budget().search_steps + 2,
        "the search went on"
    );
    for arm in [Arm::Stage2, Arm::Safs] {
        assert_eq!(
            of(Stage::Search(arm)),
            exp.budget().hpo_trials,
            "{arm:?}: every trial ran"
        );
    }
    for arm in [Arm::MagnitudePruning, Arm::Stage1, Arm::Stage2, Arm::Safs] {
        assert_eq!(of(Stage::Final(arm)), 1, "{arm:?}: its final ran");
    }
    for r in evals.iter().filter(|r| r.stage != Stage::Dense) {
        assert!(
            matches!(&r.status, EvalStatus::Failed(why) if why.contains("NaN")),
            "{:?} {}: {:?}",
            r.stage,
            r.step,
            r.status
        );
        assert_eq!(r.valid_acc, 0.0);
    }
}

#[test]
fn a_run_folder_in_use_is_refused_naming_its_writer() {
    let root = mnist_root();
    let out = temp_dir("locked");
    let mut exp = Experiment::new(smoke_config(), &out, &root, Device::Cpu).unwrap();
    let held = safs::experiment::RunLock::acquire(&out).unwrap();
    let err = exp.run(&mut |_| Ok(())).unwrap_err().to_string();
    assert!(
        err.contains("in use by process") && err.contains(&std::process::id().to_string()),
        "{err}"
    );
    assert!(exp.records().is_empty(), "nothing ran");
    drop(held);
}

#[test]
fn diverging_dense_training_stops_with_a_clear_error_and_logs_nothing() {
    let root = mnist_root();
    let dir = temp_dir("dense-diverge");
    let text = std::fs::read_to_string(experiments_dir().join("lenet5_mnist.toml")).unwrap();
    // (The dense recipe stays out of Stage 2's space, which would refuse it.)
    let text = text
        .replace("lr = 1e-3", "lr = 1e30")
        .replace("hpo_default_first = true", "hpo_default_first = false");
    assert!(text.contains("lr = 1e30") && text.contains("hpo_default_first = false"));
    let file = dir.join("lenet5_mnist.toml");
    std::fs::write(&file, text).unwrap();
    let mut cfg = ExperimentConfig::from_file(&file).unwrap();
    cfg.budget = BudgetPreset::Smoke;
    let mut exp = Experiment::new(cfg, &dir.join("run"), &root, Device::Cpu).unwrap();
    let err = exp.run(&mut |_| Ok(())).unwrap_err().to_string();
    assert!(
        err.contains("dense training diverged") && err.contains("lower the learning rate"),
        "{err}"
    );
    assert!(exp.run_dir().load_evals().unwrap().is_empty());
    assert!(!dir.join("run/table1.json").exists());
}
