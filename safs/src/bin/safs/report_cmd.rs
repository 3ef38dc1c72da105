//! `safs report`: the Table 1 rows of one or more run folders, combined over seeds.

use std::path::PathBuf;

use anyhow::Context;

use safs::experiment::ResultRow;
use safs::report::{
    combine, compare_runs, comparison_markdown, format_table, long_frame, read_evals_jsonl,
    search_cost, summarize_seeds, table1_frame, write_csv, write_parquet, ComparedRun,
};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Run folders (each holds table1.json once its run finished), or a sweep folder: its
    /// finished runs, merged into runs_long.csv / .parquet and accuracy_vs_prune_rate.svg
    /// inside it.
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Also write the combined table (means, std, 95% intervals, paired differences) as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
    /// Also draw each group's arms with 95% intervals beside the paper's numbers (SVG or PNG
    /// by the file's extension; several groups get `-1`, `-2`, ... before it).
    #[arg(long)]
    chart: Option<PathBuf>,
    /// Compare with these run folders seed by seed (e.g. full fidelity against successive
    /// halving): each arm, the search epochs and minutes, and the paired difference
    /// (these minus the first set) with its 95% interval.
    #[arg(long, num_args = 1..)]
    against: Vec<PathBuf>,
}

fn read_row(dir: &std::path::Path) -> anyhow::Result<ResultRow> {
    let path = dir.join("table1.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} has no finished result (run `safs run` to completion first)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("invalid {}", path.display()))
}

fn compared(dirs: &[PathBuf]) -> anyhow::Result<Vec<ComparedRun>> {
    dirs.iter()
        .map(|d| {
            let log = read_evals_jsonl(&d.join("evals.jsonl"))?;
            Ok(ComparedRun {
                row: read_row(d)?,
                cost: search_cost(&log),
            })
        })
        .collect()
}

/// The finished run folders of a sweep folder (the unfinished ones are named on stderr).
fn sweep_runs(root: &std::path::Path) -> anyhow::Result<Vec<PathBuf>> {
    let dirs = safs::sweep::manifest_run_dirs(root)?;
    let (done, left): (Vec<PathBuf>, Vec<PathBuf>) = dirs
        .into_iter()
        .partition(|d| d.join("table1.json").is_file());
    if !left.is_empty() {
        eprintln!(
            "{} of {} runs of {} are not finished and left out: {}",
            left.len(),
            left.len() + done.len(),
            root.display(),
            left.iter()
                .map(|d| d.file_name().unwrap_or_default().to_string_lossy())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    anyhow::ensure!(!done.is_empty(), "{}: no finished run yet", root.display());
    Ok(done)
}

/// Writes the merged long table and the accuracy chart of a sweep into its folder.
fn write_sweep_outputs(root: &std::path::Path, rows: &[ResultRow]) -> anyhow::Result<()> {
    let mut long = long_frame(rows)?;
    let (csv, parquet) = (root.join("runs_long.csv"), root.join("runs_long.parquet"));
    write_csv(&mut long, &csv)?;
    write_parquet(&mut long, &parquet)?;
    println!("written {}\nwritten {}", csv.display(), parquet.display());
    let chart = root.join("accuracy_vs_prune_rate.svg");
    safs::plot::accuracy_vs_prune_rate(rows)?.save_svg(&chart)?;
    println!("written {}", chart.display());
    Ok(())
}

pub fn run(mut a: ReportArgs) -> anyhow::Result<()> {
    let sweep = match a.runs.as_slice() {
        [one] if one.join(safs::sweep::MANIFEST).is_file() => Some(one.clone()),
        _ => None,
    };
    if let Some(root) = &sweep {
        a.runs = sweep_runs(root)?;
    }
    if !a.against.is_empty() {
        let values = compare_runs(&compared(&a.runs)?, &compared(&a.against)?)?;
        println!("{}", comparison_markdown(&values, "first", "against"));
        return Ok(());
    }
    let mut rows = Vec::new();
    for dir in &a.runs {
        rows.push(read_row(dir)?);
    }
    println!("{}", format_table(&table1_frame(&rows)?));
    let groups = summarize_seeds(&rows)?;
    for g in &groups {
        println!("{}", g.to_markdown());
    }
    if let Some(path) = &a.chart {
        for (i, g) in groups.iter().enumerate() {
            let file = match groups.len() {
                1 => path.clone(),
                _ => {
                    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
                    let ext = path.extension().unwrap_or_default().to_string_lossy();
                    path.with_file_name(format!("{stem}-{}.{ext}", i + 1))
                }
            };
            let chart = safs::plot::seed_summary_chart(g)?;
            match file.extension().and_then(|e| e.to_str()) {
                Some("png") => chart.save_png(&file)?,
                _ => chart.save_svg(&file)?,
            }
            println!("written {}", file.display());
        }
    }
    if let Some(root) = &sweep {
        write_sweep_outputs(root, &rows)?;
    }
    let mut combined = combine(&rows)?;
    if let Some(p) = &a.csv {
        write_csv(&mut combined, p)?;
        println!("written {}", p.display());
    }
    Ok(())
}
