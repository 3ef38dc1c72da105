//! Budget presets: how much data and how many epochs, steps and trials each stage gets.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A named budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(strum::VariantArray, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "lowercase")]
pub enum BudgetPreset {
    /// Seconds: tiny data slices, for tests and CI.
    Smoke,
    /// A laptop CPU: the paper's protocol with shorter fine-tunes, a shorter LAHC and fewer
    /// trials (LeNet-5/MNIST about 45 minutes a seed on one core of a 2-core machine).
    Cpu,
    /// The authors' protocol (LAHC of at least 20 moves, 20 HPO trials, 50-epoch fine-tunes
    /// as in their MNIST-default commit): for a GPU.
    Paper,
}

impl FromStr for BudgetPreset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        crate::util::parse_variant(s, str::to_ascii_lowercase).ok_or_else(|| {
            let valid = crate::util::variant_names::<Self>();
            Error::Config(format!("unknown budget '{s}'; valid: {valid}"))
        })
    }
}

/// Every size knob of a run. Presets fill it; a config may override single fields.
///
/// Every fine-tune of the pruned network (the magnitude-pruning baseline, each Stage 1
/// candidate, each Stage 2 trial and each final) trains `finetune_epochs` epochs on the same
/// images, so a candidate's score predicts the final fine-tune it stands for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Training images (all when absent).
    pub train_subset: Option<usize>,
    /// Validation images used for every score (all when absent).
    pub valid_subset: Option<usize>,
    /// Test images used for the final reports (all when absent).
    pub test_subset: Option<usize>,
    /// Epochs of dense training.
    pub dense_epochs: usize,
    /// Epochs of every fine-tune of the pruned network.
    pub finetune_epochs: usize,
    /// Stage 1's length: LAHC's minimum number of moves (the `lahc` package's
    /// `steps_minimum`), the evaluations of the other search methods.
    pub search_steps: usize,
    /// Stage 2: number of HPO trials per arm.
    pub hpo_trials: usize,
    /// Batches per epoch cap for every training (all when absent).
    pub max_batches: Option<usize>,
    /// Channel width multiplier of the model (1.0 = the paper's widths).
    #[serde(default = "full_width")]
    pub model_width: f64,
}

fn full_width() -> f64 {
    1.0
}

impl Budget {
    /// The values of a preset.
    pub fn preset(p: BudgetPreset) -> Self {
        match p {
            BudgetPreset::Smoke => Budget {
                train_subset: Some(2_000),
                valid_subset: Some(500),
                test_subset: Some(1_000),
                dense_epochs: 2,
                finetune_epochs: 1,
                search_steps: 2,
                hpo_trials: 3,
                max_batches: None,
                model_width: 1.0,
            },
            BudgetPreset::Cpu => Budget {
                train_subset: None,
                valid_subset: None,
                test_subset: None,
                dense_epochs: 50,
                finetune_epochs: 10,
                search_steps: 10,
                hpo_trials: 10,
                max_batches: None,
                model_width: 1.0,
            },
            BudgetPreset::Paper => Budget {
                train_subset: None,
                valid_subset: None,
                test_subset: None,
                dense_epochs: 50,
                finetune_epochs: 50,
                search_steps: 20,
                hpo_trials: 20,
                max_batches: None,
                model_width: 1.0,
            },
        }
    }

    /// An error naming the first value out of range.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("dense_epochs", self.dense_epochs),
            ("finetune_epochs", self.finetune_epochs),
            ("search_steps", self.search_steps),
            ("hpo_trials", self.hpo_trials),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(Error::Config(format!("budget: {name} must be at least 1")));
            }
        }
        let sizes = [
            ("train_subset", self.train_subset),
            ("valid_subset", self.valid_subset),
            ("test_subset", self.test_subset),
            ("max_batches", self.max_batches),
        ];
        for (name, v) in sizes {
            if v == Some(0) {
                return Err(Error::Config(format!(
                    "budget: {name} must be positive when given"
                )));
            }
        }
        if !(self.model_width > 0.0 && self.model_width <= 4.0) {
            return Err(Error::Config(format!(
                "budget: model_width {} must be in (0, 4]",
                self.model_width
            )));
        }
        Ok(())
    }
}

/// Optional per-field overrides of a preset (a `[budgets.<preset>]` table).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetOverrides {
    /// See [`Budget::train_subset`].
    pub train_subset: Option<usize>,
    /// See [`Budget::valid_subset`].
    pub valid_subset: Option<usize>,
    /// See [`Budget::test_subset`].
    pub test_subset: Option<usize>,
    /// See [`Budget::dense_epochs`].
    pub dense_epochs: Option<usize>,
    /// See [`Budget::finetune_epochs`].
    pub finetune_epochs: Option<usize>,
    /// See [`Budget::search_steps`].
    pub search_steps: Option<usize>,
    /// See [`Budget::hpo_trials`].
    pub hpo_trials: Option<usize>,
    /// See [`Budget::max_batches`].
    pub max_batches: Option<usize>,
    /// See [`Budget::model_width`].
    pub model_width: Option<f64>,
}

impl BudgetOverrides {
    /// The preset with these overrides applied.
    pub fn apply(&self, mut b: Budget) -> Budget {
        macro_rules! opt {
            ($($f:ident),*) => { $( if self.$f.is_some() { b.$f = self.$f; } )* };
        }
        macro_rules! val {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { b.$f = v; } )* };
        }
        opt!(train_subset, valid_subset, test_subset, max_batches);
        val!(
            dense_epochs,
            finetune_epochs,
            search_steps,
            hpo_trials,
            model_width
        );
        b
    }
}

/// Per-preset overrides: the `[budgets.smoke]`, `[budgets.cpu]`, `[budgets.paper]` tables.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Changes to the smoke preset.
    #[serde(default)]
    pub smoke: BudgetOverrides,
    /// Changes to the cpu preset.
    #[serde(default)]
    pub cpu: BudgetOverrides,
    /// Changes to the paper preset.
    #[serde(default)]
    pub paper: BudgetOverrides,
}

impl Budgets {
    /// The preset's values with this file's changes to that preset.
    pub fn resolve(&self, preset: BudgetPreset) -> Budget {
        let o = match preset {
            BudgetPreset::Smoke => &self.smoke,
            BudgetPreset::Cpu => &self.cpu,
            BudgetPreset::Paper => &self.paper,
        };
        o.apply(Budget::preset(preset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_overrides_apply() {
        for p in [BudgetPreset::Smoke, BudgetPreset::Cpu, BudgetPreset::Paper] {
            Budget::preset(p).validate().unwrap();
            assert_eq!(p.to_string().parse::<BudgetPreset>().unwrap(), p);
        }
        let paper = Budget::preset(BudgetPreset::Paper);
        assert_eq!((paper.search_steps, paper.hpo_trials), (20, 20));
        assert_eq!((paper.dense_epochs, paper.finetune_epochs), (50, 50));
        // The retired per-search sizes are refused with the field named.
        let e = toml::from_str::<BudgetOverrides>("search_epochs = 2").unwrap_err();
        assert!(e.to_string().contains("search_epochs"), "{e}");
        let o: Budgets =
            toml::from_str("[cpu]\ndense_epochs = 3\nmax_batches = 5\nmodel_width = 0.25").unwrap();
        let b = o.resolve(BudgetPreset::Cpu);
        assert_eq!(
            (b.dense_epochs, b.max_batches, b.model_width),
            (3, Some(5), 0.25)
        );
        assert_eq!(
            o.resolve(BudgetPreset::Paper),
            Budget::preset(BudgetPreset::Paper)
        );
        assert!(toml::from_str::<BudgetOverrides>("dense_epoch = 3").is_err());
        let mut wide = Budget::preset(BudgetPreset::Cpu);
        wide.model_width = 0.0;
        assert!(wide
            .validate()
            .unwrap_err()
            .to_string()
            .contains("model_width"));
        let mut bad = Budget::preset(BudgetPreset::Smoke);
        bad.hpo_trials = 0;
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("hpo_trials"));
        assert!("huge".parse::<BudgetPreset>().is_err());
    }
}
