//! A run folder on a disk that fills up, or turns read-only, stops the run with an error
//! that names the file and the cause, keeps every finished evaluation in a log that reads
//! back, and resumes to the uninterrupted result once the disk is writable again.
//!
//! The disk is a real tmpfs, which needs root (`mount`). Where mounting is not allowed the
//! test says so and passes, unless `SAFS_REQUIRE_MOUNT=1` (as CI sets) makes it fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::Device;

use safs::experiment::{Arm, EvalRecord, Experiment, ExperimentEvent, ResultRow, Stage};
use safs_e2e::{mnist_root, smoke_config, temp_dir, untimed, untimed_sorted};

/// A tmpfs mounted on a fresh folder; unmounted on drop.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts `size` (e.g. "900k"); None (after saying why) where mounting is not allowed.
    fn mount(tag: &str, size: &str) -> Option<Tmpfs> {
        let dir = temp_dir(tag);
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var("SAFS_REQUIRE_MOUNT").as_deref() != Ok("1"),
                    "SAFS_REQUIRE_MOUNT=1 but a tmpfs cannot be mounted: {why}"
                );
                eprintln!("skipped: a tmpfs cannot be mounted here (needs root): {why}");
                None
            }
        }
    }

    /// Remounts with new options ("size=64m", "ro", "rw").
    fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(st.success(), "remount {opts}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(dir: &Path) -> safs::Result<(ResultRow, Vec<EvalRecord>)> {
    let mut exp = Experiment::new(smoke_config(), dir, &mnist_root(), Device::Cpu)?;
    let row = exp.run(&mut |_| Ok(()))?;
    Ok((row, exp.run_dir().load_evals()?))
}

fn log_of(dir: &Path) -> Vec<EvalRecord> {
    let path = dir.join("evals.jsonl");
    if !path.exists() {
        return Vec::new();
    }
    safs::report::read_evals_jsonl(&path).expect("the log reads back")
}

/// Files whose name ends in `.tmp` under `dir`.
fn temporaries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(temporaries(&p));
        } else if p.to_string_lossy().ends_with(".tmp") {
            out.push(p);
        }
    }
    out
}

/// The uninterrupted smoke run both tests compare with (its row and untimed log), run once.
fn uninterrupted() -> (ResultRow, Vec<EvalRecord>) {
    static RUN: std::sync::OnceLock<(ResultRow, Vec<EvalRecord>)> = std::sync::OnceLock::new();
    RUN.get_or_init(|| {
        let dir = temp_dir("disk-faults-straight");
        let (row, log) = run(&dir).expect("uninterrupted run");
        let _ = std::fs::remove_dir_all(&dir);
        (row, untimed(log))
    })
    .clone()
}

/// Writes zeros to `path` until the disk is full; the file is the space to free later.
fn fill_disk(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 1 << 16];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
}

#[test]
fn a_disk_that_fills_during_a_log_append_keeps_the_log_readable_and_the_run_resumes() {
    let Some(disk) = Tmpfs::mount("disk-full-log", "64m") else {
        return;
    };
    let (want_row, want_log) = uninterrupted();

    // Fill the disk right after the second Stage 2 trial is logged: at full fidelity the
    // next write is the next trial's log line.
    let dir = disk.dir.join("run");
    let filler = disk.dir.join("filler");
    let mut searched = 0;
    let mut exp = Experiment::new(smoke_config(), &dir, &mnist_root(), Device::Cpu).unwrap();
    let err = exp
        .run(&mut |ev| {
            if let ExperimentEvent::Evaluated { record, .. } = ev {
                if record.stage == Stage::Search(Arm::Stage2) {
                    searched += 1;
                    if searched == 2 {
                        fill_disk(&filler);
                    }
                }
            }
            Ok(())
        })
        .expect_err("the disk is full")
        .to_string();
    drop(exp);
    let log_path = dir.join("evals.jsonl");
    assert!(
        err.contains("No space left on device") && err.contains(&*log_path.to_string_lossy()),
        "names the log and the cause: {err}"
    );
    let torn = !std::fs::read(&log_path).unwrap().ends_with(b"\n");
    let kept = untimed(log_of(&dir));
    assert_eq!(
        kept[..],
        want_log[..kept.len()],
        "every finished evaluation is kept"
    );
    let trials = kept
        .iter()
        .filter(|r| r.stage == Stage::Search(Arm::Stage2))
        .count();
    assert_eq!(trials, 2);
    eprintln!(
        "full disk during a log append ({}): {err}",
        if torn {
            "a torn last line left"
        } else {
            "nothing of the line written"
        }
    );

    // Space again: the resume cuts any torn line and ends as the uninterrupted run.
    std::fs::remove_file(&filler).unwrap();
    let (row, log) = run(&dir).expect("resumed run");
    assert_eq!(row, want_row);
    assert_eq!(untimed_sorted(log), untimed_sorted(want_log));
}

#[test]
fn a_full_disk_and_a_read_only_disk_stop_the_run_cleanly_and_it_resumes_after() {
    let Some(disk) = Tmpfs::mount("disk-faults", "700k") else {
        return;
    };
    let (want_row, want_log) = uninterrupted();

    // 1. The disk fills up part way through.
    let dir = disk.dir.join("run");
    let err = run(&dir).expect_err("700k cannot hold the run").to_string();
    assert!(
        err.contains("No space left on device") && err.contains(&*disk.dir.to_string_lossy()),
        "the error names the file and the cause: {err}"
    );
    let kept = untimed(log_of(&dir));
    assert!(
        !kept.is_empty(),
        "some evaluations finished before the disk filled"
    );
    assert_eq!(
        kept[..],
        want_log[..kept.len()],
        "the log holds what finished"
    );
    assert_eq!(
        temporaries(&disk.dir),
        Vec::<PathBuf>::new(),
        "no partial temporary left"
    );
    eprintln!("full disk after {} evaluations: {err}", kept.len());

    // 2. The disk turns read-only: the resume is refused, nothing changes.
    disk.remount("ro");
    let err = run(&dir).expect_err("read-only").to_string();
    assert!(
        err.contains("Read-only file system") && err.contains(&*dir.to_string_lossy()),
        "{err}"
    );
    assert_eq!(untimed(log_of(&dir)), kept);
    eprintln!("read-only disk: {err}");

    // 3. Writable and larger again: the run resumes to the uninterrupted result.
    disk.remount("rw,size=64m");
    let (row, log) = run(&dir).expect("resumed run");
    assert_eq!(row, want_row);
    assert_eq!(untimed_sorted(log), untimed_sorted(want_log));
}
