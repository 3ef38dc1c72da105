//! Training: optimisers, learning-rate schedules, the fine-tuning loop, evaluation and
//! checkpoints.

pub mod checkpoint;
pub mod config;
pub mod eval;
pub mod events;
pub mod fit;
pub mod optim;
pub mod schedule;

pub use checkpoint::{load_checkpoint, read_meta, save_checkpoint, CheckpointMeta};
pub use config::TrainConfig;
pub use eval::{correct_counts, evaluate, evaluate_sparse, Metrics};
pub use events::{EpochSummary, TrainEvent};
pub use fit::{fit, FitReport, Observer};
pub use optim::{Optimizer, OptimizerConfig};
pub use schedule::{PlateauMode, ScheduleConfig, ScheduleSpec, Scheduler, ThresholdMode};
