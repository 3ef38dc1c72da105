//! What an experiment writes down: one record per evaluation, one row per finished run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::activation::ActivationPlan;

/// The step of the SAFS pipeline an evaluation belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Dense training.
    Dense,
    /// Magnitude pruning, fine-tuned with ReLU and the dense hyperparameters.
    Baseline,
    /// A Stage 1 candidate (operator plan, short fine-tune).
    Stage1Search,
    /// The best Stage 1 plan, fully fine-tuned.
    Stage1Final,
    /// A Stage 2 trial on the ReLU plan ("Stage 2 only").
    Stage2Search,
    /// The best "Stage 2 only" trial, fully fine-tuned.
    Stage2Final,
    /// A Stage 2 trial on the Stage 1 plan (SAFS).
    SafsSearch,
    /// The best SAFS trial, fully fine-tuned.
    SafsFinal,
}

impl Stage {
    /// The snake_case name used in logs and tables.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Dense => "dense",
            Stage::Baseline => "baseline",
            Stage::Stage1Search => "stage1_search",
            Stage::Stage1Final => "stage1_final",
            Stage::Stage2Search => "stage2_search",
            Stage::Stage2Final => "stage2_final",
            Stage::SafsSearch => "safs_search",
            Stage::SafsFinal => "safs_final",
        }
    }
}

/// Whether an evaluation finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum EvalStatus {
    /// Training and evaluation finished.
    Ok,
    /// Training diverged or failed; the score counts as 0.
    Failed(String),
}

/// One evaluation of the experiment log (one line of `evals.jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Pipeline step.
    pub stage: Stage,
    /// Index within the stage (search step or trial), from 0.
    pub step: usize,
    /// Operator of every activation slot.
    pub plan: ActivationPlan,
    /// Hyperparameters of the fine-tune, flattened to name -> value.
    pub hparams: BTreeMap<String, serde_json::Value>,
    /// Learnt (or fixed) alpha of every slot after training.
    pub alphas: Vec<f64>,
    /// Learnt (or fixed) beta of every slot after training.
    pub betas: Vec<f64>,
    /// Validation top-1 accuracy in percent (0 when failed).
    pub valid_acc: f64,
    /// Test top-1 accuracy in percent; only final evaluations have one.
    pub test_acc: Option<f64>,
    /// Whether the evaluation finished.
    #[serde(flatten)]
    pub status: EvalStatus,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// The Table 1 row of one finished run: top-1 test accuracy (percent) of each arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// Model name, e.g. `lenet5`.
    pub model: String,
    /// Dataset name, e.g. `mnist`.
    pub dataset: String,
    /// Fraction of prunable weights zeroed, e.g. 0.99.
    pub prune_rate: f64,
    /// Seed of the run.
    pub seed: u64,
    /// Budget preset name.
    pub budget: String,
    /// Dense network.
    pub dense: Option<f64>,
    /// Magnitude pruning, fine-tuned with ReLU and the dense hyperparameters.
    pub magnitude_pruning: Option<f64>,
    /// Stage 1 only (searched operators, dense hyperparameters).
    pub stage1: Option<f64>,
    /// Stage 2 only (ReLU with learnt scales and tuned hyperparameters).
    pub stage2: Option<f64>,
    /// Both stages (SAFS).
    pub safs: Option<f64>,
}

impl ResultRow {
    /// SAFS minus magnitude pruning, in accuracy points.
    pub fn gain(&self) -> Option<f64> {
        Some(self.safs? - self.magnitude_pruning?)
    }
}
