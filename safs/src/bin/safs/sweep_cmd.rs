//! `safs sweep`: many experiments from one sweep file.

use std::path::PathBuf;

use anyhow::Context;
use safs::sweep::{expand, SweepSpec};

#[derive(clap::Subcommand)]
pub enum SweepCommand {
    /// Print the expanded runs of a sweep file and their run folders, running nothing.
    Plan {
        /// The sweep file (TOML).
        spec: PathBuf,
        /// The sweep folder (default: sweeps/<name>).
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
}

pub fn run(command: SweepCommand) -> anyhow::Result<()> {
    match command {
        SweepCommand::Plan { spec, out } => {
            let file = spec;
            let spec = SweepSpec::from_file(&file)?;
            let tasks = expand(&spec).with_context(|| format!("sweep file {}", file.display()))?;
            let root = out.unwrap_or_else(|| PathBuf::from("sweeps").join(&spec.name));
            let r = &spec.resources;
            println!(
                "sweep {}: {} runs in {} (per run: {} cpus, mem {}, {} gpus, time {})",
                spec.name,
                tasks.len(),
                root.display(),
                r.cpus,
                r.mem.as_deref().unwrap_or("-"),
                r.gpus,
                r.time.as_deref().unwrap_or("-"),
            );
            for t in &tasks {
                let set: Vec<String> = t
                    .overrides
                    .iter()
                    .map(|(f, v)| format!("{f}={v}"))
                    .collect();
                println!(
                    "{:>4}  {}  {}  {}",
                    t.index,
                    root.join(&t.folder).display(),
                    t.experiment.display(),
                    set.join(" ")
                );
            }
            Ok(())
        }
    }
}
