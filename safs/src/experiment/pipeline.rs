//! The SAFS pipeline: dense -> prune -> magnitude pruning -> Stage 1 -> Stage 2 -> SAFS.
//!
//! Every evaluation is memoised in the run folder by ([`Stage`], step). The searches are
//! deterministic given the seed and the scores they see, so a resumed run replays the
//! logged evaluations, re-creates the same search state, and continues where it stopped.
//!
//! Every fine-tune of the pruned network starts from the pruned checkpoint with the budget's
//! `finetune_epochs` on the same images; candidates and trials are scored on the validation
//! set by the [`Protocol`](super::Protocol)'s epoch choice, and only finals see the test set.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::protocol::{Augmentation, EpochChoice, Normalization, StartPlan};
use super::{
    Arm, Budget, EpochPoint, EvalRecord, EvalStatus, ExperimentConfig, ExperimentEvent, ResultRow,
    RunDir, Stage,
};
use crate::activation::{ActivationPlan, Op};
use crate::data::{Augment, ImageSet, Normalize, Splits};
use crate::hpo::{run_hpo_at, Config};
use crate::model::Network;
use crate::report::{append_eval, evals_frame, table1_frame, write_csv, write_parquet};
use crate::search::{run_search_at, zero_cost_score, SearchSpace, SearchStep, ZeroCost};
use crate::train::{
    evaluate, fit, load_checkpoint, load_trainer, save_checkpoint, save_trainer, CheckpointMeta,
    FitData, FitReport, TrainConfig, TrainEvent, Trainer,
};
use crate::{Error, Result};

/// Receives every event; returning an error stops the run (finished work stays saved).
pub type ExperimentObserver<'a> = dyn FnMut(&ExperimentEvent) -> Result<()> + 'a;

/// Mixed into the seed for Stage 1's random start plan (its own stream).
const START_PLAN_STREAM: u64 = 0x5AF5_0001;
/// Data-order seed offset between two repeats of a final fine-tune.
const REPEAT_SEED_STRIDE: u64 = 1_000_003;

/// One experiment bound to its run folder, data and device.
pub struct Experiment {
    cfg: ExperimentConfig,
    budget: Budget,
    dir: RunDir,
    device: Device,
    data: Splits,
    cache: BTreeMap<(Stage, usize), EvalRecord>,
    workers: Workers,
    /// The steps of the last rung scored, whose stopped candidates' saved rungs go next.
    last_rung: Option<(Stage, Vec<usize>)>,
}

/// How many fine-tunes of a batch train at once, and with how many threads each.
///
/// The run's results never depend on `count`: a batch's proposals are fixed before it
/// trains, and its records are logged in proposal order. They may depend on `threads`
/// (a kernel may sum in per-thread parts), which `count = 1` leaves to rayon's global pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workers {
    /// Fine-tunes trained at the same time.
    pub count: usize,
    /// Threads of each (a pool per worker) when `count > 1`.
    pub threads: usize,
}

impl Default for Workers {
    fn default() -> Self {
        Workers {
            count: 1,
            threads: 1,
        }
    }
}

/// One fine-tune of the pruned network to run.
#[derive(Clone, Debug)]
struct Job {
    stage: Stage,
    step: usize,
    plan: ActivationPlan,
    cfg: TrainConfig,
    /// Whether alpha and beta learn.
    scales: bool,
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
        if cfg.seeds.is_some() {
            return Err(Error::Config(format!(
                "{}: a run folder holds one seed, but the config lists seeds; run each with \
                 ExperimentConfig::for_seed (the CLI does)",
                run_dir.display()
            )));
        }
        let budget = cfg.resolved_budget();
        let dir = RunDir::open(run_dir, &cfg)?;
        let splits = cfg.dataset.load(data_root, cfg.valid_size, cfg.seed)?;
        let data = prepare(&cfg, &budget, splits)?;
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
            cache,
            workers: Workers::default(),
            last_rung: None,
        })
    }

    /// Trains the fine-tunes of a batch (a rung of a bracket) with `workers`; an error
    /// names a zero count.
    pub fn set_workers(&mut self, workers: Workers) -> Result<()> {
        if workers.count == 0 || workers.threads == 0 {
            return Err(Error::Config(format!(
                "workers: {} worker(s) of {} thread(s); both must be at least 1",
                workers.count, workers.threads
            )));
        }
        self.workers = workers;
        Ok(())
    }

    /// The run folder.
    pub fn run_dir(&self) -> &RunDir {
        &self.dir
    }

    /// The resolved budget.
    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    /// The config this run folder holds.
    pub fn config(&self) -> &ExperimentConfig {
        &self.cfg
    }

    /// Every evaluation finished so far, in key order.
    pub fn records(&self) -> Vec<EvalRecord> {
        self.cache.values().cloned().collect()
    }

    /// Runs (or resumes) every arm of the config and returns the Table 1 row.
    pub fn run(&mut self, observer: &mut ExperimentObserver<'_>) -> Result<ResultRow> {
        // One writer per run folder, for as long as this run writes.
        let _lock = super::RunLock::acquire(self.dir.root())?;
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
        let default = ActivationPlan::uniform(self.cfg.model.default_op(), self.slots()?);
        let recipe = self.cfg.recipe(self.budget.finetune_epochs);

        if arms.contains(&Arm::MagnitudePruning) {
            let v = self.final_arm(Arm::MagnitudePruning, &default, &recipe, false, observer)?;
            row.magnitude_pruning = v;
        }
        let mut stage1_plan = None;
        if arms.contains(&Arm::Stage1) || arms.contains(&Arm::Safs) {
            let plan = self.stage1_search(observer)?;
            if arms.contains(&Arm::Stage1) {
                row.stage1 = self.final_arm(Arm::Stage1, &plan, &recipe, false, observer)?;
            }
            stage1_plan = Some(plan);
        }
        if arms.contains(&Arm::Stage2) {
            row.stage2 = self.stage2(Arm::Stage2, &default, observer)?;
        }
        if let (true, Some(plan)) = (arms.contains(&Arm::Safs), stage1_plan) {
            row.safs = self.stage2(Arm::Safs, &plan, observer)?;
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

    fn ends_with_best(&self) -> bool {
        self.cfg.protocol.end_weights == EpochChoice::BestEpoch
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
        let mut cfg = self.cfg.recipe(self.budget.dense_epochs);
        cfg.restore_best = self.ends_with_best();
        let (valid_acc, report) = match &self.cfg.dense_checkpoint {
            Some(path) => {
                load_checkpoint(path, model.as_mut(), &self.device)?;
                let m = evaluate(
                    model.as_ref(),
                    &self.data.valid,
                    cfg.eval_batch_size,
                    &self.device,
                )?;
                (m.top1, FitReport::default())
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
                )
                .map_err(|e| match e {
                    Error::Diverged(why) => Error::Diverged(format!(
                        "dense training diverged ({why}); lower the learning rate of [dense]"
                    )),
                    e => e,
                })?;
                (report.held_valid().map_or(0.0, |m| m.top1), report)
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
            (Stage::Dense, 0),
            model.as_ref(),
            &cfg,
            valid_acc,
            Some(test.top1),
            &report,
            EvalStatus::Ok,
            start,
        )?;
        self.commit(record, observer)
    }

    /// Prunes the dense network (deterministic, so simply redone on resume).
    fn prune(&mut self) -> Result<()> {
        let mut model = self.fresh_model()?;
        load_checkpoint(&self.dir.dense_path(), model.as_mut(), &self.device)?;
        let prune = &self.cfg.prune;
        let masks = prune
            .method
            .masks_except(model.as_ref(), prune.rate, &prune.keep_dense)?;
        masks.apply(model.as_ref())?;
        let note = format!("{} pruned {}", self.cfg.prune.method, self.cfg.prune.rate);
        let meta = self.meta(model.as_ref(), 0, None, &note);
        save_checkpoint(&self.dir.pruned_path(), model.as_ref(), Some(&masks), &meta)
    }

    /// Stage 1's search space and start plan.
    fn stage1_space(&self) -> Result<(SearchSpace, ActivationPlan)> {
        let space = SearchSpace::new(
            Op::SEARCH_SPACE.to_vec(),
            self.slots()?,
            self.cfg.search_mode,
        );
        let start = match self.cfg.protocol.stage1_start {
            StartPlan::Default => ActivationPlan::uniform(self.cfg.model.default_op(), space.slots),
            StartPlan::Random => {
                let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.seed ^ START_PLAN_STREAM);
                space.random_plan(&mut rng)
            }
        };
        Ok((space, start))
    }

    /// Stage 1: the operator search; returns the best plan and writes the search trace.
    fn stage1_search(&mut self, observer: &mut ExperimentObserver<'_>) -> Result<ActivationPlan> {
        let method = self.cfg.search.with_steps(self.budget.search_steps);
        let (space, start) = self.stage1_space()?;
        let stage = Stage::Search(Arm::Stage1);
        observer(&ExperimentEvent::StageStarted {
            stage,
            total: method.evaluations(),
        })?;
        let cfg = self.cfg.recipe(self.budget.finetune_epochs);
        let (seed, fidelity, epochs) = (self.cfg.seed, self.cfg.fidelity, cfg.epochs);
        let mut objective = |batch: &[(usize, ActivationPlan)], at: usize| -> Result<Vec<f64>> {
            let jobs = batch
                .iter()
                .map(|(step, plan)| Job {
                    stage,
                    step: *step,
                    plan: plan.clone(),
                    cfg: cfg.clone(),
                    scales: false,
                })
                .collect();
            self.scores(jobs, at, observer)
        };
        let mut trace: Vec<SearchStep> = Vec::new();
        let result = run_search_at(
            &method,
            &space,
            &start,
            seed,
            fidelity,
            epochs,
            &mut objective,
            &mut |s| trace.push(s.clone()),
        )?;
        self.clear_rungs(stage)?;
        self.dir.write_trace(stage, &trace)?;
        Ok(result.best_plan)
    }

    /// Stage 2 on `plan` for `arm` (Stage 2 only on the default plan, or SAFS): HPO with
    /// learnt alpha/beta, then the best trial's configuration as the final fine-tune.
    fn stage2(
        &mut self,
        arm: Arm,
        plan: &ActivationPlan,
        observer: &mut ExperimentObserver<'_>,
    ) -> Result<Option<f64>> {
        let kind = self.cfg.protocol.hpo_space;
        let space = kind.space();
        let recipe = self.cfg.recipe(self.budget.finetune_epochs);
        let first: Vec<Config> = if self.cfg.protocol.hpo_default_first {
            vec![kind.point_of(&recipe)?]
        } else {
            Vec::new()
        };
        let stage = Stage::Search(arm);
        observer(&ExperimentEvent::StageStarted {
            stage,
            total: self.budget.hpo_trials,
        })?;
        let (method, trials, seed) = (self.cfg.hpo.clone(), self.budget.hpo_trials, self.cfg.seed);
        let fidelity = self.cfg.fidelity;
        let mut objective = |batch: &[(usize, Config)], at: usize| -> Result<Vec<f64>> {
            let jobs = batch
                .iter()
                .map(|(step, c)| {
                    Ok(Job {
                        stage,
                        step: *step,
                        plan: plan.clone(),
                        cfg: kind.train_config(c, &recipe)?,
                        scales: true,
                    })
                })
                .collect::<Result<Vec<Job>>>()?;
            self.scores(jobs, at, observer)
        };
        let result = run_hpo_at(
            &method,
            &space,
            trials,
            seed,
            &first,
            fidelity,
            recipe.epochs,
            &mut objective,
            &mut |_| {},
        )?;
        self.clear_rungs(stage)?;
        let final_cfg = kind.train_config(&result.best.config, &recipe)?;
        self.final_arm(arm, plan, &final_cfg, true, observer)
    }

    /// The final fine-tune(s) of an arm; the test accuracy of the repeat with the best
    /// validation score.
    fn final_arm(
        &mut self,
        arm: Arm,
        plan: &ActivationPlan,
        cfg: &TrainConfig,
        scales: bool,
        observer: &mut ExperimentObserver<'_>,
    ) -> Result<Option<f64>> {
        let stage = Stage::Final(arm);
        let repeats = self.cfg.protocol.final_repeats;
        observer(&ExperimentEvent::StageStarted {
            stage,
            total: repeats,
        })?;
        let mut best: Option<EvalRecord> = None;
        for r in 0..repeats {
            let rec = self.eval(stage, r, plan, cfg, scales, observer)?;
            if best.as_ref().is_none_or(|b| rec.valid_acc > b.valid_acc) {
                best = Some(rec);
            }
        }
        Ok(best.and_then(|b| b.test_acc))
    }

    /// One memoised full-length evaluation (a final, or a full-fidelity candidate).
    fn eval(
        &mut self,
        stage: Stage,
        step: usize,
        plan: &ActivationPlan,
        cfg: &TrainConfig,
        scales: bool,
        observer: &mut ExperimentObserver<'_>,
    ) -> Result<EvalRecord> {
        let job = Job {
            stage,
            step,
            plan: plan.clone(),
            cfg: cfg.clone(),
            scales,
        };
        let epochs = cfg.epochs;
        let mut records = self.eval_batch(vec![job], epochs, observer)?;
        Ok(records.remove(0))
    }

    /// The scores of `jobs` after `epochs` epochs, by the protocol's epoch choice.
    fn scores(
        &mut self,
        jobs: Vec<Job>,
        epochs: usize,
        observer: &mut ExperimentObserver<'_>,
    ) -> Result<Vec<f64>> {
        // A candidate of the previous rung missing from this one was stopped for good.
        if let Some((stage, previous)) = self.last_rung.take() {
            for step in previous {
                if !jobs.iter().any(|j| j.stage == stage && j.step == step) {
                    remove_file_if_present(&self.dir.rung_path(stage, step))?;
                }
            }
        }
        self.last_rung = jobs
            .first()
            .map(|j| (j.stage, jobs.iter().map(|j| j.step).collect()));
        let choice = self.cfg.protocol.score;
        Ok(self
            .eval_batch(jobs, epochs, observer)?
            .iter()
            .map(|r| r.score_at(epochs, choice))
            .collect())
    }

    /// Memoised evaluations of a batch to `epochs` epochs: what the log already covers is
    /// replayed; the rest trains (a candidate seen at a lower rung continues from its saved
    /// state) on the workers, and is logged in job order as it finishes. Records in job order.
    fn eval_batch(
        &mut self,
        jobs: Vec<Job>,
        epochs: usize,
        observer: &mut ExperimentObserver<'_>,
    ) -> Result<Vec<EvalRecord>> {
        let mut out: Vec<Option<EvalRecord>> = Vec::with_capacity(jobs.len());
        let mut todo: Vec<(usize, Job)> = Vec::new();
        for (i, job) in jobs.into_iter().enumerate() {
            match self.cache.get(&(job.stage, job.step)) {
                Some(r) if r.plan != job.plan => {
                    return Err(Error::Config(format!(
                        "run folder {}: logged {} step {} used plan {}, the replay asks for \
                         {}; the log does not belong to this configuration",
                        self.dir.root().display(),
                        job.stage,
                        job.step,
                        r.plan,
                        job.plan
                    )))
                }
                Some(r) if r.covers(epochs) => {
                    let r = r.clone();
                    observer(&ExperimentEvent::Evaluated {
                        record: r.clone(),
                        cached: true,
                    })?;
                    out.push(Some(r));
                }
                _ => {
                    out.push(None);
                    todo.push((i, job));
                }
            }
        }
        let fresh = if self.workers.count > 1 && todo.len() > 1 {
            self.train_parallel(&todo, epochs, observer)?
        } else {
            let mut fresh = Vec::with_capacity(todo.len());
            for (_, job) in &todo {
                let (stage, step) = (job.stage, job.step);
                let mut fwd = |ev: &TrainEvent| {
                    observer(&ExperimentEvent::Train {
                        stage,
                        step,
                        event: ev.clone(),
                    })
                };
                let record = self.train_job(job, epochs, &mut fwd)?;
                self.log(&record, observer)?;
                fresh.push(record);
            }
            fresh
        };
        for ((i, _), record) in todo.iter().zip(fresh) {
            self.cache
                .insert((record.stage, record.step), record.clone());
            out[*i] = Some(record);
        }
        Ok(out
            .into_iter()
            .map(|r| r.expect("every job has a record"))
            .collect())
    }

    /// Trains `todo` on `workers.count` threads (each in its own pool of `workers.threads`),
    /// forwarding their events, logging the records in job order as they become available.
    fn train_parallel(
        &self,
        todo: &[(usize, Job)],
        epochs: usize,
        observer: &mut ExperimentObserver<'_>,
    ) -> Result<Vec<EvalRecord>> {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        use std::sync::mpsc;

        enum Msg {
            Event(Stage, usize, TrainEvent),
            Done(usize, Result<EvalRecord>),
        }
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<Msg>();
        let Workers { count, threads } = self.workers;
        std::thread::scope(|scope| -> Result<Vec<EvalRecord>> {
            for _ in 0..count.min(todo.len()) {
                let (tx, next, stop) = (tx.clone(), &next, &stop);
                scope.spawn(move || {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
                    let pool = match pool {
                        Ok(p) => p,
                        Err(e) => {
                            let _ = tx.send(Msg::Done(
                                usize::MAX,
                                Err(Error::Config(format!("worker thread pool: {e}"))),
                            ));
                            return;
                        }
                    };
                    loop {
                        let k = next.fetch_add(1, Ordering::SeqCst);
                        if k >= todo.len() || stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let job = &todo[k].1;
                        let mut fwd = |ev: &TrainEvent| {
                            if stop.load(Ordering::SeqCst) {
                                return Err(Error::Config("stopped".into()));
                            }
                            let _ = tx.send(Msg::Event(job.stage, job.step, ev.clone()));
                            Ok(())
                        };
                        let r = pool.install(|| self.train_job(job, epochs, &mut fwd));
                        if tx.send(Msg::Done(k, r)).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            let mut done: Vec<Option<EvalRecord>> = vec![None; todo.len()];
            let mut logged = 0usize;
            let mut failure: Option<Error> = None;
            for msg in rx {
                match msg {
                    Msg::Event(stage, step, event) if failure.is_none() => {
                        if let Err(e) = observer(&ExperimentEvent::Train { stage, step, event }) {
                            stop.store(true, Ordering::SeqCst);
                            failure = Some(e);
                        }
                    }
                    Msg::Event(..) => {}
                    Msg::Done(k, Ok(record)) if k < done.len() => done[k] = Some(record),
                    Msg::Done(_, Ok(_)) => {}
                    Msg::Done(_, Err(e)) => {
                        stop.store(true, Ordering::SeqCst);
                        failure.get_or_insert(e);
                    }
                }
                while failure.is_none() && logged < done.len() {
                    let Some(record) = &done[logged] else { break };
                    if let Err(e) = self.log(record, observer) {
                        stop.store(true, Ordering::SeqCst);
                        failure = Some(e);
                        break;
                    }
                    logged += 1;
                }
            }
            match failure {
                Some(e) => Err(e),
                None => Ok(done
                    .into_iter()
                    .map(|r| r.expect("every job finished"))
                    .collect()),
            }
        })
    }

    /// The pruned network with `plan` installed as a fine-tune starts: scales 1, the
    /// operators' parameters at their starting values, scales learnable when `scales` is
    /// (and the protocol lets a parametric operator have them); and the pruning masks.
    fn candidate(
        &self,
        plan: &ActivationPlan,
        scales: bool,
    ) -> Result<(Box<dyn Network>, Option<crate::prune::Masks>)> {
        let protocol = &self.cfg.protocol;
        let mut model = self.fresh_model()?;
        let (_, masks) = load_checkpoint(&self.dir.pruned_path(), model.as_mut(), &self.device)?;
        model.set_plan(plan)?;
        for slot in model.activations_mut() {
            slot.set_scales(1.0, 1.0)?;
            slot.set_params_mode(protocol.op_params);
            let parametric = slot.op().num_params() > 0;
            slot.set_trainable(scales && (protocol.scales_on_parametric_ops || !parametric));
        }
        Ok((model, masks))
    }

    /// Zero-cost scores of `plan` as a Stage 1 candidate starts (the pruned network of this
    /// run folder, which must exist), one per proxy, from the first `batches` training
    /// minibatches of the dense recipe's size in the order of the run's seed (the same
    /// batches for every plan).
    pub fn zero_cost_scores(
        &self,
        plan: &ActivationPlan,
        proxies: &[ZeroCost],
        batches: usize,
    ) -> Result<Vec<f64>> {
        if !self.dir.pruned_path().exists() {
            return Err(Error::Config(format!(
                "{}: no pruned network yet (run the experiment past pruning first)",
                self.dir.pruned_path().display()
            )));
        }
        let (model, masks) = self.candidate(plan, false)?;
        let data = self
            .data
            .train
            .batches(self.cfg.dense.batch_size, Some(self.cfg.seed), &self.device)
            .take(batches)
            .collect::<Result<Vec<_>>>()?;
        proxies
            .iter()
            .map(|&p| zero_cost_score(p, model.as_ref(), masks.as_ref(), &data))
            .collect()
    }

    /// Fine-tunes the pruned network for one job to `epochs` epochs (continuing its saved
    /// rung when there is one), scores it, and for finals tests it and saves its checkpoint.
    /// Short of the job's full epochs, the training is saved for a later rung.
    fn train_job(
        &self,
        job: &Job,
        epochs: usize,
        events: &mut dyn FnMut(&TrainEvent) -> Result<()>,
    ) -> Result<EvalRecord> {
        let (stage, step) = (job.stage, job.step);
        let is_final = matches!(stage, Stage::Final(_));
        let start = Instant::now();
        let protocol = &self.cfg.protocol;
        let mut cfg = job.cfg.clone();
        cfg.restore_best = is_final && self.ends_with_best();
        let data_seed = self.cfg.seed.wrapping_add(if is_final {
            step as u64 * REPEAT_SEED_STRIDE
        } else {
            0
        });
        let build = || self.candidate(&job.plan, job.scales);
        let (mut model, masks) = build()?;
        let rung = self.dir.rung_path(stage, step);
        let mut earlier = 0.0;
        let resumed = match rung.exists() && !is_final {
            true => match load_trainer(&rung, model.as_mut(), &cfg, &self.device) {
                Ok((t, _)) if t.epochs_done() <= epochs => Some(t),
                _ => None,
            },
            false => None,
        };
        let mut trainer = match resumed {
            Some(t) => {
                earlier = self.cache.get(&(stage, step)).map_or(0.0, |r| r.seconds);
                t
            }
            None => {
                // A fresh start (also after an unusable saved state, which may have
                // written some weights already).
                let (m, _) = build()?;
                model = m;
                Trainer::new(model.as_ref(), &cfg)?
            }
        };
        let data = FitData {
            masks: masks.as_ref(),
            train: &self.data.train,
            valid: Some(&self.data.valid),
            seed: data_seed,
            device: &self.device,
        };
        let mut fwd = |ev: &TrainEvent, _: &dyn Network| events(ev);
        let outcome = trainer.train_until(model.as_mut(), &data, epochs, &mut fwd);
        let full = epochs >= cfg.epochs;
        // The epochs a diverged run finished stay in its record (what it cost).
        let before = FitReport {
            best_epoch: None,
            ..trainer.report().clone()
        };
        let outcome = match outcome {
            Ok(()) if full => trainer.finish(model.as_mut()),
            Ok(()) => {
                save_trainer(&rung, model.as_ref(), None, &trainer)?;
                Ok(trainer.report().clone())
            }
            Err(e) => Err(e),
        };
        // A finished or diverged candidate needs its saved rung no more; any other error
        // (a stop) keeps it for the resume.
        if (full && outcome.is_ok()) || matches!(outcome, Err(Error::Diverged(_))) {
            remove_file_if_present(&rung)?;
        }
        let mut record = match outcome {
            Ok(report) => {
                let test = if is_final {
                    let t = evaluate(
                        model.as_ref(),
                        &self.data.test,
                        cfg.eval_batch_size,
                        &self.device,
                    )?;
                    let held = report.held_valid().map(|m| m.top1);
                    let meta = self.meta(model.as_ref(), cfg.epochs, held, &stage.name());
                    let path = self.dir.final_repeat_path(stage, step);
                    save_checkpoint(&path, model.as_ref(), masks.as_ref(), &meta)?;
                    Some(t.top1)
                } else {
                    None
                };
                let mut r = self.record(
                    (stage, step),
                    model.as_ref(),
                    &cfg,
                    0.0,
                    test,
                    &report,
                    EvalStatus::Ok,
                    start,
                )?;
                r.valid_acc = r.score_at(r.epochs.len(), protocol.score);
                r
            }
            Err(Error::Diverged(why)) => self.record(
                (stage, step),
                model.as_ref(),
                &cfg,
                0.0,
                is_final.then_some(0.0),
                &before,
                EvalStatus::Failed(why),
                start,
            )?,
            Err(e) => return Err(e),
        };
        record.seconds += earlier;
        Ok(record)
    }

    /// Removes the saved rungs of a finished search.
    fn clear_rungs(&self, stage: Stage) -> Result<()> {
        let dir = self.dir.rungs_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(());
        };
        let prefix = format!("{stage}-");
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                remove_file_if_present(&e.path())?;
            }
        }
        // Only an empty folder goes; another stage's rungs keep it.
        let _ = std::fs::remove_dir(&dir);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        (stage, step): (Stage, usize),
        model: &dyn Network,
        cfg: &TrainConfig,
        valid_acc: f64,
        test_acc: Option<f64>,
        report: &FitReport,
        status: EvalStatus,
        start: Instant,
    ) -> Result<EvalRecord> {
        let hparams = match serde_json::to_value(cfg) {
            Ok(serde_json::Value::Object(m)) => m.into_iter().collect(),
            _ => BTreeMap::new(),
        };
        let slots = model.activations();
        Ok(EvalRecord {
            stage,
            step,
            plan: model.plan(),
            hparams,
            alphas: slots.iter().map(|a| a.alpha()).collect::<Result<_>>()?,
            betas: slots.iter().map(|a| a.beta()).collect::<Result<_>>()?,
            op_params: slots.iter().map(|a| a.params()).collect::<Result<_>>()?,
            valid_acc,
            test_acc,
            best_epoch: report.best_epoch,
            epochs: report.epochs.iter().map(EpochPoint::from).collect(),
            train_images: cfg.max_batches.map_or(self.data.train.len(), |b| {
                (b * cfg.batch_size).min(self.data.train.len())
            }),
            status,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// Appends a finished record to the log (durably) before anything else sees it.
    fn log(&self, record: &EvalRecord, observer: &mut ExperimentObserver<'_>) -> Result<()> {
        append_eval(&self.dir.evals_path(), record)?;
        observer(&ExperimentEvent::Evaluated {
            record: record.clone(),
            cached: false,
        })
    }

    /// [`Experiment::log`], then the record joins the memo.
    fn commit(
        &mut self,
        record: EvalRecord,
        observer: &mut ExperimentObserver<'_>,
    ) -> Result<EvalRecord> {
        self.log(&record, observer)?;
        self.cache
            .insert((record.stage, record.step), record.clone());
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

/// The splits the budget and the data config ask for.
fn remove_file_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

fn prepare(cfg: &ExperimentConfig, budget: &Budget, splits: Splits) -> Result<Splits> {
    let cut = |set: &ImageSet, n: Option<usize>| match n {
        Some(n) if n < set.len() => set.take(n),
        _ => set.clone(),
    };
    let mut data = Splits {
        train: cut(&splits.train, budget.train_subset),
        valid: cut(&splits.valid, budget.valid_subset),
        test: cut(&splits.test, budget.test_subset),
    };
    match cfg.data.augment {
        Augmentation::Dataset => {}
        Augmentation::Flip => data.train = data.train.with_augment(Augment::Flip),
        Augmentation::None => data.train = data.train.with_augment(Augment::None),
    }
    if cfg.data.normalize == Normalization::None {
        let plain = Normalize::identity(data.train.shape()[0]);
        data.train = data.train.with_normalize(plain.clone())?;
        data.valid = data.valid.with_normalize(plain.clone())?;
        data.test = data.test.with_normalize(plain)?;
    }
    Ok(data)
}
