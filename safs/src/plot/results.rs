//! Result charts: accuracy against pruning rate, sparsity per layer, Table 1 against the
//! paper.

use super::figure::{BarGroup, BarPanel, Figure, Mark, Panel, RefLine, Series, Shape, XyPanel};
use super::palette::{arm_color, arm_label, Stroke, BLUE, ORANGE, VERMILLION};
use super::Chart;
use crate::experiment::ResultRow;
use crate::prune::LayerSparsity;
use crate::report::{Summary, ARMS};
use crate::{Error, Result};

/// The arm values of a row, in [`ARMS`] order.
fn arms(row: &ResultRow) -> [Option<f64>; 5] {
    [
        row.dense,
        row.magnitude_pruning,
        row.stage1,
        row.stage2,
        row.safs,
    ]
}

/// Horizontal offset between the interval bars of neighbouring arms, in rate percent.
const BAR_DODGE: f64 = 0.35;

/// "lenet5 / mnist" when every row is of one model and data set.
fn common_setup(rows: &[&ResultRow]) -> Option<String> {
    let first = rows.first()?;
    rows.iter()
        .all(|r| r.model == first.model && r.dataset == first.dataset)
        .then(|| format!("{} / {}", first.model, first.dataset))
}

/// Top-1 test accuracy of every arm against the pruning rate: one dot per run, a line
/// through each rate's mean over seeds and, where a rate has two or more seeds, a
/// vertical bar over the mean's Student-t 95% interval (each arm's set a little aside).
pub fn accuracy_vs_prune_rate(rows: &[ResultRow]) -> Result<Chart> {
    if rows.is_empty() {
        return Err(Error::Config("no result row to plot".into()));
    }
    let mut series = Vec::new();
    for (k, arm) in ARMS.iter().enumerate() {
        let mut pts: Vec<(f64, f64)> = rows
            .iter()
            .filter_map(|r| Some((r.prune_rate * 100.0, arms(r)[k]?)))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        if pts.is_empty() {
            continue;
        }
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut means: Vec<(f64, f64)> = Vec::new();
        // Interval bars as one polyline broken by NaN points between rates.
        let mut bars: Vec<(f64, f64)> = Vec::new();
        for chunk in pts.chunk_by(|a, b| a.0 == b.0) {
            let values: Vec<f64> = chunk.iter().map(|p| p.1).collect();
            let x = chunk[0].0;
            let Some(summary) = Summary::of(&values) else {
                continue;
            };
            means.push((x, summary.mean));
            if let Some((lo, hi)) = summary.interval() {
                // Each arm's bar a little to the side, so bars at one rate do not overlap.
                let xb = x + (k as f64 - 2.0) * BAR_DODGE;
                bars.extend([(xb, lo), (xb, hi), (f64::NAN, f64::NAN)]);
            }
        }
        let color = arm_color(arm);
        if !bars.is_empty() {
            series.push(Series {
                name: String::new(),
                color,
                mark: Mark::Line {
                    width: 1,
                    stroke: Stroke::Solid,
                },
                points: bars,
            });
        }
        series.push(Series {
            name: arm_label(arm).to_string(),
            color,
            mark: Mark::Line {
                width: 2,
                stroke: if *arm == "dense" {
                    Stroke::Dashed
                } else {
                    Stroke::Solid
                },
            },
            points: means,
        });
        series.push(Series {
            name: String::new(),
            color,
            mark: Mark::Points {
                shape: Shape::Dot,
                size: 4,
            },
            points: pts,
        });
    }
    if series.is_empty() {
        return Err(Error::Config(format!(
            "none of the {} result rows has a finite accuracy",
            rows.len()
        )));
    }
    let all: Vec<&ResultRow> = rows.iter().collect();
    let title = match common_setup(&all) {
        Some(setup) => format!("Test accuracy vs pruning rate: {setup}"),
        None => "Test accuracy vs pruning rate".to_string(),
    };
    let panel = XyPanel {
        x_label: "pruning rate (% of prunable weights zeroed)".into(),
        y_label: "top-1 test accuracy (%)".into(),
        series,
        ..Default::default()
    };
    Chart::new(
        title,
        (900, 500),
        Figure {
            panels: vec![Panel::Xy(panel)],
            cols: 1,
        },
    )
}

/// The share of exactly-zero entries of every prunable weight (horizontal bars, in
/// forward order) with the overall sparsity as a dashed line.
pub fn sparsity_per_layer(layers: &[LayerSparsity]) -> Result<Chart> {
    if layers.is_empty() {
        return Err(Error::Config("no layer to plot".into()));
    }
    let values: Vec<f64> = layers
        .iter()
        .map(|l| {
            if l.total == 0 {
                f64::NAN
            } else {
                100.0 * l.sparsity()
            }
        })
        .collect();
    let total: usize = layers.iter().map(|l| l.total).sum();
    let zeros: usize = layers.iter().map(|l| l.zeros).sum();
    let overall = if total == 0 {
        f64::NAN
    } else {
        100.0 * zeros as f64 / total as f64
    };
    let ref_lines = if overall.is_finite() {
        vec![RefLine {
            value: overall,
            label: format!("overall {overall:.2}%"),
            color: VERMILLION,
        }]
    } else {
        Vec::new()
    };
    let panel = BarPanel {
        categories: layers.iter().map(|l| l.name.clone()).collect(),
        groups: vec![BarGroup {
            name: "sparsity".into(),
            color: BLUE,
            values,
            errors: Vec::new(),
        }],
        category_label: "prunable weight".into(),
        value_label: "sparsity (% of entries exactly zero)".into(),
        horizontal: true,
        decimals: 1,
        value_suffix: "%".into(),
        ref_lines,
        value_range: Some((0.0, 112.0)),
        subtitle: None,
    };
    let height = (110 + 28 * layers.len() as u32).max(300);
    Chart::new(
        format!(
            "Sparsity per layer ({} weights, {zeros} of {total} entries zero)",
            layers.len()
        ),
        (900, height),
        Figure {
            panels: vec![Panel::Bars(panel)],
            cols: 1,
        },
    )
}

fn signed(v: Option<f64>) -> String {
    match v {
        Some(g) if g.is_finite() => format!("{g:+.2}"),
        _ => "n/a".into(),
    }
}

/// Our Table 1 row beside the paper's: grouped bars per arm (missing arms read "n/a"), with
/// both gains (SAFS minus magnitude pruning) in the subtitle.
pub fn table1_comparison(ours: &ResultRow, paper: &ResultRow) -> Result<Chart> {
    let values =
        |r: &ResultRow| -> Vec<f64> { arms(r).iter().map(|v| v.unwrap_or(f64::NAN)).collect() };
    let (v_ours, v_paper) = (values(ours), values(paper));
    if v_ours.iter().chain(&v_paper).all(|v| !v.is_finite()) {
        return Err(Error::Config(
            "neither our row nor the paper's has an accuracy".into(),
        ));
    }
    let setup = common_setup(&[ours, paper]).unwrap_or_else(|| {
        format!(
            "{} / {} vs {} / {}",
            ours.model, ours.dataset, paper.model, paper.dataset
        )
    });
    let panel = BarPanel {
        subtitle: Some(format!(
            "gain (SAFS − magnitude pruning): ours {}, paper {}",
            signed(ours.gain()),
            signed(paper.gain())
        )),
        categories: ARMS.iter().map(|a| arm_label(a).to_string()).collect(),
        groups: vec![
            BarGroup {
                name: format!("ours (seed {}, {} budget)", ours.seed, ours.budget),
                color: BLUE,
                values: v_ours,
                errors: Vec::new(),
            },
            BarGroup {
                name: "paper (Loni et al. 2023)".into(),
                color: ORANGE,
                values: v_paper,
                errors: Vec::new(),
            },
        ],
        category_label: "arm".into(),
        value_label: "top-1 test accuracy (%)".into(),
        horizontal: false,
        decimals: 2,
        value_suffix: String::new(),
        ref_lines: Vec::new(),
        value_range: None,
    };
    Chart::new(
        format!(
            "Table 1: ours vs paper, {setup} at {}% pruning",
            super::figure::tick(ours.prune_rate * 100.0)
        ),
        (1000, 520),
        Figure {
            panels: vec![Panel::Bars(panel)],
            cols: 1,
        },
    )
}
