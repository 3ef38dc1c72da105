//! MNIST and Fashion-MNIST: file names, loading and the paper's train/valid/test split.
//!
//! Both data sets are 60,000 training and 10,000 test grey-scale 28x28 images of 10
//! classes, stored as four IDX files. Following the paper, the 60k training images are split
//! by a seeded shuffle into `60k - valid_size` training and `valid_size` validation images
//! (default [`MNIST_VALID`] = 10k); the 10k test images stay separate.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::dataset::{ImageSet, Normalize, Splits};
use super::idx::read_idx;
use crate::{Error, Result};

/// Default number of training images held out for validation (the paper's 50k/10k split).
pub const MNIST_VALID: usize = 10_000;

/// Number of classes of both MNIST and Fashion-MNIST.
pub const MNIST_CLASSES: usize = 10;

/// Which MNIST-like data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[derive(strum::VariantArray, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "kebab-case")]
pub enum MnistKind {
    /// LeCun's handwritten digits (`"mnist"`).
    Mnist,
    /// Zalando's Fashion-MNIST (`"fashion-mnist"`).
    FashionMnist,
}

impl MnistKind {
    /// The name used in configs and as the data sub-directory: `mnist` or `fashion-mnist`.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The usual normalisation constants of the data set.
    pub fn normalize(self) -> Normalize {
        match self {
            MnistKind::Mnist => Normalize::mnist(),
            MnistKind::FashionMnist => Normalize::fashion_mnist(),
        }
    }
}

impl FromStr for MnistKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        crate::util::parse_variant(s, str::to_string).ok_or_else(|| {
            let valid = crate::util::variant_names::<Self>();
            Error::Config(format!("unknown data set '{s}'; expected one of {valid}"))
        })
    }
}

/// One of the four files of an MNIST-like data set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MnistFile {
    /// `train-images-idx3-ubyte`: 60k training images.
    TrainImages,
    /// `train-labels-idx1-ubyte`: 60k training labels.
    TrainLabels,
    /// `t10k-images-idx3-ubyte`: 10k test images.
    TestImages,
    /// `t10k-labels-idx1-ubyte`: 10k test labels.
    TestLabels,
}

impl MnistFile {
    /// All four files, in the order train images, train labels, test images, test labels.
    pub const ALL: [MnistFile; 4] = [
        MnistFile::TrainImages,
        MnistFile::TrainLabels,
        MnistFile::TestImages,
        MnistFile::TestLabels,
    ];

    /// The canonical (uncompressed) file name, e.g. `train-images-idx3-ubyte`.
    pub fn canonical_name(self) -> &'static str {
        match self {
            MnistFile::TrainImages => "train-images-idx3-ubyte",
            MnistFile::TrainLabels => "train-labels-idx1-ubyte",
            MnistFile::TestImages => "t10k-images-idx3-ubyte",
            MnistFile::TestLabels => "t10k-labels-idx1-ubyte",
        }
    }

    /// The names accepted for this file, in order of preference: the canonical name, the
    /// `train-images.idx3-ubyte` spelling, then both with `.gz`.
    pub fn candidate_names(self) -> [String; 4] {
        let canon = self.canonical_name();
        let dotted = canon.replacen("-idx", ".idx", 1);
        [
            canon.to_string(),
            dotted.clone(),
            format!("{canon}.gz"),
            format!("{dotted}.gz"),
        ]
    }
}

/// The path of `file` in `dir` under the first accepted name that exists; the error names
/// the canonical path and says how to fetch the data.
pub fn find_mnist_file(dir: &Path, file: MnistFile) -> Result<PathBuf> {
    let names = file.candidate_names();
    names
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::data(
                dir.join(file.canonical_name()),
                format!(
                    "not found (also tried {}, {}, {}); fetch the data with \
                     `safs data fetch --dataset {kind} --data-dir {root}`",
                    names[1],
                    names[2],
                    names[3],
                    kind = dir.file_name().unwrap_or_default().to_string_lossy(),
                    root = dir.parent().unwrap_or(dir).display()
                ),
            )
        })
}

/// Loads one images file (`[n, h, w]`) and its labels file (`[n]`, each below 10) as a set.
pub fn load_mnist_pair(images: &Path, labels: &Path, kind: MnistKind) -> Result<ImageSet> {
    let img = read_idx(images)?;
    let [n, h, w] = img.dims[..] else {
        return Err(Error::data(
            images,
            format!("expected 3 dimensions [n, h, w], found {:?}", img.dims),
        ));
    };
    let lab = read_idx(labels)?;
    let [m] = lab.dims[..] else {
        return Err(Error::data(
            labels,
            format!("expected 1 dimension [n], found {:?}", lab.dims),
        ));
    };
    if m != n {
        return Err(Error::data(
            labels,
            format!(
                "{m} labels but {} holds {n} images",
                images.file_name().unwrap_or_default().to_string_lossy()
            ),
        ));
    }
    if let Some((i, l)) = lab
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= MNIST_CLASSES)
    {
        return Err(Error::data(
            labels,
            format!("label {l} at index {i} is not below {MNIST_CLASSES}"),
        ));
    }
    let labels = lab.data.into_iter().map(u32::from).collect();
    ImageSet::new(img.data, labels, [1, h, w], MNIST_CLASSES, kind.normalize())
}

/// Loads MNIST or Fashion-MNIST from `dir` and splits the training images by a seeded
/// ChaCha8 shuffle into `60k - valid_size` train and `valid_size` validation images; the
/// test images are kept separate.
pub fn load_mnist(dir: &Path, kind: MnistKind, valid_size: usize, seed: u64) -> Result<Splits> {
    let path = |f| find_mnist_file(dir, f);
    let full = load_mnist_pair(
        &path(MnistFile::TrainImages)?,
        &path(MnistFile::TrainLabels)?,
        kind,
    )?;
    let test_images = path(MnistFile::TestImages)?;
    let test = load_mnist_pair(&test_images, &path(MnistFile::TestLabels)?, kind)?;
    if test.shape() != full.shape() {
        return Err(Error::data(
            test_images,
            format!(
                "test image shape {:?} differs from the training shape {:?}",
                test.shape(),
                full.shape()
            ),
        ));
    }
    let (train, valid) = full.split(valid_size, seed)?;
    Ok(Splits { train, valid, test })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::write_idx;
    use crate::data::test_util::TempDir;

    /// Writes a small synthetic MNIST-like data set (`n_train`/`n_test` 3x3 images).
    fn write_set(dir: &Path, n_train: usize, n_test: usize, gz: bool, dotted: bool) {
        for (file, n) in [
            (MnistFile::TrainImages, n_train),
            (MnistFile::TrainLabels, n_train),
            (MnistFile::TestImages, n_test),
            (MnistFile::TestLabels, n_test),
        ] {
            let names = file.candidate_names();
            let name = &names[dotted as usize + 2 * gz as usize];
            let p = dir.join(name);
            match file {
                MnistFile::TrainImages | MnistFile::TestImages => {
                    let data: Vec<u8> = (0..n * 9).map(|k| (k / 9) as u8).collect();
                    write_idx(&p, &[n, 3, 3], &data, gz).unwrap()
                }
                _ => {
                    let data: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
                    write_idx(&p, &[n], &data, gz).unwrap()
                }
            }
        }
    }

    #[test]
    fn kind_names_and_serde() {
        assert_eq!(
            serde_json::to_string(&MnistKind::Mnist).unwrap(),
            "\"mnist\""
        );
        assert_eq!(
            serde_json::to_string(&MnistKind::FashionMnist).unwrap(),
            "\"fashion-mnist\""
        );
        let k: MnistKind = serde_json::from_str("\"fashion-mnist\"").unwrap();
        assert_eq!(k, MnistKind::FashionMnist);
        assert_eq!("mnist".parse::<MnistKind>().unwrap(), MnistKind::Mnist);
        assert!("cifar".parse::<MnistKind>().is_err());
        assert_eq!(MnistKind::FashionMnist.to_string(), "fashion-mnist");
        assert_eq!(
            MnistFile::TrainImages.candidate_names(),
            [
                "train-images-idx3-ubyte",
                "train-images.idx3-ubyte",
                "train-images-idx3-ubyte.gz",
                "train-images.idx3-ubyte.gz"
            ]
        );
    }

    #[test]
    fn load_synthetic_all_spellings() {
        for (gz, dotted) in [(false, false), (false, true), (true, false), (true, true)] {
            let t = TempDir::new("mnist_spell");
            write_set(t.path(), 50, 20, gz, dotted);
            let s = load_mnist(t.path(), MnistKind::Mnist, 10, 1).unwrap();
            assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (40, 10, 20));
            assert_eq!(s.train.shape(), [1, 3, 3]);
            assert_eq!(s.test.class_counts(), vec![2; 10]);
            let mut all: Vec<usize> = s.train.indices().to_vec();
            all.extend_from_slice(s.valid.indices());
            all.sort_unstable();
            assert_eq!(all, (0..50).collect::<Vec<_>>());
            // Pixels and labels of a valid image still belong together.
            let k = s.valid.indices()[3];
            assert_eq!(s.valid.label(3) as usize, k % 10);
            assert_eq!(s.valid.image(3), &[k as u8; 9]);
            assert_eq!(s.train.normalize(), &Normalize::mnist());
        }
        let t = TempDir::new("mnist_fashion_norm");
        write_set(t.path(), 12, 4, false, false);
        let s = load_mnist(t.path(), MnistKind::FashionMnist, 2, 0).unwrap();
        assert_eq!(s.valid.normalize(), &Normalize::fashion_mnist());
    }

    #[test]
    fn same_seed_same_split() {
        let t = TempDir::new("mnist_seed");
        write_set(t.path(), 60, 10, false, false);
        let a = load_mnist(t.path(), MnistKind::Mnist, 15, 3).unwrap();
        let b = load_mnist(t.path(), MnistKind::Mnist, 15, 3).unwrap();
        let c = load_mnist(t.path(), MnistKind::Mnist, 15, 4).unwrap();
        assert_eq!(a.valid.indices(), b.valid.indices());
        assert_ne!(a.valid.indices(), c.valid.indices());
    }

    #[test]
    fn count_mismatch_names_label_file() {
        let t = TempDir::new("mnist_count");
        write_set(t.path(), 30, 10, false, false);
        let p = t.path().join("t10k-labels-idx1-ubyte");
        write_idx(&p, &[9], &[0; 9], false).unwrap();
        let e = load_mnist(t.path(), MnistKind::Mnist, 5, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("t10k-labels-idx1-ubyte"), "{e}");
        assert!(e.contains("9 labels") && e.contains("10 images"), "{e}");
    }

    #[test]
    fn label_out_of_range_names_file() {
        let t = TempDir::new("mnist_label");
        write_set(t.path(), 30, 10, false, false);
        let mut labels = vec![0u8; 30];
        labels[17] = 10;
        let p = t.path().join("train-labels-idx1-ubyte");
        write_idx(&p, &[30], &labels, false).unwrap();
        let e = load_mnist(t.path(), MnistKind::Mnist, 5, 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train-labels-idx1-ubyte"), "{e}");
        assert!(e.contains("label 10 at index 17"), "{e}");
    }

    #[test]
    fn wrong_rank_and_missing_files_are_named() {
        let t = TempDir::new("mnist_rank");
        write_set(t.path(), 30, 10, false, false);
        let p = t.path().join("t10k-images-idx3-ubyte");
        write_idx(&p, &[10, 9], &[0; 90], false).unwrap();
        let e = load_mnist(t.path(), MnistKind::Mnist, 5, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t10k-images-idx3-ubyte") && e.contains("3 dimensions"),
            "{e}"
        );
        std::fs::remove_file(&p).unwrap();
        let e = load_mnist(t.path(), MnistKind::Mnist, 5, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t10k-images-idx3-ubyte") && e.contains("not found"),
            "{e}"
        );
        assert!(e.contains("fetch"), "{e}");
    }

    #[test]
    fn valid_size_must_leave_training_images() {
        let t = TempDir::new("mnist_valid");
        write_set(t.path(), 10, 5, false, false);
        assert!(load_mnist(t.path(), MnistKind::Mnist, 10, 0).is_err());
        assert_eq!(
            load_mnist(t.path(), MnistKind::Mnist, 9, 0)
                .unwrap()
                .train
                .len(),
            1
        );
    }
}
