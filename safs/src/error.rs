//! The crate's error type: every variant names the file, value or layer at fault.

use std::path::PathBuf;

/// Everything that can go wrong in `safs`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A tensor operation failed inside Candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// Reading or writing a file failed.
    // The OS error is in the message and not a `source`, so `anyhow` prints it once.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },

    /// A data file exists but its content is not what its format promises.
    #[error("{path}: {msg}")]
    Data { path: PathBuf, msg: String },

    /// A configuration value is out of range or unknown.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// An activation operator name is not known.
    #[error("unknown operator '{name}'; valid operators: {valid}")]
    UnknownOp { name: String, valid: String },

    /// A checkpoint does not match the model it is loaded into.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: PathBuf, msg: String },

    /// Training produced a non-finite loss or weight.
    #[error("training diverged: {0}")]
    Diverged(String),

    /// A Polars frame operation failed.
    #[error(transparent)]
    Polars(#[from] polars::error::PolarsError),

    /// A chart could not be drawn.
    #[error("plot: {0}")]
    Plot(String),

    /// A dataset could not be fetched.
    #[error("fetch failed: {0}")]
    Fetch(String),

    /// The cluster scheduler refused or could not be reached.
    #[error("slurm: {0}")]
    Slurm(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error that names its file.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err: source,
        }
    }

    /// A format error that names its file.
    pub fn data(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            msg: msg.into(),
        }
    }
}
