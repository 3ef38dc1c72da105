//! The finished trials of an HPO stage as a table of numbers: one column per
//! hyperparameter that varies, one score per trial. The input of the parameter
//! importance and of the parallel-coordinate chart.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::experiment::{EvalRecord, EvalStatus, Stage};
use crate::report::{flat_hparams, hparam_keys};
use crate::{Error, Result};

/// How a hyperparameter's values are coded as numbers.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamKind {
    /// Numbers, coded as they are; `log` when they are all positive and span more than
    /// two decades (learning rates, weight decay), so charts and the importance's uniform
    /// measure use log10 of them.
    Numeric { log: bool },
    /// Text (or mixed) values, coded as the index into `labels` (sorted).
    Categorical { labels: Vec<String> },
}

/// One hyperparameter over the trials.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamColumn {
    /// Dotted name (`optimizer.lr`).
    pub name: String,
    /// How the values are coded.
    pub kind: ParamKind,
    /// One coded value per trial (log10 for a log parameter, label index for a
    /// categorical one); NaN where a trial has no value (a conditional parameter).
    pub values: Vec<f64>,
}

impl ParamColumn {
    /// A coded value as a reader writes it (`1e-3`, `adam`).
    pub fn label(&self, coded: f64) -> String {
        match &self.kind {
            ParamKind::Categorical { labels } => labels
                .get(coded.round().max(0.0) as usize)
                .cloned()
                .unwrap_or_default(),
            ParamKind::Numeric { log: true } => format!("{:.2e}", 10f64.powf(coded)),
            ParamKind::Numeric { log: false } => short_number(coded),
        }
    }
}

/// The smallest and largest finite value (`(inf, -inf)` when there is none).
pub(crate) fn finite_range(values: &[f64]) -> (f64, f64) {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        })
}

/// A number in a few characters: whole numbers plainly, tiny and huge ones in scientific
/// notation, others to at most 4 decimals.
fn short_number(v: f64) -> String {
    let a = v.abs();
    if v == v.trunc() && a < 1e9 {
        format!("{v}")
    } else if !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The finished trials of one stage at one budget.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialTable {
    /// The stage the trials belong to.
    pub stage: Stage,
    /// Epochs every trial of the table trained for.
    pub epochs: usize,
    /// Trial index (the record's step) of every row.
    pub trials: Vec<usize>,
    /// The hyperparameters that vary across the rows.
    pub params: Vec<ParamColumn>,
    /// Validation accuracy (%) of every row.
    pub scores: Vec<f64>,
}

impl TrialTable {
    /// The finished trials of `stage`. Under successive halving or BOHB a trial has one
    /// record per rung; the table keeps the budget (epochs trained) with the most finished
    /// trials (the higher budget on a tie), so every score was earned on the same budget.
    /// Failed trials are left out: their score of 0 is a penalty, not a measurement.
    pub fn from_records(records: &[EvalRecord], stage: Stage) -> Result<Self> {
        let done: Vec<&EvalRecord> = records
            .iter()
            .filter(|r| r.stage == stage && r.status == EvalStatus::Ok)
            .filter(|r| r.valid_acc.is_finite())
            .collect();
        let mut per_budget: BTreeMap<usize, usize> = BTreeMap::new();
        for r in &done {
            *per_budget.entry(r.epochs.len()).or_default() += 1;
        }
        let Some((&epochs, _)) = per_budget
            .iter()
            .max_by_key(|&(&budget, &count)| (count, budget))
        else {
            return Err(Error::Config(format!(
                "no finished trial of stage {} among {} records",
                stage.name(),
                records.len()
            )));
        };
        let mut rows: Vec<&EvalRecord> = done
            .into_iter()
            .filter(|r| r.epochs.len() == epochs)
            .collect();
        rows.sort_by_key(|r| r.step);
        let flat: Vec<BTreeMap<String, Value>> =
            rows.iter().map(|r| flat_hparams(&r.hparams)).collect();
        let params = hparam_keys(&flat, true)
            .into_iter()
            .map(|name| code_column(name, &flat))
            .collect();
        Ok(TrialTable {
            stage,
            epochs,
            trials: rows.iter().map(|r| r.step).collect(),
            params,
            scores: rows.iter().map(|r| r.valid_acc).collect(),
        })
    }

    /// Number of trials (rows).
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether the table has no trial.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
}

/// Codes one hyperparameter as numbers (see [`ParamKind`]).
fn code_column(name: String, rows: &[BTreeMap<String, Value>]) -> ParamColumn {
    let raw: Vec<Option<&Value>> = rows
        .iter()
        .map(|m| m.get(&name).filter(|v| !v.is_null()))
        .collect();
    if raw.iter().flatten().all(|v| v.is_number()) {
        let nums: Vec<f64> = raw
            .iter()
            .map(|v| v.and_then(Value::as_f64).unwrap_or(f64::NAN))
            .collect();
        let (lo, hi) = finite_range(&nums);
        let log = lo > 0.0 && hi / lo > 100.0;
        let values = if log {
            nums.iter().map(|v| v.log10()).collect()
        } else {
            nums
        };
        return ParamColumn {
            name,
            kind: ParamKind::Numeric { log },
            values,
        };
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut labels: Vec<String> = raw.iter().flatten().map(|v| text(v)).collect();
    labels.sort();
    labels.dedup();
    let values = raw
        .iter()
        .map(|v| {
            v.and_then(|v| labels.iter().position(|l| *l == text(v)))
                .map_or(f64::NAN, |i| i as f64)
        })
        .collect();
    ParamColumn {
        name,
        kind: ParamKind::Categorical { labels },
        values,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use serde_json::json;

    use super::*;
    use crate::activation::{ActivationPlan, Op};
    use crate::experiment::{Arm, EpochPoint};

    /// A trial record of `stage` with these hyperparameters, score and epochs trained.
    pub(crate) fn trial(
        stage: Stage,
        step: usize,
        hp: Value,
        acc: f64,
        epochs: usize,
    ) -> EvalRecord {
        let point = EpochPoint {
            train_loss: 1.0,
            train_acc: acc,
            valid_acc: Some(acc),
            valid_loss: Some(1.0),
            lr: 0.1,
            seconds: 0.1,
        };
        EvalRecord {
            stage,
            step,
            plan: ActivationPlan(vec![Op::Relu]),
            hparams: serde_json::from_value(hp).unwrap(),
            alphas: vec![1.0],
            betas: vec![1.0],
            op_params: vec![vec![]],
            valid_acc: acc,
            test_acc: None,
            best_epoch: None,
            epochs: vec![point; epochs],
            train_images: 0,
            status: EvalStatus::Ok,
            seconds: 1.0,
        }
    }

    #[test]
    fn trial_table_codes_params_and_keeps_the_fullest_budget() {
        let s = Stage::Search(Arm::Stage2);
        let hp = |lr: f64, opt: &str| json!({"epochs": 9, "optimizer": {"lr": lr, "name": opt}});
        let mut records = vec![
            trial(s, 0, hp(1e-4, "sgd"), 10.0, 2),
            trial(s, 1, hp(1e-2, "adam"), 30.0, 2),
            trial(s, 2, hp(1e-1, "adam"), 20.0, 2),
            // The survivor of the rung: a higher budget with fewer trials.
            trial(s, 1, hp(1e-2, "adam"), 40.0, 6),
            // Another stage, and a failure: both left out.
            trial(Stage::Search(Arm::Safs), 0, hp(1.0, "sgd"), 90.0, 2),
        ];
        let mut failed = trial(s, 3, hp(5e-3, "rmsprop"), 0.0, 2);
        failed.status = EvalStatus::Failed("loss is NaN".into());
        records.push(failed);

        let t = TrialTable::from_records(&records, s).unwrap();
        assert_eq!(t.epochs, 2);
        assert_eq!(t.trials, [0, 1, 2]);
        assert_eq!(t.scores, [10.0, 30.0, 20.0]);
        // `epochs` is the same everywhere: not a column.
        let names: Vec<&str> = t.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["optimizer.lr", "optimizer.name"]);
        let lr = &t.params[0];
        assert_eq!(lr.kind, ParamKind::Numeric { log: true });
        assert!((lr.values[0] + 4.0).abs() < 1e-12 && (lr.values[2] + 1.0).abs() < 1e-12);
        assert_eq!(lr.label(-2.0), "1.00e-2");
        let opt = &t.params[1];
        assert_eq!(
            opt.kind,
            ParamKind::Categorical {
                labels: vec!["adam".into(), "sgd".into()]
            }
        );
        assert_eq!(opt.values, [1.0, 0.0, 0.0]);
        assert_eq!(opt.label(1.0), "sgd");
        let plain = |v| short_number(v);
        assert_eq!(
            [
                plain(256.0),
                plain(0.9),
                plain(0.12345),
                plain(1e-8),
                plain(-2.5)
            ],
            ["256", "0.9", "0.1235", "1.00e-8", "-2.5"]
        );

        let err = TrialTable::from_records(&records, Stage::Dense).unwrap_err();
        assert!(err.to_string().contains("dense"), "{err}");
    }
}
