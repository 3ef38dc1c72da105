//! The evaluation log (`evals.jsonl`) as a DataFrame, one row per evaluation.

use polars::prelude::{Column, DataFrame};

use super::hparams::{flat_hparams, hparam_columns, hparam_keys};
use crate::experiment::{EvalRecord, EvalStatus};
use crate::Result;

/// Joins numbers with commas, each in Rust's shortest round-trip form.
fn join_f64(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The fixed columns of [`evals_frame`], in order; the hyperparameters come after `plan`.
const FIXED: [&str; 10] = [
    "stage",
    "step",
    "plan",
    "alpha",
    "beta",
    "valid_acc",
    "test_acc",
    "status",
    "reason",
    "seconds",
];

/// One row per record: stage, step, plan, then one column per hyperparameter (nested
/// settings as dotted names such as `optimizer.lr`, null where a record has none), alpha,
/// beta (comma-joined), valid_acc, test_acc (null when absent), status ("ok"/"failed"),
/// reason (null when ok), seconds.
pub fn evals_frame(records: &[EvalRecord]) -> Result<DataFrame> {
    let n = records.len();
    let mut stage = Vec::with_capacity(n);
    let mut step = Vec::with_capacity(n);
    let mut plan = Vec::with_capacity(n);
    let mut alpha = Vec::with_capacity(n);
    let mut beta = Vec::with_capacity(n);
    let mut valid_acc = Vec::with_capacity(n);
    let mut test_acc = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut reason: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut seconds = Vec::with_capacity(n);
    for r in records {
        stage.push(r.stage.name());
        step.push(r.step as u64);
        plan.push(r.plan.to_string());
        alpha.push(join_f64(&r.alphas));
        beta.push(join_f64(&r.betas));
        valid_acc.push(r.valid_acc);
        test_acc.push(r.test_acc);
        match &r.status {
            EvalStatus::Ok => {
                status.push("ok");
                reason.push(None);
            }
            EvalStatus::Failed(why) => {
                status.push("failed");
                reason.push(Some(why.as_str()));
            }
        }
        seconds.push(r.seconds);
    }
    let flat: Vec<_> = records.iter().map(|r| flat_hparams(&r.hparams)).collect();
    let mut columns = vec![
        Column::new("stage".into(), stage),
        Column::new("step".into(), step),
        Column::new("plan".into(), plan),
    ];
    columns.extend(hparam_columns(&flat, &hparam_keys(&flat, false), &FIXED));
    columns.extend([
        Column::new("alpha".into(), alpha),
        Column::new("beta".into(), beta),
        Column::new("valid_acc".into(), valid_acc),
        Column::new("test_acc".into(), test_acc),
        Column::new("status".into(), status),
        Column::new("reason".into(), reason),
        Column::new("seconds".into(), seconds),
    ]);
    Ok(DataFrame::new(n, columns)?)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use polars::prelude::{AnyValue, DataType};

    use super::*;
    use crate::activation::{ActivationPlan, Op};
    use crate::experiment::{Arm, Stage};

    /// Three records: an ok search step, a failed one, an ok final with a test score.
    pub(crate) fn sample_records() -> Vec<EvalRecord> {
        let mut hp = BTreeMap::new();
        hp.insert("optimizer".to_string(), serde_json::json!("sgd"));
        hp.insert("lr".to_string(), serde_json::json!(0.01));
        vec![
            EvalRecord {
                stage: Stage::Search(Arm::Stage1),
                step: 0,
                plan: ActivationPlan(vec![Op::Relu, Op::Swish]),
                hparams: hp.clone(),
                alphas: vec![1.0, 1.0],
                betas: vec![1.0, 1.0],
                op_params: vec![vec![], vec![]],
                valid_acc: 55.5,
                test_acc: None,
                best_epoch: None,
                epochs: Vec::new(),
                train_images: 0,
                status: EvalStatus::Ok,
                seconds: 1.25,
            },
            EvalRecord {
                stage: Stage::Search(Arm::Stage2),
                step: 3,
                plan: ActivationPlan(vec![Op::Gelu, Op::Relu]),
                hparams: BTreeMap::new(),
                alphas: vec![0.5, 2.0],
                betas: vec![1.5, 0.25],
                op_params: vec![vec![], vec![]],
                valid_acc: 0.0,
                test_acc: None,
                best_epoch: None,
                epochs: Vec::new(),
                train_images: 0,
                status: EvalStatus::Failed("loss is NaN at epoch 2".to_string()),
                seconds: 0.5,
            },
            EvalRecord {
                stage: Stage::Final(Arm::Safs),
                step: 0,
                plan: ActivationPlan(vec![Op::Swish, Op::Elu]),
                hparams: hp,
                alphas: vec![1.125, 0.875],
                betas: vec![0.75, 1.0],
                op_params: vec![vec![], vec![]],
                valid_acc: 63.0,
                test_acc: Some(62.22),
                best_epoch: None,
                epochs: Vec::new(),
                train_images: 0,
                status: EvalStatus::Ok,
                seconds: 10.0,
            },
        ]
    }

    #[test]
    fn evals_frame_columns_and_rows() {
        let df = evals_frame(&sample_records()).unwrap();
        assert_eq!(df.shape(), (3, 12));
        let names: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "stage",
                "step",
                "plan",
                "lr",
                "optimizer",
                "alpha",
                "beta",
                "valid_acc",
                "test_acc",
                "status",
                "reason",
                "seconds"
            ]
        );
        assert_eq!(df.column("step").unwrap().dtype(), &DataType::UInt64);
        assert_eq!(df.column("test_acc").unwrap().dtype(), &DataType::Float64);

        // The final row, every value.
        let row = df.get(2).unwrap();
        assert_eq!(row[0], AnyValue::String("safs_final"));
        assert_eq!(row[1], AnyValue::UInt64(0));
        assert_eq!(row[2], AnyValue::String("swish,elu"));
        assert_eq!(row[3], AnyValue::Float64(0.01));
        assert_eq!(row[4], AnyValue::String("sgd"));
        assert_eq!(row[5], AnyValue::String("1.125,0.875"));
        assert_eq!(row[6], AnyValue::String("0.75,1"));
        assert_eq!(row[7], AnyValue::Float64(63.0));
        assert_eq!(row[8], AnyValue::Float64(62.22));
        assert_eq!(row[9], AnyValue::String("ok"));
        assert_eq!(row[10], AnyValue::Null);
        assert_eq!(row[11], AnyValue::Float64(10.0));

        // Search steps have no test score.
        let test = df.column("test_acc").unwrap().f64().unwrap();
        assert_eq!(test.get(0), None);
        assert_eq!(test.null_count(), 2);

        // The failed record keeps its reason.
        let status = df.column("status").unwrap().str().unwrap();
        let reason = df.column("reason").unwrap().str().unwrap();
        assert_eq!(status.get(1), Some("failed"));
        assert_eq!(reason.get(1), Some("loss is NaN at epoch 2"));
        assert_eq!(reason.get(0), None);
        assert_eq!(df.column("step").unwrap().u64().unwrap().get(1), Some(3));
        // A record without hyperparameters has nulls there.
        assert_eq!(df.column("lr").unwrap().f64().unwrap().get(1), None);
        assert_eq!(df.column("optimizer").unwrap().str().unwrap().get(1), None);
    }

    #[test]
    fn evals_frame_empty() {
        let df = evals_frame(&[]).unwrap();
        assert_eq!(df.shape(), (0, 10));
    }
}
