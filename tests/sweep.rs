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

/// Two seeds of LeNet-5 / MNIST at the smoke budget through the local backend, two at a
/// time and one at a time: the same rows and the same evaluation logs; run again, the
/// finished folders are read back.
#[test]
fn local_backend_results_do_not_depend_on_parallelism() {
    use safs::experiment::RunDir;
    use safs::sweep::{run_local, LocalOptions, SweepFolder, TaskState};

    let dir = safs_e2e::temp_dir("sweep-local");
    let experiment = experiments_dir().join("lenet5_mnist.toml");
    let text = format!(
        "name = \"smoke\"\nexperiments = [{:?}]\n\
         [[axes]]\nfield = \"budget\"\nvalues = [\"smoke\"]\n\
         [[axes]]\nfield = \"seed\"\nvalues = [0, 1]\n",
        experiment.display().to_string()
    );
    std::fs::write(dir.join("sweep.toml"), text).unwrap();
    let spec = SweepSpec::from_file(&dir.join("sweep.toml")).unwrap();
    let tasks = expand(&spec).unwrap();
    let data_root = safs_e2e::mnist_root();
    let mut logs = Vec::new();
    for parallel in [2, 1] {
        let folder = SweepFolder::open(&dir.join(format!("p{parallel}")), &spec, &tasks).unwrap();
        let opts = LocalOptions {
            parallel,
            threads: 1,
            data_root: data_root.clone(),
            device: candle_core::Device::Cpu,
        };
        let rows = run_local(&folder, &tasks, &opts, &|_| {}).unwrap();
        let rows: Vec<_> = rows.into_iter().map(|r| r.expect("task ran")).collect();
        assert!(tasks.iter().all(|t| folder.state(t) == TaskState::Done));
        let again = run_local(&folder, &tasks, &opts, &|_| {}).unwrap();
        assert_eq!(
            again.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            rows
        );
        let evals: Vec<_> = tasks
            .iter()
            .map(|t| {
                let mut recs = RunDir::open(&folder.run_dir(t), &t.config)
                    .unwrap()
                    .load_evals()
                    .unwrap();
                for r in &mut recs {
                    r.seconds = 0.0;
                    r.epochs.iter_mut().for_each(|e| e.seconds = 0.0);
                }
                recs
            })
            .collect();
        logs.push((rows, evals));
    }
    assert_eq!(logs[0].0, logs[1].0, "rows");
    assert_eq!(logs[0].1, logs[1].1, "evaluation logs");
}
