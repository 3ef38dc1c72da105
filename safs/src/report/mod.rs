//! Polars result tables: the raw evaluation log, the Table 1 layout, the
//! across-seed summary (means with Student-t intervals, paired differences), and their
//! files (CSV, Parquet, JSON lines).
//!
//! The frames are built in plain Rust (the crate's Polars has no lazy API) and
//! are meant to be displayed ([`format_table`]), written ([`write_csv`],
//! [`write_parquet`]) or handed to the notebook kernel.

mod combine;
mod compare;
mod evals;
mod files;
mod graph;
mod hparams;
mod seeds;
mod stats;
mod table;

pub use combine::combine;
pub use compare::{
    compare_runs, comparison_markdown, search_cost, ComparedRun, ComparedValue, SearchCost,
};
pub use evals::evals_frame;
pub use files::{append_eval, read_evals_jsonl, read_parquet, write_csv, write_parquet};
pub use graph::graph_frame;
pub use hparams::flat_hparams;
pub(crate) use hparams::{hparam_columns, hparam_keys};
pub use seeds::{summarize_seeds, PairedDiff, SeedSummary, PAIRS};
pub use stats::{spearman, t_cdf, t_quantile, Summary};
pub use table::{format_table, long_frame, paper_table1, table1_frame, ARMS};

/// Re-exported so callers can name the frame type without depending on Polars.
pub use polars::prelude::DataFrame;
