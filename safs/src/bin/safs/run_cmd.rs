//! `safs run`: a SAFS experiment end to end for one or more seeds, resumable.

use std::path::PathBuf;

use anyhow::Context;

use safs::data::default_data_dir;
use safs::experiment::{
    BudgetPreset, Experiment, ExperimentConfig, ExperimentEvent, ResultRow, Stage,
};
use safs::report::{format_table, summarize_seeds, table1_frame};

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
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run several seeds one after the other, e.g. `0-4` or `0,2,7-9` (overrides the file's
    /// `seeds`); each gets its own run folder.
    #[arg(long)]
    seeds: Option<String>,
    /// Run folder (default: runs/<name>-<budget>-seed<seed>); with several seeds, the folder
    /// that holds one run folder per seed. Run again to resume.
    #[arg(long, short)]
    out: Option<PathBuf>,
    /// Evaluate candidates and trials at this fidelity (overrides the file's): full,
    /// hyperband or successive_halving (min_epochs 1, eta 3; a `[fidelity]` table sets them).
    #[arg(long)]
    fidelity: Option<String>,
    /// Fine-tunes of a batch (a bracket's rung) trained at once; never changes a result.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Threads of each worker when --workers > 1 (results may depend on it).
    #[arg(long, default_value_t = 1)]
    threads_per_worker: usize,
    #[command(flatten)]
    common: Common,
}

/// Parses a seed list: comma-separated seeds and inclusive ranges `a-b`.
pub fn parse_seeds(text: &str) -> anyhow::Result<Vec<u64>> {
    let mut seeds = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let num = |s: &str| {
            s.trim()
                .parse::<u64>()
                .with_context(|| format!("seeds: '{s}' in '{text}' is not a number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                anyhow::ensure!(
                    a <= b,
                    "seeds: range '{part}' runs backwards (write {b}-{a})"
                );
                anyhow::ensure!(
                    b - a < 10_000,
                    "seeds: range '{part}' is too long (at most 10000 seeds)"
                );
                seeds.extend(a..=b);
            }
            None => seeds.push(num(part)?),
        }
    }
    anyhow::ensure!(
        !seeds.is_empty(),
        "seeds: '{text}' names no seed (write e.g. 0-4 or 0,2,5)"
    );
    let mut seen = std::collections::HashSet::new();
    if let Some(d) = seeds.iter().find(|s| !seen.insert(**s)) {
        anyhow::bail!("seeds: seed {d} is listed twice in '{text}'");
    }
    Ok(seeds)
}

pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let mut cfg = ExperimentConfig::from_file(&a.config)?;
    if let Some(b) = a.budget {
        cfg.budget = b;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
        cfg.seeds = None;
    }
    if let Some(name) = &a.fidelity {
        cfg.fidelity = safs::fidelity::Fidelity::from_name(name)?;
        cfg.validate()?;
    }
    if let Some(text) = &a.seeds {
        cfg.seeds = Some(parse_seeds(text)?);
    }
    cfg.validate()?;
    let seeds = cfg.seed_list();
    let mut rows = Vec::new();
    for &seed in &seeds {
        let one = cfg.for_seed(seed);
        let out = match (&a.out, seeds.len()) {
            (Some(o), 1) => o.clone(),
            (Some(o), _) => o.join(one.run_name()),
            (None, _) => PathBuf::from("runs").join(one.run_name()),
        };
        rows.push(run_one(&a, one, &out)?);
    }
    if rows.len() > 1 {
        for g in summarize_seeds(&rows)? {
            println!("{}", g.to_markdown());
        }
    }
    Ok(())
}

fn run_one(a: &RunArgs, cfg: ExperimentConfig, out: &std::path::Path) -> anyhow::Result<ResultRow> {
    let out = out.to_path_buf();
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
    exp.set_workers(safs::experiment::Workers {
        count: a.workers,
        threads: a.threads_per_worker,
    })?;
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
                eprintln!("{}", r.progress_line(*cached));
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
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::parse_seeds;

    #[test]
    fn seed_lists() {
        assert_eq!(parse_seeds("0-4").unwrap(), [0, 1, 2, 3, 4]);
        assert_eq!(parse_seeds("0,2, 7-9").unwrap(), [0, 2, 7, 8, 9]);
        assert_eq!(parse_seeds("3").unwrap(), [3]);
        for bad in ["", "a", "4-2", "1,1", "0-1,1", "-3"] {
            assert!(parse_seeds(bad).is_err(), "{bad}");
        }
    }
}
