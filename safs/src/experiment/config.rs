//! The experiment file: everything one SAFS run needs, read from TOML.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Budget, BudgetPreset, Budgets};
use crate::data::DatasetKind;
use crate::hpo::HpoMethod;
use crate::model::ModelKind;
use crate::prune::PruneMethod;
use crate::search::{SearchMethod, SearchMode};
use crate::train::TrainConfig;
use crate::{Error, Result};

/// The arms of Table 1 a run can produce (dense training always runs or is loaded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// Magnitude pruning fine-tuned with ReLU and the dense hyperparameters.
    MagnitudePruning,
    /// Stage 1 only: searched operators, dense hyperparameters.
    Stage1,
    /// Stage 2 only: ReLU with learnt alpha/beta and tuned hyperparameters.
    Stage2,
    /// Both stages.
    Safs,
}

impl Arm {
    /// Every arm, in Table 1 order.
    pub const ALL: [Arm; 4] = [Arm::MagnitudePruning, Arm::Stage1, Arm::Stage2, Arm::Safs];
}

fn default_arms() -> Vec<Arm> {
    Arm::ALL.to_vec()
}

fn default_budget() -> BudgetPreset {
    BudgetPreset::Cpu
}

fn default_search() -> SearchMethod {
    SearchMethod::Lahc {
        steps: 20,
        history: 3,
        idle_steps: None,
    }
}

fn default_mode() -> SearchMode {
    SearchMode::PerLayer
}

fn default_hpo() -> HpoMethod {
    HpoMethod::Tpe {
        startup_trials: 5,
        candidates: 24,
        gamma: 0.25,
    }
}

/// Pruning settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneConfig {
    /// Fraction of prunable weights set to zero (0.99 in Table 1).
    pub rate: f64,
    /// How the weights to prune are chosen.
    #[serde(default = "default_prune_method")]
    pub method: PruneMethod,
}

fn default_prune_method() -> PruneMethod {
    PruneMethod::Layerwise
}

/// One SAFS experiment (serde; the `experiments/*.toml` files).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Short name, used for the run folder.
    pub name: String,
    /// Which network.
    pub model: ModelKind,
    /// Which dataset.
    pub dataset: DatasetKind,
    /// One seed for weights, data split and order, and both searches.
    #[serde(default)]
    pub seed: u64,
    /// Images of the training files held out for validation (the dataset's default when
    /// absent: 10k for MNIST as in the paper, 5k for CIFAR-10).
    #[serde(default)]
    pub valid_size: Option<usize>,
    /// Budget preset.
    #[serde(default = "default_budget")]
    pub budget: BudgetPreset,
    /// Per-preset changes, e.g. `[budgets.cpu] model_width = 0.25`.
    #[serde(default)]
    pub budgets: Budgets,
    /// Pruning.
    pub prune: PruneConfig,
    /// The dense network's hyperparameters (also used by the baseline and Stage 1);
    /// its `epochs` is replaced by the budget's.
    pub dense: TrainConfig,
    /// Stage 1 search method (its step count comes from the budget).
    #[serde(default = "default_search")]
    pub search: SearchMethod,
    /// Per layer or one operator for the whole network.
    #[serde(default = "default_mode")]
    pub search_mode: SearchMode,
    /// Stage 2 optimiser (its trial count comes from the budget).
    #[serde(default = "default_hpo")]
    pub hpo: HpoMethod,
    /// Which arms to run.
    #[serde(default = "default_arms")]
    pub arms: Vec<Arm>,
    /// Start from this dense checkpoint instead of training one.
    #[serde(default)]
    pub dense_checkpoint: Option<PathBuf>,
}

impl ExperimentConfig {
    /// Reads and validates an experiment file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: ExperimentConfig =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The budget: the preset with the overrides applied.
    pub fn resolved_budget(&self) -> Budget {
        self.budgets.resolve(self.budget)
    }

    /// An error naming the first value out of range.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() || self.name.contains(['/', '\\']) {
            return Err(Error::Config(format!(
                "name '{}' must be non-empty and contain no path separator",
                self.name
            )));
        }
        if !(0.0..1.0).contains(&self.prune.rate) {
            return Err(Error::Config(format!(
                "prune.rate {} must be in [0, 1)",
                self.prune.rate
            )));
        }
        if self.arms.is_empty() {
            return Err(Error::Config("arms must name at least one arm".into()));
        }
        self.dense.validate()?;
        self.resolved_budget().validate()?;
        Ok(())
    }

    /// The run folder name: `<name>-<budget>-seed<seed>`.
    pub fn run_name(&self) -> String {
        format!("{}-{}-seed{}", self.name, self.budget, self.seed)
    }
}
