//! Progress of a training run, delivered to the caller as events.

use serde::{Deserialize, Serialize};

use super::Metrics;

/// One finished epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// Epoch index, from 0.
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub train_loss: f64,
    /// Training top-1 accuracy in percent (running, with the weights of each step).
    pub train_acc: f64,
    /// Validation metrics at the end of the epoch, when a validation set was given.
    pub valid: Option<Metrics>,
    /// Learning rate used during the epoch.
    pub lr: f64,
    /// Wall time of the epoch in seconds (evaluation included).
    pub seconds: f64,
}

/// What a training loop reports while it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TrainEvent {
    /// Training starts: the number of epochs and batches per epoch.
    Started { epochs: usize, batches: usize },
    /// One optimiser step finished.
    Batch {
        epoch: usize,
        batch: usize,
        batches: usize,
        loss: f64,
        lr: f64,
    },
    /// One epoch finished.
    Epoch(EpochSummary),
}
