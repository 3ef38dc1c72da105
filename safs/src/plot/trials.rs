//! Charts of an HPO stage's trials as a whole (parallel coordinates, parameter
//! importance) and of the operators chosen across runs.

use super::figure::{
    BarGroup, BarPanel, Figure, Panel, ParallelAxis, ParallelLine, ParallelPanel, Tile, TilePanel,
};
use super::palette::{op_color, BLUE};
use super::parallel::viridis;
use super::search::stage_title;
use super::Chart;
use crate::activation::ActivationPlan;
use crate::experiment::{EvalRecord, Stage};
use crate::hpo::trials::finite_range;
use crate::hpo::{importance, ImportanceConfig, ParamColumn, ParamKind, TrialTable};

/// The most hyperparameter axes a parallel-coordinate chart shows.
pub const MAX_AXES: usize = 8;

/// The most hyperparameters an importance chart lists.
pub const MAX_BARS: usize = 10;
use crate::{Error, Result};

/// Every finished trial of `stage` as a line across one axis per varying hyperparameter
/// and a last axis for its validation accuracy, coloured by that accuracy (viridis, best
/// drawn on top). Under multi-fidelity the budget with the most trials is shown (see
/// [`TrialTable::from_records`]).
///
/// A conditional hyperparameter that half the trials or more lack (the betas of Adam when
/// most trials chose SGD) gets no axis, nor one that has a single value where present, and at most [`MAX_AXES`] hyperparameters are shown
/// (those most trials have); the caption counts what was left out.
pub fn hpo_parallel_coordinates(records: &[EvalRecord], stage: Stage) -> Result<Chart> {
    let table = TrialTable::from_records(records, stage)?;
    let present = |p: &&ParamColumn| p.values.iter().filter(|v| v.is_finite()).count();
    let mut shown: Vec<&ParamColumn> = table
        .params
        .iter()
        .filter(|p| 2 * present(p) > table.len() && varies(p))
        .collect();
    shown.sort_by_key(|p| std::cmp::Reverse(present(p)));
    shown.truncate(MAX_AXES);
    if shown.is_empty() {
        return Err(Error::Config(format!(
            "no hyperparameter that most trials have varies across the trials of stage {}",
            stage.name()
        )));
    }
    let left_out = table.params.len() - shown.len();
    let mut axes = Vec::new();
    let mut coded: Vec<Vec<f64>> = Vec::new();
    for p in &shown {
        let (lo, hi) = finite_range(&p.values);
        let ticks: Vec<(f64, String)> = match &p.kind {
            ParamKind::Categorical { labels } => labels
                .iter()
                .enumerate()
                .map(|(i, l)| {
                    (
                        position(i as f64, 0.0, (labels.len() - 1) as f64),
                        l.clone(),
                    )
                })
                .collect(),
            ParamKind::Numeric { .. } => [0.0, 0.5, 1.0]
                .iter()
                .map(|&t| (t, p.label(lo + (hi - lo) * t)))
                .collect(),
        };
        let (lo, hi) = match &p.kind {
            ParamKind::Categorical { labels } => (0.0, (labels.len() - 1) as f64),
            ParamKind::Numeric { .. } => (lo, hi),
        };
        axes.push(ParallelAxis {
            name: match p.kind {
                ParamKind::Numeric { log: true } => format!("{} (log)", p.name),
                _ => p.name.clone(),
            },
            ticks,
        });
        coded.push(p.values.iter().map(|&v| position(v, lo, hi)).collect());
    }
    let (lo, hi) = finite_range(&table.scores);
    axes.push(ParallelAxis {
        name: "valid acc (%)".into(),
        ticks: [0.0, 0.5, 1.0]
            .iter()
            .map(|&t| (t, format!("{:.1}", lo + (hi - lo) * t)))
            .collect(),
    });
    coded.push(table.scores.iter().map(|&s| position(s, lo, hi)).collect());
    let mut order: Vec<usize> = (0..table.len()).collect();
    order.sort_by(|&a, &b| table.scores[a].total_cmp(&table.scores[b]));
    let lines = order
        .iter()
        .map(|&i| {
            let score = coded.last().map_or(0.0, |c| c[i]);
            ParallelLine {
                values: coded.iter().map(|c| c[i]).collect(),
                color: viridis(score),
            }
        })
        .collect();
    let panel = ParallelPanel {
        axes,
        lines,
        caption: format!(
            "one line per trial, coloured by validation accuracy (purple {lo:.1}% to yellow \
             {hi:.1}%); {} epochs each{}",
            table.epochs,
            match left_out {
                0 => String::new(),
                n => format!("; {n} conditional or rarely varied hyperparameters not shown"),
            }
        ),
    };
    let k = shown.len() + 1;
    Chart::new(
        format!(
            "{}: {} trials in parallel coordinates",
            stage_title(stage),
            table.len()
        ),
        ((200 * k as u32 + 180).max(760), 520),
        Figure {
            panels: vec![Panel::Parallel(panel)],
            cols: 1,
        },
    )
}

/// Whether a column has two different values among the trials that have it.
fn varies(p: &ParamColumn) -> bool {
    let mut finite = p.values.iter().filter(|v| v.is_finite());
    finite
        .next()
        .is_some_and(|first| finite.any(|v| v != first))
}

/// `v` mapped from `lo..=hi` to 0..=1 (0.5 when the range is a point; NaN stays NaN).
fn position(v: f64, lo: f64, hi: f64) -> f64 {
    if hi > lo || v.is_nan() {
        (v - lo) / (hi - lo)
    } else {
        0.5
    }
}

/// The share of the validation accuracy's variance that each varying hyperparameter of
/// `stage` explains on its own: first-order fANOVA on a random-forest surrogate of the
/// finished trials ([`crate::hpo::importance`], default settings); the [`MAX_BARS`]
/// largest are shown.
pub fn hpo_importance(records: &[EvalRecord], stage: Stage) -> Result<Chart> {
    let table = TrialTable::from_records(records, stage)?;
    let mut found = importance(&table, &ImportanceConfig::default())?;
    let explained: f64 = found.iter().map(|i| i.fraction).sum();
    let rest = found.len().saturating_sub(MAX_BARS);
    found.truncate(MAX_BARS);
    let n = found.len();
    let panel = BarPanel {
        subtitle: Some(format!(
            "first-order fANOVA, random forest on {} trials ({} epochs each); {:.0}% is \
             interaction or noise",
            table.len(),
            table.epochs,
            100.0 * (1.0 - explained).max(0.0),
        )),
        categories: found.iter().map(|i| i.name.clone()).collect(),
        groups: vec![BarGroup {
            name: "importance".into(),
            color: BLUE,
            values: found.iter().map(|i| 100.0 * i.fraction).collect(),
            errors: Vec::new(),
        }],
        category_label: match rest {
            0 => "hyperparameter".into(),
            _ => format!("hyperparameter (top {n} of {})", n + rest),
        },
        value_label: "share of the variance of validation accuracy (%)".into(),
        horizontal: true,
        decimals: 1,
        value_suffix: "%".into(),
        ref_lines: Vec::new(),
        value_range: Some((0.0, 100.0)),
    };
    Chart::new(
        format!("{}: hyperparameter importance", stage_title(stage)),
        (1000, 160 + 60 * n as u32),
        Figure {
            panels: vec![Panel::Bars(panel)],
            cols: 1,
        },
    )
}

/// The operator of every activation slot chosen by each run (a row per run, e.g. per
/// seed; a column per slot), coloured as in [`super::operators`].
pub fn operator_choices(runs: &[(String, ActivationPlan)]) -> Result<Chart> {
    let Some((_, first)) = runs.first() else {
        return Err(Error::Config("no run to show the operators of".into()));
    };
    let slots = first.len();
    if slots == 0 {
        return Err(Error::Config("the activation plan has no slot".into()));
    }
    if let Some((name, plan)) = runs.iter().find(|(_, p)| p.len() != slots) {
        return Err(Error::Config(format!(
            "run {name} has {} activation slots, the first run {slots}",
            plan.len()
        )));
    }
    let tiles = runs
        .iter()
        .flat_map(|(_, plan)| plan.ops().iter())
        .map(|&op| Tile {
            label: op.name().to_string(),
            sublabel: String::new(),
            fill: op_color(op),
        })
        .collect();
    let panel = TilePanel {
        tiles,
        cols: slots,
        caption: "activation slot (forward order) → chosen operator, one row per run".into(),
        row_labels: runs.iter().map(|(name, _)| name.clone()).collect(),
        col_labels: (0..slots).map(|i| format!("slot {i}")).collect(),
    };
    Chart::new(
        format!("Operators chosen across {} runs", runs.len()),
        (
            (slots as u32 * 110 + 160).max(520),
            110 + runs.len() as u32 * 60,
        ),
        Figure {
            panels: vec![Panel::Tiles(panel)],
            cols: 1,
        },
    )
}
