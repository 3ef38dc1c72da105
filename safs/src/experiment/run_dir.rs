//! The run folder: where every finished piece of an experiment is written at once.
//!
//! ```text
//! config.json                resolved config; a resume must match it
//! dense.safetensors/.json    the dense network
//! pruned.safetensors/.json   the pruned network every fine-tune starts from
//! evals.jsonl                append-only log: one line per finished evaluation
//! finals/<stage>.safetensors the fine-tuned network of every arm
//! table1.csv/.parquet        the Table 1 row
//! evals.csv/.parquet         the evaluation log as a table
//! ```

use std::path::{Path, PathBuf};

use super::{EvalRecord, ExperimentConfig, Stage};
use crate::util::atomic_write;
use crate::{Error, Result};

/// Paths inside one run folder.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Opens (or creates) a run folder for `cfg`; a folder made with another config is an error.
    pub fn open(root: &Path, cfg: &ExperimentConfig) -> Result<Self> {
        std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        let dir = Self {
            root: root.to_path_buf(),
        };
        let want = serde_json::to_value(cfg).map_err(|e| Error::Config(e.to_string()))?;
        let path = dir.config_path();
        if path.exists() {
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let have: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| Error::data(&path, format!("not valid JSON: {e}")))?;
            if have != want {
                return Err(Error::Config(format!(
                    "run folder {} was started with a different configuration; \
                     resume with the same config or choose another output folder",
                    root.display()
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

    /// The checkpoint a final fine-tune writes.
    pub fn final_path(&self, stage: Stage) -> PathBuf {
        self.root
            .join("finals")
            .join(format!("{}.safetensors", stage.name()))
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
