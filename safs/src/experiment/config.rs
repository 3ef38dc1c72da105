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

/// The line (from 1) of `text` that sets the dotted key a validation message starts with
/// (`prune.rate 1.5 must be ...` -> the `rate = ...` line of `[prune]`), if it is there.
fn key_line(text: &str, msg: &str) -> Option<usize> {
    let first = msg.split([' ', ':', '=']).next()?;
    let (table, key) = first.rsplit_once('.').unwrap_or(("", first));
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('[') {
            current = header
                .trim_start_matches('[')
                .split(']')
                .next()?
                .trim()
                .to_string();
            continue;
        }
        let set = line.split('=').next().map(str::trim);
        if current == table && set == Some(key) && line.contains('=') {
            return Some(i + 1);
        }
    }
    None
}

impl ExperimentConfig {
    /// Reads and validates an experiment file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let cfg: ExperimentConfig =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        cfg.validate().map_err(|e| match e {
            Error::Config(msg) => {
                let line = key_line(&text, &msg).map_or(String::new(), |n| format!(" line {n}:"));
                Error::Config(format!("{}:{line} {msg}", path.display()))
            }
            e => e,
        })?;
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

    /// The error `from_file` gives for the LeNet-5 experiment with `from` changed to `to`.
    fn file_error(from: &str, to: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/lenet5_mnist.toml");
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.contains(from), "{from}");
        let dir = std::env::temp_dir().join(format!("safs-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}.toml", from.len() * 31 + to.len()));
        std::fs::write(&file, text.replacen(from, to, 1)).unwrap();
        let err = ExperimentConfig::from_file(&file).unwrap_err().to_string();
        assert!(
            err.contains(&*file.to_string_lossy()),
            "names the file: {err}"
        );
        err
    }

    #[test]
    fn each_kind_of_mistake_names_the_file_the_line_the_value_and_what_is_valid() {
        // (mistake, changed from, to, what the message must hold)
        let cases: [(&str, &str, &str, &[&str]); 7] = [
            (
                "unknown key",
                "valid_size = 10000",
                "valid_sise = 10000",
                &["line 10", "unknown field `valid_sise`", "`valid_size`"],
            ),
            (
                "wrong type",
                "batch_size = 256",
                "batch_size = \"big\"",
                &["line 26", "\"big\"", "expected usize"],
            ),
            (
                "unknown name",
                "method = \"layerwise\"",
                "method = \"layerwize\"",
                &["line 20", "`layerwize`", "`layerwise` or `global`"],
            ),
            (
                "missing key",
                "[prune]\nrate = 0.99",
                "[prune]",
                &["line 18", "missing field `rate`"],
            ),
            (
                "syntax",
                "rate = 0.99",
                "rate = = 0.99",
                &["line 19", "rate = = 0.99"],
            ),
            (
                "out of range",
                "rate = 0.99",
                "rate = 1.5",
                &["line 19:", "prune.rate 1.5", "must be in [0, 1)"],
            ),
            (
                "bad search setting",
                "history = 3",
                "history = 0",
                &["history = 0", "need >= 1"],
            ),
        ];
        for (kind, from, to, want) in cases {
            let err = file_error(from, to);
            for w in want {
                assert!(err.contains(w), "{kind}: no {w:?} in: {err}");
            }
        }
    }
}
