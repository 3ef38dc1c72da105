//! One SAFS experiment end to end: config (TOML), budget presets, the run folder with its
//! append-only evaluation log, and the pipeline that resumes where a killed run stopped.

mod budget;
mod config;
mod events;
mod pipeline;
pub mod protocol;
pub mod record;
mod run_dir;
mod run_lock;

pub use budget::{Budget, BudgetOverrides, BudgetPreset, Budgets};
pub use config::{Arm, ExperimentConfig, PruneConfig};
pub use events::ExperimentEvent;
pub use pipeline::{Experiment, ExperimentObserver, Workers};
pub use protocol::{Augmentation, DataConfig, EpochChoice, Normalization, Protocol, StartPlan};
pub use record::{EpochPoint, EvalRecord, EvalStatus, ResultRow, Stage};
pub use run_dir::RunDir;
pub use run_lock::{RunLock, LOCK_FILE};
