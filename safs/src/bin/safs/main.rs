//! `safs`: train, prune, fine-tune and evaluate sparse networks from the command line.

mod config;
mod data_cmd;
mod eval_cmd;
mod progress;
mod prune_cmd;
mod report_cmd;
mod run_cmd;
mod sweep_cmd;
mod train_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sparse Activation Function Search (Loni et al., AutoML-Conf 2023).
#[derive(Parser)]
#[command(name = "safs", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options every command that touches data or a model shares.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// Where datasets live (default: $SAFS_DATA, else ~/.cache/safs/data).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Device: cpu, cuda or cuda:N.
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
}

#[derive(Subcommand)]
enum Command {
    /// Get datasets onto this machine (with MD5 checks), or write labelled stand-ins.
    Data {
        #[command(subcommand)]
        command: data_cmd::DataCommand,
    },
    /// Train a network (dense from scratch, or fine-tune a pruned checkpoint with --from).
    Train(train_cmd::TrainArgs),
    /// Prune a checkpoint by weight magnitude and write the pruned checkpoint.
    Prune(prune_cmd::PruneArgs),
    /// Evaluate a checkpoint on the validation or test set.
    Eval(eval_cmd::EvalArgs),
    /// Run a whole SAFS experiment (resumes when run again on the same folder).
    Run(run_cmd::RunArgs),
    /// Combine finished run folders into one table.
    Report(report_cmd::ReportArgs),
    /// Many experiments from one sweep file: axes over experiment fields.
    Sweep {
        #[command(subcommand)]
        command: sweep_cmd::SweepCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    safs::kernels::tune_allocator();
    safs::kernels::tune_candle_threads();
    let result = match cli.command {
        Command::Data { command } => data_cmd::run(command),
        Command::Train(a) => train_cmd::run(a),
        Command::Prune(a) => prune_cmd::run(a),
        Command::Eval(a) => eval_cmd::run(a),
        Command::Run(a) => run_cmd::run(a),
        Command::Report(a) => report_cmd::run(a),
        Command::Sweep { command } => sweep_cmd::run_command(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
