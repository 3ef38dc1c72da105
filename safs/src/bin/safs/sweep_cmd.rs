//! `safs sweep`: many experiments from one sweep file, planned, run here, or inspected.

use std::path::{Path, PathBuf};

use anyhow::Context;
use safs::data::default_data_dir;
use safs::sweep::slurm::{self, Submission};
use safs::sweep::{
    expand, run_local, LocalOptions, SweepEvent, SweepFolder, SweepSpec, SweepTask, TaskState,
};

use crate::Common;

#[derive(clap::Subcommand)]
pub enum SweepCommand {
    /// Print the expanded runs of a sweep file and their run folders, running nothing.
    Plan(SweepArgs),
    /// Run the sweep on this machine, N runs at a time; run again to resume.
    Run {
        #[command(flatten)]
        sweep: SweepArgs,
        /// Runs at once (each with the sweep file's `resources.cpus` threads).
        #[arg(long, default_value_t = 1)]
        parallel: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Where each run of a sweep stands: pending, started, failed or done.
    Status(SweepArgs),
    /// Submit the runs not yet done as one Slurm job array (again: only what is left).
    #[command(alias = "resubmit")]
    Submit {
        #[command(flatten)]
        sweep: SweepArgs,
        /// Write the sbatch script and print it, without submitting.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Run one task of a sweep by index (what each Slurm array task runs).
    RunTask {
        #[command(flatten)]
        sweep: SweepArgs,
        /// The task's index (`$SLURM_ARRAY_TASK_ID`).
        #[arg(long)]
        index: usize,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(clap::Args)]
pub struct SweepArgs {
    /// The sweep file (TOML).
    spec: PathBuf,
    /// The sweep folder (default: sweeps/<name>).
    #[arg(short, long)]
    out: Option<PathBuf>,
}

impl SweepArgs {
    fn load(&self) -> anyhow::Result<(SweepSpec, Vec<SweepTask>, PathBuf)> {
        let spec = SweepSpec::from_file(&self.spec)?;
        let tasks = expand(&spec).with_context(|| format!("sweep file {}", self.spec.display()))?;
        let root = self
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("sweeps").join(&spec.name));
        Ok((spec, tasks, root))
    }
}

fn overrides(t: &SweepTask) -> String {
    let set: Vec<String> = t
        .overrides
        .iter()
        .map(|(f, v)| format!("{f}={v}"))
        .collect();
    set.join(" ")
}

fn plan(args: &SweepArgs) -> anyhow::Result<()> {
    let (spec, tasks, root) = args.load()?;
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
        println!(
            "{:>4}  {}  {}  {}",
            t.index,
            root.join(&t.folder).display(),
            t.experiment.display(),
            overrides(t)
        );
    }
    Ok(())
}

fn status(args: &SweepArgs) -> anyhow::Result<()> {
    let (spec, tasks, root) = args.load()?;
    let folder = open_existing(&root, &spec, &tasks)?;
    let queue = slurm::queue_states(&root);
    for t in &tasks {
        let state = format!("{:?}", folder.state(t)).to_lowercase();
        let slurm = queue
            .get(&t.index)
            .map(|s| format!("  [slurm: {}]", s.to_lowercase()))
            .unwrap_or_default();
        println!(
            "{:>4}  {state:<8}  {}  {}{slurm}",
            t.index,
            t.folder,
            overrides(t)
        );
    }
    Ok(())
}

fn open_existing(
    root: &Path,
    spec: &SweepSpec,
    tasks: &[SweepTask],
) -> anyhow::Result<SweepFolder> {
    anyhow::ensure!(
        root.join(safs::sweep::MANIFEST).is_file(),
        "{} holds no sweep yet (start it with `safs sweep run`)",
        root.display()
    );
    Ok(SweepFolder::open(root, spec, tasks)?)
}

fn run(args: &SweepArgs, parallel: usize, common: &Common) -> anyhow::Result<()> {
    let (spec, tasks, root) = args.load()?;
    let folder = SweepFolder::open(&root, &spec, &tasks)?;
    let opts = LocalOptions {
        parallel,
        threads: spec.resources.cpus,
        data_root: common.data_dir.clone().unwrap_or_else(default_data_dir),
        device: safs::device::parse_device(&common.device)?,
    };
    let total = tasks.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let results = run_local(&folder, &tasks, &opts, &|ev| match ev {
        SweepEvent::Started { index, folder } => println!("[{index}] started {folder}"),
        SweepEvent::Finished {
            index,
            folder,
            result,
        } => {
            let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            match result {
                Ok(_) => println!("[{index}] done {folder} ({n}/{total})"),
                Err(e) => println!("[{index}] FAILED {folder} ({n}/{total}): {e}"),
            }
        }
    })?;
    let failed: Vec<usize> = (0..total).filter(|&i| results[i].is_err()).collect();
    anyhow::ensure!(
        failed.is_empty(),
        "{} of {total} runs failed ({failed:?}); fix the cause and run the same command again",
        failed.len()
    );
    println!(
        "all {total} runs done in {}; `safs report {}/*/` combines them",
        root.display(),
        root.display()
    );
    Ok(())
}

fn submit(args: &SweepArgs, dry_run: bool, common: &Common) -> anyhow::Result<()> {
    let (spec, tasks, root) = args.load()?;
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let root = root.canonicalize()?;
    let spec_path = args.spec.canonicalize()?;
    let folder = SweepFolder::open(&root, &spec, &tasks)?;
    let left: Vec<usize> = tasks
        .iter()
        .filter(|t| folder.state(t) != TaskState::Done)
        .map(|t| t.index)
        .collect();
    if left.is_empty() {
        println!("all {} runs of {} are done", tasks.len(), root.display());
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let sub = Submission {
        spec: &spec,
        spec_path: &spec_path,
        root: &root,
        exe: &exe,
        indices: &left,
        device: &common.device,
    };
    if dry_run {
        print!("{}", slurm::sbatch_script(&sub)?);
        return Ok(());
    }
    let id = slurm::submit(&sub)?;
    println!(
        "submitted job {id}: {} of {} runs (array {}); `safs sweep status` follows them",
        left.len(),
        tasks.len(),
        slurm::array_ranges(&left)
    );
    Ok(())
}

fn run_task(args: &SweepArgs, index: usize, common: &Common) -> anyhow::Result<()> {
    let (spec, tasks, root) = args.load()?;
    let task = tasks.get(index).with_context(|| {
        format!(
            "task {index} does not exist: the sweep has {} runs",
            tasks.len()
        )
    })?;
    let folder = SweepFolder::open(&root, &spec, &tasks)?;
    let opts = LocalOptions {
        parallel: 1,
        threads: spec.resources.cpus,
        data_root: common.data_dir.clone().unwrap_or_else(default_data_dir),
        device: safs::device::parse_device(&common.device)?,
    };
    let result = run_local(&folder, std::slice::from_ref(task), &opts, &|_| {})?;
    match result.into_iter().next() {
        Some(Ok(_)) => {
            println!("[{index}] done {}", task.folder);
            Ok(())
        }
        Some(Err(e)) => anyhow::bail!("[{index}] {} failed: {e}", task.folder),
        None => anyhow::bail!("[{index}] {} did not run", task.folder),
    }
}

pub fn run_command(command: SweepCommand) -> anyhow::Result<()> {
    match command {
        SweepCommand::Plan(a) => plan(&a),
        SweepCommand::Status(a) => status(&a),
        SweepCommand::Run {
            sweep,
            parallel,
            common,
        } => run(&sweep, parallel, &common),
        SweepCommand::Submit {
            sweep,
            dry_run,
            common,
        } => submit(&sweep, dry_run, &common),
        SweepCommand::RunTask {
            sweep,
            index,
            common,
        } => run_task(&sweep, index, &common),
    }
}
