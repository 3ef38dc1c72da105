//! Table 1 over seeds: per arm the mean, standard deviation and 95% interval, and the
//! paired per-seed differences between arms (each seed's runs share their dense network,
//! pruned mask and data, so differences within a seed cancel that part of the noise).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::stats::Summary;
use crate::experiment::{Arm, ResultRow};
use crate::{Error, Result};

/// The differences reported, as (minuend, subtrahend): SAFS, Stage 1 and Stage 2 against
/// magnitude pruning, and SAFS against Stage 1.
pub const PAIRS: [(Arm, Arm); 4] = [
    (Arm::Safs, Arm::MagnitudePruning),
    (Arm::Stage1, Arm::MagnitudePruning),
    (Arm::Stage2, Arm::MagnitudePruning),
    (Arm::Safs, Arm::Stage1),
];

/// A paired difference between two arms over the seeds that have both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PairedDiff {
    /// The arm the other is subtracted from.
    pub arm: Arm,
    /// The arm subtracted.
    pub minus: Arm,
    /// The per-seed differences summarised (`None` when no seed has both).
    pub summary: Option<Summary>,
}

impl PairedDiff {
    /// The column stem, e.g. `safs_minus_magnitude_pruning`.
    pub fn name(&self) -> String {
        format!("{}_minus_{}", self.arm.name(), self.minus.name())
    }
}

/// One (model, dataset, pruning rate, budget) group of runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeedSummary {
    /// Model name.
    pub model: String,
    /// Dataset name.
    pub dataset: String,
    /// Pruning rate.
    pub prune_rate: f64,
    /// Budget preset name.
    pub budget: String,
    /// The seeds in the group, ascending.
    pub seeds: Vec<u64>,
    /// The dense network's test accuracy.
    pub dense: Option<Summary>,
    /// Every arm's test accuracy, in [`Arm::ALL`] order.
    pub arms: Vec<(Arm, Option<Summary>)>,
    /// The paired differences of [`PAIRS`].
    pub paired: Vec<PairedDiff>,
}

impl SeedSummary {
    /// An arm's summary.
    pub fn arm(&self, arm: Arm) -> Option<&Summary> {
        self.arms.iter().find(|(a, _)| *a == arm)?.1.as_ref()
    }

    /// The paired difference `arm - minus`, if it is one of [`PAIRS`].
    pub fn diff(&self, arm: Arm, minus: Arm) -> Option<&Summary> {
        self.paired
            .iter()
            .find(|d| d.arm == arm && d.minus == minus)?
            .summary
            .as_ref()
    }
}

impl SeedSummary {
    /// The paper's Table 1 row for this group's model and dataset, if it has one (the
    /// authors' "VGG-16" row was run with VGG-11, so both take it).
    pub fn paper_row(&self) -> Option<ResultRow> {
        let model = if self.model == "vgg11" {
            "vgg16"
        } else {
            self.model.as_str()
        };
        super::paper_table1()
            .into_iter()
            .find(|r| r.model == model && r.dataset == self.dataset)
    }

    /// A Markdown table: per arm `mean ± 95% half-width`, std and n, the paired differences
    /// with their intervals, and the paper's numbers beside them.
    pub fn to_markdown(&self) -> String {
        let paper = self.paper_row();
        let p = |v: Option<f64>, signed: bool| match v {
            Some(x) if signed => format!("{x:+.2}"),
            Some(x) => format!("{x:.2}"),
            None => "–".into(),
        };
        let std = |s: Option<&Summary>| {
            s.and_then(|s| s.std)
                .map_or("–".into(), |x| format!("{x:.2}"))
        };
        let n = |s: Option<&Summary>| s.map_or("0".into(), |s| s.n.to_string());
        let mut out = format!(
            "{} / {}, pruning {}, budget {}, seeds {:?}\n\n\
             | arm | mean ± 95% CI | std | n | paper |\n|---|---:|---:|---:|---:|\n",
            self.model, self.dataset, self.prune_rate, self.budget, self.seeds
        );
        let dense = self.dense.as_ref();
        out += &format!(
            "| dense | {} | {} | {} | {} |\n",
            dense.map_or("–".into(), |s| s.display(2)),
            std(dense),
            n(dense),
            p(paper.as_ref().and_then(|r| r.dense), false)
        );
        for (arm, s) in &self.arms {
            let s = s.as_ref();
            out += &format!(
                "| {} | {} | {} | {} | {} |\n",
                arm.title(),
                s.map_or("–".into(), |s| s.display(2)),
                std(s),
                n(s),
                p(paper.as_ref().and_then(|r| r.arm(*arm)), false)
            );
        }
        for d in &self.paired {
            let s = d.summary.as_ref();
            let ours = match s {
                Some(s) => match s.interval() {
                    Some((lo, hi)) => format!("{:+.2} [{lo:+.2}, {hi:+.2}]", s.mean),
                    None => format!("{:+.2}", s.mean),
                },
                None => "–".into(),
            };
            let paper_diff = paper
                .as_ref()
                .and_then(|r| Some(r.arm(d.arm)? - r.arm(d.minus)?));
            out += &format!(
                "| {} − {} (paired) | {ours} | {} | {} | {} |\n",
                d.arm.title(),
                d.minus.title(),
                std(s),
                n(s),
                p(paper_diff, true)
            );
        }
        out
    }
}

fn key_cmp(a: &ResultRow, b: &ResultRow) -> Ordering {
    a.model
        .cmp(&b.model)
        .then_with(|| a.dataset.cmp(&b.dataset))
        .then_with(|| a.prune_rate.total_cmp(&b.prune_rate))
        .then_with(|| a.budget.cmp(&b.budget))
}

/// Groups runs by (model, dataset, pruning rate, budget), sorted by that key, and
/// summarises each group. A seed appearing twice in one group is an error.
pub fn summarize_seeds(rows: &[ResultRow]) -> Result<Vec<SeedSummary>> {
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
    Ok(groups
        .into_iter()
        .map(|g| {
            let of = |f: &dyn Fn(&ResultRow) -> Option<f64>| -> Option<Summary> {
                Summary::of(&g.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            SeedSummary {
                model: g[0].model.clone(),
                dataset: g[0].dataset.clone(),
                prune_rate: g[0].prune_rate,
                budget: g[0].budget.clone(),
                seeds: g.iter().map(|r| r.seed).collect(),
                dense: of(&|r| r.dense),
                arms: Arm::ALL.iter().map(|&a| (a, of(&|r| r.arm(a)))).collect(),
                paired: PAIRS
                    .iter()
                    .map(|&(a, b)| PairedDiff {
                        arm: a,
                        minus: b,
                        summary: of(&|r| Some(r.arm(a)? - r.arm(b)?)),
                    })
                    .collect(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seed: u64, mp: f64, s1: f64, s2: f64, safs: f64) -> ResultRow {
        ResultRow {
            model: "lenet5".into(),
            dataset: "mnist".into(),
            prune_rate: 0.99,
            seed,
            budget: "cpu".into(),
            dense: Some(99.0),
            magnitude_pruning: Some(mp),
            stage1: Some(s1),
            stage2: Some(s2),
            safs: Some(safs),
        }
    }

    #[test]
    fn paired_differences_by_hand() {
        // MP 40, 44, 48; SAFS 50, 52, 60 -> differences 10, 8, 12: mean 10, s = 2,
        // half-width t(0.975, 2) * 2 / sqrt(3) = 4.968275. Unpaired, the SAFS and MP means
        // differ by the same 10, but their own intervals (s = 5.29 and 4) overlap.
        let rows = [
            row(0, 40.0, 45.0, 41.0, 50.0),
            row(1, 44.0, 47.0, 43.0, 52.0),
            row(2, 48.0, 55.0, 49.0, 60.0),
        ];
        let g = &summarize_seeds(&rows).unwrap()[0];
        assert_eq!(g.seeds, [0, 1, 2]);
        let d = g.diff(Arm::Safs, Arm::MagnitudePruning).unwrap();
        assert!((d.mean - 10.0).abs() < 1e-12 && (d.std.unwrap() - 2.0).abs() < 1e-12);
        assert!((d.ci95.unwrap() - 4.968275).abs() < 1e-5);
        let s2 = g.diff(Arm::Stage2, Arm::MagnitudePruning).unwrap();
        // Stage 2 - MP: 1, -1, 1.
        assert!((s2.mean - 1.0 / 3.0).abs() < 1e-12, "{s2:?}");
        let md = g.to_markdown();
        assert!(md.contains("| SAFS | 54.00 ± "), "{md}");
        assert!(
            md.contains("| SAFS − magnitude pruning (paired) | +10.00 [+5.03, +14.97]"),
            "{md}"
        );
        // The paper's LeNet-5 row sits beside ours: SAFS 62.22, gain +15.53.
        assert!(md.contains("| 62.22 |") && md.contains("+15.53"), "{md}");
        assert!(summarize_seeds(&[rows[0].clone(), rows[0].clone()]).is_err());
    }
}
