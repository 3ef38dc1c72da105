//! The shipped sweep file expands to one valid experiment per (seed, rate), each with its
//! own run folder.

use std::collections::BTreeSet;

use safs::sweep::{expand, SweepSpec};
use safs_e2e::experiments_dir;

#[test]
fn lenet5_rates_sweep_expands_to_fifteen_distinct_runs() {
    let spec = SweepSpec::from_file(&experiments_dir().join("lenet5_mnist_rates.sweep.toml"))
        .expect("sweep file");
    let tasks = expand(&spec).expect("expansion");
    assert_eq!(tasks.len(), 5 * 3);
    let folders: BTreeSet<&str> = tasks.iter().map(|t| t.folder.as_str()).collect();
    assert_eq!(folders.len(), tasks.len(), "one folder per run");
    for (i, t) in tasks.iter().enumerate() {
        assert_eq!(t.config.seed, (i / 3) as u64);
        assert_eq!(t.config.prune.rate, [0.9, 0.95, 0.99][i % 3]);
        assert_eq!(t.config.name, "lenet5_mnist");
        // Everything the axes do not touch is the experiment file's own value.
        assert_eq!(t.config.model, tasks[0].config.model);
    }
    assert_eq!(spec.resources.cpus, 2);
}
