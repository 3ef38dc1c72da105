//! Training: optimisers, learning-rate schedules, the fine-tuning loop, evaluation and
//! checkpoints.

pub mod checkpoint;
pub mod config;
pub mod eval;
pub mod events;
pub mod fit;
mod fromage;
pub mod optim;
pub mod resume;
pub mod schedule;
mod tadam;

pub use checkpoint::{load_checkpoint, read_meta, save_checkpoint, CheckpointMeta};
pub use config::{DecayScope, TrainConfig};
pub use eval::{correct_counts, evaluate, evaluate_sparse, Metrics};
pub use events::{EpochSummary, TrainEvent};
pub use fit::{fit, FitData, FitReport, Observer, Trainer};
pub use optim::{Optimizer, OptimizerConfig, TadamVariant};
pub use resume::{load_trainer, save_trainer};
pub use schedule::{
    PlateauMetric, PlateauMode, ScheduleConfig, ScheduleSpec, Scheduler, ThresholdMode,
};
