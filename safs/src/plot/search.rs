//! The Stage 1 search and the Stage 2 HPO over time, and the best HPO trials as a table.

use polars::prelude::{Column, DataFrame};

use super::figure::{Figure, Mark, Panel, Series, Shape, XyPanel};
use super::palette::{Stroke, BLACK, BLUE, ORANGE, SKY_BLUE, VERMILLION};
use super::Chart;
use crate::experiment::{Arm, EvalRecord, EvalStatus, Stage};
use crate::report::{flat_hparams, hparam_columns, hparam_keys};
use crate::search::SearchStep;
use crate::{Error, Result};

/// One evaluation on a score-over-time chart.
struct Point {
    x: f64,
    score: f64,
    failed: bool,
    /// Whether the search moved to it, when known.
    accepted: Option<bool>,
}

fn dots(name: &str, color: super::Rgb, shape: Shape, size: u32, points: Vec<(f64, f64)>) -> Series {
    Series {
        name: name.to_string(),
        color,
        mark: Mark::Points { shape, size },
        points,
    }
}

/// Scores, the best so far as a staircase, and a triangle where the best improved.
fn history_chart(title: String, x_label: &str, points: &[Point]) -> Result<Chart> {
    let mut best = f64::NEG_INFINITY;
    let mut stairs: Vec<(f64, f64)> = Vec::new();
    let mut improved = Vec::new();
    for p in points
        .iter()
        .filter(|p| !p.failed && p.x.is_finite() && p.score.is_finite())
    {
        if p.score > best {
            if let Some(&(_, prev)) = stairs.last() {
                stairs.push((p.x, prev));
            }
            best = p.score;
            stairs.push((p.x, best));
            improved.push((p.x, best));
        } else if let Some(&(_, prev)) = stairs.last() {
            stairs.push((p.x, prev));
        }
    }
    let ok = |p: &&Point| !p.failed;
    let xy = |p: &Point| (p.x, p.score);
    let mut series = Vec::new();
    if points.iter().any(|p| p.accepted.is_some()) {
        series.push(dots(
            "accepted",
            BLUE,
            Shape::Dot,
            4,
            points
                .iter()
                .filter(ok)
                .filter(|p| p.accepted == Some(true))
                .map(xy)
                .collect(),
        ));
        series.push(dots(
            "rejected",
            SKY_BLUE,
            Shape::Ring,
            4,
            points
                .iter()
                .filter(ok)
                .filter(|p| p.accepted != Some(true))
                .map(xy)
                .collect(),
        ));
    } else {
        series.push(dots(
            "evaluation",
            BLUE,
            Shape::Dot,
            4,
            points.iter().filter(ok).map(xy).collect(),
        ));
    }
    let failed: Vec<(f64, f64)> = points.iter().filter(|p| p.failed).map(xy).collect();
    if !failed.is_empty() {
        series.push(dots("failed (scored 0)", BLACK, Shape::Cross, 5, failed));
    }
    series.push(Series {
        name: "best so far".into(),
        color: ORANGE,
        mark: Mark::Line {
            width: 2,
            stroke: Stroke::Solid,
        },
        points: stairs,
    });
    series.push(dots("new best", VERMILLION, Shape::Triangle, 5, improved));
    let panel = XyPanel {
        x_label: x_label.into(),
        y_label: "validation top-1 accuracy (%)".into(),
        series,
        integer_x: true,
        ..Default::default()
    };
    Chart::new(
        title,
        (900, 480),
        Figure {
            panels: vec![Panel::Xy(panel)],
            cols: 1,
        },
    )
}

/// The records of `stage`, by step; an error when there is none.
fn stage_records(records: &[EvalRecord], stage: Stage) -> Result<Vec<&EvalRecord>> {
    let mut of_stage: Vec<&EvalRecord> = records.iter().filter(|r| r.stage == stage).collect();
    if of_stage.is_empty() {
        return Err(Error::Config(format!(
            "no evaluation of stage {} among {} records",
            stage.name(),
            records.len()
        )));
    }
    of_stage.sort_by_key(|r| r.step);
    Ok(of_stage)
}

fn record_points(records: &[&EvalRecord]) -> Vec<Point> {
    records
        .iter()
        .map(|r| Point {
            x: r.step as f64,
            score: r.valid_acc,
            failed: matches!(r.status, EvalStatus::Failed(_)),
            accepted: None,
        })
        .collect()
}

/// What a stage searches, for titles.
pub(super) fn stage_title(stage: Stage) -> String {
    match stage {
        Stage::Search(Arm::Stage1) => "Stage 1 operator search".into(),
        Stage::Search(Arm::Stage2) => "Stage 2 HPO (ReLU plan)".into(),
        Stage::Search(Arm::Safs) => "SAFS HPO (Stage 1 plan)".into(),
        other => other.name().to_string(),
    }
}

/// Validation accuracy of every evaluation of `stage` (usually [`Stage::Search(Arm::Stage1)`]) per
/// search step, the best so far, and where the best improved. The log does not say which
/// candidates the search accepted; [`search_steps_chart`] shows that from the steps.
pub fn search_trajectory(records: &[EvalRecord], stage: Stage) -> Result<Chart> {
    let of_stage = stage_records(records, stage)?;
    history_chart(
        format!(
            "{}: validation accuracy per step ({} evaluations)",
            stage_title(stage),
            of_stage.len()
        ),
        "search step (evaluation index)",
        &record_points(&of_stage),
    )
}

/// The score of every step of a Stage 1 search (accepted and rejected candidates), the
/// best so far, and where the best improved.
pub fn search_steps_chart(steps: &[SearchStep]) -> Result<Chart> {
    if steps.is_empty() {
        return Err(Error::Config("no search step to plot".into()));
    }
    let points: Vec<Point> = steps
        .iter()
        .map(|s| Point {
            x: s.step as f64,
            score: s.score,
            failed: false,
            accepted: Some(s.accepted),
        })
        .collect();
    history_chart(
        format!("Stage 1 search: score per step ({} steps)", steps.len()),
        "search step (evaluation index)",
        &points,
    )
}

/// Validation accuracy of every HPO trial of `stage` ([`Stage::Search(Arm::Stage2)`] or
/// [`Stage::Search(Arm::Safs)`]), the best so far, and where the best improved.
pub fn hpo_history(records: &[EvalRecord], stage: Stage) -> Result<Chart> {
    let of_stage = stage_records(records, stage)?;
    history_chart(
        format!(
            "{}: validation accuracy per trial ({} trials)",
            stage_title(stage),
            of_stage.len()
        ),
        "trial",
        &record_points(&of_stage),
    )
}

/// The `k` best finished trials of `stage` as a table: `rank`, `trial`, `valid_acc`, then
/// one column per hyperparameter that varies across the stage's trials (nested settings
/// as dotted names such as `optimizer.lr`; whole numbers as integers, other numbers as
/// floats, the rest as text).
pub fn hpo_top_trials(records: &[EvalRecord], stage: Stage, k: usize) -> Result<DataFrame> {
    let of_stage = stage_records(records, stage)?;
    let flat: Vec<_> = of_stage.iter().map(|r| flat_hparams(&r.hparams)).collect();
    let varying = hparam_keys(&flat, true);
    let mut best: Vec<usize> = (0..of_stage.len())
        .filter(|&i| of_stage[i].status == EvalStatus::Ok && of_stage[i].valid_acc.is_finite())
        .collect();
    if best.is_empty() {
        return Err(Error::Config(format!(
            "no finished trial of stage {}",
            stage.name()
        )));
    }
    best.sort_by(|&a, &b| {
        of_stage[b]
            .valid_acc
            .total_cmp(&of_stage[a].valid_acc)
            .then(of_stage[a].step.cmp(&of_stage[b].step))
    });
    best.truncate(k);
    let n = best.len();
    let mut columns = vec![
        Column::new("rank".into(), (1..=n as u32).collect::<Vec<_>>()),
        Column::new(
            "trial".into(),
            best.iter()
                .map(|&i| of_stage[i].step as u64)
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "valid_acc".into(),
            best.iter()
                .map(|&i| of_stage[i].valid_acc)
                .collect::<Vec<_>>(),
        ),
    ];
    let best_flat: Vec<_> = best.iter().map(|&i| flat[i].clone()).collect();
    columns.extend(hparam_columns(
        &best_flat,
        &varying,
        &["rank", "trial", "valid_acc"],
    ));
    Ok(DataFrame::new(n, columns)?)
}
