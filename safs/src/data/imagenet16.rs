//! ImageNet-16 (Chrabaszcz, Loshchilov & Hutter 2017, "A Downsampled Variant of ImageNet
//! as an Alternative to the CIFAR datasets"): all 1,281,167 training and 50,000 validation
//! images of ImageNet-1k at 16x16, and NAS-Bench-201's `ImageNet16-120` subset.
//!
//! # Files
//!
//! The pickle edition, as NAS-Bench-201 reads it: `Imagenet16_train/train_data_batch_1`
//! .. `train_data_batch_10` and `Imagenet16_val/val_data` (or all eleven files in one
//! folder). Each is a pickled dict (protocol 2 from Python 2, or protocol 2-5 from
//! Python 3; keys `str` or `bytes`) with `data`, a numpy `uint8` array of shape `(n, 768)`
//! (the red, green and blue 16x16 planes), `labels`, a list of `n` ints from 1 to 1000,
//! and `mean`, a float array (the authors' mean image, ignored here). The npz edition
//! (`train_data_batch_N.npz`, `val_data.npz` with arrays `data`, `labels`, `mean`) is read
//! too when written by `np.savez` (stored entries; `np.savez_compressed` archives are
//! refused with an explanation). There is no public download: see [`find_imagenet16`]'s
//! error for where to get it.
//!
//! # Classes, splits, normalisation, augmentation
//!
//! [`ImageNet16Classes::All`] keeps the 1000 classes; [`ImageNet16Classes::First`]`(120)`
//! keeps the images with labels 1..=120, as NAS-Bench-201 builds ImageNet16-120 (151,700
//! training and 6,000 validation images). Labels become 0-based. Following the crate's
//! other loaders, the validation split is drawn (seeded) from the training images and the
//! official `val_data` is the test set. Normalisation is NAS-Bench-201's
//! ([`Normalize::imagenet16`]: mean (122.68, 116.66, 104.01) / 255, std (63.22, 61.26,
//! 65.09) / 255); its training augmentation is `RandomHorizontalFlip` +
//! `RandomCrop(16, padding=2)`, i.e. [`Augment::CropFlip`](super::Augment)` { pad: 2 }`.
//!
//! # Memory
//!
//! Images stay `u8` in memory ([`ImageSet`]) and are converted to normalised `f32` one
//! batch at a time, so the set is never decoded as a whole: all 1000 classes take
//! 1,281,167 x 768 bytes = 984 MB plus 38 MB for `val_data`; ImageNet16-120 takes 117 MB
//! plus 4.6 MB. Files are read one at a time (one file's bytes and its decoded array,
//! about 200-300 MB, are alive at once) and filtered before they are appended.

use std::path::{Path, PathBuf};

use super::cifar10::{int_list, take_u8_rows};
use super::dataset::{ImageSet, Normalize, Splits};
use super::fetch::md5_file;
use super::pickle::{read_pickle, NdArray, NpDtype};
use crate::{Error, Result};

/// Number of ImageNet classes.
pub const IMAGENET16_CLASSES: usize = 1000;

/// Bytes per image: 3 planes of 16x16.
pub const IMAGENET16_PIXELS: usize = 3 * 16 * 16;

/// Default validation images drawn from the training set, all 1000 classes.
pub const IMAGENET16_VALID: usize = 10_000;

/// Default validation images drawn from the training set of ImageNet16-120 (as many as
/// its test set).
pub const IMAGENET16_120_VALID: usize = 6_000;

/// File names of the pickle edition with the MD5s that NAS-Bench-201 checks.
pub const IMAGENET16_MD5: [(&str, &str); 11] = [
    ("train_data_batch_1", "27846dcaa50de8e21a7d1a35f30f0e91"),
    ("train_data_batch_2", "c7254a054e0e795c69120a5727050e3f"),
    ("train_data_batch_3", "4333d3df2e5ffb114b05d2ffc19b1e87"),
    ("train_data_batch_4", "1620cdf193304f4a92677b695d70d10f"),
    ("train_data_batch_5", "348b3c2fdbb3940c4e9e834affd3b18d"),
    ("train_data_batch_6", "6e765307c242a1b3d7d5ef9139b48945"),
    ("train_data_batch_7", "564926d8cbf8fc4818ba23d2faac7564"),
    ("train_data_batch_8", "f4755871f718ccb653440b9dd0ebac66"),
    ("train_data_batch_9", "bb6dd660c38c58552125b1a92f86b5d4"),
    ("train_data_batch_10", "8f03f34ac4b42271a294f91bf480f29b"),
    ("val_data", "3410e3017fdaefba8d5073aaa65e4bd6"),
];

/// Folders (relative to the data folder) searched for the files, in order.
const FOLDERS: [&str; 7] = [
    "",
    "Imagenet16_train",
    "Imagenet16_val",
    "Imagenet16_train_npz",
    "Imagenet16_val_npz",
    "Imagenet16",
    "ImageNet16",
];

/// Which classes of ImageNet-16 to keep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageNet16Classes {
    /// All 1000 classes.
    All,
    /// The classes with (1-based) labels `1..=k`; `First(120)` is ImageNet16-120.
    First(usize),
}

impl ImageNet16Classes {
    /// Number of classes kept.
    pub fn num_classes(self) -> usize {
        match self {
            ImageNet16Classes::All => IMAGENET16_CLASSES,
            ImageNet16Classes::First(k) => k,
        }
    }

    fn check(self) -> Result<()> {
        match self {
            ImageNet16Classes::First(k) if k == 0 || k > IMAGENET16_CLASSES => {
                Err(Error::Config(format!(
                    "ImageNet-16 class subset First({k}) must keep 1 to {IMAGENET16_CLASSES} \
                     classes"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// The eleven files of an ImageNet-16 copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageNet16Files {
    /// `train_data_batch_1` .. `train_data_batch_10` (or `.npz`), in order.
    pub train: Vec<PathBuf>,
    /// `val_data` (or `val_data.npz`), used as the test set.
    pub val: PathBuf,
}

fn not_found(dir: &Path, missing: &str) -> Error {
    Error::data(
        dir,
        format!(
            "ImageNet-16 file {missing} not found (looked in this folder and its \
             Imagenet16_train/, Imagenet16_val/, Imagenet16_train_npz/, Imagenet16_val_npz/, \
             Imagenet16/ sub-folders, with and without .npz). ImageNet-16 has no public \
             download: after accepting the ImageNet terms at https://image-net.org/download-images \
             (Downsampled ImageNet, 16x16; see also \
             https://patrykchrabaszcz.github.io/Imagenet32/), unzip Imagenet16_train.zip and \
             Imagenet16_val.zip here so that it holds Imagenet16_train/train_data_batch_1 .. \
             train_data_batch_10 and Imagenet16_val/val_data (or all eleven files in one \
             folder), e.g. under $SAFS_DATA/imagenet16"
        ),
    )
}

/// Finds the eleven ImageNet-16 files in `dir` or its usual sub-folders (pickle files
/// before `.npz` ones); the error says where to get the data and how to lay it out.
pub fn find_imagenet16(dir: &Path) -> Result<ImageNet16Files> {
    let find = |name: &str| {
        ["", ".npz"].iter().find_map(|ext| {
            FOLDERS
                .iter()
                .map(|f| dir.join(f).join(format!("{name}{ext}")))
                .find(|p| p.is_file())
        })
    };
    let mut train = Vec::with_capacity(10);
    for k in 1..=10 {
        let name = format!("train_data_batch_{k}");
        train.push(find(&name).ok_or_else(|| not_found(dir, &name))?);
    }
    let val = find("val_data").ok_or_else(|| not_found(dir, "val_data"))?;
    Ok(ImageNet16Files { train, val })
}

/// Checks the pickle files in `dir` against the MD5s NAS-Bench-201 publishes
/// ([`IMAGENET16_MD5`]); the error names the first file that differs.
pub fn verify_imagenet16(dir: &Path) -> Result<()> {
    let files = find_imagenet16(dir)?;
    for (path, (name, md5)) in files.train.iter().chain([&files.val]).zip(IMAGENET16_MD5) {
        if path.extension().is_some_and(|e| e == "npz") {
            return Err(Error::data(
                path,
                format!("no published MD5 for the npz edition (expected {name})"),
            ));
        }
        let found = md5_file(path)?;
        if found != md5 {
            return Err(Error::data(
                path,
                format!("MD5 mismatch: expected {md5} (NAS-Bench-201), found {found}"),
            ));
        }
    }
    Ok(())
}

/// Reads one ImageNet-16 batch file (pickle, or `.npz` by extension). Returns the images
/// (`n x 3 x 16 x 16` bytes) and the labels as stored, 1-based (each in `1..=1000`).
pub fn read_imagenet16_batch(path: &Path) -> Result<(Vec<u8>, Vec<u32>)> {
    let (images, n, labels) = if path.extension().is_some_and(|e| e == "npz") {
        read_npz(path)?
    } else {
        let mut dict = read_pickle(path)?;
        let (images, n) = take_u8_rows(&mut dict, "data", IMAGENET16_PIXELS, path)?;
        let labels = int_list(&dict, "labels", n, path)?;
        (images, n, labels)
    };
    debug_assert_eq!(images.len(), n * IMAGENET16_PIXELS);
    let labels = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            u32::try_from(l)
                .ok()
                .filter(|&l| (1..=IMAGENET16_CLASSES as u32).contains(&l))
                .ok_or_else(|| {
                    Error::data(
                        path,
                        format!(
                            "label {l} at index {i} is not in 1..={IMAGENET16_CLASSES} \
                             (ImageNet-16 labels are 1-based)"
                        ),
                    )
                })
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok((images, labels))
}

/// The `data` and `labels` arrays of an npz batch (read by [`super::npz`], which checks
/// every claimed size against the file before allocating).
fn read_npz(path: &Path) -> Result<(Vec<u8>, usize, Vec<i64>)> {
    let mut arrays = super::npz::read_npz(path)?;
    let names: Vec<String> = arrays.iter().map(|(n, _)| n.clone()).collect();
    let mut take = |name: &str| {
        let i = arrays.iter().position(|(n, _)| n == name).ok_or_else(|| {
            Error::data(
                path,
                format!("no '{name}' array in the npz (arrays: {names:?})"),
            )
        })?;
        Ok::<NdArray, Error>(arrays.swap_remove(i).1)
    };
    let data = take("data")?;
    let (n, width) = match data.shape[..] {
        [n, w] if data.dtype == NpDtype::U8 => (n, w),
        _ => {
            return Err(Error::data(
                path,
                format!(
                    "'data' is a {:?} array of shape {:?}; expected uint8 of shape (n, \
                     {IMAGENET16_PIXELS})",
                    data.dtype, data.shape
                ),
            ))
        }
    };
    if width != IMAGENET16_PIXELS {
        return Err(Error::data(
            path,
            format!("'data' has shape ({n}, {width}); expected (n, {IMAGENET16_PIXELS})"),
        ));
    }
    let labels = take("labels")?;
    let values = labels.to_i64().ok_or_else(|| {
        Error::data(
            path,
            format!(
                "'labels' has dtype {:?}, not an integer type (or values above i64::MAX)",
                labels.dtype
            ),
        )
    })?;
    if values.len() != n {
        return Err(Error::data(
            path,
            format!("'labels' has {} entries for {n} images", values.len()),
        ));
    }
    Ok((data.data, n, values))
}

/// Appends the images of `path` whose 1-based label `classes` keeps, with 0-based labels.
fn append_batch(
    path: &Path,
    classes: ImageNet16Classes,
    images: &mut Vec<u8>,
    labels: &mut Vec<u32>,
) -> Result<()> {
    let (x, y) = read_imagenet16_batch(path)?;
    let keep = classes.num_classes() as u32;
    for (img, &l) in x.chunks_exact(IMAGENET16_PIXELS).zip(&y) {
        if l <= keep {
            images.extend_from_slice(img);
            labels.push(l - 1);
        }
    }
    Ok(())
}

/// Loads ImageNet-16 from `dir` (see [`find_imagenet16`]), keeping `classes`, and splits
/// the training images by a seeded ChaCha8 shuffle into `n - valid_size` train and
/// `valid_size` validation images; `val_data` is the test set. Labels are 0-based. Not
/// augmented.
pub fn load_imagenet16(
    dir: &Path,
    classes: ImageNet16Classes,
    valid_size: usize,
    seed: u64,
) -> Result<Splits> {
    classes.check()?;
    let files = find_imagenet16(dir)?;
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for path in &files.train {
        append_batch(path, classes, &mut images, &mut labels)?;
    }
    let shape = [3, 16, 16];
    let k = classes.num_classes();
    let full = ImageSet::new(images, labels, shape, k, Normalize::imagenet16())?;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    append_batch(&files.val, classes, &mut x, &mut y)?;
    let test = ImageSet::new(x, y, shape, k, Normalize::imagenet16())?;
    let (train, valid) = full.split(valid_size, seed)?;
    Ok(Splits { train, valid, test })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::pickle_write::{dumps, Py, Style};
    use crate::data::test_util::fixture;
    use crate::data::test_util::TempDir;
    use candle_core::{DType, Device, Tensor};

    /// Image `i` of file `f`: every byte `(f * 40 + i) % 256`; its 1-based label given.
    fn batch_dict(f: usize, labels: &[i64], str_keys: bool) -> Py {
        let n = labels.len();
        let data: Vec<u8> = (0..n)
            .flat_map(|i| std::iter::repeat_n(((f * 40 + i) % 256) as u8, 768))
            .collect();
        let key = |k: &str| {
            if str_keys {
                Py::Str(k.into())
            } else {
                Py::Bytes(k.as_bytes().to_vec())
            }
        };
        Py::Dict(vec![
            (key("data"), Py::u8_array(&[n, 768], &data)),
            (key("labels"), Py::ints(labels)),
            (key("mean"), Py::f64_array(&[768], &[0.5; 768])),
        ])
    }

    /// Labels of file `f`: 4 images, 1-based, some above 120.
    fn labels_of(f: usize) -> Vec<i64> {
        vec![1 + f as i64, 120, 121 + f as i64 * 7, 1000 - f as i64]
    }

    /// Writes a complete copy in the NAS-Bench-201 layout (or flat).
    fn write_set(dir: &Path, style: Style, flat: bool) {
        let (train_dir, val_dir) = if flat {
            (dir.to_path_buf(), dir.to_path_buf())
        } else {
            (dir.join("Imagenet16_train"), dir.join("Imagenet16_val"))
        };
        std::fs::create_dir_all(&train_dir).unwrap();
        std::fs::create_dir_all(&val_dir).unwrap();
        let str_keys = style != Style::Py2;
        for f in 1..=10 {
            let d = batch_dict(f, &labels_of(f), str_keys);
            std::fs::write(
                train_dir.join(format!("train_data_batch_{f}")),
                dumps(&d, style),
            )
            .unwrap();
        }
        let d = batch_dict(0, &[5, 200, 120, 121, 1], str_keys);
        std::fs::write(val_dir.join("val_data"), dumps(&d, style)).unwrap();
    }

    #[test]
    fn loads_all_protocols_with_zero_based_labels() {
        for (style, flat) in [
            (Style::Py2, false),
            (Style::Py3Proto2, true),
            (Style::Py3Proto3, false),
        ] {
            let t = TempDir::new("in16_all");
            write_set(t.path(), style, flat);
            let s = load_imagenet16(t.path(), ImageNet16Classes::All, 8, 1).unwrap();
            assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (32, 8, 5));
            assert_eq!(s.train.shape(), [3, 16, 16]);
            assert_eq!(s.train.num_classes(), 1000);
            assert_eq!(s.test.normalize(), &Normalize::imagenet16());
            let test: Vec<u32> = (0..5).map(|i| s.test.label(i)).collect();
            assert_eq!(test, vec![4, 199, 119, 120, 0]);
            // Storage order: file 1's images, then file 2's, ...; pixels follow labels.
            for set in [&s.train, &s.valid] {
                for (i, &k) in set.indices().iter().enumerate() {
                    let (f, j) = (k / 4 + 1, k % 4);
                    assert_eq!(set.label(i) as i64, labels_of(f)[j] - 1, "{style:?}");
                    assert_eq!(set.image(i), &[((f * 40 + j) % 256) as u8; 768][..]);
                }
            }
        }
    }

    #[test]
    fn first_120_filters_and_shifts() {
        let t = TempDir::new("in16_120");
        write_set(t.path(), Style::Py2, false);
        let s = load_imagenet16(t.path(), ImageNet16Classes::First(120), 3, 0).unwrap();
        // Per file: labels 1+f (<= 11) and 120 are kept; 121+7f and 1000-f are not.
        assert_eq!(s.train.len() + s.valid.len(), 20);
        assert_eq!(s.train.num_classes(), 120);
        let mut all: Vec<u32> = (0..s.train.len()).map(|i| s.train.label(i)).collect();
        all.extend((0..s.valid.len()).map(|i| s.valid.label(i)));
        all.sort_unstable();
        let mut want: Vec<u32> = (1..=10).map(|f| f as u32).collect();
        want.extend([119; 10]);
        want.sort_unstable();
        assert_eq!(all, want);
        let test: Vec<u32> = (0..s.test.len()).map(|i| s.test.label(i)).collect();
        assert_eq!(test, vec![4, 119, 0]);
        // The kept test images are the right ones (val file 0: byte i for image i).
        assert_eq!(s.test.image(1)[0], 2);
        assert_eq!(s.test.image(2)[0], 4);
        assert!(load_imagenet16(t.path(), ImageNet16Classes::First(0), 1, 0).is_err());
        assert!(load_imagenet16(t.path(), ImageNet16Classes::First(1001), 1, 0).is_err());
        let s = load_imagenet16(t.path(), ImageNet16Classes::First(1000), 1, 0).unwrap();
        assert_eq!(s.test.len(), 5);
    }

    #[test]
    fn python_written_fixtures() {
        for name in [
            "imagenet16_proto2.pkl",
            "imagenet16_proto3.pkl",
            "imagenet16_proto4.pkl",
            "imagenet16_py2_style.pkl",
            "imagenet16_train_data_batch_1.npz",
        ] {
            let (x, y) = read_imagenet16_batch(&fixture(name)).unwrap();
            assert_eq!(y, vec![1, 120, 121, 1000], "{name}");
            let want: Vec<u8> = (0..4)
                .flat_map(|i| (0..768).map(move |j| ((i * 7 + j * 13) % 256) as u8))
                .collect();
            assert_eq!(x, want, "{name}");
        }
        let e = read_imagenet16_batch(&fixture("imagenet16_compressed.npz"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("imagenet16_compressed.npz") && e.contains("savez_compressed"),
            "{e}"
        );
    }

    #[test]
    fn npz_edition_loads() {
        let t = TempDir::new("in16_npz");
        let dir = t.path().join("Imagenet16_train_npz");
        std::fs::create_dir_all(&dir).unwrap();
        let write = |path: PathBuf, f: usize, labels: &[i64]| {
            let n = labels.len();
            let data: Vec<u8> = (0..n)
                .flat_map(|i| std::iter::repeat_n(((f * 40 + i) % 256) as u8, 768))
                .collect();
            let data = Tensor::from_vec(data, (n, 768), &Device::Cpu).unwrap();
            let labels = Tensor::new(labels, &Device::Cpu).unwrap();
            let mean = Tensor::zeros(768, DType::F64, &Device::Cpu).unwrap();
            Tensor::write_npz(
                &[("data", &data), ("labels", &labels), ("mean", &mean)],
                path,
            )
            .unwrap();
        };
        for f in 1..=10 {
            write(
                dir.join(format!("train_data_batch_{f}.npz")),
                f,
                &labels_of(f),
            );
        }
        write(t.path().join("val_data.npz"), 0, &[3, 4]);
        let s = load_imagenet16(t.path(), ImageNet16Classes::First(120), 2, 5).unwrap();
        assert_eq!((s.train.len() + s.valid.len(), s.test.len()), (20, 2));
        assert_eq!(s.test.label(0), 2);
        // A wrong width is named.
        let p = dir.join("train_data_batch_4.npz");
        let data = Tensor::zeros((2, 700), DType::U8, &Device::Cpu).unwrap();
        let labels = Tensor::new(&[1i64, 2], &Device::Cpu).unwrap();
        Tensor::write_npz(&[("data", &data), ("labels", &labels)], &p).unwrap();
        let e = load_imagenet16(t.path(), ImageNet16Classes::All, 2, 5)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train_data_batch_4.npz") && e.contains("700"),
            "{e}"
        );
    }

    #[test]
    fn bad_shapes_labels_and_missing_files_are_named() {
        let t = TempDir::new("in16_bad");
        write_set(t.path(), Style::Py2, false);
        let p = t.path().join("Imagenet16_train/train_data_batch_7");
        let write = |d: Py| std::fs::write(&p, dumps(&d, Style::Py2)).unwrap();
        let load = || {
            load_imagenet16(t.path(), ImageNet16Classes::All, 1, 0)
                .unwrap_err()
                .to_string()
        };
        // Label 0: the files are 1-based.
        write(batch_dict(7, &[3, 0], false));
        let e = load();
        assert!(
            e.contains("train_data_batch_7") && e.contains("label 0 at index 1"),
            "{e}"
        );
        write(batch_dict(7, &[1001], false));
        assert!(load().contains("label 1001"));
        // 32x32 rows (3072) instead of 768.
        write(Py::Dict(vec![
            (
                Py::Bytes(b"data".to_vec()),
                Py::u8_array(&[1, 3072], &[0; 3072]),
            ),
            (Py::Bytes(b"labels".to_vec()), Py::ints(&[1])),
        ]));
        let e = load();
        assert!(
            e.contains("train_data_batch_7") && e.contains("[1, 3072]"),
            "{e}"
        );
        // Fewer labels than images.
        write(Py::Dict(vec![
            (
                Py::Bytes(b"data".to_vec()),
                Py::u8_array(&[2, 768], &[0; 1536]),
            ),
            (Py::Bytes(b"labels".to_vec()), Py::ints(&[1])),
        ]));
        assert!(load().contains("1 entries for 2 images"));
        // A float data array.
        write(Py::Dict(vec![
            (
                Py::Bytes(b"data".to_vec()),
                Py::f64_array(&[1, 768], &[0.0; 768]),
            ),
            (Py::Bytes(b"labels".to_vec()), Py::ints(&[1])),
        ]));
        assert!(load().contains("F64"));
        // Truncated file.
        let full = dumps(&batch_dict(7, &[1, 2], false), Style::Py2);
        std::fs::write(&p, &full[..full.len() / 2]).unwrap();
        let e = load();
        assert!(
            e.contains("train_data_batch_7") && e.contains("truncated"),
            "{e}"
        );
        // Missing file: the error explains where to get the data.
        std::fs::remove_file(&p).unwrap();
        let e = load();
        assert!(
            e.contains("train_data_batch_7") && e.contains("image-net.org"),
            "{e}"
        );
        assert!(e.contains("Imagenet16_val/val_data"), "{e}");
        let e = verify_imagenet16(t.path()).unwrap_err().to_string();
        assert!(e.contains("train_data_batch_7"), "{e}");
    }

    #[test]
    fn verify_names_first_bad_file() {
        let t = TempDir::new("in16_verify");
        write_set(t.path(), Style::Py2, false);
        let e = verify_imagenet16(t.path()).unwrap_err().to_string();
        assert!(
            e.contains("train_data_batch_1") && e.contains("27846dcaa50de8e21a7d1a35f30f0e91"),
            "{e}"
        );
    }
}
