//! The hyperparameters of one training or fine-tuning run.

use serde::{Deserialize, Serialize};

use super::{OptimizerConfig, ScheduleSpec};
use crate::{Error, Result};

fn default_batch_size() -> usize {
    128
}

fn default_eval_batch_size() -> usize {
    1000
}

/// Epochs, batch size, optimiser and schedule of one run (serde, for TOML configs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Number of passes over the training set.
    pub epochs: usize,
    /// Training batch size.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Evaluation batch size.
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
    /// Stop each epoch after this many batches (small budgets); all when absent.
    #[serde(default)]
    pub max_batches: Option<usize>,
    /// The optimiser and its hyperparameters.
    pub optimizer: OptimizerConfig,
    /// The learning-rate schedule, stepped once per epoch.
    #[serde(default)]
    pub schedule: ScheduleSpec,
}

impl TrainConfig {
    /// An error naming the first value out of range.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::Config("epochs must be at least 1".into()));
        }
        if self.batch_size == 0 || self.eval_batch_size == 0 {
            return Err(Error::Config(format!(
                "batch sizes must be positive (batch_size = {}, eval_batch_size = {})",
                self.batch_size, self.eval_batch_size
            )));
        }
        if self.max_batches == Some(0) {
            return Err(Error::Config(
                "max_batches must be positive when given".into(),
            ));
        }
        self.optimizer.validate()?;
        Ok(())
    }
}
