//! Two variants of one experiment compared seed by seed (e.g. full fidelity against
//! successive halving): each arm's mean with its 95% interval in both, the paired
//! difference, and what the searches cost.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Summary;
use crate::experiment::{Arm, EvalRecord, ResultRow, Stage};
use crate::{Error, Result};

/// What the searches of one run cost: training epochs and wall time of the Stage 1
/// candidates and Stage 2 trials (a multi-fidelity candidate counted once, with the
/// epochs it reached).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchCost {
    /// Epochs trained.
    pub epochs: usize,
    /// Seconds of training and scoring.
    pub seconds: f64,
    /// Candidates and trials started.
    pub evaluations: usize,
}

/// The search cost in a run's log (its last record per stage and step).
pub fn search_cost(log: &[EvalRecord]) -> SearchCost {
    let mut last: BTreeMap<(Stage, usize), &EvalRecord> = BTreeMap::new();
    for r in log.iter().filter(|r| r.stage.is_search()) {
        last.insert((r.stage, r.step), r);
    }
    SearchCost {
        epochs: last.values().map(|r| r.epochs.len()).sum(),
        seconds: last.values().map(|r| r.seconds).sum(),
        evaluations: last.len(),
    }
}

/// One run of a comparison: its Table 1 row and its search cost.
#[derive(Clone, Debug, PartialEq)]
pub struct ComparedRun {
    /// The run's row.
    pub row: ResultRow,
    /// Its searches' cost.
    pub cost: SearchCost,
}

/// One line of a comparison: a quantity in both variants and `b - a`, over paired seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparedValue {
    /// What is compared (an arm's title, "search epochs", ...).
    pub what: String,
    /// Variant `a` over the paired seeds.
    pub a: Summary,
    /// Variant `b` over the paired seeds.
    pub b: Summary,
    /// `b - a` seed by seed.
    pub diff: Summary,
}

/// Pairs `a` and `b` by seed (seeds in only one are left out; none in common is an error)
/// and compares every arm, the dense network, and the search cost.
pub fn compare_runs(a: &[ComparedRun], b: &[ComparedRun]) -> Result<Vec<ComparedValue>> {
    let pairs: Vec<(&ComparedRun, &ComparedRun)> = a
        .iter()
        .filter_map(|x| b.iter().find(|y| y.row.seed == x.row.seed).map(|y| (x, y)))
        .collect();
    if pairs.is_empty() {
        return Err(Error::Config(
            "the two sets of runs have no seed in common".into(),
        ));
    }
    type Get = dyn Fn(&ComparedRun) -> Option<f64>;
    let mut rows: Vec<(String, Box<Get>)> = vec![("dense".into(), Box::new(|r| r.row.dense))];
    for arm in Arm::ALL {
        rows.push((arm.title().into(), Box::new(move |r| r.row.arm(arm))));
    }
    rows.push((
        "search epochs".into(),
        Box::new(|r| Some(r.cost.epochs as f64)),
    ));
    rows.push((
        "search minutes".into(),
        Box::new(|r| Some(r.cost.seconds / 60.0)),
    ));
    let mut out = Vec::new();
    for (what, get) in rows {
        let both: Vec<(f64, f64)> = pairs
            .iter()
            .filter_map(|(x, y)| Some((get(x)?, get(y)?)))
            .collect();
        let col = |f: &dyn Fn(&(f64, f64)) -> f64| both.iter().map(f).collect::<Vec<f64>>();
        if let (Some(a), Some(b), Some(diff)) = (
            Summary::of(&col(&|p| p.0)),
            Summary::of(&col(&|p| p.1)),
            Summary::of(&col(&|p| p.1 - p.0)),
        ) {
            out.push(ComparedValue { what, a, b, diff });
        }
    }
    Ok(out)
}

/// The comparison as a Markdown table (`a` and `b` name the variants).
pub fn comparison_markdown(values: &[ComparedValue], a: &str, b: &str) -> String {
    let mut s =
        format!("| | {a} | {b} | {b} − {a} (paired, 95% CI) |\n| :-- | --: | --: | --: |\n");
    for v in values {
        let ci = v
            .diff
            .interval()
            .map(|(lo, hi)| format!(" [{lo:+.2}, {hi:+.2}]"))
            .unwrap_or_default();
        s += &format!(
            "| {} (n = {}) | {} | {} | {:+.2}{ci} |\n",
            v.what,
            v.diff.n,
            v.a.display(2),
            v.b.display(2),
            v.diff.mean
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, safs: f64, epochs: usize) -> ComparedRun {
        ComparedRun {
            row: ResultRow {
                model: "lenet5".into(),
                dataset: "mnist".into(),
                prune_rate: 0.99,
                seed,
                budget: "cpu".into(),
                dense: Some(99.0),
                magnitude_pruning: Some(30.0),
                stage1: None,
                stage2: None,
                safs: Some(safs),
            },
            cost: SearchCost {
                epochs,
                seconds: 60.0 * epochs as f64,
                evaluations: 1,
            },
        }
    }

    /// Pairing by seed: b - a per seed is (2, 4, 6) for SAFS on seeds 0, 1, 2; mean 4,
    /// sd 2, t(0.975, 2) = 4.303 -> half-width 4.303 * 2 / sqrt(3) = 4.969. Seed 9 has no
    /// partner and is left out.
    #[test]
    fn paired_by_seed_by_hand() {
        let a = vec![
            run(0, 40.0, 300),
            run(1, 30.0, 320),
            run(2, 20.0, 310),
            run(9, 0.0, 1),
        ];
        let b = vec![run(2, 26.0, 100), run(0, 42.0, 90), run(1, 34.0, 110)];
        let v = compare_runs(&a, &b).unwrap();
        let safs = v.iter().find(|x| x.what == "SAFS").unwrap();
        assert_eq!(safs.diff.n, 3);
        assert!((safs.diff.mean - 4.0).abs() < 1e-12);
        assert!(
            (safs.diff.ci95.unwrap() - 4.968_6).abs() < 1e-3,
            "{:?}",
            safs.diff
        );
        let e = v.iter().find(|x| x.what == "search epochs").unwrap();
        assert!((e.diff.mean - (-210.0)).abs() < 1e-12);
        assert!(
            v.iter().all(|x| x.what != "Stage 1"),
            "an arm absent in both is left out"
        );
        let md = comparison_markdown(&v, "full", "sh");
        assert!(
            md.contains("| SAFS (n = 3) |") && md.contains("+4.00 [-0.97, +8.97]"),
            "{md}"
        );
        assert!(compare_runs(&a[3..], &b).is_err());
    }
}
