//! SAFS: Sparse Activation Function Search (Loni, Mohan, Asadi, Lindauer, AutoML-Conf 2023)
//! on Candle.
//!
//! The modules follow the data flow of an experiment: [`data`] -> [`model`] (with
//! [`activation`] slots) -> [`train`] dense -> [`prune`] -> fine-tune, with [`search`]
//! (Stage 1) and [`hpo`] (Stage 2) scoring candidates at the [`fidelity`] they ask for;
//! [`sweep`] expands one file into many such experiments.

pub mod activation;
pub mod data;
pub mod device;
pub mod error;
pub mod experiment;
pub mod fidelity;
pub mod hpo;
pub mod infer;
pub mod kernels;
pub mod model;
pub mod plot;
pub mod prune;
pub mod report;
pub mod search;
pub mod sweep;
pub mod train;
pub mod util;

pub use error::{Error, Result};
