//! One SAFS experiment end to end: config, budgets, the run folder, resume.

pub mod record;

pub use record::{EvalRecord, EvalStatus, ResultRow, Stage};
