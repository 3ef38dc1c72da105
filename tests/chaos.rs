//! Chaos: a run killed with SIGKILL at random moments and resumed until it finishes ends
//! with the table and evaluation log of an uninterrupted run, and loses no finished
//! evaluation on the way; checkpoint saves, log appends and report writes killed mid-way
//! leave only whole files that read back.
//!
//! The killed processes are this test binary itself, re-run on its ignored `child` test
//! with `SAFS_CHAOS_ROLE` set. `SAFS_CHAOS_KILLS` sets the kills per scenario (default 20,
//! what CI runs; `scripts/chaos.sh --kills 200` runs the long campaign) and
//! `SAFS_CHAOS_SEED` the seed of the kill moments.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use candle_core::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use safs::activation::{ActivationPlan, Op};
use safs::experiment::{
    Arm, EvalRecord, EvalStatus, Experiment, ExperimentEvent, ResultRow, Stage, Workers,
};
use safs::fidelity::Fidelity;
use safs::model::{LeNet5, Network};
use safs::report::{append_eval, read_evals_jsonl};
use safs::train::{load_checkpoint, save_checkpoint, CheckpointMeta};
use safs_e2e::{mnist_root, smoke_config, temp_dir, untimed_sorted};

const ROLE: &str = "SAFS_CHAOS_ROLE";
const TARGET: &str = "SAFS_CHAOS_TARGET";
const FIDELITY: &str = "SAFS_CHAOS_FIDELITY";
const WORKERS: &str = "SAFS_CHAOS_WORKERS";
/// The prefix of the lines a child prints for its parent (the test harness prints others).
const MARK: &str = "chaos:";

fn kills() -> usize {
    std::env::var("SAFS_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20)
}

fn rng(scenario: u64) -> ChaCha8Rng {
    let seed: u64 = std::env::var("SAFS_CHAOS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(14);
    ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1000) + scenario)
}

fn env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| panic!("{key} is not set"))
}

fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK}{line}").unwrap();
    out.flush().unwrap();
}

// ---------------------------------------------------------------------------------------
// The child: one life of a scenario, until it finishes or is killed.

#[test]
#[ignore = "a child process of the chaos tests, run by them"]
fn child() {
    match env(ROLE).as_str() {
        "run" => child_run(Path::new(&env(TARGET))),
        "checkpoint" => child_checkpoint(Path::new(&env(TARGET))),
        "log" => child_log(Path::new(&env(TARGET))),
        "report" => child_report(Path::new(&env(TARGET))),
        other => panic!("unknown role {other}"),
    }
}

fn child_run(dir: &Path) {
    let mut cfg = smoke_config();
    cfg.fidelity = Fidelity::from_name(&env(FIDELITY)).expect("fidelity");
    let mut exp = Experiment::new(cfg, dir, &mnist_root(), Device::Cpu).expect("experiment");
    let count: usize = env(WORKERS).parse().unwrap();
    exp.set_workers(Workers { count, threads: 1 }).unwrap();
    exp.run(&mut |ev| {
        match ev {
            ExperimentEvent::Evaluated { cached: false, .. } => say(format_args!("evaluated")),
            ExperimentEvent::Train { .. } => say(format_args!("epoch")),
            _ => {}
        }
        Ok(())
    })
    .expect("run");
    say(format_args!("finished"));
}

/// Two distinguishable networks and the note that names each.
fn two_models() -> [(LeNet5, &'static str); 2] {
    [
        (LeNet5::new(10, 1, &Device::Cpu).unwrap(), "A"),
        (LeNet5::new(10, 2, &Device::Cpu).unwrap(), "B"),
    ]
}

fn meta_of(m: &LeNet5, note: &str, epoch: usize) -> CheckpointMeta {
    CheckpointMeta {
        model: m.name().into(),
        num_classes: 10,
        width: 1.0,
        plan: m.plan(),
        epoch,
        valid_acc: None,
        note: note.into(),
        safs_version: "chaos".into(),
    }
}

/// Saves A, B, A, ... to one checkpoint path, as fast as it can.
fn child_checkpoint(path: &Path) {
    let models = two_models();
    for i in 0.. {
        let (m, note) = &models[i % 2];
        save_checkpoint(path, m, None, &meta_of(m, note, i)).unwrap();
        say(format_args!("saved {i}"));
    }
}

/// The record a log writer appends as its `i`-th line.
fn log_record(i: usize) -> EvalRecord {
    EvalRecord {
        stage: Stage::Search(Arm::Stage1),
        step: i,
        plan: ActivationPlan::uniform(Op::Relu, 4),
        hparams: Default::default(),
        alphas: vec![1.0; 4],
        betas: vec![1.0; 4],
        op_params: vec![Vec::new(); 4],
        valid_acc: i as f64 + 0.5,
        test_acc: None,
        best_epoch: Some(0),
        epochs: Vec::new(),
        train_images: 2000,
        status: EvalStatus::Ok,
        seconds: 0.25,
    }
}

/// Appends records 0, 1, 2, ... after those the log already holds.
fn child_log(path: &Path) {
    let start = if path.exists() {
        read_evals_jsonl(path).unwrap().len()
    } else {
        0
    };
    for i in start.. {
        append_eval(path, &log_record(i)).unwrap();
        say(format_args!("appended {i}"));
    }
}

/// The rows a report combines: the smoke row of three seeds.
fn report_rows() -> Vec<ResultRow> {
    (0..3)
        .map(|seed| ResultRow {
            model: "lenet5".into(),
            dataset: "mnist".into(),
            prune_rate: 0.99,
            seed,
            budget: "smoke".into(),
            dense: Some(98.0 + seed as f64 * 0.1),
            magnitude_pruning: Some(40.0 + seed as f64),
            stage1: Some(41.0 - seed as f64),
            stage2: Some(39.5),
            safs: Some(42.25 + seed as f64 * 0.5),
        })
        .collect()
}

/// What `safs report --csv --chart` and a sweep report write, into `dir`.
fn write_report(dir: &Path) {
    let rows = report_rows();
    let mut combined = safs::report::combine(&rows).unwrap();
    safs::report::write_csv(&mut combined, &dir.join("combined.csv")).unwrap();
    let groups = safs::report::summarize_seeds(&rows).unwrap();
    let chart = safs::plot::seed_summary_chart(&groups[0]).unwrap();
    chart.save_svg(dir.join("chart.svg")).unwrap();
    chart.save_png(dir.join("chart.png")).unwrap();
    let mut long = safs::report::long_frame(&rows).unwrap();
    safs::report::write_csv(&mut long, &dir.join("runs_long.csv")).unwrap();
    safs::report::write_parquet(&mut long, &dir.join("runs_long.parquet")).unwrap();
    safs::plot::accuracy_vs_prune_rate(&rows)
        .unwrap()
        .save_svg(dir.join("accuracy_vs_prune_rate.svg"))
        .unwrap();
}

fn child_report(dir: &Path) {
    for i in 0.. {
        write_report(dir);
        say(format_args!("reported {i}"));
    }
}

// ---------------------------------------------------------------------------------------
// The parent: start a life, kill it, check what it left.

/// A child process and the marked lines it prints, as they come.
struct Life {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Life {
    fn start(role: &str, target: &Path, extra: &[(&str, &str)]) -> Life {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, role)
        .env(TARGET, target)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn child");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                if let Some(rest) = line.strip_prefix(MARK) {
                    if tx.send(rest.to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        Life { child, lines }
    }

    /// Reads the child's lines for up to `deadline`, until `stop` returns true for one
    /// (then true) or the child ends or the time is up (false).
    fn watch(&mut self, deadline: Duration, stop: &mut dyn FnMut(&str) -> bool) -> bool {
        let until = Instant::now() + deadline;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if stop(&line) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }

    /// SIGKILL, then reap.
    fn kill(mut self) {
        let _ = self.child.kill();
        self.child.wait().unwrap();
    }

    /// Waits for the end; true when it exited with success.
    fn finish(mut self) -> bool {
        self.child.wait().unwrap().success()
    }
}

/// Temporary files (`*.tmp`) anywhere under `dir`: a kill landed during a write.
fn temporaries(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                temporaries(&p)
            } else {
                usize::from(p.to_string_lossy().ends_with(".tmp"))
            }
        })
        .sum()
}

fn read_log(dir: &Path) -> Vec<EvalRecord> {
    let path = dir.join("evals.jsonl");
    if path.exists() {
        read_evals_jsonl(&path).expect("the log reads back after every kill")
    } else {
        Vec::new()
    }
}

fn read_row(dir: &Path) -> ResultRow {
    serde_json::from_slice(&std::fs::read(dir.join("table1.json")).unwrap()).unwrap()
}

/// The stage a kill interrupted: the one of the first evaluation the log lacked.
fn stage_at(straight: &[EvalRecord], done: usize) -> String {
    match straight.get(done) {
        Some(r) => r.stage.name(),
        None => "tables".into(),
    }
}

/// Counts a child's "evaluated" line into `fresh`; true once the log holds all but the
/// last of the `n` evaluations, when a life is killed at once (as the last one starts) so
/// that none finishes the run before its kill.
fn tally(line: &str, fresh: &mut usize, n: usize) -> bool {
    *fresh += usize::from(line == "evaluated");
    *fresh + 1 >= n
}

/// Kills a smoke run `kills` times, resuming each time, then lets it finish. The kills are
/// spread evenly over the run: the i-th comes once the log holds about i/kills of the
/// uninterrupted run's evaluations (in the start-up or replay when it already holds more),
/// then a random 1-3 progress lines and up to 3 ms later, which lands at epoch ends, log
/// appends and checkpoint saves; a quarter come at a random time before the uninterrupted
/// run would have reached the target.
fn chaos_run(scenario: u64, fidelity: &str, workers: usize) {
    let kills = kills();
    let mut rng = rng(scenario);
    let tag = format!("{fidelity}-w{workers}");
    let extra = [(FIDELITY, fidelity), (WORKERS, &*workers.to_string())];
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, *v)).collect();

    let straight = temp_dir(&format!("chaos-straight-{tag}"));
    let t0 = Instant::now();
    let life = Life::start("run", &straight, &extra);
    let _ = life.lines.recv();
    let startup = t0.elapsed();
    assert!(life.finish(), "straight run");
    let length = t0.elapsed();
    let want_log = read_log(&straight);
    let n = want_log.len();

    let dir = temp_dir(&format!("chaos-killed-{tag}"));
    let mut by_stage = std::collections::BTreeMap::<String, usize>::new();
    let (mut during_write, mut in_replay, mut before) = (0, 0, Vec::<EvalRecord>::new());
    let t1 = Instant::now();
    for i in 0..kills {
        let mut life = Life::start("run", &dir, &extra);
        let logged = before.len();
        let mut fresh = logged;
        let target = (i * n / kills).min(n - 1);
        in_replay += usize::from(target < logged);
        if target < logged {
            // Already past it: somewhere in the start-up or the replay of the log, well
            // before the last evaluation could finish.
            let last = want_log[n - 1].seconds.min(startup.as_secs_f64());
            let us = rng.gen_range(0..(last * 0.5e6) as u64);
            life.watch(Duration::from_micros(us), &mut |l| tally(l, &mut fresh, n));
        } else if rng.gen_bool(0.25) {
            // Up to the time the uninterrupted run took from here to the target (its
            // workers trained side by side).
            let trained: f64 = want_log[logged..=target].iter().map(|r| r.seconds).sum();
            let ahead = trained / workers as f64;
            let most = startup.as_secs_f64() + ahead.min(length.as_secs_f64() / 4.0);
            let us = rng.gen_range(0..(most * 1e6) as u64);
            life.watch(Duration::from_micros(us), &mut |l| tally(l, &mut fresh, n));
        } else {
            // Once the log holds the target, 1-3 more progress lines (epoch ends, log
            // appends), then a few milliseconds: inside the save or append that follows.
            let (mut reached, mut lines) = (logged >= target, rng.gen_range(1..=3));
            let printed = life.watch(length * 2, &mut |line| {
                let end = tally(line, &mut fresh, n);
                if reached {
                    lines -= 1;
                } else {
                    reached = fresh >= target;
                }
                end || (reached && lines == 0)
            });
            assert!(printed, "life {i} printed nothing for {:?}", length * 2);
            if fresh + 1 < n {
                std::thread::sleep(Duration::from_micros(rng.gen_range(0..3000)));
            }
        }
        assert!(
            life.child.try_wait().unwrap().is_none(),
            "life {i} ended before its kill"
        );
        life.kill();
        during_write += usize::from(temporaries(&dir) > 0);
        let after = read_log(&dir);
        assert!(
            after.len() >= before.len() && after[..before.len()] == before[..],
            "a kill lost or changed finished evaluations ({} before, {} after)",
            before.len(),
            after.len()
        );
        *by_stage
            .entry(stage_at(&want_log, after.len()))
            .or_default() += 1;
        before = after;
    }
    assert!(Life::start("run", &dir, &extra).finish(), "the last resume");
    let chaos_time = t1.elapsed();

    assert_eq!(read_row(&dir), read_row(&straight), "Table 1 row");
    assert_eq!(
        std::fs::read(dir.join("table1.csv")).unwrap(),
        std::fs::read(straight.join("table1.csv")).unwrap()
    );
    let got = read_log(&dir);
    assert_eq!(
        untimed_sorted(got),
        untimed_sorted(want_log),
        "evaluation log"
    );
    println!(
        "chaos run [{tag}]: {kills} kills ({in_replay} in the replay of the log, \
         {during_write} leaving a temporary file), all resumed to the uninterrupted table \
         and log; kills by the stage they interrupted {by_stage:?}; uninterrupted {:.1} s, \
         killed and resumed {:.1} s",
        length.as_secs_f64(),
        chaos_time.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&straight);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_killed_at_random_moments_resumes_to_the_uninterrupted_result() {
    chaos_run(1, "full", 1);
}

#[test]
fn a_successive_halving_run_on_two_workers_killed_at_random_moments_resumes_too() {
    chaos_run(2, "successive_halving", 2);
}

#[test]
fn a_checkpoint_save_killed_mid_way_never_reads_back_torn() {
    let dir = temp_dir("chaos-checkpoint");
    let path = dir.join("model.safetensors");
    let mut rng = rng(3);
    let models = two_models();
    let mut mid_save = 0;
    for _ in 0..kills() {
        let mut life = Life::start("checkpoint", &path, &[]);
        assert!(
            life.watch(Duration::from_secs(60), &mut |_| true),
            "first save"
        );
        life.watch(Duration::from_micros(rng.gen_range(0..20_000)), &mut |_| {
            false
        });
        life.kill();
        mid_save += usize::from(path.with_extension("json.tmp").exists());
        let mut m = LeNet5::new(10, 9, &Device::Cpu).unwrap();
        let (meta, _) = load_checkpoint(&path, &mut m, &Device::Cpu)
            .unwrap_or_else(|e| panic!("a kill left no loadable checkpoint: {e}"));
        // Whole: the tensors are those of the model its metadata names.
        let (want, _) = models.iter().find(|(_, n)| *n == meta.note).unwrap();
        for ((name, a), (_, b)) in m.state().unwrap().iter().zip(want.state().unwrap()) {
            let d = (a - &b).unwrap().abs().unwrap().max_all().unwrap();
            assert_eq!(
                d.to_scalar::<f32>().unwrap(),
                0.0,
                "{name} of {}",
                meta.note
            );
        }
    }
    println!(
        "chaos checkpoint: {} kills during a loop of saves ({mid_save} after the new \
         metadata was written, before its rename): every one read back a whole checkpoint, \
         tensors matching metadata",
        kills()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_log_append_killed_mid_way_keeps_every_finished_record() {
    let dir = temp_dir("chaos-log");
    let path = dir.join("evals.jsonl");
    let mut rng = rng(4);
    let mut reported = 0;
    for _ in 0..kills() {
        let life = Life::start("log", &path, &[]);
        let until = Instant::now() + Duration::from_micros(rng.gen_range(1_000..40_000));
        while let Ok(line) = life
            .lines
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            let i: usize = line.strip_prefix("appended ").unwrap().parse().unwrap();
            reported = reported.max(i + 1);
        }
        life.kill();
        let log = read_evals_jsonl(&path).expect("the log reads back");
        assert!(
            log.len() >= reported,
            "{} of {reported} acknowledged records",
            log.len()
        );
        for (i, r) in log.iter().enumerate() {
            assert_eq!(r, &log_record(i), "record {i}");
        }
    }
    let log = read_evals_jsonl(&path).unwrap();
    assert!(log.iter().all(|r| r.status == EvalStatus::Ok));
    println!(
        "chaos log: {} kills during appends, {} records, every acknowledged one kept in order",
        kills(),
        log.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_report_killed_mid_way_leaves_only_whole_files() {
    let reference = temp_dir("chaos-report-reference");
    write_report(&reference);
    let dir = temp_dir("chaos-report");
    let mut rng = rng(5);
    let mut checked = 0;
    for _ in 0..kills() {
        let mut life = Life::start("report", &dir, &[]);
        life.watch(Duration::from_millis(rng.gen_range(0..400)), &mut |_| false);
        life.kill();
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p: PathBuf = entry.path();
            if p.to_string_lossy().ends_with(".tmp") {
                continue; // a temporary is never read
            }
            let want = std::fs::read(reference.join(p.file_name().unwrap())).unwrap();
            assert!(
                std::fs::read(&p).unwrap() == want,
                "{} is not whole",
                p.display()
            );
            checked += 1;
        }
    }
    println!(
        "chaos report: {} kills during report writes, {checked} files checked whole",
        kills()
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&reference);
}
