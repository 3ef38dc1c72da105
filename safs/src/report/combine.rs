//! Table 1 across seeds: mean and sample standard deviation of every arm.

use std::cmp::Ordering;

use polars::prelude::{Column, DataFrame};

use super::table::{arm_values, ARMS};
use crate::experiment::ResultRow;
use crate::{Error, Result};

/// Mean, sample standard deviation (ddof 1) and count of the present values.
fn stats(values: &[Option<f64>]) -> (Option<f64>, Option<f64>, u32) {
    let xs: Vec<f64> = values.iter().flatten().copied().collect();
    let n = xs.len();
    if n == 0 {
        return (None, None, 0);
    }
    let mean = xs.iter().sum::<f64>() / n as f64;
    let std = (n > 1).then(|| {
        let ss: f64 = xs.iter().map(|x| (x - mean).powi(2)).sum();
        (ss / (n - 1) as f64).sqrt()
    });
    (Some(mean), std, n as u32)
}

/// The grouping order: model, dataset, prune_rate, budget.
fn key_cmp(a: &ResultRow, b: &ResultRow) -> Ordering {
    a.model
        .cmp(&b.model)
        .then_with(|| a.dataset.cmp(&b.dataset))
        .then_with(|| a.prune_rate.total_cmp(&b.prune_rate))
        .then_with(|| a.budget.cmp(&b.budget))
}

/// Groups runs by (model, dataset, prune_rate, budget), sorted by that key, into
/// `n_seeds` and, for every arm and `gain`, `{arm}_mean`, `{arm}_std`, `{arm}_n`.
///
/// Missing arms (nulls) are skipped: `{arm}_n` counts the seeds that have the arm,
/// the mean is over those, and the std (ddof 1) is null below two values.
/// `gain` is averaged per seed (seeds with both SAFS and magnitude pruning), so
/// `gain_mean` can differ from `safs_mean - magnitude_pruning_mean` when arms are
/// missing. A seed appearing twice in one group is an error (a run counted twice).
pub fn combine(rows: &[ResultRow]) -> Result<DataFrame> {
    let mut sorted: Vec<&ResultRow> = rows.iter().collect();
    sorted.sort_by(|a, b| key_cmp(a, b).then(a.seed.cmp(&b.seed)));
    let mut groups: Vec<Vec<&ResultRow>> = Vec::new();
    for row in sorted {
        match groups.last_mut() {
            Some(g) if key_cmp(g[0], row) == Ordering::Equal => {
                if g.iter().any(|r| r.seed == row.seed) {
                    return Err(Error::Config(format!(
                        "run {}/{}/prune {}/budget {} seed {} appears more than once",
                        row.model, row.dataset, row.prune_rate, row.budget, row.seed
                    )));
                }
                g.push(row);
            }
            _ => groups.push(vec![row]),
        }
    }

    let n = groups.len();
    let mut columns = vec![
        Column::new(
            "model".into(),
            groups
                .iter()
                .map(|g| g[0].model.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "dataset".into(),
            groups
                .iter()
                .map(|g| g[0].dataset.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "prune_rate".into(),
            groups.iter().map(|g| g[0].prune_rate).collect::<Vec<_>>(),
        ),
        Column::new(
            "budget".into(),
            groups
                .iter()
                .map(|g| g[0].budget.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "n_seeds".into(),
            groups.iter().map(|g| g.len() as u32).collect::<Vec<_>>(),
        ),
    ];
    let names = ARMS.iter().copied().chain(["gain"]);
    for (k, arm) in names.enumerate() {
        let per_group: Vec<(Option<f64>, Option<f64>, u32)> = groups
            .iter()
            .map(|g| {
                let values: Vec<Option<f64>> = g
                    .iter()
                    .map(|r| match k {
                        5 => r.gain(),
                        _ => arm_values(r)[k],
                    })
                    .collect();
                stats(&values)
            })
            .collect();
        columns.push(Column::new(
            format!("{arm}_mean").into(),
            per_group.iter().map(|s| s.0).collect::<Vec<_>>(),
        ));
        columns.push(Column::new(
            format!("{arm}_std").into(),
            per_group.iter().map(|s| s.1).collect::<Vec<_>>(),
        ));
        columns.push(Column::new(
            format!("{arm}_n").into(),
            per_group.iter().map(|s| s.2).collect::<Vec<_>>(),
        ));
    }
    Ok(DataFrame::new(n, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(model: &str, seed: u64, budget: &str, arms: [Option<f64>; 5]) -> ResultRow {
        ResultRow {
            model: model.to_string(),
            dataset: "mnist".to_string(),
            prune_rate: 0.99,
            seed,
            budget: budget.to_string(),
            dense: arms[0],
            magnitude_pruning: arms[1],
            stage1: arms[2],
            stage2: arms[3],
            safs: arms[4],
        }
    }

    fn f(df: &DataFrame, col: &str, row: usize) -> Option<f64> {
        df.column(col).unwrap().f64().unwrap().get(row)
    }

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("value present");
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn mean_std_over_three_seeds_and_single_seed_group() {
        let rows = vec![
            // Given out of order: the output is sorted by key, not by input order.
            run(
                "lenet5",
                2,
                "quick",
                [Some(99.0), Some(40.0), None, None, None],
            ),
            run(
                "lenet5",
                1,
                "full",
                [Some(98.0), Some(46.0), Some(61.0), Some(59.0), Some(62.0)],
            ),
            run(
                "lenet5",
                0,
                "full",
                [Some(98.5), Some(44.0), Some(60.0), Some(58.0), Some(60.0)],
            ),
            run(
                "lenet5",
                2,
                "full",
                [Some(98.9), Some(48.0), None, Some(63.0), Some(64.0)],
            ),
        ];
        let df = combine(&rows).unwrap();
        assert_eq!(df.shape(), (2, 5 + 6 * 3));
        let budget = df.column("budget").unwrap().str().unwrap();
        assert_eq!(
            (budget.get(0), budget.get(1)),
            (Some("full"), Some("quick"))
        );
        let n = df.column("n_seeds").unwrap().u32().unwrap();
        assert_eq!((n.get(0), n.get(1)), (Some(3), Some(1)));

        // safs 60, 62, 64: mean 62, var (4 + 0 + 4) / 2 = 4, std 2.
        close(f(&df, "safs_mean", 0), 62.0);
        close(f(&df, "safs_std", 0), 2.0);
        // magnitude pruning 44, 46, 48: mean 46, std 2.
        close(f(&df, "magnitude_pruning_mean", 0), 46.0);
        close(f(&df, "magnitude_pruning_std", 0), 2.0);
        // dense 98.5, 98.0, 98.9: mean 98.4666..., deviations .0333, -.4667, .4333.
        let mean = (98.5 + 98.0 + 98.9) / 3.0;
        let var =
            ((98.5f64 - mean).powi(2) + (98.0f64 - mean).powi(2) + (98.9f64 - mean).powi(2)) / 2.0;
        close(f(&df, "dense_mean", 0), mean);
        close(f(&df, "dense_std", 0), var.sqrt());
        close(f(&df, "dense_std", 0), 0.45092497528229214);
        // stage1 only in seeds 0 and 1 (60, 61): mean 60.5, std sqrt(0.5).
        close(f(&df, "stage1_mean", 0), 60.5);
        close(f(&df, "stage1_std", 0), 0.5f64.sqrt());
        let stage1_n = df.column("stage1_n").unwrap().u32().unwrap();
        assert_eq!(stage1_n.get(0), Some(2));
        // gain per seed 16, 16, 16: mean 16, std 0.
        close(f(&df, "gain_mean", 0), 16.0);
        close(f(&df, "gain_std", 0), 0.0);
        assert_eq!(df.column("gain_n").unwrap().u32().unwrap().get(0), Some(3));

        // A single seed: mean is the value, std is null; a missing arm is null with n 0.
        close(f(&df, "dense_mean", 1), 99.0);
        assert_eq!(f(&df, "dense_std", 1), None);
        assert_eq!(f(&df, "safs_mean", 1), None);
        assert_eq!(f(&df, "gain_mean", 1), None);
        assert_eq!(df.column("safs_n").unwrap().u32().unwrap().get(1), Some(0));
    }

    #[test]
    fn duplicate_seed_is_an_error() {
        let a = run("lenet5", 0, "full", [Some(98.0); 5]);
        let err = combine(&[a.clone(), a]).unwrap_err().to_string();
        assert!(err.contains("seed 0") && err.contains("lenet5"), "{err}");
    }

    #[test]
    fn combine_paper_rows_sorted() {
        let df = combine(&super::super::paper_table1()).unwrap();
        let models = df.column("model").unwrap().str().unwrap();
        let got: Vec<&str> = (0..models.len()).filter_map(|i| models.get(i)).collect();
        assert_eq!(got, ["efficientnet_b0", "lenet5", "resnet18", "vgg16"]);
        assert_eq!(df.column("gain_std").unwrap().null_count(), 4);
    }
}
