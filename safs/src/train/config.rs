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

/// Which parameters weight decay applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecayScope {
    /// Conv and linear weights only (the usual modern choice).
    #[default]
    Weights,
    /// Every trained tensor: biases, normalisation, activation scales and operator
    /// parameters too (PyTorch's default when all `model.parameters()` form one group, as in
    /// the SAFS authors' code).
    All,
}

/// Epochs, batch size, optimiser and schedule of one run (serde, for TOML configs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Number of passes over the training set (experiment files leave it out: their budget
    /// sets it).
    #[serde(default)]
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
    /// Which parameters the optimiser's weight decay applies to.
    #[serde(default)]
    pub decay: DecayScope,
    /// After the last epoch, put back the weights of the epoch with the best validation
    /// accuracy (the earliest on ties); otherwise the last epoch's weights stay.
    #[serde(default)]
    pub restore_best: bool,
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
