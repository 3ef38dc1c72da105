//! Charts of the operators themselves and of an operator plan.

use super::figure::{Figure, Mark, Panel, RefLine, Series, Tile, TilePanel, XyPanel};
use super::palette::{okabe_ito, op_color, op_style, Stroke, GREY};
use super::{check_range, Chart};
use crate::activation::{ActivationPlan, Op};
use crate::{Error, Result};

/// Points sampled along the x range of an operator curve.
const SAMPLES: usize = 400;
/// Step of the central differences in [`operator_derivatives`].
const H: f64 = 1e-5;

fn grid(x_range: (f64, f64)) -> impl Iterator<Item = f64> {
    let (lo, hi) = x_range;
    (0..=SAMPLES).map(move |k| lo + (hi - lo) * k as f64 / SAMPLES as f64)
}

fn check_ops(ops: &[Op]) -> Result<()> {
    if ops.is_empty() {
        return Err(Error::Config("no operator to plot".into()));
    }
    Ok(())
}

fn op_series(op: Op, points: Vec<(f64, f64)>) -> Series {
    let (color, stroke) = op_style(op);
    Series {
        name: op.name().to_string(),
        color,
        mark: Mark::Line { width: 2, stroke },
        points,
    }
}

fn zero_line() -> RefLine {
    RefLine {
        value: 0.0,
        label: String::new(),
        color: GREY,
    }
}

/// Each operator's curve `op(x)` over `x_range` (401 points).
pub fn operators(ops: &[Op], x_range: (f64, f64)) -> Result<Chart> {
    check_ops(ops)?;
    check_range(x_range)?;
    let series = ops
        .iter()
        .map(|&op| op_series(op, grid(x_range).map(|x| (x, op.eval_f64(x))).collect()))
        .collect();
    let panel = XyPanel {
        x_label: "pre-activation x (unitless)".into(),
        y_label: "activation op(x) (unitless)".into(),
        series,
        h_lines: vec![zero_line()],
        ..Default::default()
    };
    Chart::new(
        "Activation operators",
        (860, 520),
        Figure {
            panels: vec![Panel::Xy(panel)],
            cols: 1,
        },
    )
}

/// Each operator's derivative `d op/dx` over `x_range`, by central differences of
/// [`Op::eval_f64`] with step 1e-5.
pub fn operator_derivatives(ops: &[Op], x_range: (f64, f64)) -> Result<Chart> {
    check_ops(ops)?;
    check_range(x_range)?;
    let series = ops
        .iter()
        .map(|&op| {
            let d = |x: f64| (op.eval_f64(x + H) - op.eval_f64(x - H)) / (2.0 * H);
            op_series(op, grid(x_range).map(|x| (x, d(x))).collect())
        })
        .collect();
    let panel = XyPanel {
        x_label: "pre-activation x (unitless)".into(),
        y_label: "derivative d op/dx (central difference)".into(),
        series,
        h_lines: vec![zero_line()],
        ..Default::default()
    };
    Chart::new(
        "Activation operator derivatives",
        (860, 520),
        Figure {
            panels: vec![Panel::Xy(panel)],
            cols: 1,
        },
    )
}

/// The effect of the learnable scales: `beta * op(alpha * x)` for each `(alpha, beta)`,
/// with the unscaled operator (alpha = beta = 1) dashed in black for reference; pairs
/// with a non-finite scale are skipped.
pub fn scaled_operator(op: Op, scales: &[(f64, f64)], x_range: (f64, f64)) -> Result<Chart> {
    check_range(x_range)?;
    let finite: Vec<(f64, f64)> = scales
        .iter()
        .copied()
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    if finite.is_empty() {
        return Err(Error::Config(format!(
            "no finite (alpha, beta) pair to plot for {op} (got {})",
            scales.len()
        )));
    }
    let mut series = vec![Series {
        name: format!("{op}(x)"),
        color: super::palette::BLACK,
        mark: Mark::Line {
            width: 1,
            stroke: Stroke::Dashed,
        },
        points: grid(x_range).map(|x| (x, op.eval_f64(x))).collect(),
    }];
    for (i, &(alpha, beta)) in finite.iter().enumerate() {
        series.push(Series {
            name: format!("α = {}, β = {}", short(alpha), short(beta)),
            color: okabe_ito(i),
            mark: Mark::Line {
                width: 2,
                stroke: Stroke::Solid,
            },
            points: grid(x_range)
                .map(|x| (x, beta * op.eval_f64(alpha * x)))
                .collect(),
        });
    }
    let panel = XyPanel {
        x_label: "pre-activation x (unitless)".into(),
        y_label: format!("β · {op}(α · x) (unitless)"),
        series,
        h_lines: vec![zero_line()],
        ..Default::default()
    };
    Chart::new(
        format!("Scaled activation: β · {op}(α · x)"),
        (860, 520),
        Figure {
            panels: vec![Panel::Xy(panel)],
            cols: 1,
        },
    )
}

/// A number in at most 3 decimals, without trailing zeros.
fn short(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// The operator chosen for every activation slot: one labelled tile per slot in forward
/// order, coloured by operator (the colours of [`operators`]).
pub fn operator_plan(plan: &ActivationPlan) -> Result<Chart> {
    if plan.is_empty() {
        return Err(Error::Config("the activation plan has no slot".into()));
    }
    let n = plan.len();
    let cols = n.min(10);
    let rows = n.div_ceil(cols);
    let tiles = plan
        .ops()
        .iter()
        .enumerate()
        .map(|(i, &op)| Tile {
            label: op.name().to_string(),
            sublabel: format!("slot {i}"),
            fill: op_color(op),
        })
        .collect();
    let panel = TilePanel {
        tiles,
        cols,
        caption: "activation slot (forward order) → chosen operator".into(),
        ..Default::default()
    };
    let width = (cols as u32 * 96 + 40).max(420);
    let height = 40 + rows as u32 * 70 + 70;
    Chart::new(
        format!("Operator plan ({n} slots)"),
        (width, height),
        Figure {
            panels: vec![Panel::Tiles(panel)],
            cols: 1,
        },
    )
}
