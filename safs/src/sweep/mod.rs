//! Sweeps: one file naming experiments, the axes to expand and the resources per task;
//! expanded into one run folder per task under a sweep folder.
//!
//! ```toml
//! name = "lenet5_rates"
//! experiments = ["../experiments/lenet5_mnist.toml"]   # relative to this file
//!
//! [[axes]]
//! field = "seed"
//! values = [0, 1, 2]
//!
//! [[axes]]
//! field = "prune.rate"                                 # any experiment field, by its path
//! values = [0.9, 0.99]
//!
//! [resources]                                          # per task
//! cpus = 2
//! mem = "4G"
//! time = "02:00:00"
//!
//! [slurm]                                              # optional, for `safs sweep submit`
//! partition = "gpu"
//! max_parallel = 8
//! ```

mod expand;
mod local;
pub mod slurm;
mod spec;

pub use expand::{expand, SweepTask};
pub use local::{
    manifest_run_dirs, run_local, LocalOptions, SweepEvent, SweepFolder, TaskState, FAILED_FILE,
    MANIFEST,
};
pub use spec::{Axis, Resources, SlurmSettings, SweepSpec};
