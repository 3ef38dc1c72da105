//! The set-up every notebook shares: one import line and one call.
//!
//! ```no_run
//! use kernel_extras::prelude::*;
//! # fn cell() -> safs::Result<()> {
//! let nb = Notebook::from_env()?; // prints "budget smoke, data /home/me/.cache/safs/data"
//! let cfg = nb.config("lenet5_mnist")?; // ../experiments/lenet5_mnist.toml at nb.budget
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::PathBuf;

use safs::data::DatasetKind;
use safs::experiment::{BudgetPreset, ExperimentConfig};
use safs::{Error, Result};

/// Names a notebook cell needs, in one import: `use kernel_extras::prelude::*;`.
pub mod prelude {
    pub use crate::{show, Html, Notebook, NotebookProgress, PlanView, SeedTable, Show, Table1};
    pub use safs::activation::{ActivationPlan, Op, SEARCH_SPACE};
    pub use safs::experiment::{
        Arm, BudgetPreset, EvalRecord, Experiment, ExperimentConfig, Stage,
    };
    pub use safs::model::Network;
    pub use std::path::{Path, PathBuf};
}

/// A notebook's knobs, read from the environment: the budget preset (`SAFS_BUDGET`:
/// smoke, cpu or paper; smoke when unset) and the data folder (`SAFS_DATA`, else
/// `~/.cache/safs/data`).
#[derive(Clone, Debug, PartialEq)]
pub struct Notebook {
    /// The budget every experiment of the notebook runs at.
    pub budget: BudgetPreset,
    /// Where the datasets live.
    pub data_root: PathBuf,
}

impl Notebook {
    /// Reads the knobs, tunes the process for training (glibc keeps freed tensors' memory
    /// for the next step; Candle's thread pool stops spinning on the kernels' cores) and
    /// prints them in one line.
    pub fn from_env() -> Result<Self> {
        let budget = match std::env::var("SAFS_BUDGET") {
            Ok(v) if !v.trim().is_empty() => v.trim().parse()?,
            _ => BudgetPreset::Smoke,
        };
        let nb = Notebook {
            budget,
            data_root: safs::data::default_data_dir(),
        };
        safs::kernels::tune_allocator();
        safs::kernels::tune_candle_threads();
        println!("{nb}");
        Ok(nb)
    }

    /// The experiment file `../experiments/<name>.toml` (notebooks run from `notebooks/`)
    /// with its budget set to this notebook's.
    pub fn config(&self, name: &str) -> Result<ExperimentConfig> {
        let path = PathBuf::from("../experiments").join(format!("{name}.toml"));
        if !path.is_file() {
            return Err(Error::Config(format!(
                "no experiment file {} (notebooks run from the notebooks/ folder)",
                path.display()
            )));
        }
        let mut cfg = ExperimentConfig::from_file(&path)?;
        cfg.budget = self.budget;
        Ok(cfg)
    }

    /// The folder to read `kind` from, and whether its data is real: the data folder when
    /// the real files load from it; otherwise (CIFAR-10 and ImageNet-16 only: no internet
    /// here) a folder of stand-in files in the real format with synthetic images, written
    /// now and labelled as such in a printed line. Numbers on stand-ins say nothing about
    /// the paper.
    pub fn data_or_standin(&self, kind: DatasetKind) -> Result<(PathBuf, bool)> {
        if kind.load(&self.data_root, None, 0).is_ok() {
            println!("using real {kind} from {}", self.data_root.display());
            return Ok((self.data_root.clone(), true));
        }
        let root = std::env::temp_dir().join("safs-standin-data");
        match kind {
            DatasetKind::Cifar10 => {
                safs::data::standin::write_cifar10_standin(&root, 200, 200, 0)?;
            }
            DatasetKind::ImageNet16 => {
                safs::data::standin::write_imagenet16_standin(&root, 100, 200, 1000, 0)?;
            }
            other => {
                return Err(Error::Config(format!(
                    "{other} is not in {} and has no stand-in: fetch it with `safs data fetch`",
                    self.data_root.display()
                )))
            }
        }
        println!(
            "STAND-IN DATA: no real {kind} in {}; synthetic images in the real file format \
             under {}",
            self.data_root.display(),
            root.display()
        );
        Ok((root, false))
    }

    /// The run folder of `cfg` under `../runs`, named by the config (name, budget, seed).
    pub fn run_dir(&self, cfg: &ExperimentConfig) -> PathBuf {
        PathBuf::from("../runs").join(cfg.run_name())
    }
}

impl fmt::Display for Notebook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "budget {}, data {}",
            self.budget,
            self.data_root.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notebook_line_and_config() {
        let nb = Notebook {
            budget: BudgetPreset::Cpu,
            data_root: PathBuf::from("/data"),
        };
        assert_eq!(nb.to_string(), "budget cpu, data /data");
        // Tests run in kernel-extras/, a sibling of notebooks/ like it.
        let cfg = nb.config("lenet5_mnist").unwrap();
        assert_eq!(cfg.budget, BudgetPreset::Cpu);
        assert_eq!(
            nb.run_dir(&cfg),
            PathBuf::from("../runs").join(cfg.run_name())
        );
        let err = nb.config("no_such_experiment").unwrap_err().to_string();
        assert!(
            err.contains("../experiments/no_such_experiment.toml"),
            "{err}"
        );
    }
}
