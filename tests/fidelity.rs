//! Multi-fidelity SAFS end to end on real MNIST at the smoke budget (3-epoch fine-tunes,
//! successive halving with eta 3: brackets of 3 candidates at 1 epoch, one promoted to 3):
//! a promoted candidate continues its own training, 1 and 2 workers write the same log,
//! and a kill between rungs resumes to the same table.

use candle_core::Device;

use safs::experiment::{
    Arm, BudgetPreset, EvalRecord, Experiment, ExperimentConfig, ExperimentEvent, Stage, Workers,
};
use safs::fidelity::Fidelity;
use safs::train::TrainEvent;
use safs::Error;
use safs_e2e::{experiments_dir, mnist_root, temp_dir};

fn config() -> ExperimentConfig {
    let mut cfg =
        ExperimentConfig::from_file(&experiments_dir().join("lenet5_mnist.toml")).expect("config");
    cfg.budget = BudgetPreset::Smoke;
    cfg.budgets.smoke.finetune_epochs = Some(3);
    cfg.fidelity = Fidelity::SuccessiveHalving {
        min_epochs: 1,
        eta: 3,
    };
    cfg.arms = vec![Arm::Stage1, Arm::Stage2];
    cfg.validate().expect("valid");
    cfg
}

/// The log as written, with wall times zeroed (the only fields that may differ).
fn untimed(mut records: Vec<EvalRecord>) -> Vec<EvalRecord> {
    for r in &mut records {
        r.seconds = 0.0;
        for e in &mut r.epochs {
            e.seconds = 0.0;
        }
    }
    records
}

fn run(dir: &std::path::Path, workers: usize) -> (safs::experiment::ResultRow, Vec<EvalRecord>) {
    let mut exp = Experiment::new(config(), dir, &mnist_root(), Device::Cpu).unwrap();
    exp.set_workers(Workers {
        count: workers,
        threads: 1,
    })
    .unwrap();
    let row = exp.run(&mut |_| Ok(())).unwrap();
    (row, exp.run_dir().load_evals().unwrap())
}

#[test]
fn brackets_promote_by_continuing_and_workers_or_a_kill_change_nothing() {
    // One worker: the reference run.
    let dir1 = temp_dir("sh-one-worker");
    let (row, log) = run(&dir1, 1);
    let stage1 = Stage::Search(Arm::Stage1);
    let s1: Vec<&EvalRecord> = log.iter().filter(|r| r.stage == stage1).collect();
    // The first bracket: the start plan at 3 epochs, then three moves at 1 epoch, then
    // the best of them continued to 3.
    assert_eq!(s1[0].epochs.len(), 3);
    assert_eq!(
        s1[1..4].iter().map(|r| r.epochs.len()).collect::<Vec<_>>(),
        [1, 1, 1]
    );
    let promoted = s1[4];
    assert_eq!(promoted.epochs.len(), 3);
    let rung = s1[1..4]
        .iter()
        .find(|r| r.step == promoted.step)
        .expect("the promoted candidate was at the first rung");
    // It continued: its first epoch is the very one logged at the rung, wall time to the
    // bit (a retrained epoch would have been timed again).
    assert_eq!(promoted.epochs[0], rung.epochs[0]);
    assert!(promoted.seconds > rung.seconds);
    // The one promoted is the rung's best (ties: the earliest step).
    let best = s1[1..4]
        .iter()
        .fold(None, |b: Option<&&EvalRecord>, r| match b {
            Some(b) if b.valid_acc >= r.valid_acc => Some(b),
            _ => Some(r),
        })
        .unwrap();
    assert_eq!(best.step, promoted.step);
    // The trace marks the stopped moves; none of them is accepted or best.
    let exp = Experiment::new(config(), &dir1, &mnist_root(), Device::Cpu).unwrap();
    let trace = exp.run_dir().load_trace(stage1).unwrap().unwrap();
    let stopped: Vec<_> = trace.iter().filter(|s| s.stopped_at.is_some()).collect();
    assert!(stopped.len() >= 2, "{trace:?}");
    assert!(stopped
        .iter()
        .all(|s| !s.accepted && s.stopped_at == Some(1)));
    // Stage 2: one bracket of the 3 trials, one of them to the end.
    let s2: Vec<usize> = log
        .iter()
        .filter(|r| r.stage == Stage::Search(Arm::Stage2))
        .map(|r| r.epochs.len())
        .collect();
    assert_eq!(s2, [1, 1, 1, 3]);
    assert!(
        !exp.run_dir().rungs_dir().exists()
            || std::fs::read_dir(exp.run_dir().rungs_dir())
                .unwrap()
                .count()
                == 0,
        "finished searches leave no saved rungs"
    );

    // Two workers, one thread each: the same log, line for line, and the same table.
    let dir2 = temp_dir("sh-two-workers");
    let (row2, log2) = run(&dir2, 2);
    assert_eq!(untimed(log2), untimed(log.clone()));
    assert_eq!(row2, row);

    // Killed while the promoted candidate trains its second epoch: the resumed run
    // continues it from its saved rung and ends with the same log and table.
    let dir3 = temp_dir("sh-killed");
    let mut first = Experiment::new(config(), &dir3, &mnist_root(), Device::Cpu).unwrap();
    let err = first
        .run(&mut |ev| match ev {
            ExperimentEvent::Train {
                stage,
                step,
                event: TrainEvent::Batch { epoch: 1, .. },
            } if *stage == stage1 && *step == promoted.step => {
                Err(Error::Config("killed by the test".into()))
            }
            _ => Ok(()),
        })
        .unwrap_err();
    assert!(err.to_string().contains("killed by the test"), "{err}");
    let saved = first.run_dir().rung_path(stage1, promoted.step);
    for r in &s1[1..4] {
        if r.step != promoted.step {
            let stopped = first.run_dir().rung_path(stage1, r.step);
            assert!(
                !stopped.exists(),
                "a stopped candidate's rung is removed: {stopped:?}"
            );
        }
    }
    let listing: Vec<_> = std::fs::read_dir(first.run_dir().rungs_dir())
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        saved.exists(),
        "the promoted candidate's rung is saved: {saved:?} not in {listing:?}"
    );
    drop(first);
    let mut second = Experiment::new(config(), &dir3, &mnist_root(), Device::Cpu).unwrap();
    let mut retrained_epoch0 = false;
    let row3 = second
        .run(&mut |ev| {
            if let ExperimentEvent::Train {
                stage,
                step,
                event: TrainEvent::Batch { epoch: 0, .. },
            } = ev
            {
                retrained_epoch0 |= *stage == stage1 && *step == promoted.step;
            }
            Ok(())
        })
        .unwrap();
    assert!(!retrained_epoch0, "the promoted candidate restarted");
    assert_eq!(row3, row);
    assert_eq!(
        untimed(second.run_dir().load_evals().unwrap()),
        untimed(log)
    );
}

#[test]
fn a_fidelity_for_another_search_is_refused() {
    let mut cfg = config();
    cfg.search = safs::search::SearchMethod::Random { steps: 0 };
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("fidelity") && e.contains("random"), "{e}");
    let mut cfg = config();
    cfg.fidelity = Fidelity::Hyperband {
        min_epochs: 4,
        eta: 3,
    };
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("min_epochs = 4"), "{e}");
}
