//! The run folder: where every finished piece of an experiment is written at once.
//!
//! ```text
//! config.json                resolved config; a resume must match it
//! run.lock                   held (flock) by the one process writing the folder
//! dense.safetensors/.json    the dense network
//! pruned.safetensors/.json   the pruned network every fine-tune starts from
//! evals.jsonl                append-only log: one line per finished evaluation
//! <stage>_trace.jsonl        a search's steps (candidate, accepted, best so far)
//! finals/<stage>.safetensors the fine-tuned network of every arm (`-r<k>` for repeat k)
//! table1.csv/.parquet        the Table 1 row
//! evals.csv/.parquet         the evaluation log as a table
//! ```

use std::path::{Path, PathBuf};

use super::{EvalRecord, ExperimentConfig, Stage};
use crate::search::SearchStep;
use crate::util::atomic_write;
use crate::{Error, Result};

/// Paths inside one run folder.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Opens (or creates) a run folder for `cfg`; a folder made with another config is an
    /// error naming the fields that differ. The stored config is read as an
    /// [`ExperimentConfig`], so fields added since it was written take their defaults.
    pub fn open(root: &Path, cfg: &ExperimentConfig) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let dir = Self {
            root: root.to_path_buf(),
        };
        let want = serde_json::to_value(cfg).map_err(|e| Error::Config(e.to_string()))?;
        let path = dir.config_path();
        if path.exists() {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let have: ExperimentConfig = serde_json::from_slice(&bytes)
                .map_err(|e| Error::data(&path, format!("not a valid experiment config: {e}")))?;
            if &have != cfg {
                let have = serde_json::to_value(&have).map_err(|e| Error::Config(e.to_string()))?;
                let differ: Vec<String> = match (&have, &want) {
                    (serde_json::Value::Object(a), serde_json::Value::Object(b)) => a
                        .keys()
                        .chain(b.keys())
                        .filter(|k| a.get(*k) != b.get(*k))
                        .cloned()
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect(),
                    _ => Vec::new(),
                };
                return Err(Error::Config(format!(
                    "run folder {} was started with a different configuration (differs in: {}); \
                     resume with the same config or choose another output folder",
                    root.display(),
                    differ.join(", ")
                )));
            }
        } else {
            let text =
                serde_json::to_vec_pretty(&want).map_err(|e| Error::Config(e.to_string()))?;
            atomic_write(&path, &text)?;
        }
        Ok(dir)
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The resolved config.
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.json")
    }

    /// The append-only evaluation log.
    pub fn evals_path(&self) -> PathBuf {
        self.root.join("evals.jsonl")
    }

    /// The dense checkpoint.
    pub fn dense_path(&self) -> PathBuf {
        self.root.join("dense.safetensors")
    }

    /// The pruned checkpoint.
    pub fn pruned_path(&self) -> PathBuf {
        self.root.join("pruned.safetensors")
    }

    /// The checkpoint a final fine-tune writes (its first repeat).
    pub fn final_path(&self, stage: Stage) -> PathBuf {
        self.final_repeat_path(stage, 0)
    }

    /// The checkpoint of repeat `repeat` of a final fine-tune.
    pub fn final_repeat_path(&self, stage: Stage, repeat: usize) -> PathBuf {
        let name = match repeat {
            0 => format!("{stage}.safetensors"),
            r => format!("{stage}-r{r}.safetensors"),
        };
        self.root.join("finals").join(name)
    }

    /// The saved training of a multi-fidelity candidate between rungs.
    pub fn rung_path(&self, stage: Stage, step: usize) -> PathBuf {
        self.rungs_dir()
            .join(format!("{stage}-{step:04}.safetensors"))
    }

    /// Where [`RunDir::rung_path`]s live (emptied as each search ends).
    pub fn rungs_dir(&self) -> PathBuf {
        self.root.join("rungs")
    }

    /// The trace of a search stage.
    pub fn trace_path(&self, stage: Stage) -> PathBuf {
        self.root.join(format!("{stage}_trace.jsonl"))
    }

    /// Writes a search's whole trace, one step per line (rewritten on every resume).
    pub fn write_trace(&self, stage: Stage, steps: &[SearchStep]) -> Result<()> {
        let mut text = Vec::new();
        for s in steps {
            serde_json::to_writer(&mut text, s).map_err(|e| Error::Config(e.to_string()))?;
            text.push(b'\n');
        }
        atomic_write(&self.trace_path(stage), &text)
    }

    /// A search's trace, if it finished.
    pub fn load_trace(&self, stage: Stage) -> Result<Option<Vec<SearchStep>>> {
        let path = self.trace_path(stage);
        if !path.exists() {
            return Ok(None);
        }
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .map_err(|e| Error::data(&path, format!("line {}: {e}", i + 1)))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// A table file, e.g. `table1.csv`.
    pub fn table_path(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }

    /// Every evaluation finished so far (a half-written last line is ignored).
    pub fn load_evals(&self) -> Result<Vec<EvalRecord>> {
        let path = self.evals_path();
        if !path.exists() {
            return Ok(Vec::new());
        }
        crate::report::read_evals_jsonl(&path)
    }
}
