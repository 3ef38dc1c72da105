//! The sweep folder (a manifest of its tasks, one run folder each) and the local backend:
//! tasks run on this machine, N at a time, each on its own thread pool.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::{SweepSpec, SweepTask};
use crate::experiment::{Experiment, ResultRow};
use crate::{Error, Result};

/// The manifest file of a sweep folder.
pub const MANIFEST: &str = "sweep.json";

/// One task as the manifest records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ManifestTask {
    index: usize,
    folder: String,
    experiment: PathBuf,
    overrides: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Manifest {
    name: String,
    tasks: Vec<ManifestTask>,
}

impl Manifest {
    fn new(spec: &SweepSpec, tasks: &[SweepTask]) -> Self {
        let tasks = tasks
            .iter()
            .map(|t| ManifestTask {
                index: t.index,
                folder: t.folder.clone(),
                experiment: t.experiment.clone(),
                overrides: t
                    .overrides
                    .iter()
                    .map(|(f, v)| (f.clone(), v.to_string()))
                    .collect(),
            })
            .collect();
        Self {
            name: spec.name.clone(),
            tasks,
        }
    }
}

/// The run folders a sweep folder's manifest lists, in task order.
pub fn manifest_run_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let path = root.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let m: Manifest = serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("{}: not a sweep manifest ({e})", path.display())))?;
    Ok(m.tasks.iter().map(|t| root.join(&t.folder)).collect())
}

/// The file a task's run folder gets when the task stops with an error (its text).
pub const FAILED_FILE: &str = "sweep_task_failed.txt";

/// Where a task stands, read from its run folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// No evaluation logged yet.
    Pending,
    /// Some evaluations logged, no final table: running, or stopped and resumable.
    Started,
    /// Its last attempt stopped with an error ([`FAILED_FILE`] says which); resumable.
    Failed,
    /// Its table is written.
    Done,
}

/// A sweep folder: its manifest and one run folder per task.
#[derive(Clone, Debug)]
pub struct SweepFolder {
    root: PathBuf,
}

impl SweepFolder {
    /// Opens `root` for these tasks: writes the manifest into a new folder, or checks that
    /// an existing one was written by the same sweep (else an error, nothing overwritten).
    pub fn open(root: &Path, spec: &SweepSpec, tasks: &[SweepTask]) -> Result<Self> {
        let want = Manifest::new(spec, tasks);
        let path = root.join(MANIFEST);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let have: Manifest = serde_json::from_str(&text).map_err(|e| {
                    Error::Config(format!("{}: not a sweep manifest ({e})", path.display()))
                })?;
                if have != want {
                    return Err(Error::Config(format!(
                        "{} was written by another sweep ('{}', {} tasks) than this one ('{}', \
                         {} tasks); use another folder",
                        root.display(),
                        have.name,
                        have.tasks.len(),
                        want.name,
                        want.tasks.len()
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
                let text = serde_json::to_string_pretty(&want)
                    .map_err(|e| Error::Config(format!("sweep manifest: {e}")))?;
                crate::util::atomic_write(&path, text.as_bytes())?;
            }
            Err(e) => return Err(Error::io(&path, e)),
        }
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The sweep folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The run folder of `task`.
    pub fn run_dir(&self, task: &SweepTask) -> PathBuf {
        self.root.join(&task.folder)
    }

    /// Where `task` stands.
    pub fn state(&self, task: &SweepTask) -> TaskState {
        let dir = self.run_dir(task);
        if dir.join("table1.json").is_file() {
            TaskState::Done
        } else if dir.join(FAILED_FILE).is_file() {
            TaskState::Failed
        } else if dir.join("evals.jsonl").is_file() {
            TaskState::Started
        } else {
            TaskState::Pending
        }
    }
}

/// What happens to the tasks of a local sweep, in the order it happens.
#[derive(Clone, Debug)]
pub enum SweepEvent {
    /// A task started (or resumed from its run folder).
    Started {
        /// The task's index.
        index: usize,
        /// Its run folder.
        folder: String,
    },
    /// A task ended: its Table 1 row, or the error that stopped it.
    Finished {
        /// The task's index.
        index: usize,
        /// Its run folder.
        folder: String,
        /// The row, or the error's text.
        result: std::result::Result<ResultRow, String>,
    },
}

/// How the local backend runs a sweep.
#[derive(Clone, Debug)]
pub struct LocalOptions {
    /// Tasks at once.
    pub parallel: usize,
    /// Threads per task (the sweep file's `resources.cpus`).
    pub threads: usize,
    /// Where the datasets live.
    pub data_root: PathBuf,
    /// The device every task trains on.
    pub device: Device,
}

/// Runs every task, `parallel` at a time, each on its own pool of `threads` threads (so a
/// task's result never depends on `parallel`); a task whose run folder is finished or
/// half-done reads back what it holds and goes on from there. Returns each task's row, or
/// the error that stopped it, in task order; a failed task does not stop the others.
pub fn run_local(
    folder: &SweepFolder,
    tasks: &[SweepTask],
    opts: &LocalOptions,
    on_event: &(dyn Fn(SweepEvent) + Sync),
) -> Result<Vec<std::result::Result<ResultRow, String>>> {
    if opts.parallel == 0 || opts.threads == 0 {
        return Err(Error::Config(format!(
            "local sweep: parallel ({}) and threads ({}) must be at least 1",
            opts.parallel, opts.threads
        )));
    }
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<std::result::Result<ResultRow, String>>>> =
        Mutex::new(vec![None; tasks.len()]);
    let attempt = |task: &SweepTask| -> std::result::Result<ResultRow, String> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| format!("thread pool: {e}"))?;
        pool.install(|| {
            let mut exp = Experiment::new(
                task.config.clone(),
                &folder.run_dir(task),
                &opts.data_root,
                opts.device.clone(),
            )?;
            exp.run(&mut |_| Ok(()))
        })
        .map_err(|e| e.to_string())
    };
    // A failure leaves its text in the run folder (for `sweep status`); a success clears it.
    let run_one = |task: &SweepTask| -> std::result::Result<ResultRow, String> {
        let marker = folder.run_dir(task).join(FAILED_FILE);
        let result = attempt(task);
        match &result {
            Ok(_) => {
                let _ = std::fs::remove_file(&marker);
            }
            Err(e) => {
                let _ = std::fs::create_dir_all(folder.run_dir(task));
                let _ = std::fs::write(&marker, format!("{e}\n"));
            }
        }
        result
    };
    std::thread::scope(|s| {
        for _ in 0..opts.parallel.min(tasks.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(task) = tasks.get(i) else { break };
                let folder_name = task.folder.clone();
                on_event(SweepEvent::Started {
                    index: task.index,
                    folder: folder_name.clone(),
                });
                let result = run_one(task);
                on_event(SweepEvent::Finished {
                    index: task.index,
                    folder: folder_name,
                    result: result.clone(),
                });
                results.lock().expect("results lock")[i] = Some(result);
            });
        }
    });
    Ok(results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not run".into())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_util::TempDir;
    use crate::sweep::expand;

    const EXPERIMENT: &str = include_str!("../../../experiments/lenet5_mnist.toml");

    fn sweep(dir: &Path, seeds: &str) -> (SweepSpec, Vec<SweepTask>) {
        std::fs::write(dir.join("lenet5.toml"), EXPERIMENT).unwrap();
        let text = format!(
            "name = \"s\"\nexperiments = [\"lenet5.toml\"]\n[[axes]]\nfield = \"seed\"\nvalues = [{seeds}]\n"
        );
        std::fs::write(dir.join("sweep.toml"), text).unwrap();
        let spec = SweepSpec::from_file(&dir.join("sweep.toml")).unwrap();
        let tasks = expand(&spec).unwrap();
        (spec, tasks)
    }

    #[test]
    fn a_folder_of_another_sweep_is_refused_and_left_alone() {
        let dir = TempDir::new("sweep-folder");
        let root = dir.path().join("out");
        let (spec, tasks) = sweep(dir.path(), "0, 1");
        let folder = SweepFolder::open(&root, &spec, &tasks).unwrap();
        let manifest = std::fs::read_to_string(root.join(MANIFEST)).unwrap();
        let dirs = manifest_run_dirs(&root).unwrap();
        assert_eq!(dirs, [folder.run_dir(&tasks[0]), folder.run_dir(&tasks[1])]);
        // The same sweep opens again.
        SweepFolder::open(&root, &spec, &tasks).unwrap();
        assert_eq!(folder.state(&tasks[0]), TaskState::Pending);
        let (spec2, tasks2) = sweep(dir.path(), "0, 1, 2");
        let err = SweepFolder::open(&root, &spec2, &tasks2)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("another sweep") && err.contains("3 tasks"),
            "{err}"
        );
        assert_eq!(
            std::fs::read_to_string(root.join(MANIFEST)).unwrap(),
            manifest
        );
        std::fs::write(root.join(MANIFEST), "{").unwrap();
        let err = SweepFolder::open(&root, &spec, &tasks)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a sweep manifest"), "{err}");
    }

    #[test]
    fn states_follow_the_run_folder() {
        let dir = TempDir::new("sweep-state");
        let (spec, tasks) = sweep(dir.path(), "0");
        let folder = SweepFolder::open(&dir.path().join("out"), &spec, &tasks).unwrap();
        let run = folder.run_dir(&tasks[0]);
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join("evals.jsonl"), "").unwrap();
        assert_eq!(folder.state(&tasks[0]), TaskState::Started);
        std::fs::write(run.join(FAILED_FILE), "diverged").unwrap();
        assert_eq!(folder.state(&tasks[0]), TaskState::Failed);
        std::fs::write(run.join("table1.json"), "{}").unwrap();
        assert_eq!(folder.state(&tasks[0]), TaskState::Done);
    }

    #[test]
    fn a_failing_task_is_recorded_and_the_others_run() {
        let dir = TempDir::new("sweep-fail");
        let (spec, tasks) = sweep(dir.path(), "0, 1");
        let folder = SweepFolder::open(&dir.path().join("out"), &spec, &tasks).unwrap();
        // No data under this root: every task stops at loading MNIST, with an error.
        let opts = LocalOptions {
            parallel: 2,
            threads: 1,
            data_root: dir.path().join("no-data"),
            device: Device::Cpu,
        };
        let results = run_local(&folder, &tasks, &opts, &|_| {}).unwrap();
        assert_eq!(results.len(), 2);
        for (t, r) in tasks.iter().zip(&results) {
            let err = r.as_ref().unwrap_err();
            assert_eq!(folder.state(t), TaskState::Failed);
            let text = std::fs::read_to_string(folder.run_dir(t).join(FAILED_FILE)).unwrap();
            assert_eq!(text.trim(), err.as_str());
        }
    }

    #[test]
    fn zero_parallel_is_an_error() {
        let dir = TempDir::new("sweep-zero");
        let (spec, tasks) = sweep(dir.path(), "0");
        let folder = SweepFolder::open(&dir.path().join("out"), &spec, &tasks).unwrap();
        let opts = LocalOptions {
            parallel: 0,
            threads: 1,
            data_root: dir.path().to_path_buf(),
            device: Device::Cpu,
        };
        let err = run_local(&folder, &tasks, &opts, &|_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("parallel (0)"), "{err}");
    }
}
