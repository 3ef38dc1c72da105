//! SAFS: Sparse Activation Function Search (Loni, Mohan, Asadi, Lindauer, AutoML-Conf 2023)
//! on Candle.
//!
//! The modules follow the data flow of an experiment: [`data`] -> [`model`] (with
//! [`activation`] slots) -> [`train`] dense -> [`prune`] -> fine-tune.

pub mod error;

pub use error::{Error, Result};
