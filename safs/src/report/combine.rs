//! Table 1 across seeds as a frame: mean, standard deviation and 95% interval of every arm
//! and of the paired differences.

use polars::prelude::{Column, DataFrame};

use super::seeds::{summarize_seeds, SeedSummary, PAIRS};
use super::stats::Summary;
use crate::experiment::{Arm, ResultRow};
use crate::Result;

/// Groups runs by (model, dataset, prune_rate, budget), sorted by that key, into
/// `n_seeds` and, for `dense` and every arm, `{arm}_mean`, `{arm}_std`, `{arm}_ci95` (the
/// half-width of the 95% Student-t interval) and `{arm}_n`; then the paired per-seed
/// differences of [`PAIRS`](super::PAIRS) the same way (`safs_minus_magnitude_pruning_mean`,
/// ...). `gain_*` repeats SAFS minus magnitude pruning under its Table 1 name.
///
/// Missing arms (nulls) are skipped: `{arm}_n` counts the seeds that have the arm, the mean
/// is over those, and std and interval are null below two values. A difference uses only
/// the seeds that have both arms. A seed appearing twice in one group is an error.
pub fn combine(rows: &[ResultRow]) -> Result<DataFrame> {
    let groups = summarize_seeds(rows)?;
    let n = groups.len();
    let strs = |f: &dyn Fn(&SeedSummary) -> &str| groups.iter().map(f).collect::<Vec<_>>();
    let mut columns = vec![
        Column::new("model".into(), strs(&|g| &g.model)),
        Column::new("dataset".into(), strs(&|g| &g.dataset)),
        Column::new(
            "prune_rate".into(),
            groups.iter().map(|g| g.prune_rate).collect::<Vec<_>>(),
        ),
        Column::new("budget".into(), strs(&|g| &g.budget)),
        Column::new(
            "n_seeds".into(),
            groups
                .iter()
                .map(|g| g.seeds.len() as u32)
                .collect::<Vec<_>>(),
        ),
    ];
    let mut push = |stem: &str, col: Vec<Option<&Summary>>| {
        columns.push(Column::new(
            format!("{stem}_mean").into(),
            col.iter().map(|s| s.map(|s| s.mean)).collect::<Vec<_>>(),
        ));
        columns.push(Column::new(
            format!("{stem}_std").into(),
            col.iter()
                .map(|s| s.and_then(|s| s.std))
                .collect::<Vec<_>>(),
        ));
        columns.push(Column::new(
            format!("{stem}_ci95").into(),
            col.iter()
                .map(|s| s.and_then(|s| s.ci95))
                .collect::<Vec<_>>(),
        ));
        columns.push(Column::new(
            format!("{stem}_n").into(),
            col.iter()
                .map(|s| s.map_or(0, |s| s.n as u32))
                .collect::<Vec<_>>(),
        ));
    };
    push("dense", groups.iter().map(|g| g.dense.as_ref()).collect());
    for arm in Arm::ALL {
        push(arm.name(), groups.iter().map(|g| g.arm(arm)).collect());
    }
    for (a, b) in PAIRS {
        let stem = format!("{}_minus_{}", a.name(), b.name());
        push(&stem, groups.iter().map(|g| g.diff(a, b)).collect());
    }
    push(
        "gain",
        groups
            .iter()
            .map(|g| g.diff(Arm::Safs, Arm::MagnitudePruning))
            .collect(),
    );
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
        // 5 key columns, then (dense + 4 arms + 4 differences + gain) x (mean, std, ci95, n).
        assert_eq!(df.shape(), (2, 5 + 10 * 4));
        let budget = df.column("budget").unwrap().str().unwrap();
        assert_eq!(
            (budget.get(0), budget.get(1)),
            (Some("full"), Some("quick"))
        );
        let n = df.column("n_seeds").unwrap().u32().unwrap();
        assert_eq!((n.get(0), n.get(1)), (Some(3), Some(1)));

        // safs 60, 62, 64: mean 62, var (4 + 0 + 4) / 2 = 4, std 2; 95% half-width
        // t(0.975, 2) * 2 / sqrt(3) = 4.302653 * 1.154701 = 4.968275.
        close(f(&df, "safs_mean", 0), 62.0);
        close(f(&df, "safs_std", 0), 2.0);
        assert!((f(&df, "safs_ci95", 0).unwrap() - 4.968275).abs() < 1e-5);
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
        // gain per seed 16, 16, 16: mean 16, std 0, interval of width 0.
        close(f(&df, "gain_mean", 0), 16.0);
        close(f(&df, "gain_std", 0), 0.0);
        close(f(&df, "gain_ci95", 0), 0.0);
        assert_eq!(df.column("gain_n").unwrap().u32().unwrap().get(0), Some(3));
        // Paired differences use the seeds with both arms: stage2 - MP over seeds 0, 1, 2
        // is 14, 13, 15 (mean 14, std 1); safs - stage1 only seeds 0, 1: 0, 1.
        close(f(&df, "stage2_minus_magnitude_pruning_mean", 0), 14.0);
        close(f(&df, "stage2_minus_magnitude_pruning_std", 0), 1.0);
        close(f(&df, "safs_minus_stage1_mean", 0), 0.5);
        assert_eq!(
            df.column("safs_minus_stage1_n")
                .unwrap()
                .u32()
                .unwrap()
                .get(0),
            Some(2)
        );
        close(f(&df, "safs_minus_magnitude_pruning_mean", 0), 16.0);

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
