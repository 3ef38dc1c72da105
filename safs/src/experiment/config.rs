//! The experiment file: everything one SAFS run needs, read from TOML.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Budget, BudgetPreset, Budgets, DataConfig, Protocol};
use crate::data::DatasetKind;
use crate::fidelity::Fidelity;
use crate::hpo::HpoMethod;
use crate::model::ModelKind;
use crate::prune::PruneMethod;
use crate::search::{SearchMethod, SearchMode};
use crate::train::TrainConfig;
use crate::{Error, Result};

/// The arms of Table 1 a run can produce (dense training always runs or is loaded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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

    /// The snake_case name used in configs, logs and tables.
    pub fn name(self) -> &'static str {
        match self {
            Arm::MagnitudePruning => "magnitude_pruning",
            Arm::Stage1 => "stage1",
            Arm::Stage2 => "stage2",
            Arm::Safs => "safs",
        }
    }

    /// The column title of Table 1.
    pub fn title(self) -> &'static str {
        match self {
            Arm::MagnitudePruning => "magnitude pruning",
            Arm::Stage1 => "Stage 1",
            Arm::Stage2 => "Stage 2",
            Arm::Safs => "SAFS",
        }
    }
}

fn default_arms() -> Vec<Arm> {
    Arm::ALL.to_vec()
}

fn default_budget() -> BudgetPreset {
    BudgetPreset::Cpu
}

fn default_search() -> SearchMethod {
    SearchMethod::Lahc {
        min_steps: 0,
        history: 3,
        idle_fraction: 0.02,
        max_evaluations: None,
        reference_move: false,
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
    /// Prunable weights left dense, by name (`*` matches any run of characters), e.g. the
    /// SAFS authors' EfficientNet-B0 keeps `layers.*.fc2.weight` and the shortcut convs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep_dense: Vec<String>,
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
    /// Seeds `safs run` runs one after the other (one run folder each) when given; the
    /// run folders' configs carry their own `seed` and no `seeds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeds: Option<Vec<u64>>,
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
    /// Data handling.
    #[serde(default)]
    pub data: DataConfig,
    /// Pruning.
    pub prune: PruneConfig,
    /// The dense network's recipe, also used by the magnitude-pruning baseline and every
    /// Stage 1 candidate. It has no `epochs`: the budget sets every epoch count.
    pub dense: TrainConfig,
    /// Scoring, end weights, Stage 1 start, Stage 2 space: the protocol's choices.
    #[serde(default)]
    pub protocol: Protocol,
    /// Stage 1 search method (its step count comes from the budget).
    #[serde(default = "default_search")]
    pub search: SearchMethod,
    /// Per layer or one operator for the whole network.
    #[serde(default = "default_mode")]
    pub search_mode: SearchMode,
    /// Stage 2 optimiser (its trial count comes from the budget).
    #[serde(default = "default_hpo")]
    pub hpo: HpoMethod,
    /// How Stage 1 candidates and Stage 2 trials are evaluated: every one for the full
    /// fine-tune (the paper), or in Hyperband / successive-halving brackets over epochs.
    #[serde(
        default,
        skip_serializing_if = "Fidelity::is_full",
        deserialize_with = "crate::fidelity::name_or_table"
    )]
    pub fidelity: Fidelity,
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
        if self.dense.epochs != 0 {
            return Err(Error::Config(format!(
                "[dense] epochs = {}: an experiment takes every epoch count from its budget \
                 (dense_epochs, finetune_epochs); remove it, or set it per preset under \
                 [budgets.<preset>]",
                self.dense.epochs
            )));
        }
        if let Some(n) = self.search_steps_in_file() {
            return Err(Error::Config(format!(
                "[search] {n}: the budget sets Stage 1's length (search_steps); remove it, or \
                 set it per preset under [budgets.<preset>]"
            )));
        }
        if self.seeds.as_ref().is_some_and(|s| s.is_empty()) {
            return Err(Error::Config("seeds must list at least one seed".into()));
        }
        if self.protocol.final_repeats == 0 {
            return Err(Error::Config(
                "protocol.final_repeats must be at least 1".into(),
            ));
        }
        self.search.validate_shape()?;
        self.hpo.validate()?;
        let budget = self.resolved_budget();
        budget.validate()?;
        let recipe = self.recipe(budget.finetune_epochs);
        recipe.validate()?;
        recipe
            .schedule
            .build(recipe.optimizer.lr(), recipe.epochs)?;
        if self.protocol.hpo_default_first && self.runs_stage2() {
            self.protocol.hpo_space.point_of(&recipe)?;
        }
        self.fidelity.validate(budget.finetune_epochs)?;
        if !self.fidelity.is_full() && !matches!(self.search, SearchMethod::Lahc { .. }) {
            return Err(Error::Config(format!(
                "[fidelity] {} works with the lahc search; [search] {} evaluates at full \
                 fidelity (set fidelity = \"full\")",
                self.fidelity.name(),
                self.search.name()
            )));
        }
        Ok(())
    }

    /// The search's own step count if the file set one (it must come from the budget).
    fn search_steps_in_file(&self) -> Option<String> {
        match self.search {
            SearchMethod::Lahc { min_steps, .. } if min_steps != 0 => {
                Some(format!("min_steps = {min_steps}"))
            }
            SearchMethod::Random { steps } | SearchMethod::Annealing { steps, .. }
                if steps != 0 =>
            {
                Some(format!("steps = {steps}"))
            }
            SearchMethod::Genetic { generations, .. } if generations != 0 => {
                Some(format!("generations = {generations}"))
            }
            _ => None,
        }
    }

    /// Whether Stage 2 runs (the Stage 2 or SAFS arm is asked for).
    pub fn runs_stage2(&self) -> bool {
        self.arms.contains(&Arm::Stage2) || self.arms.contains(&Arm::Safs)
    }

    /// The dense recipe with `epochs` epochs and the budget's batch cap.
    pub fn recipe(&self, epochs: usize) -> TrainConfig {
        let mut c = self.dense.clone();
        c.epochs = epochs;
        if let Some(m) = self.resolved_budget().max_batches {
            c.max_batches = Some(m);
        }
        c
    }

    /// The seeds to run: the `seeds` list, else the one `seed`.
    pub fn seed_list(&self) -> Vec<u64> {
        self.seeds.clone().unwrap_or_else(|| vec![self.seed])
    }

    /// This config for one seed (no `seeds` list): what a run folder records.
    pub fn for_seed(&self, seed: u64) -> Self {
        Self {
            seed,
            seeds: None,
            ..self.clone()
        }
    }

    /// The run folder name: `<name>-<budget>-seed<seed>`.
    pub fn run_name(&self) -> String {
        match self.fidelity.tag() {
            Some(tag) => format!("{}-{}-{tag}-seed{}", self.name, self.budget, self.seed),
            None => format!("{}-{}-seed{}", self.name, self.budget, self.seed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "t"
model = "lenet5"
dataset = "mnist"
[prune]
rate = 0.99
[dense]
batch_size = 256
[dense.optimizer]
name = "adam"
lr = 1e-3
beta2 = 0.99
weight_decay = 5e-4
"#;

    /// The base file with `extra`: top-level keys go first, tables last.
    fn parse(extra: &str) -> Result<ExperimentConfig> {
        let text = if extra.starts_with('[') {
            format!("{BASE}{extra}")
        } else {
            format!("{extra}{BASE}")
        };
        let cfg: ExperimentConfig =
            toml::from_str(&text).map_err(|e| Error::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    #[test]
    fn run_sizes_come_only_from_the_budget() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.recipe(7).epochs, 7);
        assert_eq!(cfg.seed_list(), [0]);
        // Epochs or step counts in the file would be silently overridden: refused.
        let e = parse("").and_then(|mut c| {
            c.dense.epochs = 8;
            c.validate().map(|_| c)
        });
        assert!(e.unwrap_err().to_string().contains("dense_epochs"));
        let e = parse("[search]\nname = \"lahc\"\nmin_steps = 20\n").unwrap_err();
        assert!(
            e.to_string().contains("min_steps = 20") && e.to_string().contains("search_steps"),
            "{e}"
        );
        let e = parse("[search]\nname = \"random\"\nsteps = 5\n").unwrap_err();
        assert!(e.to_string().contains("steps = 5"), "{e}");
        assert!(parse("[search]\nname = \"random\"\n").is_ok());
    }

    #[test]
    fn seeds_and_protocol_values() {
        let cfg = parse("seeds = [3, 1, 4]\n").unwrap();
        assert_eq!(cfg.seed_list(), [3, 1, 4]);
        let one = cfg.for_seed(4);
        assert_eq!((one.seed, one.seeds.as_ref()), (4, None));
        assert!(parse("seeds = []\n")
            .unwrap_err()
            .to_string()
            .contains("seeds"));
        assert!(parse("[protocol]\nfinal_repeats = 0\n")
            .unwrap_err()
            .to_string()
            .contains("final_repeats"));
        // The first Stage 2 trial is the recipe: PyTorch's default beta2 is not a point of
        // the authors' space, and the message says how to proceed.
        let e = parse("").and_then(|mut c| {
            c.dense.optimizer = crate::train::OptimizerConfig::adam(1e-3);
            c.validate().map(|_| c)
        });
        assert!(e.unwrap_err().to_string().contains("hpo_default_first"));
        assert!(parse("[protocol]\nscore = \"mean_epoch\"\n").is_err());
    }
}
