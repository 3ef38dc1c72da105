//! The Table 1 layout (one row per run) and the text rendering of any frame.

use polars::prelude::{AnyValue, Column, DataFrame};

use crate::experiment::ResultRow;
use crate::Result;

/// The five arms of Table 1, in column order.
pub const ARMS: [&str; 5] = ["dense", "magnitude_pruning", "stage1", "stage2", "safs"];

/// The arm values of a row, in [`ARMS`] order.
pub(crate) fn arm_values(row: &ResultRow) -> [Option<f64>; 5] {
    [
        row.dense,
        row.magnitude_pruning,
        row.stage1,
        row.stage2,
        row.safs,
    ]
}

/// Table 1 layout: model, dataset, prune_rate, seed, budget, the five arms and
/// gain (SAFS minus magnitude pruning); nulls where an arm is missing.
pub fn table1_frame(rows: &[ResultRow]) -> Result<DataFrame> {
    let n = rows.len();
    let mut columns = vec![
        Column::new(
            "model".into(),
            rows.iter().map(|r| r.model.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "dataset".into(),
            rows.iter().map(|r| r.dataset.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "prune_rate".into(),
            rows.iter().map(|r| r.prune_rate).collect::<Vec<_>>(),
        ),
        Column::new(
            "seed".into(),
            rows.iter().map(|r| r.seed).collect::<Vec<_>>(),
        ),
        Column::new(
            "budget".into(),
            rows.iter().map(|r| r.budget.as_str()).collect::<Vec<_>>(),
        ),
    ];
    for (k, arm) in ARMS.iter().enumerate() {
        let values: Vec<Option<f64>> = rows.iter().map(|r| arm_values(r)[k]).collect();
        columns.push(Column::new((*arm).into(), values));
    }
    columns.push(Column::new(
        "gain".into(),
        rows.iter().map(ResultRow::gain).collect::<Vec<_>>(),
    ));
    Ok(DataFrame::new(n, columns)?)
}

/// Long format, one row per (run, arm) with a value: model, dataset, prune_rate, seed,
/// budget, arm, accuracy (what a sweep's merged `runs_long.csv` holds).
pub fn long_frame(rows: &[ResultRow]) -> Result<DataFrame> {
    let mut cells: Vec<(&ResultRow, &str, f64)> = Vec::new();
    for r in rows {
        for (arm, v) in ARMS.iter().zip(arm_values(r)) {
            if let Some(v) = v {
                cells.push((r, arm, v));
            }
        }
    }
    let n = cells.len();
    let columns = vec![
        Column::new(
            "model".into(),
            cells.iter().map(|c| c.0.model.as_str()).collect::<Vec<_>>(),
        ),
        Column::new(
            "dataset".into(),
            cells
                .iter()
                .map(|c| c.0.dataset.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "prune_rate".into(),
            cells.iter().map(|c| c.0.prune_rate).collect::<Vec<_>>(),
        ),
        Column::new(
            "seed".into(),
            cells.iter().map(|c| c.0.seed).collect::<Vec<_>>(),
        ),
        Column::new(
            "budget".into(),
            cells
                .iter()
                .map(|c| c.0.budget.as_str())
                .collect::<Vec<_>>(),
        ),
        Column::new("arm".into(), cells.iter().map(|c| c.1).collect::<Vec<_>>()),
        Column::new(
            "accuracy".into(),
            cells.iter().map(|c| c.2).collect::<Vec<_>>(),
        ),
    ];
    Ok(DataFrame::new(n, columns)?)
}

/// The paper's Table 1 (99% pruning, top-1 test accuracy), as seed 0 of budget "paper".
pub fn paper_table1() -> Vec<ResultRow> {
    let row = |model: &str, dataset: &str, acc: [f64; 5]| ResultRow {
        model: model.to_string(),
        dataset: dataset.to_string(),
        prune_rate: 0.99,
        seed: 0,
        budget: "paper".to_string(),
        dense: Some(acc[0]),
        magnitude_pruning: Some(acc[1]),
        stage1: Some(acc[2]),
        stage2: Some(acc[3]),
        safs: Some(acc[4]),
    };
    vec![
        row("lenet5", "mnist", [98.49, 46.69, 61.63, 60.20, 62.22]),
        row("vgg16", "cifar10", [86.76, 70.32, 78.11, 80.97, 79.20]),
        row("resnet18", "cifar10", [89.86, 77.55, 79.34, 82.74, 83.88]),
        row(
            "efficientnet_b0",
            "imagenet16",
            [18.41, 10.96, 11.84, 11.70, 12.50],
        ),
    ]
}

/// Float columns shown exactly rather than rounded to 2 decimals (0.999 must not read 1.00).
const EXACT_FLOAT_COLUMNS: [&str; 1] = ["prune_rate"];

/// One cell as text: floats with 2 decimals, nulls as `null`, strings unquoted.
fn cell(value: &AnyValue<'_>, exact: bool) -> String {
    match value {
        AnyValue::Float64(v) if !exact => format!("{v:.2}"),
        AnyValue::Float32(v) if !exact => format!("{v:.2}"),
        AnyValue::Float64(v) => v.to_string(),
        AnyValue::Float32(v) => v.to_string(),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        other => other.to_string(),
    }
    .replace('|', "\\|")
    .replace('\n', " ")
}

/// Renders a frame as a Markdown table for the CLI: every row and column, no
/// truncation, floats with 2 decimals (`prune_rate` exact), numbers right-aligned.
///
/// Polars' own `Display` is not used: its width and column limits are process-wide
/// environment variables (`POLARS_TABLE_WIDTH`, `POLARS_FMT_MAX_COLS`) and it falls
/// back to 100 characters when stdout is not a terminal, which cuts a Table 1 row.
pub fn format_table(df: &DataFrame) -> String {
    let height = df.height();
    let mut heads = Vec::with_capacity(df.width());
    let mut bodies = Vec::with_capacity(df.width());
    let mut right = Vec::with_capacity(df.width());
    for col in df.columns() {
        let exact = EXACT_FLOAT_COLUMNS.contains(&col.name().as_str());
        let body: Vec<String> = (0..height)
            .map(|i| {
                col.get(i)
                    .map_or_else(|_| "?".to_string(), |v| cell(&v, exact))
            })
            .collect();
        heads.push(col.name().replace('|', "\\|"));
        bodies.push(body);
        right.push(col.dtype().is_primitive_numeric());
    }
    let widths: Vec<usize> = heads
        .iter()
        .zip(&bodies)
        .map(|(h, b)| {
            b.iter()
                .map(|s| s.chars().count())
                .chain([h.chars().count(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let pad = |s: &str, w: usize, right: bool| {
        let fill = " ".repeat(w.saturating_sub(s.chars().count()));
        if right {
            format!("{fill}{s}")
        } else {
            format!("{s}{fill}")
        }
    };
    let line = |cells: Vec<String>| format!("| {} |\n", cells.join(" | "));
    let mut out = String::new();
    if heads.is_empty() {
        return out;
    }
    out += &line(
        heads
            .iter()
            .zip(&widths)
            .zip(&right)
            .map(|((h, &w), &r)| pad(h, w, r))
            .collect(),
    );
    out += &line(
        widths
            .iter()
            .zip(&right)
            .map(|(&w, &r)| {
                if r {
                    format!("{}:", "-".repeat(w - 1))
                } else {
                    format!(":{}", "-".repeat(w - 1))
                }
            })
            .collect(),
    );
    for i in 0..height {
        out += &line(
            bodies
                .iter()
                .zip(&widths)
                .zip(&right)
                .map(|((b, &w), &r)| pad(&b[i], w, r))
                .collect(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn long_frame_has_one_row_per_present_arm() {
        let mut rows = paper_table1();
        rows.truncate(2);
        rows[1].stage2 = None;
        let df = long_frame(&rows).unwrap();
        assert_eq!(df.height(), 5 + 4);
        let col = df.column("arm").unwrap().str().unwrap();
        let arms: Vec<&str> = (0..df.height()).map(|i| col.get(i).unwrap()).collect();
        assert_eq!(&arms[5..], ["dense", "magnitude_pruning", "stage1", "safs"]);
        let acc = df.column("accuracy").unwrap().f64().unwrap();
        assert_eq!(acc.get(1), rows[0].magnitude_pruning);
        assert_eq!(acc.get(8), rows[1].safs);
    }

    #[test]
    fn table1_gain_and_nulls() {
        let mut rows = paper_table1();
        rows.truncate(1);
        let mut partial = rows[0].clone();
        partial.seed = 1;
        partial.safs = None;
        partial.stage2 = None;
        rows.push(partial);
        let df = table1_frame(&rows).unwrap();
        assert_eq!(df.shape(), (2, 11));
        let names: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "model",
                "dataset",
                "prune_rate",
                "seed",
                "budget",
                "dense",
                "magnitude_pruning",
                "stage1",
                "stage2",
                "safs",
                "gain"
            ]
        );
        let gain = df.column("gain").unwrap().f64().unwrap();
        assert_close(gain.get(0).unwrap(), 62.22 - 46.69);
        assert_close(gain.get(0).unwrap(), 15.53);
        assert_eq!(gain.get(1), None);
        let safs = df.column("safs").unwrap().f64().unwrap();
        assert_eq!(safs.get(1), None);
        assert_eq!(df.column("stage2").unwrap().null_count(), 1);
        assert_eq!(
            df.column("magnitude_pruning")
                .unwrap()
                .f64()
                .unwrap()
                .get(1),
            Some(46.69)
        );
        assert_eq!(df.column("seed").unwrap().u64().unwrap().get(1), Some(1));
        assert_eq!(
            df.column("model").unwrap().str().unwrap().get(0),
            Some("lenet5")
        );
    }

    #[test]
    fn paper_gains() {
        let rows = paper_table1();
        let got: Vec<(&str, &str, f64)> = rows
            .iter()
            .map(|r| (r.model.as_str(), r.dataset.as_str(), r.gain().unwrap()))
            .collect();
        let want = [
            ("lenet5", "mnist", 15.53),
            ("vgg16", "cifar10", 8.88),
            ("resnet18", "cifar10", 6.33),
            ("efficientnet_b0", "imagenet16", 1.54),
        ];
        assert_eq!(got.len(), want.len());
        for ((m, d, g), (wm, wd, wg)) in got.iter().zip(want) {
            assert_eq!((*m, *d), (wm, wd));
            assert_close(*g, wg);
        }
        assert!(rows
            .iter()
            .all(|r| r.prune_rate == 0.99 && r.seed == 0 && r.budget == "paper"));
        let df = table1_frame(&rows).unwrap();
        assert_eq!(df.shape(), (4, 11));
        assert_eq!(
            df.column("dense").unwrap().f64().unwrap().get(3),
            Some(18.41)
        );
    }

    #[test]
    fn format_table_full_row_two_decimals() {
        let mut rows = paper_table1();
        rows[1].stage2 = None;
        let text = format_table(&table1_frame(&rows).unwrap());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2 + 4, "{text}");
        for name in ["model", "magnitude_pruning", "safs", "gain"] {
            assert!(lines[0].contains(name), "{text}");
        }
        // Every column of the LeNet-5 row, floats rounded to 2 decimals.
        let cells: Vec<&str> = lines[2]
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        assert_eq!(
            cells,
            [
                "lenet5", "mnist", "0.99", "0", "paper", "98.49", "46.69", "61.63", "60.20",
                "62.22", "15.53"
            ]
        );
        assert_eq!(
            lines[3].split('|').nth(9).map(str::trim),
            Some("null"),
            "{text}"
        );
        assert!(
            lines[1].starts_with("| :---") && lines[1].ends_with("----: |"),
            "{text}"
        );
        // Numbers are right-aligned: the gain column ends at the same place on every row.
        let ends: Vec<usize> = lines.iter().map(|l| l.len()).collect();
        assert!(ends.iter().all(|&e| e == ends[0]), "{text}");
    }

    #[test]
    fn format_table_exact_prune_rate_and_escaping() {
        let df = DataFrame::new(
            1,
            vec![
                Column::new("prune_rate".into(), [0.999]),
                Column::new("valid_acc".into(), [12.3456]),
                Column::new("reason".into(), ["a|b"]),
            ],
        )
        .unwrap();
        let text = format_table(&df);
        let row = text.lines().nth(2).unwrap();
        assert!(row.contains("0.999"), "{text}");
        assert!(row.contains("12.35"), "{text}");
        assert!(row.contains("a\\|b"), "{text}");
        assert_eq!(format_table(&DataFrame::empty()), "");
    }
}
