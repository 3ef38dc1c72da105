//! Stand-in CIFAR-10 and ImageNet-16 files for machines without the real data.
//!
//! **These are not the real data sets.** CIFAR-10 and ImageNet-16 cannot be downloaded on
//! a machine without internet, and no package registry ships them (see `DESIGN.md`, "Data
//! on machines with no internet"). So that the pipeline can still run end to end there,
//! these functions write synthetic images in the exact file formats and folder layouts the
//! loaders read:
//!
//! * [`write_cifar10_standin`] writes `<root>/cifar10/cifar-10-batches-bin/data_batch_1.bin` ..
//!   `data_batch_5.bin` and `test_batch.bin`, runs of 3073-byte records (one label byte,
//!   then the 1024 red, 1024 green and 1024 blue bytes), plus `batches.meta.txt`;
//! * [`write_imagenet16_standin`] writes `<root>/imagenet16/Imagenet16_train/train_data_batch_1.npz`
//!   .. `train_data_batch_10.npz` and `<root>/imagenet16/Imagenet16_val/val_data.npz`, the
//!   npz edition the ImageNet-16 loader reads beside the pickles, with the arrays of the
//!   pickled dicts: `data` (`uint8`, shape `(n, 768)`), `labels` (`int64`, 1-based) and
//!   `mean` (`float64`, shape `(768,)`, the mean training image in 0..255 units). Pickled
//!   stand-in files an older version wrote there are removed (the loader prefers pickles).
//!
//! Every folder they write gets a [`STANDIN_FILE`] (`STANDIN.txt`) saying what the files
//! are; [`is_standin`] checks for it, and both writers refuse to write into a data set
//! folder that holds files but no `STANDIN.txt` (it may be the real data).
//!
//! The images are learnable, not noise, and not trivially so: every class has a seeded
//! look, a mean colour (tint) and a sinusoidal grating with its own spatial frequency (the
//! first 15 classes all differ) and per-channel amplitude. Each image shows its class's
//! grating at a random phase and a random horizontal orientation (so the random crops and
//! flips of training keep the class), shifted by a random colour and covered by strong
//! pixel noise (standard deviation 40 of 255, against grating amplitudes of 12-32 and tints
//! within 72..184). Neither cue alone separates the classes; a network has to learn both.
//! Accuracies on them show that training works; they say nothing about CIFAR-10 or
//! ImageNet-16. The same seed writes the same bytes.
//!
//! ```
//! use safs::data::{standin, DatasetKind};
//! # fn main() -> safs::Result<()> {
//! let root = std::env::temp_dir().join(format!("safs-doc-standin-{}", std::process::id()));
//! let dir = standin::write_cifar10_standin(&root, 120, 50, 0)?;
//! assert!(standin::is_standin(&dir));
//! let splits = DatasetKind::Cifar10.load(&root, Some(100), 0)?;
//! assert_eq!((splits.train.len(), splits.valid.len(), splits.test.len()), (500, 100, 50));
//! # std::fs::remove_dir_all(&root).ok();
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::cifar10::{Cifar10Format, CIFAR10_CLASSES, CIFAR10_PIXELS};
use super::imagenet16::{IMAGENET16_CLASSES, IMAGENET16_PIXELS};
use crate::{Error, Result};

/// The marker file written beside stand-in data (and checked before overwriting a folder).
pub const STANDIN_FILE: &str = "STANDIN.txt";

/// The CIFAR-10 class names, in label order, as in the original `batches.meta.txt`.
pub const CIFAR10_CLASS_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// Standard deviation of the pixel noise, in 0..255 units.
const NOISE: f32 = 40.0;

/// Standard deviation of the per-image colour shift (each channel), in 0..255 units.
const COLOUR_JITTER: f32 = 16.0;

/// Whether `dir` holds a [`STANDIN_FILE`], i.e. was written by this module.
pub fn is_standin(dir: &Path) -> bool {
    dir.join(STANDIN_FILE).is_file()
}

/// Errors if `dir` holds anything but no [`STANDIN_FILE`]: it may be the real data.
pub fn check_overwritable(dir: &Path) -> Result<()> {
    if !dir.exists() || is_standin(dir) {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    if entries.next().is_none() {
        return Ok(());
    }
    Err(Error::data(
        dir,
        format!(
            "holds files but no {STANDIN_FILE}: it may be the real data set, so no stand-in \
             is written over it (move it away, or write the stand-in under another data root)"
        ),
    ))
}

/// One class's look: a mean colour and a grating (spatial frequency, amplitude per channel).
struct ClassLook {
    tint: [f32; 3],
    amp: [f32; 3],
    fx: f32,
    fy: f32,
}

/// The seeded looks of `classes` classes; the first 15 have distinct grating frequencies.
fn class_looks(classes: usize, seed: u64) -> Vec<ClassLook> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x05af_ec1a_55e5_0001);
    let mut freqs: Vec<(f32, f32)> = (0..4)
        .flat_map(|fx| (0..4).map(move |fy| (fx as f32, fy as f32)))
        .filter(|&f| f != (0.0, 0.0))
        .collect();
    freqs.shuffle(&mut rng);
    (0..classes)
        .map(|c| ClassLook {
            tint: std::array::from_fn(|_| rng.gen_range(72.0..184.0)),
            amp: std::array::from_fn(|_| rng.gen_range(12.0..32.0)),
            fx: freqs[c % freqs.len()].0,
            fy: freqs[c % freqs.len()].1,
        })
        .collect()
}

/// `n` images (`3 x side x side` bytes each) with labels `0..looks.len()` (balanced,
/// shuffled): the class's tint and grating at a random phase and horizontal orientation
/// (so crops and flips keep the class), a random colour shift, and pixel noise.
fn images(
    looks: &[ClassLook],
    side: usize,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<u8>, Vec<usize>) {
    let classes = looks.len();
    let offset = rng.gen_range(0..classes);
    let mut labels: Vec<usize> = (0..n).map(|i| (i + offset) % classes).collect();
    labels.shuffle(rng);
    let tau = std::f32::consts::TAU;
    let mut out = Vec::with_capacity(n * 3 * side * side);
    let mut wave = vec![0f32; side * side];
    for &c in &labels {
        let look = &looks[c];
        let phase = rng.gen_range(0.0..tau);
        let fx = if rng.gen::<bool>() { look.fx } else { -look.fx };
        for (i, w) in wave.iter_mut().enumerate() {
            let (u, v) = ((i % side) as f32, (i / side) as f32);
            *w = (tau * (fx * u + look.fy * v) / side as f32 + phase).sin();
        }
        for ch in 0..3 {
            let base = look.tint[ch] + COLOUR_JITTER * normal(rng);
            for &w in &wave {
                let p = base + look.amp[ch] * w + NOISE * normal(rng);
                out.push(p.round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    (out, labels)
}

/// About standard normal: a sum of four uniforms on [-1, 1] (variance 4/3), rescaled.
fn normal(rng: &mut ChaCha8Rng) -> f32 {
    (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).sum::<f32>() * 0.866_025_4
}

/// A generator for file `index` of a data set written with `seed`.
fn file_rng(seed: u64, index: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (index + 1))
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// The text of a `STANDIN.txt`.
fn standin_note(what: &str, writer: &str, details: &str, real: &str) -> String {
    format!(
        "STAND-IN DATA: THESE FILES ARE NOT {what}.\n\
         \n\
         Written by safs {} ({writer})\n\
         because the real data set is not available on this machine (no internet, and no\n\
         package registry ships it). The files have the exact format and folder layout of\n\
         the original, so the loaders and the whole pipeline run on them, but the images are\n\
         synthetic: each class is a seeded mean colour and sinusoidal grating, drawn at a\n\
         random phase and orientation with a random colour shift and pixel noise per image.\n\
         Accuracies measured on these files show that training works; they say nothing about\n\
         {what}.\n\
         \n\
         {details}\n\
         \n\
         To use the real data, delete this folder and\n{real}.\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Writes stand-in CIFAR-10 (binary version, `train_per_file` images in each of the five
/// training batches, `test` in the test batch) under `root/cifar10`; returns that folder.
pub fn write_cifar10_standin(
    root: &Path,
    train_per_file: usize,
    test: usize,
    seed: u64,
) -> Result<PathBuf> {
    let dir = root.join("cifar10");
    check_overwritable(&dir)?;
    let batches = dir.join(Cifar10Format::Binary.folder());
    create_dir(&batches)?;
    let note = standin_note(
        "CIFAR-10",
        "safs::data::standin::write_cifar10_standin",
        &format!(
            "Layout: {}/data_batch_1.bin .. data_batch_5.bin\n({train_per_file} images each) and \
             test_batch.bin ({test} images), 3073-byte records (label\nbyte 0-9, then the red, \
             green and blue 32x32 planes). Classes: {CIFAR10_CLASSES}. Seed: {seed}.",
            Cifar10Format::Binary.folder()
        ),
        "run `safs data fetch --dataset cifar10` on a machine with internet",
    );
    write(&dir.join(STANDIN_FILE), note.as_bytes())?;
    write(&batches.join(STANDIN_FILE), note.as_bytes())?;
    let looks = class_looks(CIFAR10_CLASSES, seed);
    for (i, name) in Cifar10Format::Binary.file_names().iter().enumerate() {
        let n = if i < 5 { train_per_file } else { test };
        let (pixels, labels) = images(&looks, 32, n, &mut file_rng(seed, i as u64));
        let mut out = Vec::with_capacity(n * (1 + CIFAR10_PIXELS));
        for (img, &l) in pixels.chunks_exact(CIFAR10_PIXELS).zip(&labels) {
            out.push(l as u8);
            out.extend_from_slice(img);
        }
        write(&batches.join(name), &out)?;
    }
    let mut meta = CIFAR10_CLASS_NAMES.join("\n");
    meta.push_str("\n\n");
    write(&batches.join("batches.meta.txt"), meta.as_bytes())?;
    Ok(dir)
}

/// Writes `arrays` as an npz archive at `path` (through a temporary name in its folder).
fn write_npz(path: &Path, arrays: &[(&str, Tensor)]) -> Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = super::fetch::TempPath::new(super::fetch::temp_name(
        path.parent().unwrap_or(Path::new(".")),
        &name,
    ));
    Tensor::write_npz(arrays, &tmp.path).map_err(|e| Error::data(&tmp.path, e.to_string()))?;
    std::fs::rename(&tmp.path, path).map_err(|e| Error::io(path, e))
}

/// Writes stand-in ImageNet-16 (NAS-Bench-201 layout, npz edition: ten training files of
/// `train_per_file` images and `val_data` of `val`, labels `1..=classes`) under
/// `root/imagenet16`; returns that folder.
pub fn write_imagenet16_standin(
    root: &Path,
    train_per_file: usize,
    val: usize,
    classes: usize,
    seed: u64,
) -> Result<PathBuf> {
    if !(1..=IMAGENET16_CLASSES).contains(&classes) {
        return Err(Error::Config(format!(
            "stand-in ImageNet-16: classes must be 1 to {IMAGENET16_CLASSES}, got {classes}"
        )));
    }
    let dir = root.join("imagenet16");
    check_overwritable(&dir)?;
    let (train_dir, val_dir) = (dir.join("Imagenet16_train"), dir.join("Imagenet16_val"));
    create_dir(&train_dir)?;
    create_dir(&val_dir)?;
    let note = standin_note(
        "IMAGENET-16 (DOWNSAMPLED IMAGENET 16x16)",
        "safs::data::standin::write_imagenet16_standin",
        &format!(
            "Layout: Imagenet16_train/train_data_batch_1.npz .. train_data_batch_10.npz \
             ({train_per_file}\nimages each) and Imagenet16_val/val_data.npz ({val} images): \
             the npz edition, arrays\n'data' (uint8, n x 768), 'labels' (int64, 1-based in \
             1..={classes}) and 'mean'\n(float64, 768, the mean training image). Classes: \
             {classes}. Seed: {seed}."
        ),
        "unpack the real Imagenet16_train.zip and Imagenet16_val.zip here (image-net.org, \
         Downsampled ImageNet 16x16)",
    );
    for d in [&dir, &train_dir, &val_dir] {
        write(&d.join(STANDIN_FILE), note.as_bytes())?;
    }
    let looks = class_looks(classes, seed);
    let train: Vec<(Vec<u8>, Vec<usize>)> = (0..10)
        .map(|i| images(&looks, 16, train_per_file, &mut file_rng(seed, i)))
        .collect();
    let total = (10 * train_per_file).max(1) as f64;
    let mut mean = vec![0f64; IMAGENET16_PIXELS];
    for (pixels, _) in &train {
        for img in pixels.chunks_exact(IMAGENET16_PIXELS) {
            for (m, &p) in mean.iter_mut().zip(img) {
                *m += p as f64;
            }
        }
    }
    mean.iter_mut().for_each(|m| *m /= total);
    let batch = |path: &Path, pixels: &[u8], labels: &[usize]| -> Result<()> {
        let n = labels.len();
        let labels: Vec<i64> = labels.iter().map(|&l| l as i64 + 1).collect();
        let tensors = (|| {
            let dev = &Device::Cpu;
            Ok::<_, candle_core::Error>([
                (
                    "data",
                    Tensor::from_slice(pixels, (n, IMAGENET16_PIXELS), dev)?,
                ),
                ("labels", Tensor::from_vec(labels, n, dev)?),
                ("mean", Tensor::from_slice(&mean, IMAGENET16_PIXELS, dev)?),
            ])
        })()
        .map_err(|e| Error::data(path, e.to_string()))?;
        // A pickled stand-in of an older version would be read before the npz file.
        let pickle = path.with_extension("");
        if pickle.is_file() {
            std::fs::remove_file(&pickle).map_err(|e| Error::io(&pickle, e))?;
        }
        write_npz(path, &tensors)
    };
    for (i, (pixels, labels)) in train.iter().enumerate() {
        let path = train_dir.join(format!("train_data_batch_{}.npz", i + 1));
        batch(&path, pixels, labels)?;
    }
    let (pixels, labels) = images(&looks, 16, val, &mut file_rng(seed, 10));
    batch(&val_dir.join("val_data.npz"), &pixels, &labels)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::pickle::NpDtype;
    use crate::data::test_util::TempDir;
    use crate::data::{
        find_cifar10, find_imagenet16, load_imagenet16, read_cifar10_bin, DatasetKind,
        ImageNet16Classes, ImageSet,
    };

    /// Accuracy (%) of the nearest-class-mean classifier fit on `train`, scored on `test`.
    fn nearest_mean_accuracy(train: &ImageSet, test: &ImageSet) -> f64 {
        let k = train.num_classes();
        let d = train.image(0).len();
        let mut sums = vec![vec![0f64; d]; k];
        let mut counts = vec![0usize; k];
        for i in 0..train.len() {
            let c = train.label(i) as usize;
            counts[c] += 1;
            for (s, &p) in sums[c].iter_mut().zip(train.image(i)) {
                *s += p as f64;
            }
        }
        for (s, &n) in sums.iter_mut().zip(&counts) {
            s.iter_mut().for_each(|x| *x /= n.max(1) as f64);
        }
        let right = (0..test.len())
            .filter(|&i| {
                let img = test.image(i);
                let dist = |m: &Vec<f64>| -> f64 {
                    m.iter()
                        .zip(img)
                        .map(|(a, &b)| (a - b as f64).powi(2))
                        .sum()
                };
                let best = (0..k)
                    .filter(|&c| counts[c] > 0)
                    .min_by(|&a, &b| dist(&sums[a]).total_cmp(&dist(&sums[b])))
                    .unwrap();
                best == test.label(i) as usize
            })
            .count();
        100.0 * right as f64 / test.len() as f64
    }

    #[test]
    fn cifar10_standin_reads_back_and_is_learnable() {
        let t = TempDir::new("standin_cifar");
        let dir = write_cifar10_standin(t.path(), 200, 300, 3).unwrap();
        assert_eq!(dir, t.path().join("cifar10"));
        assert!(is_standin(&dir));
        let files = find_cifar10(&dir).unwrap();
        assert_eq!(files.format, Cifar10Format::Binary);
        assert!(is_standin(files.test.parent().unwrap()));
        for (i, path) in files.train.iter().chain([&files.test]).enumerate() {
            let n = if i < 5 { 200 } else { 300 };
            let raw = std::fs::read(path).unwrap();
            assert_eq!(raw.len(), n * 3073, "{}", path.display());
            let (x, y) = read_cifar10_bin(path).unwrap();
            assert_eq!((x.len(), y.len()), (n * 3072, n));
            assert!(y.iter().all(|&l| l < 10));
            // Balanced: every class equally often in each file.
            for c in 0..10 {
                assert_eq!(y.iter().filter(|&&l| l == c).count(), n / 10);
            }
        }
        let meta = std::fs::read_to_string(dir.join("cifar-10-batches-bin/batches.meta.txt"));
        assert!(meta.unwrap().starts_with("airplane\nautomobile\n"));
        let note = std::fs::read_to_string(dir.join(STANDIN_FILE)).unwrap();
        assert!(
            note.contains("NOT CIFAR-10") && note.contains("Seed: 3"),
            "{note}"
        );

        let s = DatasetKind::Cifar10.load(t.path(), Some(50), 0).unwrap();
        assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (950, 50, 300));
        assert_eq!(s.train.shape(), [3, 32, 32]);
        // The class means alone (which see the tints, not the randomly shifted gratings)
        // are well above chance (10%) but far from perfect.
        let acc = nearest_mean_accuracy(&s.train, &s.test);
        eprintln!("stand-in CIFAR-10, nearest class mean: {acc:.1}%");
        assert!((25.0..90.0).contains(&acc), "nearest class mean: {acc}%");

        // Same seed, same bytes; another seed, other bytes.
        let a = std::fs::read(&files.train[2]).unwrap();
        write_cifar10_standin(t.path(), 200, 300, 3).unwrap();
        assert_eq!(std::fs::read(&files.train[2]).unwrap(), a);
        write_cifar10_standin(t.path(), 200, 300, 4).unwrap();
        assert_ne!(std::fs::read(&files.train[2]).unwrap(), a);
    }

    #[test]
    fn imagenet16_standin_reads_back_with_one_based_labels() {
        let t = TempDir::new("standin_in16");
        let dir = write_imagenet16_standin(t.path(), 30, 25, 120, 7).unwrap();
        assert_eq!(dir, t.path().join("imagenet16"));
        let files = find_imagenet16(&dir).unwrap();
        assert!(files.train[0].ends_with("Imagenet16_train/train_data_batch_1.npz"));
        assert!(files.val.ends_with("Imagenet16_val/val_data.npz"));
        for d in ["", "Imagenet16_train", "Imagenet16_val"] {
            assert!(is_standin(&dir.join(d)), "{d}");
        }
        // The npz itself: the three arrays of the pickled dicts, read by the strict reader.
        let arrays = crate::data::npz::read_npz(&files.train[3]).unwrap();
        let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["data", "labels", "mean"]);
        let shapes: Vec<(NpDtype, Vec<usize>)> = arrays
            .iter()
            .map(|(_, a)| (a.dtype, a.shape.clone()))
            .collect();
        assert_eq!(
            shapes,
            vec![
                (NpDtype::U8, vec![30, 768]),
                (NpDtype::I64, vec![30]),
                (NpDtype::F64, vec![768])
            ]
        );
        let (_, labels) = crate::data::read_imagenet16_batch(&files.train[3]).unwrap();
        assert_eq!(labels.len(), 30);
        assert!(labels.iter().all(|&l| (1..=120).contains(&l)), "{labels:?}");
        // The same seed writes the same bytes; a pickled stand-in left there is removed.
        let a = std::fs::read(&files.train[3]).unwrap();
        let old = dir.join("Imagenet16_train/train_data_batch_4");
        std::fs::write(&old, b"old pickle").unwrap();
        write_imagenet16_standin(t.path(), 30, 25, 120, 7).unwrap();
        assert_eq!(std::fs::read(&files.train[3]).unwrap(), a);
        assert!(!old.exists());

        let s = load_imagenet16(&dir, ImageNet16Classes::First(120), 20, 0).unwrap();
        assert_eq!((s.train.len(), s.valid.len(), s.test.len()), (280, 20, 25));
        assert_eq!(s.train.shape(), [3, 16, 16]);
        assert_eq!(s.train.num_classes(), 120);
        let all = (0..s.train.len()).map(|i| s.train.label(i));
        assert!(all.chain((0..25).map(|i| s.test.label(i))).all(|l| l < 120));
        // Through the data set kinds: all 1000 outputs, or the first 120 classes.
        let s = DatasetKind::ImageNet16.load(t.path(), Some(20), 0).unwrap();
        assert_eq!(
            (s.train.len(), s.test.len(), s.train.num_classes()),
            (280, 25, 1000)
        );
        let s = DatasetKind::ImageNet16_120
            .load(t.path(), Some(20), 0)
            .unwrap();
        assert_eq!(s.train.len() + s.valid.len(), 300);

        // Few classes: well above chance (20%) from the class means alone.
        write_imagenet16_standin(t.path(), 40, 200, 5, 1).unwrap();
        let s = load_imagenet16(&dir, ImageNet16Classes::First(5), 10, 0).unwrap();
        let acc = nearest_mean_accuracy(&s.train, &s.test);
        eprintln!("stand-in ImageNet-16 (5 classes), nearest class mean: {acc:.1}%");
        assert!(acc >= 40.0, "nearest class mean: {acc}%");
        assert!(write_imagenet16_standin(t.path(), 1, 1, 0, 1).is_err());
        assert!(write_imagenet16_standin(t.path(), 1, 1, 1001, 1).is_err());
    }

    #[test]
    fn real_looking_folders_are_not_overwritten() {
        let t = TempDir::new("standin_guard");
        let dir = t.path().join("cifar10/cifar-10-batches-bin");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("data_batch_1.bin"), b"real").unwrap();
        let e = write_cifar10_standin(t.path(), 10, 10, 0).unwrap_err();
        assert!(e.to_string().contains(STANDIN_FILE), "{e}");
        assert_eq!(
            std::fs::read(dir.join("data_batch_1.bin")).unwrap(),
            b"real"
        );
        // An empty folder is fine.
        std::fs::create_dir_all(t.path().join("imagenet16")).unwrap();
        write_imagenet16_standin(t.path(), 2, 2, 3, 0).unwrap();
        assert!(check_overwritable(&t.path().join("imagenet16")).is_ok());
        assert!(check_overwritable(&t.path().join("missing")).is_ok());
    }
}
