//! Charts of the per-epoch log and of results over seeds: every arm's validation curve,
//! the learnt scales per layer, and Table 1 as means with 95% intervals beside the paper.

use super::figure::{BarGroup, BarPanel, Figure, Mark, Panel, RefLine, Series, Shape, XyPanel};
use super::palette::{arm_color, arm_label, Stroke, BLUE, GREY, ORANGE, SKY_BLUE};
use super::Chart;
use crate::experiment::{Arm, EvalRecord, Stage};
use crate::report::SeedSummary;
use crate::{Error, Result};

/// Validation accuracy and training loss per epoch of the dense training and every arm's
/// final fine-tune (first repeat), with a ring at each one's best epoch (the weights tested).
pub fn arm_curves(records: &[EvalRecord]) -> Result<Chart> {
    let mut acc = Vec::new();
    let mut loss = Vec::new();
    let stages = std::iter::once((Stage::Dense, "dense"))
        .chain(Arm::ALL.iter().map(|a| (Stage::Final(*a), a.name())));
    for (stage, name) in stages {
        let Some(r) = records.iter().find(|r| r.stage == stage && r.step == 0) else {
            continue;
        };
        if r.epochs.is_empty() {
            continue;
        }
        let color = arm_color(name);
        let x = |i: usize| (i + 1) as f64;
        let line = |pts: Vec<(f64, f64)>| Series {
            name: arm_label(name).to_string(),
            color,
            mark: Mark::Line {
                width: 2,
                stroke: Stroke::Solid,
            },
            points: pts,
        };
        let valid: Vec<(f64, f64)> = r
            .epochs
            .iter()
            .enumerate()
            .map(|(i, e)| (x(i), e.valid_acc.unwrap_or(f64::NAN)))
            .collect();
        acc.push(line(valid.clone()));
        if let Some(b) = r.best_epoch.filter(|&b| b < valid.len()) {
            acc.push(Series {
                name: String::new(),
                color,
                mark: Mark::Points {
                    shape: Shape::Ring,
                    size: 6,
                },
                points: vec![valid[b]],
            });
        }
        loss.push(line(
            r.epochs
                .iter()
                .enumerate()
                .map(|(i, e)| (x(i), e.train_loss))
                .collect(),
        ));
    }
    if acc.is_empty() {
        return Err(Error::Config(
            "no dense training or final fine-tune with a per-epoch log".into(),
        ));
    }
    let panel = |subtitle: &str, y: &str, series: Vec<Series>| {
        Panel::Xy(XyPanel {
            subtitle: Some(subtitle.into()),
            x_label: "epoch".into(),
            y_label: y.into(),
            series,
            integer_x: true,
            h_lines: Vec::new(),
        })
    };
    Chart::new(
        "Per-epoch curves of every arm (ring: best validation epoch)",
        (1280, 460),
        Figure {
            panels: vec![
                panel("Validation accuracy", "top-1 accuracy (%)", acc),
                panel("Training loss", "cross-entropy loss (nats)", loss),
            ],
            cols: 2,
        },
    )
}

/// The learnt input and output scales (alpha, beta) of every activation slot of one
/// evaluation, with the operators' own parameters in the slot labels.
pub fn learnt_scales(record: &EvalRecord) -> Result<Chart> {
    let n = record.plan.len();
    if n == 0 || record.alphas.len() != n || record.betas.len() != n {
        return Err(Error::Config(format!(
            "{} step {}: no scales to plot",
            record.stage, record.step
        )));
    }
    let categories = (0..n)
        .map(|i| {
            let op = record.plan.ops()[i];
            let params = record.op_params.get(i).filter(|p| !p.is_empty());
            match params {
                Some(p) => {
                    let vals: Vec<String> = op
                        .param_names()
                        .iter()
                        .zip(p)
                        .map(|(k, v)| format!("{k}={v:.2}"))
                        .collect();
                    format!("{i}: {op} ({})", vals.join(", "))
                }
                None => format!("{i}: {op}"),
            }
        })
        .collect();
    let panel = BarPanel {
        subtitle: Some("f(x) = beta * op(alpha * x); 1.0 is where both start".into()),
        categories,
        groups: vec![
            BarGroup {
                name: "alpha (inside)".into(),
                color: SKY_BLUE,
                values: record.alphas.clone(),
                errors: Vec::new(),
            },
            BarGroup {
                name: "beta (outside)".into(),
                color: BLUE,
                values: record.betas.clone(),
                errors: Vec::new(),
            },
        ],
        category_label: "activation slot".into(),
        value_label: "learnt value (unitless)".into(),
        horizontal: true,
        decimals: 3,
        value_suffix: String::new(),
        ref_lines: vec![RefLine {
            value: 1.0,
            label: "start".into(),
            color: GREY,
        }],
        value_range: None,
    };
    Chart::new(
        format!(
            "Learnt scales per layer: {} step {}",
            record.stage, record.step
        ),
        (1000, 140 + 70 * n as u32),
        Figure {
            panels: vec![Panel::Bars(panel)],
            cols: 1,
        },
    )
}

/// Table 1 over seeds: every arm's mean test accuracy with its 95% interval beside the
/// paper's number, and the paired per-seed differences against magnitude pruning (and
/// SAFS against Stage 1) with theirs.
pub fn seed_summary_chart(s: &SeedSummary) -> Result<Chart> {
    let paper = s.paper_row();
    let nan = f64::NAN;
    let mut cats = vec!["dense".to_string()];
    let mut ours = vec![s.dense.map_or(nan, |d| d.mean)];
    let mut ours_err = vec![s.dense.and_then(|d| d.ci95).unwrap_or(nan)];
    let mut theirs = vec![paper.as_ref().and_then(|r| r.dense).unwrap_or(nan)];
    for (arm, sum) in &s.arms {
        cats.push(arm.title().to_string());
        ours.push(sum.map_or(nan, |d| d.mean));
        ours_err.push(sum.and_then(|d| d.ci95).unwrap_or(nan));
        theirs.push(paper.as_ref().and_then(|r| r.arm(*arm)).unwrap_or(nan));
    }
    if ours.iter().all(|v| !v.is_finite()) {
        return Err(Error::Config("the summary has no accuracy".into()));
    }
    let label = format!("ours: mean ± 95% CI, {} seeds", s.seeds.len());
    let paper_label = "paper (Loni et al. 2023, one seed)".to_string();
    let arms = BarPanel {
        subtitle: Some("Top-1 test accuracy".into()),
        categories: cats,
        groups: vec![
            BarGroup {
                name: label.clone(),
                color: BLUE,
                values: ours,
                errors: ours_err,
            },
            BarGroup {
                name: paper_label.clone(),
                color: ORANGE,
                values: theirs,
                errors: Vec::new(),
            },
        ],
        category_label: "arm".into(),
        value_label: "top-1 test accuracy (%)".into(),
        decimals: 1,
        ..BarPanel::default()
    };
    let mut dcats = Vec::new();
    let (mut dv, mut de, mut dp) = (Vec::new(), Vec::new(), Vec::new());
    for d in &s.paired {
        let short = |a: Arm| match a {
            Arm::MagnitudePruning => "MP",
            other => other.title(),
        };
        dcats.push(format!("{} − {}", short(d.arm), short(d.minus)));
        dv.push(d.summary.map_or(nan, |x| x.mean));
        de.push(d.summary.and_then(|x| x.ci95).unwrap_or(nan));
        dp.push(
            paper
                .as_ref()
                .and_then(|r| Some(r.arm(d.arm)? - r.arm(d.minus)?))
                .unwrap_or(nan),
        );
    }
    let diffs = BarPanel {
        subtitle: Some("Paired per-seed differences".into()),
        categories: dcats,
        groups: vec![
            BarGroup {
                name: label,
                color: BLUE,
                values: dv,
                errors: de,
            },
            BarGroup {
                name: paper_label,
                color: ORANGE,
                values: dp,
                errors: Vec::new(),
            },
        ],
        category_label: "difference".into(),
        value_label: "accuracy points".into(),
        decimals: 1,
        ref_lines: vec![RefLine {
            value: 0.0,
            label: "no difference".into(),
            color: GREY,
        }],
        ..BarPanel::default()
    };
    Chart::new(
        format!(
            "Table 1 over seeds: {} / {} at {}% pruning, {} budget",
            s.model,
            s.dataset,
            super::figure::tick(s.prune_rate * 100.0),
            s.budget
        ),
        (1400, 520),
        Figure {
            panels: vec![Panel::Bars(arms), Panel::Bars(diffs)],
            cols: 2,
        },
    )
}
