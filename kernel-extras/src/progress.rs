//! Experiment progress as plain text lines (no terminal escapes, no `\r`), one per
//! finished evaluation and per stage, then a summary.

use std::io::Write;

use safs::experiment::{EvalRecord, EvalStatus, ExperimentEvent, ResultRow, Stage};
use safs::train::TrainEvent;

use crate::{escape, Rendered, Show, Table1};

/// Longest plan printed on a progress line (longer ones are cut with "…").
/// What happened in one stage so far.
#[derive(Clone, Debug, PartialEq)]
struct StageLog {
    stage: Stage,
    planned: usize,
    done: usize,
    cached: usize,
    failed: usize,
    best_valid: Option<f64>,
    test: Option<f64>,
    seconds: f64,
}

impl StageLog {
    fn new(stage: Stage, planned: usize) -> Self {
        StageLog {
            stage,
            planned,
            done: 0,
            cached: 0,
            failed: 0,
            best_valid: None,
            test: None,
            seconds: 0.0,
        }
    }

    fn line(&self) -> String {
        let mut s = format!(
            "[{}] done: {} evaluation{}",
            self.stage.name(),
            self.done,
            if self.done == 1 { "" } else { "s" }
        );
        if self.cached > 0 || self.failed > 0 {
            s += &format!(" ({} cached, {} failed)", self.cached, self.failed);
        }
        if let Some(b) = self.best_valid {
            s += &format!(", best valid {b:.2}%");
        }
        if let Some(t) = self.test {
            s += &format!(", test {t:.2}%");
        }
        s += &format!(", {:.1} s", self.seconds);
        s
    }
}

/// An experiment observer for notebooks: pass `&mut progress.observer()` to
/// `Experiment::run`. It writes one line per stage start, finished evaluation and stage
/// end to stdout (or any writer), then the Table 1 row, and keeps every record for charts.
pub struct NotebookProgress {
    out: Box<dyn Write + Send>,
    epochs: bool,
    stages: Vec<StageLog>,
    open: Option<usize>,
    records: Vec<EvalRecord>,
    result: Option<ResultRow>,
}

impl std::fmt::Debug for NotebookProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotebookProgress")
            .field("stages", &self.stages)
            .field("records", &self.records.len())
            .field("result", &self.result)
            .finish()
    }
}

impl Default for NotebookProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl NotebookProgress {
    /// Progress lines to stdout, streamed by evcxr as they happen (on stderr, Jupyter would
    /// paint them as an error block).
    pub fn new() -> Self {
        Self::to_writer(std::io::stdout())
    }

    /// Progress lines to `out`.
    pub fn to_writer(out: impl Write + Send + 'static) -> Self {
        NotebookProgress {
            out: Box::new(out),
            epochs: false,
            stages: Vec::new(),
            open: None,
            records: Vec::new(),
            result: None,
        }
    }

    /// Also prints a line per finished training epoch (off by default).
    pub fn with_epochs(mut self, on: bool) -> Self {
        self.epochs = on;
        self
    }

    /// Every evaluation seen so far, in order (cached ones included).
    pub fn records(&self) -> &[EvalRecord] {
        &self.records
    }

    /// The Table 1 row, once the run finished.
    pub fn result(&self) -> Option<&ResultRow> {
        self.result.as_ref()
    }

    /// The closure form for `Experiment::run(&mut progress.observer())`.
    pub fn observer(&mut self) -> impl FnMut(&ExperimentEvent) -> safs::Result<()> + '_ {
        move |event| self.observe(event)
    }

    /// Writes one line; a failed write is ignored (progress must never stop a run).
    fn say(&mut self, line: &str) -> safs::Result<()> {
        // One write per line: never interleaved with another thread's line.
        let text = format!("{line}\n");
        let _ = self
            .out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush());
        Ok(())
    }

    fn close_stage(&mut self) -> safs::Result<()> {
        if let Some(i) = self.open.take() {
            let line = self.stages[i].line();
            self.say(&line)?;
        }
        Ok(())
    }

    /// Handles one event: prints its line, if it has one, and records it.
    pub fn observe(&mut self, event: &ExperimentEvent) -> safs::Result<()> {
        match event {
            ExperimentEvent::StageStarted { stage, total } => {
                self.close_stage()?;
                self.stages.push(StageLog::new(*stage, *total));
                self.open = Some(self.stages.len() - 1);
                self.say(&format!(
                    "[{}] started: {total} evaluation{} planned",
                    stage.name(),
                    if *total == 1 { "" } else { "s" }
                ))
            }
            ExperimentEvent::Train {
                stage,
                step,
                event: TrainEvent::Epoch(e),
            } if self.epochs => {
                let mut line = format!(
                    "[{} {step}] epoch {}: loss {:.4}, train {:.2}%",
                    stage.name(),
                    e.epoch + 1,
                    e.train_loss,
                    e.train_acc
                );
                if let Some(v) = &e.valid {
                    line += &format!(", valid {:.2}%", v.top1);
                }
                line += &format!(", lr {:.3e}, {:.1} s", e.lr, e.seconds);
                self.say(&line)
            }
            ExperimentEvent::Train { .. } => Ok(()),
            ExperimentEvent::Evaluated { record, cached } => {
                let line = self.evaluated(record, *cached);
                self.records.push(record.clone());
                self.say(&line)
            }
            ExperimentEvent::Finished { row } => {
                self.close_stage()?;
                self.result = Some(row.clone());
                let summary = self.summary();
                for line in summary.lines() {
                    self.say(line)?;
                }
                Ok(())
            }
        }
    }

    /// Updates the stage log with `r` and returns its line.
    fn evaluated(&mut self, r: &EvalRecord, cached: bool) -> String {
        let i = match self.open {
            Some(i) if self.stages[i].stage == r.stage => i,
            _ => {
                // An evaluation without its StageStarted: track it anyway.
                self.stages.push(StageLog::new(r.stage, 0));
                self.open = Some(self.stages.len() - 1);
                self.stages.len() - 1
            }
        };
        let log = &mut self.stages[i];
        log.done += 1;
        log.seconds += r.seconds;
        let failed = match &r.status {
            EvalStatus::Ok => None,
            EvalStatus::Failed(why) => Some(why.as_str()),
        };
        if cached {
            log.cached += 1;
        }
        if failed.is_some() {
            log.failed += 1;
        } else if r.valid_acc.is_finite() {
            log.best_valid = Some(log.best_valid.map_or(r.valid_acc, |b| b.max(r.valid_acc)));
        }
        if r.test_acc.is_some() {
            log.test = r.test_acc;
        }
        let of = if log.planned > 0 {
            format!("{}/{}", log.done, log.planned)
        } else {
            log.done.to_string()
        };
        let mut line = format!("[{of}] {}", r.progress_line(cached));
        if let Some(b) = log.best_valid {
            line += &format!(" | best {b:.2}%");
        }
        line
    }

    /// The run so far: one line per stage, then the Table 1 row once finished.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let total: usize = self.stages.iter().map(|l| l.done).sum();
        let cached: usize = self.stages.iter().map(|l| l.cached).sum();
        let failed: usize = self.stages.iter().map(|l| l.failed).sum();
        let seconds: f64 = self.stages.iter().map(|l| l.seconds).sum();
        s += &format!(
            "summary: {total} evaluations ({cached} cached, {failed} failed), {seconds:.1} s of training\n"
        );
        for l in &self.stages {
            s += &format!("  {}\n", l.line());
        }
        if let Some(r) = &self.result {
            let arm = |name: &str, v: Option<f64>| match v {
                Some(x) => format!("{name} {x:.2}"),
                None => format!("{name} n/a"),
            };
            s += &format!(
                "finished {} / {}, {} pruned, seed {}, budget {}\n",
                r.model,
                r.dataset,
                crate::table1::pct(r.prune_rate),
                r.seed,
                r.budget
            );
            s += &format!(
                "  test top-1: {} | {} | {} | {} | {} | gain {}\n",
                arm("dense", r.dense),
                arm("magnitude pruning", r.magnitude_pruning),
                arm("Stage 1", r.stage1),
                arm("Stage 2", r.stage2),
                arm("SAFS", r.safs),
                r.gain().map_or("n/a".into(), |g| format!("{g:+.2}"))
            );
        }
        s
    }

    /// Shows the summary in evcxr (with Table 1 beside the paper once finished).
    pub fn evcxr_display(&self) {
        Show::evcxr_display(self);
    }
}

impl Show for NotebookProgress {
    fn render(&self) -> Rendered {
        let mut html = format!(
            "<pre class=\"safs-progress\" style=\"font-size:12px\">{}</pre>",
            escape(self.summary().trim_end())
        );
        if let Some(r) = &self.result {
            html += "\n";
            html += &Table1::new(vec![r.clone()]).with_paper().to_html();
        }
        Rendered::html(html)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use safs::activation::{ActivationPlan, Op};
    use safs::train::{EpochSummary, Metrics};

    use super::*;
    use safs::experiment::Arm;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn rec(stage: Stage, step: usize, acc: f64, status: EvalStatus) -> EvalRecord {
        EvalRecord {
            stage,
            step,
            plan: ActivationPlan(vec![Op::Relu, Op::Swish]),
            hparams: BTreeMap::new(),
            alphas: vec![1.0; 2],
            betas: vec![1.0; 2],
            op_params: Vec::new(),
            valid_acc: acc,
            test_acc: None,
            best_epoch: None,
            epochs: Vec::new(),
            train_images: 0,
            status,
            seconds: 1.5,
        }
    }

    fn run(progress: &mut NotebookProgress) -> safs::Result<()> {
        // The same coercion as `Experiment::run(&mut progress.observer())`.
        let mut observer = progress.observer();
        let obs: &mut safs::experiment::ExperimentObserver<'_> = &mut observer;
        obs(&ExperimentEvent::StageStarted {
            stage: Stage::Search(Arm::Stage1),
            total: 3,
        })?;
        obs(&ExperimentEvent::Evaluated {
            record: rec(Stage::Search(Arm::Stage1), 0, 50.0, EvalStatus::Ok),
            cached: true,
        })?;
        obs(&ExperimentEvent::Train {
            stage: Stage::Search(Arm::Stage1),
            step: 1,
            event: TrainEvent::Epoch(EpochSummary {
                epoch: 0,
                train_loss: 0.5,
                train_acc: 80.0,
                valid: Some(Metrics {
                    loss: 0.6,
                    top1: 61.0,
                    top5: 90.0,
                    n: 10,
                }),
                lr: 0.01,
                seconds: 2.0,
            }),
        })?;
        obs(&ExperimentEvent::Train {
            stage: Stage::Search(Arm::Stage1),
            step: 1,
            event: TrainEvent::Batch {
                epoch: 0,
                batch: 3,
                batches: 10,
                loss: 0.4,
                lr: 0.01,
            },
        })?;
        obs(&ExperimentEvent::Evaluated {
            record: rec(Stage::Search(Arm::Stage1), 1, 61.0, EvalStatus::Ok),
            cached: false,
        })?;
        obs(&ExperimentEvent::Evaluated {
            record: rec(
                Stage::Search(Arm::Stage1),
                2,
                0.0,
                EvalStatus::Failed("loss is NaN\nat epoch 2".into()),
            ),
            cached: false,
        })?;
        obs(&ExperimentEvent::StageStarted {
            stage: Stage::Final(Arm::Stage1),
            total: 1,
        })?;
        let mut fin = rec(Stage::Final(Arm::Stage1), 0, 62.0, EvalStatus::Ok);
        fin.test_acc = Some(61.5);
        obs(&ExperimentEvent::Evaluated {
            record: fin,
            cached: false,
        })?;
        let mut row = safs::report::paper_table1()[0].clone();
        row.stage2 = None;
        obs(&ExperimentEvent::Finished { row })
    }

    #[test]
    fn progress_lines() {
        let buf = Buf::default();
        let mut p = NotebookProgress::to_writer(buf.clone());
        run(&mut p).unwrap();
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "[stage1_search] started: 3 evaluations planned");
        // The record's own line (`EvalRecord::progress_line`), counted and with the best.
        let plan = format!("{:<40}", "relu,swish");
        assert_eq!(
            lines[1],
            format!(
                "[1/3] stage1_search #0   {plan} valid  50.00% (1.5s) [from log] | best 50.00%"
            )
        );
        assert_eq!(
            lines[2],
            format!("[1/3] stage1_search #1   {plan} valid  61.00% (1.5s) | best 61.00%")
                .replace("[1/3]", "[2/3]")
        );
        assert_eq!(
            lines[3],
            format!(
                "[3/3] stage1_search #2   {plan} valid   0.00% (1.5s) FAILED: loss is NaN \
                 | best 61.00%"
            )
        );
        assert_eq!(
            lines[4],
            "[stage1_search] done: 3 evaluations (1 cached, 1 failed), best valid 61.00%, 4.5 s"
        );
        assert_eq!(lines[5], "[stage1_final] started: 1 evaluation planned");
        assert!(lines[6].starts_with("[1/1] stage1_final #0   relu,swish"));
        assert!(lines[6].contains(" valid  62.00% test 61.50% (1.5s) | best 62.00%"));
        assert!(lines[7]
            .starts_with("[stage1_final] done: 1 evaluation, best valid 62.00%, test 61.50%"));
        assert!(lines[8].starts_with("summary: 4 evaluations (1 cached, 1 failed), 6.0 s"));
        assert!(text.contains("finished lenet5 / mnist, 99% pruned, seed 0, budget paper"));
        assert!(text.contains("SAFS 62.22 | gain +15.53"), "{text}");
        assert!(text.contains("Stage 2 n/a"));
        // Epoch and batch events print nothing by default; no escapes, no carriage returns.
        assert!(!text.contains("epoch"));
        assert!(!text.contains('\r') && !text.contains('\x1b'));
        assert_eq!(p.records().len(), 4);
        assert_eq!(p.result().unwrap().safs, Some(62.22));
        let r = p.render();
        assert_eq!(r.mime, "text/html");
        assert!(r.body.contains("<pre class=\"safs-progress\""));
        assert!(r.body.contains("safs-table1"));
    }

    #[test]
    fn progress_epoch_lines() {
        let buf = Buf::default();
        let mut p = NotebookProgress::to_writer(buf.clone()).with_epochs(true);
        run(&mut p).unwrap();
        let text = buf.text();
        assert!(
            text.contains("[stage1_search 1] epoch 1: loss 0.5000, train 80.00%, valid 61.00%, lr 1.000e-2, 2.0 s"),
            "{text}"
        );
        assert_eq!(text.matches("epoch 1:").count(), 1);
    }

    #[test]
    fn progress_write_errors_do_not_stop_the_run() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::new(
                    std::io::ErrorKind::BrokenPipe,
                    "closed",
                ))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut p = NotebookProgress::to_writer(Closed);
        run(&mut p).unwrap();
        assert_eq!(p.records().len(), 4);
        assert!(p.summary().contains("4 evaluations"));
    }
}
