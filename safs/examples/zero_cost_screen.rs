//! How well do zero-cost proxies rank Stage 1 plans? For every full-fidelity Stage 1
//! evaluation logged in the given run folders, scores the same plan on the same pruned
//! network with each proxy of [`safs::search::ZeroCost`], and prints Spearman's rank
//! correlation between each proxy and the logged validation score, per run folder.
//!
//! `cargo run --release -p safs --example zero_cost_screen -- RUN_DIR... [--batches N] [--out FILE]`
//!
//! `--batches` minibatches of the run's training data (default 4; ZiCo needs 2); `--out`
//! writes one JSON line per plan (run, step, plan, score, proxies). The run folders need
//! their pruned network (`pruned.safetensors`) and the data (`safs data fetch mnist`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use safs::data::default_data_dir;
use safs::experiment::{EvalStatus, Experiment, ExperimentConfig, Stage};
use safs::report::{spearman, Summary};
use safs::search::ZeroCost;

fn main() -> Result<()> {
    let mut dirs = Vec::new();
    let (mut batches, mut out) = (4usize, None::<PathBuf>);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--batches" => batches = args.next().context("--batches needs a value")?.parse()?,
            "--out" => out = Some(args.next().context("--out needs a path")?.into()),
            _ => dirs.push(PathBuf::from(a)),
        }
    }
    if dirs.is_empty() {
        bail!("usage: zero_cost_screen RUN_DIR... [--batches N] [--out FILE]");
    }
    let mut lines = match &out {
        Some(p) => Some(std::fs::File::create(p).with_context(|| format!("{}", p.display()))?),
        None => None,
    };
    let proxies = ZeroCost::ALL;
    println!(
        "| run folder | plans | {} |",
        proxies
            .iter()
            .map(|p| format!("Spearman {p}"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|{}", "---|".repeat(proxies.len()));
    let (mut all_scores, mut all_proxies) = (Vec::new(), vec![Vec::new(); proxies.len()]);
    let mut per_folder: Vec<Vec<f64>> = vec![Vec::new(); proxies.len()];
    for dir in &dirs {
        let path = dir.join("config.json");
        let cfg: ExperimentConfig = serde_json::from_slice(
            &std::fs::read(&path).with_context(|| format!("{}", path.display()))?,
        )
        .with_context(|| format!("{}", path.display()))?;
        let exp = Experiment::new(cfg, dir, &default_data_dir(), Device::Cpu)?;
        let records: Vec<_> = exp
            .records()
            .into_iter()
            .filter(|r| {
                r.stage == Stage::Search(safs::experiment::Arm::Stage1)
                    && r.status == EvalStatus::Ok
                    && !r.is_partial()
            })
            .collect();
        let mut scores = Vec::new();
        let mut values = vec![Vec::new(); proxies.len()];
        for r in &records {
            let z = exp.zero_cost_scores(&r.plan, proxies, batches)?;
            scores.push(r.valid_acc);
            for (v, s) in values.iter_mut().zip(&z) {
                v.push(*s);
            }
            if let Some(f) = lines.as_mut() {
                let named: serde_json::Map<String, serde_json::Value> = proxies
                    .iter()
                    .zip(&z)
                    .map(|(p, s)| (p.name().to_string(), (*s).into()))
                    .collect();
                let line = serde_json::json!({
                    "run": dir.display().to_string(),
                    "step": r.step,
                    "plan": r.plan.to_string(),
                    "valid_acc": r.valid_acc,
                    "proxies": named,
                });
                writeln!(f, "{line}")?;
            }
        }
        let rho = |v: &[f64]| spearman(v, &scores).map_or("n/a".into(), |r| format!("{r:+.3}"));
        println!(
            "| {} | {} | {} |",
            dir.display(),
            records.len(),
            values
                .iter()
                .map(|v| rho(v))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        for (acc, v) in per_folder.iter_mut().zip(&values) {
            acc.extend(spearman(v, &scores));
        }
        all_scores.extend(scores);
        for (a, v) in all_proxies.iter_mut().zip(values) {
            a.extend(v);
        }
    }
    if dirs.len() > 1 {
        // Each folder has its own pruned network: the mean of the within-folder rank
        // correlations is the figure for screening one search; the pooled one mixes runs.
        println!(
            "| mean over folders (95% CI) | {} | {} |",
            dirs.len(),
            per_folder
                .iter()
                .map(|r| Summary::of(r).map_or("n/a".into(), |s| s.display(3)))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let rho = |v: &[f64]| spearman(v, &all_scores).map_or("n/a".into(), |r| format!("{r:+.3}"));
        println!(
            "| all (pooled) | {} | {} |",
            all_scores.len(),
            all_proxies
                .iter()
                .map(|v| rho(v))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    Ok(())
}
