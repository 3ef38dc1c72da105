//! `safs report`: the Table 1 rows of one or more run folders, combined over seeds.

use std::path::PathBuf;

use anyhow::Context;

use safs::experiment::ResultRow;
use safs::report::{combine, format_table, summarize_seeds, table1_frame, write_csv};

#[derive(clap::Args)]
pub struct ReportArgs {
    /// Run folders (each holds table1.json once its run finished).
    #[arg(required = true)]
    runs: Vec<PathBuf>,
    /// Also write the combined table (means, std, 95% intervals, paired differences) as CSV.
    #[arg(long)]
    csv: Option<PathBuf>,
}

pub fn run(a: ReportArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for dir in &a.runs {
        let path = dir.join("table1.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} has no finished result (run `safs run` to completion first)",
                path.display()
            )
        })?;
        let row: ResultRow =
            serde_json::from_str(&text).with_context(|| format!("invalid {}", path.display()))?;
        rows.push(row);
    }
    println!("{}", format_table(&table1_frame(&rows)?));
    for g in summarize_seeds(&rows)? {
        println!("{}", g.to_markdown());
    }
    let mut combined = combine(&rows)?;
    if let Some(p) = &a.csv {
        write_csv(&mut combined, p)?;
        println!("written {}", p.display());
    }
    Ok(())
}
