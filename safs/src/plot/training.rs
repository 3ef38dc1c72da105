//! Training curves of one fine-tune.

use super::figure::{Figure, Mark, Panel, Series, Shape, XyPanel};
use super::palette::{BLUE, BLUISH_GREEN, ORANGE};
use super::Chart;
use crate::train::EpochSummary;
use crate::{Error, Result};

fn line(name: &str, color: super::Rgb, points: Vec<(f64, f64)>) -> Vec<Series> {
    // A line with a dot per epoch, so a one-epoch run still shows.
    vec![
        Series {
            name: name.to_string(),
            color,
            mark: Mark::Line {
                width: 2,
                stroke: super::palette::Stroke::Solid,
            },
            points: points.clone(),
        },
        Series {
            name: String::new(),
            color,
            mark: Mark::Points {
                shape: Shape::Dot,
                size: 3,
            },
            points,
        },
    ]
}

/// Train and validation loss, train and validation accuracy, and the learning rate per
/// epoch, in three panels side by side (epochs counted from 1).
pub fn training_curves(epochs: &[EpochSummary]) -> Result<Chart> {
    if epochs.is_empty() {
        return Err(Error::Config("no epoch to plot".into()));
    }
    let x = |e: &EpochSummary| (e.epoch + 1) as f64;
    let has_valid = epochs.iter().any(|e| e.valid.is_some());
    let valid = |f: fn(&crate::train::Metrics) -> f64| -> Vec<(f64, f64)> {
        epochs
            .iter()
            .map(|e| (x(e), e.valid.as_ref().map_or(f64::NAN, f)))
            .collect()
    };
    let mut loss = line(
        "train",
        BLUE,
        epochs.iter().map(|e| (x(e), e.train_loss)).collect(),
    );
    let mut acc = line(
        "train",
        BLUE,
        epochs.iter().map(|e| (x(e), e.train_acc)).collect(),
    );
    if has_valid {
        loss.extend(line("validation", ORANGE, valid(|m| m.loss)));
        acc.extend(line("validation", ORANGE, valid(|m| m.top1)));
    }
    let lr = line(
        "learning rate",
        BLUISH_GREEN,
        epochs.iter().map(|e| (x(e), e.lr)).collect(),
    );
    let panel = |subtitle: &str, y_label: &str, series: Vec<Series>| {
        Panel::Xy(XyPanel {
            subtitle: Some(subtitle.to_string()),
            x_label: "epoch".into(),
            y_label: y_label.into(),
            series,
            integer_x: true,
            h_lines: Vec::new(),
        })
    };
    Chart::new(
        format!("Training curves ({} epochs)", epochs.len()),
        (1280, 420),
        Figure {
            panels: vec![
                panel("Loss", "cross-entropy loss (nats)", loss),
                panel("Accuracy", "top-1 accuracy (%)", acc),
                panel("Learning rate", "learning rate (unitless)", lr),
            ],
            cols: 3,
        },
    )
}
