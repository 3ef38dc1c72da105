//! Progress of an experiment, delivered to the caller as events.

use super::{EvalRecord, ResultRow, Stage};
use crate::train::TrainEvent;

/// What a running experiment reports.
#[derive(Clone, Debug)]
pub enum ExperimentEvent {
    /// A stage starts; `total` evaluations are planned (a search may stop early).
    StageStarted { stage: Stage, total: usize },
    /// Training progress inside one evaluation.
    Train {
        stage: Stage,
        step: usize,
        event: TrainEvent,
    },
    /// One evaluation finished; `cached` when it was read back from the run folder.
    Evaluated { record: EvalRecord, cached: bool },
    /// The run finished with this Table 1 row.
    Finished { row: ResultRow },
}
