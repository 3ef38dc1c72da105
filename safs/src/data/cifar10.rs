//! CIFAR-10: the binary and python versions, the seeded train/valid split, and the download.
//!
//! 60,000 colour 32x32 images of 10 classes: five training batches of 10,000 and one test
//! batch of 10,000, in either of Alex Krizhevsky's two distributions:
//!
//! * binary (`cifar-10-batches-bin/`): `data_batch_1.bin` .. `data_batch_5.bin` and
//!   `test_batch.bin`, each a run of 3073-byte records: one label byte (0-9), then the
//!   1024 red, 1024 green and 1024 blue bytes of the image, rows top to bottom;
//! * python (`cifar-10-batches-py/`): `data_batch_1` .. `data_batch_5` and `test_batch`,
//!   Python 2 pickles (protocol 2) of dicts whose `b'data'` is a numpy `uint8` array of
//!   shape `(n, 3072)` in the same plane order and whose `b'labels'` is a list of `n` ints.
//!
//! [`load_cifar10`] finds either version (binary preferred) in a folder or its
//! `cifar-10-batches-*` sub-folder, splits the 50k training images by a seeded shuffle into
//! `50k - valid_size` train and `valid_size` validation images (default
//! [`CIFAR10_VALID`]), keeps the test batch apart, and normalises with
//! [`Normalize::cifar10`]. The sets it returns are not augmented; see
//! [`Augment`](super::Augment) and `DatasetKind::load`.
//!
//! [`fetch_cifar10`] downloads the binary tarball (in-process), checks its MD5 and unpacks
//! it with the `tar` crate under the crate's extraction policy ([`super::extract`]).

use std::path::{Path, PathBuf};

use super::dataset::{ImageSet, Normalize, Splits};
use super::extract::extract_tar;
use super::fetch::{download, md5_file, temp_name, FetchEvent, TempPath};
use super::pickle::{read_pickle, NpDtype, Value};
use crate::{Error, Result};

/// Number of CIFAR-10 classes.
pub const CIFAR10_CLASSES: usize = 10;

/// Default number of training images held out for validation (50k -> 45k train + 5k valid).
pub const CIFAR10_VALID: usize = 5_000;

/// Bytes per image: 3 planes of 32x32.
pub const CIFAR10_PIXELS: usize = 3 * 32 * 32;

/// Bytes per record of the binary version: a label byte and the pixels.
pub const CIFAR10_RECORD: usize = 1 + CIFAR10_PIXELS;

/// Where the binary version is published.
pub const CIFAR10_URL: &str = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz";

/// The published MD5 of `cifar-10-binary.tar.gz`.
pub const CIFAR10_MD5: &str = "c32a1d4ab5d03f1284b67883e8d87530";

/// Which distribution of CIFAR-10 a folder holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cifar10Format {
    /// `cifar-10-batches-bin`: `*.bin` files of 3073-byte records.
    Binary,
    /// `cifar-10-batches-py`: pickled dicts with `data` and `labels`.
    Python,
}

/// The six files of a CIFAR-10 copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cifar10Files {
    /// Binary or python version.
    pub format: Cifar10Format,
    /// The five training batches, in order.
    pub train: Vec<PathBuf>,
    /// The test batch.
    pub test: PathBuf,
}

impl Cifar10Format {
    /// The sub-folder name of this version in the official archives.
    pub fn folder(self) -> &'static str {
        match self {
            Cifar10Format::Binary => "cifar-10-batches-bin",
            Cifar10Format::Python => "cifar-10-batches-py",
        }
    }

    /// The file names: five training batches and the test batch.
    pub fn file_names(self) -> [String; 6] {
        let ext = match self {
            Cifar10Format::Binary => ".bin",
            Cifar10Format::Python => "",
        };
        std::array::from_fn(|i| {
            if i < 5 {
                format!("data_batch_{}{ext}", i + 1)
            } else {
                format!("test_batch{ext}")
            }
        })
    }
}

/// Finds CIFAR-10 in `dir` or in its `cifar-10-batches-bin` / `cifar-10-batches-py`
/// sub-folder, the binary version first; all six files must be there.
pub fn find_cifar10(dir: &Path) -> Result<Cifar10Files> {
    for format in [Cifar10Format::Binary, Cifar10Format::Python] {
        let names = format.file_names();
        for folder in [dir.to_path_buf(), dir.join(format.folder())] {
            if !folder.join(&names[0]).is_file() {
                continue;
            }
            let paths: Vec<PathBuf> = names.iter().map(|n| folder.join(n)).collect();
            if let Some(missing) = paths.iter().find(|p| !p.is_file()) {
                return Err(Error::data(
                    missing,
                    format!(
                        "not found, but {} is there: the {} version of CIFAR-10 needs all \
                         of {}",
                        names[0],
                        match format {
                            Cifar10Format::Binary => "binary",
                            Cifar10Format::Python => "python",
                        },
                        names.join(", ")
                    ),
                ));
            }
            let test = paths[5].clone();
            return Ok(Cifar10Files {
                format,
                train: paths[..5].to_vec(),
                test,
            });
        }
    }
    Err(Error::data(
        dir,
        format!(
            "no CIFAR-10 here: expected cifar-10-batches-bin/data_batch_1.bin .. \
             data_batch_5.bin and test_batch.bin (binary version) or \
             cifar-10-batches-py/data_batch_1 .. data_batch_5 and test_batch (python \
             version), in this folder or that sub-folder; download with \
             safs::data::fetch_cifar10 ({CIFAR10_URL})"
        ),
    ))
}

/// Reads a binary CIFAR-10 batch: any number of 3073-byte records. Returns the images
/// (`n x 3 x 32 x 32` bytes) and the labels (each below 10).
pub fn read_cifar10_bin(path: &Path) -> Result<(Vec<u8>, Vec<u32>)> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if raw.len() % CIFAR10_RECORD != 0 {
        return Err(Error::data(
            path,
            format!(
                "length {} bytes is not a multiple of the {CIFAR10_RECORD}-byte CIFAR-10 \
                 record (1 label byte + {CIFAR10_PIXELS} pixel bytes)",
                raw.len()
            ),
        ));
    }
    let n = raw.len() / CIFAR10_RECORD;
    let mut images = Vec::with_capacity(n * CIFAR10_PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in raw.chunks_exact(CIFAR10_RECORD).enumerate() {
        if rec[0] as usize >= CIFAR10_CLASSES {
            return Err(Error::data(
                path,
                format!(
                    "record {i} (offset {}): label {} is not below {CIFAR10_CLASSES}",
                    i * CIFAR10_RECORD,
                    rec[0]
                ),
            ));
        }
        labels.push(rec[0] as u32);
        images.extend_from_slice(&rec[1..]);
    }
    Ok((images, labels))
}

/// Takes the `uint8` array of shape `(n, width)` under `key` out of a pickled dict.
pub(crate) fn take_u8_rows(
    dict: &mut Value,
    key: &str,
    width: usize,
    path: &Path,
) -> Result<(Vec<u8>, usize)> {
    if !matches!(dict, Value::Dict(_)) {
        return Err(Error::data(
            path,
            format!("the pickle holds a {}, not a dict", dict.type_name()),
        ));
    }
    let keys = dict.key_names();
    match dict.take(key) {
        Some(Value::Array(a)) => {
            if a.dtype != NpDtype::U8 || a.shape.len() != 2 || a.shape[1] != width {
                return Err(Error::data(
                    path,
                    format!(
                        "'{key}' is a {:?} array of shape {:?}; expected uint8 of shape \
                         (n, {width})",
                        a.dtype, a.shape
                    ),
                ));
            }
            Ok((a.data, a.shape[0]))
        }
        Some(other) => Err(Error::data(
            path,
            format!("'{key}' is a {}, not a numpy array", other.type_name()),
        )),
        None => Err(Error::data(
            path,
            format!("no '{key}' entry in the pickled dict (keys: {keys:?})"),
        )),
    }
}

/// The integer list (or 1-d integer array) under `key`, checked to hold `n` values.
pub(crate) fn int_list(dict: &Value, key: &str, n: usize, path: &Path) -> Result<Vec<i64>> {
    let v = dict.get(key).ok_or_else(|| {
        Error::data(
            path,
            format!(
                "no '{key}' entry in the pickled dict (keys: {:?})",
                dict.key_names()
            ),
        )
    })?;
    let xs = v.to_int_vec().ok_or_else(|| {
        Error::data(
            path,
            format!("'{key}' is a {}, not a list of ints", v.type_name()),
        )
    })?;
    if xs.len() != n {
        return Err(Error::data(
            path,
            format!("'{key}' has {} entries for {n} images", xs.len()),
        ));
    }
    Ok(xs)
}

/// Reads a python-version CIFAR-10 batch (a pickled dict with `data` and `labels`).
/// Returns the images (`n x 3 x 32 x 32` bytes) and the labels (each below 10).
pub fn read_cifar10_py(path: &Path) -> Result<(Vec<u8>, Vec<u32>)> {
    let mut dict = read_pickle(path)?;
    let (images, n) = take_u8_rows(&mut dict, "data", CIFAR10_PIXELS, path)?;
    let labels = int_list(&dict, "labels", n, path)?;
    let labels = labels
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            u32::try_from(l)
                .ok()
                .filter(|&l| (l as usize) < CIFAR10_CLASSES)
                .ok_or_else(|| {
                    Error::data(
                        path,
                        format!("label {l} at index {i} is not in 0..{CIFAR10_CLASSES}"),
                    )
                })
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok((images, labels))
}

/// Reads one batch of either version.
fn read_batch(path: &Path, format: Cifar10Format) -> Result<(Vec<u8>, Vec<u32>)> {
    match format {
        Cifar10Format::Binary => read_cifar10_bin(path),
        Cifar10Format::Python => read_cifar10_py(path),
    }
}

/// Loads CIFAR-10 from `dir` (either version, see [`find_cifar10`]) and splits the training
/// images by a seeded ChaCha8 shuffle into `n - valid_size` train and `valid_size`
/// validation images; the test batch is kept apart. Not augmented.
pub fn load_cifar10(dir: &Path, valid_size: usize, seed: u64) -> Result<Splits> {
    let files = find_cifar10(dir)?;
    let mut images = Vec::with_capacity(50_000 * CIFAR10_PIXELS);
    let mut labels = Vec::with_capacity(50_000);
    for path in &files.train {
        let (x, y) = read_batch(path, files.format)?;
        images.extend_from_slice(&x);
        labels.extend_from_slice(&y);
    }
    let shape = [3, 32, 32];
    let full = ImageSet::new(images, labels, shape, CIFAR10_CLASSES, Normalize::cifar10())?;
    let (x, y) = read_batch(&files.test, files.format)?;
    let test = ImageSet::new(x, y, shape, CIFAR10_CLASSES, Normalize::cifar10())?;
    let (train, valid) = full.split(valid_size, seed)?;
    Ok(Splits { train, valid, test })
}

/// Makes sure `root/cifar10` holds CIFAR-10 (either version), else downloads the binary
/// version from [`CIFAR10_URL`], checks [`CIFAR10_MD5`] and unpacks it to
/// `root/cifar10/cifar-10-batches-bin`. Returns `root/cifar10`.
pub fn fetch_cifar10(root: &Path) -> Result<PathBuf> {
    fetch_cifar10_with(root, &mut |_| {})
}

/// [`fetch_cifar10`], reporting the download's progress to `on`.
pub fn fetch_cifar10_with(root: &Path, on: &mut dyn FnMut(FetchEvent)) -> Result<PathBuf> {
    let dir = root.join("cifar10");
    if find_cifar10(&dir).is_ok() {
        return Ok(dir);
    }
    fetch_cifar10_from(CIFAR10_URL, CIFAR10_MD5, &dir, on)?;
    Ok(dir)
}

/// Downloads the tarball at `url`, checks its MD5 against `md5`, and moves its
/// `cifar-10-batches-bin` folder into `dir` (replacing one already there).
fn fetch_cifar10_from(
    url: &str,
    md5: &str,
    dir: &Path,
    on: &mut dyn FnMut(FetchEvent),
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let archive = TempPath::new(temp_name(dir, "cifar-10-binary.tar.gz"));
    on(FetchEvent::Trying {
        route: url.to_string(),
    });
    download(url, &archive.path, on)?;
    let found = md5_file(&archive.path)?;
    if found != md5 {
        return Err(Error::data(
            &archive.path,
            format!("MD5 mismatch of the download from {url}: expected {md5}, found {found}"),
        ));
    }
    let stage = TempPath::new(temp_name(dir, "cifar-10-extract"));
    extract_tar(&archive.path, &stage.path)?;
    let folder = Cifar10Format::Binary.folder();
    let src = stage.path.join(folder);
    let unpacked = find_cifar10(&src).map_err(|_| {
        Error::data(
            &archive.path,
            format!("the archive from {url} has no complete {folder}/ folder"),
        )
    })?;
    if unpacked.format != Cifar10Format::Binary {
        return Err(Error::data(
            &archive.path,
            format!("the archive from {url} does not hold the binary version"),
        ));
    }
    let dst = dir.join(folder);
    if dst.exists() {
        std::fs::remove_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
    }
    std::fs::rename(&src, &dst).map_err(|e| Error::io(&dst, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::extract::tests::{build_tar, gzip};
    use crate::data::fetch::hex;
    use crate::data::pickle_write::{dumps, Py, Style};
    use crate::data::test_util::fixture;
    use crate::data::test_util::TempDir;
    use candle_core::Device;
    use md5::{Digest, Md5};

    /// `n` records; record `i` of batch `b` has label `(b + i) % 10` and pixel `j` equal to
    /// `(b * 50 + i + j * 7) % 256`.
    fn records(b: usize, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n * CIFAR10_RECORD);
        for i in 0..n {
            v.push(((b + i) % 10) as u8);
            v.extend((0..CIFAR10_PIXELS).map(|j| ((b * 50 + i + j * 7) % 256) as u8));
        }
        v
    }

    /// Writes a binary copy with `n` records per training batch and `m` test records.
    fn write_bin(dir: &Path, n: usize, m: usize) {
        std::fs::create_dir_all(dir).unwrap();
        for (b, name) in Cifar10Format::Binary.file_names().iter().enumerate() {
            std::fs::write(dir.join(name), records(b, if b < 5 { n } else { m })).unwrap();
        }
    }

    /// Writes a python copy (Python-2 pickles) of the same content as [`write_bin`].
    fn write_py(dir: &Path, n: usize, m: usize, style: Style) {
        std::fs::create_dir_all(dir).unwrap();
        for (b, name) in Cifar10Format::Python.file_names().iter().enumerate() {
            let k = if b < 5 { n } else { m };
            let raw = records(b, k);
            let mut px = Vec::new();
            let mut labels = Vec::new();
            for r in raw.chunks_exact(CIFAR10_RECORD) {
                labels.push(r[0] as i64);
                px.extend_from_slice(&r[1..]);
            }
            let key = |s: &str| Py::Bytes(s.as_bytes().to_vec());
            let d = Py::Dict(vec![
                (key("batch_label"), key("training batch 1 of 5")),
                (key("labels"), Py::ints(&labels)),
                (key("data"), Py::u8_array(&[k, CIFAR10_PIXELS], &px)),
                (
                    key("filenames"),
                    Py::List((0..k).map(|i| key(&format!("img_{i}.png"))).collect()),
                ),
            ]);
            std::fs::write(dir.join(name), dumps(&d, style)).unwrap();
        }
    }

    fn all_pixels(s: &ImageSet) -> Vec<(u32, Vec<u8>)> {
        (0..s.len())
            .map(|i| (s.label(i), s.image(i).to_vec()))
            .collect()
    }

    #[test]
    fn binary_round_trip_and_split() {
        let t = TempDir::new("cifar_bin");
        write_bin(&t.path().join("cifar-10-batches-bin"), 12, 7);
        let s = load_cifar10(t.path(), 10, 3).unwrap();
        assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (50, 10, 7));
        assert_eq!(s.train.shape(), [3, 32, 32]);
        assert_eq!(s.train.num_classes(), 10);
        assert_eq!(s.train.normalize(), &Normalize::cifar10());
        // Storage order: batch 1's records, then batch 2's, ...
        let full: Vec<(u32, Vec<u8>)> = (0..5)
            .flat_map(|b| {
                records(b, 12)
                    .chunks_exact(CIFAR10_RECORD)
                    .map(|r| (r[0] as u32, r[1..].to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        for set in [&s.train, &s.valid] {
            for (i, &k) in set.indices().iter().enumerate() {
                assert_eq!((set.label(i), set.image(i).to_vec()), full[k]);
            }
        }
        let test: Vec<(u32, Vec<u8>)> = records(5, 7)
            .chunks_exact(CIFAR10_RECORD)
            .map(|r| (r[0] as u32, r[1..].to_vec()))
            .collect();
        assert_eq!(all_pixels(&s.test), test);
        // Same seed, same split; another seed, another.
        let s2 = load_cifar10(t.path(), 10, 3).unwrap();
        assert_eq!(s2.valid.indices(), s.valid.indices());
        let s3 = load_cifar10(t.path(), 10, 4).unwrap();
        assert_ne!(s3.valid.indices(), s.valid.indices());
        // The plane order reaches the batch tensor: pixel (c, y, x) of image 0.
        let (x, _) = s.test.batch(&[0], &Device::Cpu).unwrap();
        let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let raw = records(5, 1);
        let n = Normalize::cifar10();
        for (c, y, xx) in [(0, 0, 0), (1, 5, 9), (2, 31, 31)] {
            let j = c * 1024 + y * 32 + xx;
            let want = (raw[1 + j] as f32 / 255.0 - n.mean[c]) / n.std[c];
            assert!((v[j] - want).abs() < 1e-6);
        }
        // The files can also sit directly in the folder.
        let t2 = TempDir::new("cifar_bin_flat");
        write_bin(t2.path(), 3, 2);
        assert_eq!(load_cifar10(t2.path(), 1, 0).unwrap().test.len(), 2);
    }

    #[test]
    fn wrong_length_bad_label_and_missing_file_are_named() {
        let t = TempDir::new("cifar_len");
        let d = t.path().join("cifar-10-batches-bin");
        write_bin(&d, 4, 4);
        let p = d.join("data_batch_3.bin");
        let mut raw = records(2, 4);
        raw.pop();
        std::fs::write(&p, &raw).unwrap();
        let e = load_cifar10(t.path(), 1, 0).unwrap_err().to_string();
        assert!(e.contains("data_batch_3.bin"), "{e}");
        assert!(e.contains("12291") && e.contains("3073"), "{e}");
        let mut raw = records(2, 4);
        raw[2 * CIFAR10_RECORD] = 10;
        std::fs::write(&p, &raw).unwrap();
        let e = load_cifar10(t.path(), 1, 0).unwrap_err().to_string();
        assert!(
            e.contains("data_batch_3.bin") && e.contains("record 2"),
            "{e}"
        );
        std::fs::remove_file(&p).unwrap();
        let e = load_cifar10(t.path(), 1, 0).unwrap_err().to_string();
        assert!(
            e.contains("data_batch_3.bin") && e.contains("not found"),
            "{e}"
        );
        let e = load_cifar10(&t.path().join("nothing"), 1, 0)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cifar-10-batches-bin") && e.contains("fetch_cifar10"),
            "{e}"
        );
    }

    #[test]
    fn python_version_matches_binary_and_binary_is_preferred() {
        for style in [Style::Py2, Style::Py3Proto2, Style::Py3Proto3] {
            let t = TempDir::new("cifar_py");
            write_py(&t.path().join("cifar-10-batches-py"), 6, 5, style);
            let files = find_cifar10(t.path()).unwrap();
            assert_eq!(files.format, Cifar10Format::Python);
            let py = load_cifar10(t.path(), 4, 9).unwrap();
            write_bin(&t.path().join("cifar-10-batches-bin"), 6, 5);
            assert_eq!(
                find_cifar10(t.path()).unwrap().format,
                Cifar10Format::Binary
            );
            let bin = load_cifar10(t.path(), 4, 9).unwrap();
            assert_eq!(all_pixels(&py.train), all_pixels(&bin.train), "{style:?}");
            assert_eq!(all_pixels(&py.valid), all_pixels(&bin.valid), "{style:?}");
            assert_eq!(all_pixels(&py.test), all_pixels(&bin.test), "{style:?}");
        }
    }

    #[test]
    fn python_fixtures_and_errors() {
        // Real pixels written by Python: foolbox records 0-1 and 2-3.
        let raw = std::fs::read(fixture("cifar10_foolbox_test20.bin")).unwrap();
        let (x, y) = read_cifar10_py(&fixture("cifar10_py3_proto2.pkl")).unwrap();
        assert_eq!(y, vec![3, 8]);
        assert_eq!(&x[..3072], &raw[1..3073]);
        assert_eq!(&x[3072..], &raw[3074..6146]);
        let (x, y) = read_cifar10_py(&fixture("cifar10_py2_style.pkl")).unwrap();
        assert_eq!(y, vec![8, 0]);
        assert_eq!(&x[..3072], &raw[2 * 3073 + 1..3 * 3073]);

        let t = TempDir::new("cifar_py_bad");
        let p = t.path().join("data_batch_1");
        let write = |d: Py| std::fs::write(&p, dumps(&d, Style::Py2)).unwrap();
        let key = |s: &str| Py::Bytes(s.as_bytes().to_vec());
        write(Py::Dict(vec![
            (key("data"), Py::u8_array(&[2, 3000], &[0; 6000])),
            (key("labels"), Py::ints(&[1, 2])),
        ]));
        let e = read_cifar10_py(&p).unwrap_err().to_string();
        assert!(e.contains("data_batch_1") && e.contains("[2, 3000]"), "{e}");
        write(Py::Dict(vec![
            (key("data"), Py::u8_array(&[2, 3072], &[0; 6144])),
            (key("labels"), Py::ints(&[1])),
        ]));
        let e = read_cifar10_py(&p).unwrap_err().to_string();
        assert!(e.contains("1 entries for 2 images"), "{e}");
        write(Py::Dict(vec![
            (key("data"), Py::u8_array(&[1, 3072], &[0; 3072])),
            (key("labels"), Py::ints(&[10])),
        ]));
        let e = read_cifar10_py(&p).unwrap_err().to_string();
        assert!(e.contains("label 10 at index 0"), "{e}");
        write(Py::Dict(vec![(key("labels"), Py::ints(&[1]))]));
        let e = read_cifar10_py(&p).unwrap_err().to_string();
        assert!(e.contains("no 'data' entry") && e.contains("labels"), "{e}");
        write(Py::ints(&[1]));
        let e = read_cifar10_py(&p).unwrap_err().to_string();
        assert!(e.contains("not a dict"), "{e}");
    }

    /// The 20 real CIFAR-10 test images shipped by foolbox 3.3.4, converted by
    /// tests/fixtures/make_cifar_fixture.py; labels and pixels as that script prints them.
    #[test]
    fn foolbox_real_pixels() {
        let (x, y) = read_cifar10_bin(&fixture("cifar10_foolbox_test20.bin")).unwrap();
        assert_eq!(
            y,
            vec![3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
        );
        assert_eq!(x.len(), 20 * CIFAR10_PIXELS);
        let px = |r: usize, c: usize, yy: usize, xx: usize| {
            x[r * CIFAR10_PIXELS + c * 1024 + yy * 32 + xx]
        };
        for ((r, c, yy, xx), want) in [
            ((0, 0, 0, 0), 158),
            ((0, 1, 0, 0), 112),
            ((0, 2, 0, 0), 49),
            ((0, 0, 31, 31), 21),
            ((7, 1, 16, 5), 160),
            ((19, 2, 10, 20), 197),
            ((12, 0, 3, 30), 72),
        ] {
            assert_eq!(
                px(r, c, yy, xx),
                want,
                "record {r} channel {c} ({yy}, {xx})"
            );
        }
        let md5 = hex(&Md5::digest(
            std::fs::read(fixture("cifar10_foolbox_test20.bin")).unwrap(),
        ));
        assert_eq!(md5, "515a507abb28cd0270eaf5fea42efa66");
        // As a test batch: batches normalise with the CIFAR-10 constants.
        let set = ImageSet::new(x, y, [3, 32, 32], 10, Normalize::cifar10()).unwrap();
        let (b, l) = set.batch(&[0], &Device::Cpu).unwrap();
        assert_eq!(l.to_vec1::<u32>().unwrap(), vec![3]);
        let v = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!((v[0] - (158.0 / 255.0 - 0.4914) / 0.2470).abs() < 1e-6);
        assert!((v[1024] - (112.0 / 255.0 - 0.4822) / 0.2435).abs() < 1e-6);
    }

    /// A tarball laid out like cifar-10-binary.tar.gz with small batches.
    fn tarball() -> Vec<u8> {
        let names: Vec<String> = Cifar10Format::Binary
            .file_names()
            .iter()
            .map(|n| format!("cifar-10-batches-bin/{n}"))
            .collect();
        let batches: Vec<Vec<u8>> = (0..names.len()).map(|b| records(b, 3)).collect();
        let mut entries: Vec<(&str, &[u8])> = vec![("cifar-10-batches-bin/", b"")];
        for (name, data) in names.iter().zip(&batches) {
            entries.push((name, data));
        }
        entries.push((
            "cifar-10-batches-bin/batches.meta.txt",
            b"airplane\nautomobile\n",
        ));
        gzip(&build_tar(&entries))
    }

    #[test]
    fn fetch_checks_md5_and_unpacks() {
        use crate::data::test_util::{HttpServer, Reply};
        let t = TempDir::new("cifar_fetch");
        let gz = tarball();
        let md5 = hex(&Md5::digest(&gz));
        let server = HttpServer::start(vec![("/cifar-10-binary.tar.gz", Reply::Body(gz))]);
        let url = format!("{}cifar-10-binary.tar.gz", server.base);
        let dir = t.path().join("data/cifar10");
        let e = fetch_cifar10_from(&url, "0000", &dir, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("MD5 mismatch") && e.contains("0000"), "{e}");
        assert!(find_cifar10(&dir).is_err());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "no leftovers");
        let mut seen = Vec::new();
        fetch_cifar10_from(&url, &md5, &dir, &mut |e| seen.push(e)).unwrap();
        assert!(
            matches!(seen.last(), Some(FetchEvent::Progress { bytes, total: Some(t), .. }) if bytes == t),
            "{seen:?}"
        );
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["cifar-10-batches-bin"]);
        let s = load_cifar10(&dir, 5, 0).unwrap();
        assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (10, 5, 3));
        // fetch_cifar10 does nothing when the data is there.
        assert_eq!(fetch_cifar10(&t.path().join("data")).unwrap(), dir);
        let none = format!("{}none.tgz", server.base);
        let e = fetch_cifar10_from(&none, &md5, &dir, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains(&none) && e.contains("404"), "{e}");
    }
}
