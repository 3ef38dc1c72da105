//! The choices that make a run follow one protocol or another: how a fine-tune is scored,
//! which weights it ends with, how Stage 1 starts, how Stage 2 is searched, and the data
//! handling. Defaults are this project's; each field says what the SAFS authors' code does
//! (docs/protocol.md has the whole comparison).

use serde::{Deserialize, Serialize};

use crate::activation::OpParams;
use crate::hpo::HpoSpace;

/// Which epoch of a training counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpochChoice {
    /// The epoch with the highest validation accuracy (the earliest on ties).
    #[default]
    BestEpoch,
    /// The last epoch.
    LastEpoch,
}

/// Where Stage 1's search starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPlan {
    /// A plan drawn at random from the candidates (the authors' code).
    #[default]
    Random,
    /// The architecture's own activation in every slot (ReLU; swish for EfficientNet).
    Default,
}

/// How the images are scaled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalization {
    /// The dataset's usual per-channel mean and standard deviation.
    #[default]
    Dataset,
    /// Pixels in `[0, 1]` only (the authors' MNIST loader).
    None,
}

/// Training augmentation of the training split.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Augmentation {
    /// The dataset's usual one (none for MNIST, crop + flip for CIFAR-10 and ImageNet-16).
    #[default]
    Dataset,
    /// A horizontal flip with probability 1/2 (close to the SAFS authors' ImageNet-16 loader,
    /// which adds a flipped copy of every training image instead).
    Flip,
    /// None.
    None,
}

/// Data handling (the `[data]` table).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Image scaling.
    #[serde(default)]
    pub normalize: Normalization,
    /// Training augmentation.
    #[serde(default)]
    pub augment: Augmentation,
}

fn default_repeats() -> usize {
    1
}

fn yes() -> bool {
    true
}

/// The protocol (the `[protocol]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    /// The score of a Stage 1 candidate or Stage 2 trial: its best epoch's validation
    /// accuracy (the authors' `acc_best`) or its last epoch's.
    #[serde(default)]
    pub score: EpochChoice,
    /// The weights every training ends with, which are pruned (dense) or tested (finals):
    /// the best validation epoch's, or the last epoch's (the authors' code: its restore of
    /// the best state keeps references to the live tensors, so the last epoch is tested).
    #[serde(default)]
    pub end_weights: EpochChoice,
    /// Times each arm's final fine-tune runs (different data orders); the repeat with the
    /// best validation score is tested. The authors run 3 and keep the maximum.
    #[serde(default = "default_repeats")]
    pub final_repeats: usize,
    /// Stage 1's start plan (the authors: random).
    #[serde(default)]
    pub stage1_start: StartPlan,
    /// The Stage 2 space.
    #[serde(default)]
    pub hpo_space: HpoSpace,
    /// Stage 2's first trial is the dense recipe (SMAC evaluates its space's default
    /// first; the authors' default is SGD at lr 1e-3, momentum 0.9, wd 1e-5 with a
    /// scheduler that is not among the space's choices).
    #[serde(default = "yes")]
    pub hpo_default_first: bool,
    /// The parametric operators' own parameters (the authors: learnt from 1.0).
    #[serde(default)]
    pub op_params: OpParams,
    /// Stage 2 also learns alpha and beta around TanhSoft-1, ACON and SRS (the authors do
    /// not: those three learn only their own parameters).
    #[serde(default = "yes")]
    pub scales_on_parametric_ops: bool,
}

impl Default for Protocol {
    fn default() -> Self {
        Protocol {
            score: EpochChoice::BestEpoch,
            end_weights: EpochChoice::BestEpoch,
            final_repeats: 1,
            stage1_start: StartPlan::Random,
            hpo_space: HpoSpace::Reference,
            hpo_default_first: true,
            op_params: OpParams::Fixed,
            scales_on_parametric_ops: true,
        }
    }
}
