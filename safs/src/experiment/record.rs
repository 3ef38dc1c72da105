//! What an experiment writes down: one record per evaluation, one row per finished run.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::protocol::EpochChoice;
use super::Arm;
use crate::activation::ActivationPlan;
use crate::train::EpochSummary;
use crate::Error;

/// The part of the pipeline an evaluation belongs to; with the step index it is the key of
/// an evaluation in the run folder.
///
/// Written as one snake_case word: `dense`, `<arm>_search` (Stage 1's operator search is
/// `stage1_search`, the Stage 2 HPO on the ReLU plan `stage2_search`, on the Stage 1 plan
/// `safs_search`) and `<arm>_final` (`magnitude_pruning_final`, ..., `safs_final`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Dense training.
    Dense,
    /// A candidate or trial of the search that serves this arm.
    Search(Arm),
    /// The final fine-tune of this arm, tested.
    Final(Arm),
}

impl Stage {
    /// The name used in logs and tables.
    pub fn name(self) -> String {
        match self {
            Stage::Dense => "dense".into(),
            Stage::Search(a) => format!("{}_search", a.name()),
            Stage::Final(a) => format!("{}_final", a.name()),
        }
    }

    /// The arm this stage serves (`None` for dense training).
    pub fn arm(self) -> Option<Arm> {
        match self {
            Stage::Dense => None,
            Stage::Search(a) | Stage::Final(a) => Some(a),
        }
    }

    /// Whether this is a search stage (many evaluations, no test accuracy).
    pub fn is_search(self) -> bool {
        matches!(self, Stage::Search(_))
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Stage {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        if s == "dense" {
            return Ok(Stage::Dense);
        }
        // Logs of earlier versions called the magnitude-pruning final "baseline".
        if s == "baseline" {
            return Ok(Stage::Final(Arm::MagnitudePruning));
        }
        let arm = |a: &str| {
            Arm::ALL
                .into_iter()
                .find(|x| x.name() == a)
                .ok_or_else(|| Error::Config(format!("unknown stage '{s}'")))
        };
        if let Some(a) = s.strip_suffix("_search") {
            return Ok(Stage::Search(arm(a)?));
        }
        if let Some(a) = s.strip_suffix("_final") {
            return Ok(Stage::Final(arm(a)?));
        }
        Err(Error::Config(format!(
            "unknown stage '{s}'; expected dense, <arm>_search or <arm>_final"
        )))
    }
}

impl Serialize for Stage {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for Stage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Whether an evaluation finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "reason")]
pub enum EvalStatus {
    /// Training and evaluation finished.
    Ok,
    /// Training diverged or failed; the score counts as 0.
    Failed(String),
}

/// One epoch of a training, as the log keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochPoint {
    /// Mean training loss.
    #[serde(deserialize_with = "non_finite::f64")]
    pub train_loss: f64,
    /// Training top-1 accuracy in percent.
    #[serde(deserialize_with = "non_finite::f64")]
    pub train_acc: f64,
    /// Validation top-1 accuracy in percent.
    pub valid_acc: Option<f64>,
    /// Validation loss.
    pub valid_loss: Option<f64>,
    /// Learning rate of the epoch.
    #[serde(deserialize_with = "non_finite::f64")]
    pub lr: f64,
    /// Wall time of the epoch in seconds.
    pub seconds: f64,
}

impl From<&EpochSummary> for EpochPoint {
    fn from(e: &EpochSummary) -> Self {
        EpochPoint {
            train_loss: e.train_loss,
            train_acc: e.train_acc,
            valid_acc: e.valid.map(|m| m.top1),
            valid_loss: e.valid.map(|m| m.loss),
            lr: e.lr,
            seconds: e.seconds,
        }
    }
}

/// One evaluation of the experiment log (one line of `evals.jsonl`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Pipeline step.
    pub stage: Stage,
    /// Index within the stage (search step, trial or final repeat), from 0.
    pub step: usize,
    /// Operator of every activation slot.
    pub plan: ActivationPlan,
    /// Hyperparameters of the fine-tune, flattened to name -> value.
    pub hparams: BTreeMap<String, serde_json::Value>,
    /// Learnt (or fixed) alpha of every slot after training.
    #[serde(deserialize_with = "non_finite::vec")]
    pub alphas: Vec<f64>,
    /// Learnt (or fixed) beta of every slot after training.
    #[serde(deserialize_with = "non_finite::vec")]
    pub betas: Vec<f64>,
    /// The operators' own parameters of every slot after training (empty for most ops).
    #[serde(default, deserialize_with = "non_finite::vecs")]
    pub op_params: Vec<Vec<f64>>,
    /// The score: validation top-1 accuracy in percent of the best (or, by the protocol,
    /// the last) epoch; 0 when failed.
    pub valid_acc: f64,
    /// Test top-1 accuracy in percent of the weights the training ended with; only final
    /// evaluations (and dense training) have one.
    pub test_acc: Option<f64>,
    /// The epoch whose validation accuracy is the best (from 0).
    #[serde(default)]
    pub best_epoch: Option<usize>,
    /// Every epoch's losses and accuracies.
    #[serde(default)]
    pub epochs: Vec<EpochPoint>,
    /// Training images seen per epoch.
    #[serde(default)]
    pub train_images: usize,
    /// Whether the evaluation finished.
    #[serde(flatten)]
    pub status: EvalStatus,
    /// Wall time in seconds.
    pub seconds: f64,
}

impl EvalRecord {
    /// The one-line account of this evaluation that every progress display prints (the
    /// CLI on stderr, the notebook log): stage and step, plan (cut at 72 characters),
    /// scores, time, and whether it was read back from the log, stopped at a rung, or failed.
    pub fn progress_line(&self, cached: bool) -> String {
        const PLAN_CHARS: usize = 72;
        let plan = self.plan.to_string();
        let plan = if plan.chars().count() > PLAN_CHARS {
            format!("{}…", plan.chars().take(PLAN_CHARS - 1).collect::<String>())
        } else {
            plan
        };
        let test = self
            .test_acc
            .map(|t| format!(" test {t:.2}%"))
            .unwrap_or_default();
        let from_log = if cached { " [from log]" } else { "" };
        let status = match &self.status {
            EvalStatus::Ok if self.is_partial() => format!(
                " [rung: {} of {} epochs]",
                self.epochs.len(),
                self.planned_epochs().unwrap_or(0)
            ),
            EvalStatus::Ok => String::new(),
            EvalStatus::Failed(why) => {
                format!(" FAILED: {}", why.lines().next().unwrap_or_default())
            }
        };
        format!(
            "{} #{:<3} {plan:<40} valid {:6.2}%{test} ({:.1}s){from_log}{status}",
            self.stage.name(),
            self.step,
            self.valid_acc,
            self.seconds,
        )
    }

    /// The score after the first `epochs` epochs by `choice` (best or last epoch's
    /// validation accuracy; 0 when none is known), as a shorter fine-tune on the same data
    /// order would have scored. A failed record scores 0 from the epoch it failed in on,
    /// and by its curve before that: a candidate that passed rung 2 and failed at rung 6
    /// replays rung 2 as it was scored live (the log keeps one record per candidate).
    pub fn score_at(&self, epochs: usize, choice: EpochChoice) -> f64 {
        if matches!(self.status, EvalStatus::Failed(_)) {
            let completed = self
                .epochs
                .iter()
                .take_while(|e| e.train_loss.is_finite() && e.valid_acc.is_some_and(f64::is_finite))
                .count();
            if epochs > completed {
                return 0.0;
            }
        }
        let seen = &self.epochs[..epochs.min(self.epochs.len())];
        let valid = |e: &EpochPoint| e.valid_acc.filter(|v| v.is_finite());
        let v = match choice {
            EpochChoice::BestEpoch => seen
                .iter()
                .filter_map(valid)
                .fold(None, |b: Option<f64>, v| Some(b.map_or(v, |b| b.max(v)))),
            EpochChoice::LastEpoch => seen.last().and_then(valid),
        };
        v.unwrap_or(0.0)
    }

    /// The epochs its configuration asks for (the fine-tune's full length).
    pub fn planned_epochs(&self) -> Option<usize> {
        self.hparams
            .get("epochs")
            .and_then(|v| v.as_u64())
            .map(|e| e as usize)
    }

    /// Whether it is a multi-fidelity rung short of the full fine-tune.
    pub fn is_partial(&self) -> bool {
        matches!(self.status, EvalStatus::Ok)
            && self.planned_epochs().is_some_and(|p| self.epochs.len() < p)
    }

    /// Whether it stands for `epochs` epochs of training: it trained them, or failed.
    pub fn covers(&self, epochs: usize) -> bool {
        matches!(self.status, EvalStatus::Failed(_)) || self.epochs.len() >= epochs
    }
}

/// The Table 1 row of one finished run: top-1 test accuracy (percent) of each arm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    /// Model name, e.g. `lenet5`.
    pub model: String,
    /// Dataset name, e.g. `mnist`.
    pub dataset: String,
    /// Fraction of prunable weights zeroed, e.g. 0.99.
    pub prune_rate: f64,
    /// Seed of the run.
    pub seed: u64,
    /// Budget preset name.
    pub budget: String,
    /// Dense network.
    pub dense: Option<f64>,
    /// Magnitude pruning, fine-tuned with ReLU and the dense hyperparameters.
    pub magnitude_pruning: Option<f64>,
    /// Stage 1 only (searched operators, dense hyperparameters).
    pub stage1: Option<f64>,
    /// Stage 2 only (ReLU with learnt scales and tuned hyperparameters).
    pub stage2: Option<f64>,
    /// Both stages (SAFS).
    pub safs: Option<f64>,
}

impl ResultRow {
    /// SAFS minus magnitude pruning, in accuracy points.
    pub fn gain(&self) -> Option<f64> {
        Some(self.safs? - self.magnitude_pruning?)
    }

    /// The test accuracy of an arm.
    pub fn arm(&self, arm: Arm) -> Option<f64> {
        match arm {
            Arm::MagnitudePruning => self.magnitude_pruning,
            Arm::Stage1 => self.stage1,
            Arm::Stage2 => self.stage2,
            Arm::Safs => self.safs,
        }
    }

    /// Sets the test accuracy of an arm.
    pub fn set_arm(&mut self, arm: Arm, value: Option<f64>) {
        match arm {
            Arm::MagnitudePruning => self.magnitude_pruning = value,
            Arm::Stage1 => self.stage1 = value,
            Arm::Stage2 => self.stage2 = value,
            Arm::Safs => self.safs = value,
        }
    }
}

/// serde_json writes NaN and the infinities as `null`; these read such a `null` back as NaN,
/// so the log line of a diverged evaluation (NaN scales, say) stays readable on resume.
mod non_finite {
    use serde::{Deserialize, Deserializer};

    fn value(x: Option<f64>) -> f64 {
        x.unwrap_or(f64::NAN)
    }

    pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Option::<f64>::deserialize(d).map(value)
    }

    pub fn vec<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let v = Vec::<Option<f64>>::deserialize(d)?;
        Ok(v.into_iter().map(value).collect())
    }

    pub fn vecs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
        let v = Vec::<Vec<Option<f64>>>::deserialize(d)?;
        Ok(v.into_iter()
            .map(|inner| inner.into_iter().map(value).collect())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Op;

    #[test]
    fn stage_names_round_trip() {
        let all = [
            Stage::Dense,
            Stage::Search(Arm::Stage1),
            Stage::Search(Arm::Stage2),
            Stage::Search(Arm::Safs),
            Stage::Final(Arm::MagnitudePruning),
            Stage::Final(Arm::Stage1),
            Stage::Final(Arm::Stage2),
            Stage::Final(Arm::Safs),
        ];
        for s in all {
            assert_eq!(s.name().parse::<Stage>().unwrap(), s);
            let j = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<Stage>(&j).unwrap(), s);
        }
        assert_eq!(Stage::Search(Arm::Stage1).name(), "stage1_search");
        assert_eq!(
            Stage::Final(Arm::MagnitudePruning).name(),
            "magnitude_pruning_final"
        );
        assert_eq!(
            "baseline".parse::<Stage>().unwrap(),
            Stage::Final(Arm::MagnitudePruning)
        );
        assert!("stage3_final".parse::<Stage>().is_err());
        assert!("final".parse::<Stage>().is_err());
    }

    fn point(train_loss: f64, valid_acc: Option<f64>) -> EpochPoint {
        EpochPoint {
            train_loss,
            train_acc: 10.0,
            valid_acc,
            valid_loss: None,
            lr: 1e-3,
            seconds: 1.0,
        }
    }

    /// The case seen in a paper-budget run: a candidate passed rung 2 (11.16), failed during
    /// rung 6 after 4 epochs; its replay of rung 2 must score 11.16, not 0, or successive
    /// halving promotes another candidate on replay.
    #[test]
    fn the_progress_line_says_rung_log_and_failure_and_cuts_long_plans() {
        let mut rec: EvalRecord = serde_json::from_str(
            r#"{"stage":"stage1_search","step":7,"plan":["relu","elu"],
                "hparams":{"epochs":50},"alphas":[],"betas":[],"op_params":[],
                "valid_acc":47.034,"test_acc":null,"best_epoch":null,"epochs":[],
                "train_images":1,"status":"ok","seconds":52.94}"#,
        )
        .unwrap();
        rec.epochs = vec![point(0.5, Some(47.0)); 6];
        let pad = " ".repeat(40 - "relu,elu".len());
        assert_eq!(
            rec.progress_line(false),
            format!(
                "stage1_search #7   relu,elu{pad} valid  47.03% (52.9s) [rung: 6 of 50 epochs]"
            )
        );
        rec.epochs = vec![point(0.5, Some(47.0)); 50];
        rec.stage = Stage::Final(Arm::Stage1);
        rec.step = 0;
        rec.test_acc = Some(51.296);
        assert_eq!(
            rec.progress_line(true),
            format!("stage1_final #0   relu,elu{pad} valid  47.03% test 51.30% (52.9s) [from log]")
        );
        rec.status = EvalStatus::Failed("loss is NaN\nat epoch 3".into());
        rec.valid_acc = 0.0;
        rec.test_acc = None;
        assert!(rec
            .progress_line(false)
            .ends_with("valid   0.00% (52.9s) FAILED: loss is NaN"));
        rec.plan = ActivationPlan(vec![Op::Symexp; 20]);
        let line = rec.progress_line(false);
        let plan = line.split_whitespace().nth(2).unwrap();
        assert_eq!(plan.chars().count(), 72);
        assert!(
            plan.starts_with("symexp,symexp,") && plan.ends_with('…'),
            "{plan}"
        );
    }

    #[test]
    fn a_failed_record_scores_its_completed_epochs_and_zero_beyond() {
        let mut rec: EvalRecord = serde_json::from_str(
            r#"{"stage":"safs_search","step":2,"plan":["relu","relu","relu","relu"],
                "hparams":{},"alphas":[],"betas":[],"op_params":[],"valid_acc":0.0,
                "test_acc":null,"best_epoch":null,"epochs":[],"train_images":1,
                "status":"ok","seconds":1.0}"#,
        )
        .unwrap();
        rec.epochs = vec![
            point(2.30, Some(9.5)),
            point(2.30, Some(11.16)),
            point(2.30, Some(11.0)),
            point(2.30, Some(10.0)),
            point(f64::NAN, None),
        ];
        rec.status = EvalStatus::Failed("loss NaN at epoch 5".into());
        assert_eq!(rec.score_at(2, EpochChoice::BestEpoch), 11.16);
        assert_eq!(rec.score_at(4, EpochChoice::LastEpoch), 10.0);
        assert_eq!(
            rec.score_at(5, EpochChoice::BestEpoch),
            0.0,
            "the epoch it failed in"
        );
        assert_eq!(rec.score_at(6, EpochChoice::BestEpoch), 0.0);
        assert!(rec.covers(50), "a failed record is final at every rung");
        rec.status = EvalStatus::Ok;
        assert_eq!(rec.score_at(5, EpochChoice::BestEpoch), 11.16);
    }

    #[test]
    fn a_diverged_record_reads_back_with_its_nans() {
        let rec = EvalRecord {
            stage: Stage::Search(Arm::Safs),
            step: 2,
            plan: "srs,relu,relu,relu".parse().unwrap(),
            hparams: BTreeMap::new(),
            alphas: vec![f64::NAN, 1.0, 1.0, 1.0],
            betas: vec![1.0, f64::INFINITY, 1.0, 1.0],
            op_params: vec![vec![0.5, f64::NAN], vec![], vec![], vec![]],
            valid_acc: 0.0,
            test_acc: None,
            best_epoch: None,
            epochs: vec![EpochPoint {
                train_loss: f64::NAN,
                train_acc: 10.0,
                valid_acc: None,
                valid_loss: None,
                lr: 1e-3,
                seconds: 1.0,
            }],
            train_images: 100,
            status: EvalStatus::Failed("training loss is NaN".into()),
            seconds: 1.0,
        };
        let line = serde_json::to_string(&rec).unwrap();
        assert!(line.contains("\"alphas\":[null,"), "{line}");
        let back: EvalRecord = serde_json::from_str(&line).unwrap();
        assert!(back.alphas[0].is_nan() && back.betas[1].is_nan());
        assert!(back.op_params[0][1].is_nan() && back.op_params[0][0] == 0.5);
        assert!(back.epochs[0].train_loss.is_nan());
        assert_eq!(back.status, rec.status);
        // A number that is not a float is still an error.
        let bad = line.replace("\"alphas\":[null,", "\"alphas\":[\"x\",");
        assert!(serde_json::from_str::<EvalRecord>(&bad).is_err());
    }
}
