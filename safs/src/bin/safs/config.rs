//! The TOML file a training command reads, with flag overrides.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use safs::data::{DatasetKind, Splits};
use safs::model::ModelKind;
use safs::train::TrainConfig;

fn full_width() -> f64 {
    1.0
}

fn default_seed() -> u64 {
    0
}

/// A training job: model, data, seed and hyperparameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// Which network.
    pub model: ModelKind,
    /// Which dataset.
    pub dataset: DatasetKind,
    /// One seed for weights, data split and order.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Images held out of the training files for validation.
    #[serde(default)]
    pub valid_size: Option<usize>,
    /// Use only the first N training images (quick runs); all when absent.
    #[serde(default)]
    pub train_subset: Option<usize>,
    /// Channel width multiplier (1.0 = the paper's widths).
    #[serde(default = "full_width")]
    pub model_width: f64,
    /// Hyperparameters.
    pub train: TrainConfig,
}

impl JobFile {
    /// Reads and validates a job file.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        let job: JobFile =
            toml::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        job.train.validate()?;
        Ok(job)
    }

    /// Loads the dataset splits this job names.
    pub fn load_data(&self, data_root: &Path) -> anyhow::Result<Splits> {
        let mut splits = self
            .dataset
            .load(data_root, self.valid_size, self.seed)
            .with_context(|| {
                format!(
                    "cannot load {} from {} (see `safs data fetch --help`)",
                    self.dataset,
                    data_root.display()
                )
            })?;
        if let Some(n) = self.train_subset {
            splits.train = splits.train.take(n);
        }
        Ok(splits)
    }
}
