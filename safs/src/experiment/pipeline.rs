//! The SAFS pipeline: dense -> prune -> baseline -> Stage 1 -> Stage 2 -> SAFS.
//!
//! Every evaluation is memoised in the run folder by (stage, step). The searches are
//! deterministic given the seed and the scores they see, so a resumed run replays the
//! logged evaluations, re-creates the same search state, and continues where it stopped.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use candle_core::Device;

use super::{
    Arm, Budget, EvalRecord, EvalStatus, ExperimentConfig, ExperimentEvent, ResultRow, RunDir,
    Stage,
};
use crate::activation::{ActivationPlan, Op};
use crate::data::{ImageSet, Splits};
use crate::hpo::{run_hpo, safs_space, train_config_from, Config};
use crate::model::Network;
use crate::prune::Masks;
use crate::report::{append_eval, evals_frame, table1_frame, write_csv, write_parquet};
use crate::search::{run_search, SearchMethod, SearchSpace};
use crate::train::{
    evaluate, fit, load_checkpoint, save_checkpoint, CheckpointMeta, TrainConfig, TrainEvent,
};
use crate::{Error, Result};

/// Receives every event; returning an error stops the run (finished work stays saved).
pub type ExperimentObserver<'a> = dyn FnMut(&ExperimentEvent) -> Result<()> + 'a;

/// One experiment bound to its run folder, data and device.
pub struct Experiment {
    cfg: ExperimentConfig,
    budget: Budget,
    dir: RunDir,
    device: Device,
    data: Splits,
    search_train: ImageSet,
    cache: BTreeMap<(Stage, usize), EvalRecord>,
}

/// Which images a fine-tune trains on.
#[derive(Clone, Copy)]
enum TrainSet {
    Full,
    Search,
}

impl Experiment {
    /// Opens the run folder (resuming what it holds) and loads the data.
    pub fn new(
        cfg: ExperimentConfig,
        run_dir: &Path,
        data_root: &Path,
        device: Device,
    ) -> Result<Self> {
        cfg.validate()?;
        let budget = cfg.resolved_budget();
        let dir = RunDir::open(run_dir, &cfg)?;
        let splits = cfg.dataset.load(data_root, cfg.valid_size, cfg.seed)?;
        let cut = |set: &ImageSet, n: Option<usize>| match n {
            Some(n) if n < set.len() => set.take(n),
            _ => set.clone(),
        };
        let train = cut(&splits.train, budget.train_subset);
        let data = Splits {
            valid: cut(&splits.valid, budget.valid_subset),
            test: cut(&splits.test, budget.test_subset),
            train: train.clone(),
        };
        let search_train = cut(&train, budget.search_train_subset);
        let cache = dir
            .load_evals()?
            .into_iter()
            .map(|r| ((r.stage, r.step), r))
            .collect();
        Ok(Self {
            cfg,
            budget,
            dir,
            device,
            data,
            search_train,
            cache,
        })
    }

    /// The run folder.
    pub fn run_dir(&self) -> &RunDir {
        &self.dir
    }

    /// The resolved budget.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// Runs (or resumes) every arm of the config and returns the Table 1 row.
    pub fn run(&mut self, observer: &mut ExperimentObserver<'_>) -> Result<ResultRow> {
        let mut row = ResultRow {
            model: self.cfg.model.name().to_string(),
            dataset: self.cfg.dataset.name().to_string(),
            prune_rate: self.cfg.prune.rate,
            seed: self.cfg.seed,
            budget: self.cfg.budget.to_string(),
            dense: None,
            magnitude_pruning: None,
            stage1: None,
            stage2: None,
            safs: None,
        };
        row.dense = self.dense(observer)?.test_acc;
        self.prune()?;
        let arms = self.cfg.arms.clone();
        let relu = ActivationPlan::uniform(self.cfg.model.default_op(), self.slots()?);
        let dense_ft = self.dense_config(self.budget.finetune_epochs);

        if arms.contains(&Arm::MagnitudePruning) {
            let r = self.final_eval(Stage::Baseline, &relu, &dense_ft, false, observer)?;
            row.magnitude_pruning = r.test_acc;
        }
        let mut stage1_plan = None;
        if arms.contains(&Arm::Stage1) || arms.contains(&Arm::Safs) {
            let plan = self.stage1_search(&relu, observer)?;
            if arms.contains(&Arm::Stage1) {
                let r = self.final_eval(Stage::Stage1Final, &plan, &dense_ft, false, observer)?;
                row.stage1 = r.test_acc;
            }
            stage1_plan = Some(plan);
        }
        if arms.contains(&Arm::Stage2) {
            row.stage2 = self
                .stage2(Stage::Stage2Search, Stage::Stage2Final, &relu, observer)?
                .test_acc;
        }
        if let (true, Some(plan)) = (arms.contains(&Arm::Safs), stage1_plan) {
            row.safs = self
                .stage2(Stage::SafsSearch, Stage::SafsFinal, &plan, observer)?
                .test_acc;
        }
        self.write_tables(&row)?;
        observer(&ExperimentEvent::Finished { row: row.clone() })?;
        Ok(row)
    }

    fn slots(&self) -> Result<usize> {
        Ok(self.fresh_model()?.num_slots())
    }

    fn fresh_model(&self) -> Result<Box<dyn Network>> {
        self.cfg.model.build_scaled(
            self.data.train.num_classes(),
            self.budget.model_width,
            self.cfg.seed,
            &self.device,
        )
    }

    /// The dense hyperparameters with another epoch count and the budget's batch cap.
    fn dense_config(&self, epochs: usize) -> TrainConfig {
        let mut c = self.cfg.dense.clone();
        c.epochs = epochs;
        if self.budget.max_batches.is_some() {
            c.max_batches = self.budget.max_batches;
        }
        c
    }

    fn meta(
        &self,
        model: &dyn Network,
        epoch: usize,
        valid: Option<f64>,
        note: &str,
    ) -> CheckpointMeta {
        CheckpointMeta {
            model: model.name().to_string(),
            num_classes: self.data.train.num_classes(),
            width: self.budget.model_width,
            plan: model.plan(),
            epoch,
            valid_acc: valid,
            note: note.to_string(),
            safs_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Trains (or loads) the dense network; its record carries the dense test accuracy.
    fn dense(&mut self, observer: &mut ExperimentObserver<'_>) -> Result<EvalRecord> {
        let key = (Stage::Dense, 0);
        if let Some(r) = self.cache.get(&key).cloned() {
            if self.dir.dense_path().exists() {
                observer(&ExperimentEvent::Evaluated {
                    record: r.clone(),
                    cached: true,
                })?;
                return Ok(r);
            }
        }
        observer(&ExperimentEvent::StageStarted {
            stage: Stage::Dense,
            total: 1,
        })?;
        let start = Instant::now();
        let mut model = self.fresh_model()?;
        let cfg = self.dense_config(self.budget.dense_epochs);
        let valid_acc = match &self.cfg.dense_checkpoint {
            Some(path) => {
                load_checkpoint(path, model.as_mut(), &self.device)?;
                evaluate(
                    model.as_ref(),
                    &self.data.valid,
                    cfg.eval_batch_size,
                    &self.device,
                )?
                .top1
            }
            None => {
                let mut fwd = |ev: &TrainEvent, _: &dyn Network| {
                    observer(&ExperimentEvent::Train {
                        stage: Stage::Dense,
                        step: 0,
                        event: ev.clone(),
                    })
                };
                let report = fit(
                    model.as_mut(),
                    None,
                    &self.data.train,
                    Some(&self.data.valid),
                    &cfg,
                    self.cfg.seed,
                    &self.device,
                    &mut fwd,
                )?;
                report.final_valid().map_or(0.0, |m| m.top1)
            }
        };
        let test = evaluate(
            model.as_ref(),
            &self.data.test,
            cfg.eval_batch_size,
            &self.device,
        )?;
        let meta = self.meta(model.as_ref(), cfg.epochs, Some(valid_acc), "dense");
        save_checkpoint(&self.dir.dense_path(), model.as_ref(), None, &meta)?;
        let record = self.record(
            Stage::Dense,
            0,
            model.as_ref(),
            &cfg,
            valid_acc,
            Some(test.top1),
            EvalStatus::Ok,
            start,
        )?;
        self.commit(record, observer)
    }

    /// Prunes the dense network (deterministic, so simply redone on resume).
    fn prune(&mut self) -> Result<()> {
        let mut model = self.fresh_model()?;
        load_checkpoint(&self.dir.dense_path(), model.as_mut(), &self.device)?;
        let masks = self
            .cfg
            .prune
            .method
            .masks(model.as_ref(), self.cfg.prune.rate)?;
        masks.apply(model.as_ref())?;
        let note = format!("{} pruned {}", self.cfg.prune.method, self.cfg.prune.rate);
        let meta = self.meta(model.as_ref(), 0, None, &note);
        save_checkpoint(&self.dir.pruned_path(), model.as_ref(), Some(&masks), &meta)
    }

    /// Stage 1: the operator search; returns the best plan.
    fn stage1_search(
        &mut self,
        start: &ActivationPlan,
        observer: &mut ExperimentObserver<'_>,
    ) -> Result<ActivationPlan> {
        let method = with_steps(&self.cfg.search, self.budget.search_steps);
        let space = SearchSpace {
            ops: Op::SEARCH_SPACE.to_vec(),
            slots: start.len(),
            mode: self.cfg.search_mode,
        };
        observer(&ExperimentEvent::StageStarted {
            stage: Stage::Stage1Search,
            total: self.budget.search_steps,
        })?;
        let cfg = self.dense_config(self.budget.search_epochs);
        let seed = self.cfg.seed;
        let mut objective = |step: usize, plan: &ActivationPlan| -> Result<f64> {
            let r = self.eval(
                Stage::Stage1Search,
                step,
                plan,
                &cfg,
                false,
                TrainSet::Search,
                None,
                observer,
            )?;
            Ok(r.valid_acc)
        };
        let result = run_search(&method, &space, start, seed, &mut objective, &mut |_| {})?;
        Ok(result.best_plan)
    }

    /// Stage 2 on `plan`: HPO with learnt alpha/beta, then the best trial fully fine-tuned.
    fn stage2(
        &mut self,
        search: Stage,
        last: Stage,
        plan: &ActivationPlan,
        observer: &mut ExperimentObserver<'_>,
    ) -> Result<EvalRecord> {
        let space = safs_space();
        let trial_base = self.dense_config(self.budget.search_epochs);
        observer(&ExperimentEvent::StageStarted {
            stage: search,
            total: self.budget.hpo_trials,
        })?;
        let (method, trials, seed) = (self.cfg.hpo.clone(), self.budget.hpo_trials, self.cfg.seed);
        let mut objective = |i: usize, c: &Config| -> Result<f64> {
            let cfg = train_config_from(c, &trial_base)?;
            let r = self.eval(
                search,
                i,
                plan,
                &cfg,
                true,
                TrainSet::Search,
                None,
                observer,
            )?;
            Ok(r.valid_acc)
        };
        let result = run_hpo(&method, &space, trials, seed, &mut objective, &mut |_| {})?;
        let final_cfg = train_config_from(
            &result.best.config,
            &self.dense_config(self.budget.finetune_epochs),
        )?;
        self.final_eval(last, plan, &final_cfg, true, observer)
    }

    fn final_eval(
        &mut self,
        stage: Stage,
        plan: &ActivationPlan,
        cfg: &TrainConfig,
        trainable: bool,
        observer: &mut ExperimentObserver<'_>,
    ) -> Result<EvalRecord> {
        observer(&ExperimentEvent::StageStarted { stage, total: 1 })?;
        let out = self.dir.final_path(stage);
        self.eval(
            stage,
            0,
            plan,
            cfg,
            trainable,
            TrainSet::Full,
            Some(&out),
            observer,
        )
    }

    /// One memoised evaluation: fine-tune the pruned network with `plan` and `cfg`, score
    /// it on the validation set (and on the test set when `save_to` is given).
    #[allow(clippy::too_many_arguments)]
    fn eval(
        &mut self,
        stage: Stage,
        step: usize,
        plan: &ActivationPlan,
        cfg: &TrainConfig,
        trainable: bool,
        set: TrainSet,
        save_to: Option<&Path>,
        observer: &mut ExperimentObserver<'_>,
    ) -> Result<EvalRecord> {
        if let Some(r) = self.cache.get(&(stage, step)) {
            if &r.plan != plan {
                return Err(Error::Config(format!(
                    "run folder {}: logged {} step {step} used plan {}, the replay asks for {plan}; \
                     the log does not belong to this configuration",
                    self.dir.root().display(),
                    stage.name(),
                    r.plan
                )));
            }
            let r = r.clone();
            observer(&ExperimentEvent::Evaluated {
                record: r.clone(),
                cached: true,
            })?;
            return Ok(r);
        }
        let start = Instant::now();
        let mut model = self.fresh_model()?;
        let (_, masks) = load_checkpoint(&self.dir.pruned_path(), model.as_mut(), &self.device)?;
        let masks: Option<Masks> = masks;
        model.set_plan(plan)?;
        for slot in model.activations_mut() {
            slot.set_scales(1.0, 1.0)?;
        }
        model.set_scales_trainable(trainable);
        let train = match set {
            TrainSet::Full => &self.data.train,
            TrainSet::Search => &self.search_train,
        };
        let mut fwd = |ev: &TrainEvent, _: &dyn Network| {
            observer(&ExperimentEvent::Train {
                stage,
                step,
                event: ev.clone(),
            })
        };
        let outcome = fit(
            model.as_mut(),
            masks.as_ref(),
            train,
            Some(&self.data.valid),
            cfg,
            self.cfg.seed,
            &self.device,
            &mut fwd,
        );
        let record = match outcome {
            Ok(report) => {
                let valid = report.final_valid().map_or(0.0, |m| m.top1);
                let valid = if valid.is_finite() { valid } else { 0.0 };
                let test = match save_to {
                    Some(path) => {
                        let t = evaluate(
                            model.as_ref(),
                            &self.data.test,
                            cfg.eval_batch_size,
                            &self.device,
                        )?;
                        let meta = self.meta(model.as_ref(), cfg.epochs, Some(valid), stage.name());
                        save_checkpoint(path, model.as_ref(), masks.as_ref(), &meta)?;
                        Some(t.top1)
                    }
                    None => None,
                };
                self.record(
                    stage,
                    step,
                    model.as_ref(),
                    cfg,
                    valid,
                    test,
                    EvalStatus::Ok,
                    start,
                )?
            }
            Err(Error::Diverged(why)) => {
                let test = save_to.map(|_| 0.0);
                self.record(
                    stage,
                    step,
                    model.as_ref(),
                    cfg,
                    0.0,
                    test,
                    EvalStatus::Failed(why),
                    start,
                )?
            }
            Err(e) => return Err(e),
        };
        self.commit(record, observer)
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        stage: Stage,
        step: usize,
        model: &dyn Network,
        cfg: &TrainConfig,
        valid_acc: f64,
        test_acc: Option<f64>,
        status: EvalStatus,
        start: Instant,
    ) -> Result<EvalRecord> {
        let hparams = match serde_json::to_value(cfg) {
            Ok(serde_json::Value::Object(m)) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        let scales =
            |f: &dyn Fn(&crate::activation::Activation) -> Result<f64>| -> Result<Vec<f64>> {
                model.activations().iter().map(f).collect()
            };
        Ok(EvalRecord {
            stage,
            step,
            plan: model.plan(),
            hparams,
            alphas: scales(&|a| a.alpha())?,
            betas: scales(&|a| a.beta())?,
            valid_acc,
            test_acc,
            status,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Appends a finished record to the log (durably) before anything else sees it.
    fn commit(
        &mut self,
        record: EvalRecord,
        observer: &mut ExperimentObserver<'_>,
    ) -> Result<EvalRecord> {
        append_eval(&self.dir.evals_path(), &record)?;
        self.cache
            .insert((record.stage, record.step), record.clone());
        observer(&ExperimentEvent::Evaluated {
            record: record.clone(),
            cached: false,
        })?;
        Ok(record)
    }

    fn write_tables(&self, row: &ResultRow) -> Result<()> {
        let mut t = table1_frame(std::slice::from_ref(row))?;
        write_csv(&mut t, &self.dir.table_path("table1.csv"))?;
        write_parquet(&mut t, &self.dir.table_path("table1.parquet"))?;
        let records: Vec<EvalRecord> = self.cache.values().cloned().collect();
        let mut e = evals_frame(&records)?;
        write_csv(&mut e, &self.dir.table_path("evals.csv"))?;
        write_parquet(&mut e, &self.dir.table_path("evals.parquet"))?;
        let json = serde_json::to_vec_pretty(row).map_err(|e| Error::Config(e.to_string()))?;
        crate::util::atomic_write(&self.dir.table_path("table1.json"), &json)
    }
}

/// The search method with the budget's number of evaluations.
fn with_steps(method: &SearchMethod, steps: usize) -> SearchMethod {
    let mut m = method.clone();
    match &mut m {
        SearchMethod::Lahc { steps: s, .. }
        | SearchMethod::Random { steps: s }
        | SearchMethod::Annealing { steps: s, .. } => *s = steps,
        SearchMethod::Genetic {
            population,
            generations,
            ..
        } => *generations = steps.div_ceil((*population).max(1)).max(1),
    }
    m
}
