//! `safs run`: one SAFS experiment end to end, resumable.

use std::path::PathBuf;

use anyhow::Context;

use safs::data::default_data_dir;
use safs::experiment::{BudgetPreset, Experiment, ExperimentConfig, ExperimentEvent, Stage};
use safs::report::{format_table, table1_frame};

use crate::progress::Bars;
use crate::Common;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The experiment's TOML file, e.g. experiments/lenet5_mnist.toml.
    config: PathBuf,
    /// Budget preset: smoke, cpu or paper (overrides the file's).
    #[arg(long)]
    budget: Option<BudgetPreset>,
    /// Override the seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Run folder (default: runs/<name>-<budget>-seed<seed>). Run again to resume.
    #[arg(long, short)]
    out: Option<PathBuf>,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let mut cfg = ExperimentConfig::from_file(&a.config)?;
    if let Some(b) = a.budget {
        cfg.budget = b;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    cfg.validate()?;
    let out = a
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(cfg.run_name()));
    let device = safs::device::parse_device(&a.common.device)?;
    let root = a.common.data_dir.clone().unwrap_or_else(default_data_dir);
    let data = root.join(cfg.dataset.dir_name());
    if safs::data::standin::is_standin(&data) {
        eprintln!(
            "warning: {} holds STAND-IN data (synthetic images, see its {}): the accuracies \
             of this run say nothing about {}",
            data.display(),
            safs::data::standin::STANDIN_FILE,
            cfg.dataset
        );
    }
    let started = std::time::Instant::now();
    let mut exp = Experiment::new(cfg.clone(), &out, &root, device)
        .with_context(|| format!("starting {} in {}", a.config.display(), out.display()))?;
    eprintln!("run folder: {} (budget {})", out.display(), cfg.budget);

    let mut bars: Option<(Stage, usize, Bars)> = None;
    let mut observer = |ev: &ExperimentEvent| -> safs::Result<()> {
        match ev {
            ExperimentEvent::StageStarted { stage, total } => {
                eprintln!(
                    "== {} ({total} evaluation{})",
                    stage.name(),
                    if *total == 1 { "" } else { "s" }
                );
            }
            ExperimentEvent::Train { stage, step, event } => {
                if bars.as_ref().map(|(s, i, _)| (*s, *i)) != Some((*stage, *step)) {
                    bars = Some((
                        *stage,
                        *step,
                        Bars::new(&format!("{} #{step}", stage.name())).quiet_epochs(),
                    ));
                }
                if let Some((_, _, b)) = bars.as_mut() {
                    b.on_event(event);
                }
            }
            ExperimentEvent::Evaluated { record: r, cached } => {
                bars = None;
                let test = r
                    .test_acc
                    .map(|t| format!(" test {t:.2}%"))
                    .unwrap_or_default();
                let status = match &r.status {
                    safs::experiment::EvalStatus::Ok => String::new(),
                    safs::experiment::EvalStatus::Failed(why) => format!(" FAILED: {why}"),
                };
                eprintln!(
                    "{} #{:<3} {:<40} valid {:6.2}%{test} ({:.1}s){}{status}",
                    r.stage.name(),
                    r.step,
                    r.plan.to_string(),
                    r.valid_acc,
                    r.seconds,
                    if *cached { " [from log]" } else { "" },
                );
            }
            ExperimentEvent::Finished { .. } => {}
        }
        Ok(())
    };
    let row = exp.run(&mut observer)?;
    let table = table1_frame(std::slice::from_ref(&row))?;
    println!("{}", format_table(&table));
    println!(
        "result: run={} seconds={:.0} tables={}",
        out.display(),
        started.elapsed().as_secs_f64(),
        exp.run_dir().table_path("table1.csv").display()
    );
    Ok(())
}
