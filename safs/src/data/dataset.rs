//! In-memory image sets: shared `u8` storage, cheap subsets and splits, normalised batches.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::augment::Augment;
use crate::{Error, Result};

/// Per-channel normalisation `(x / 255 - mean[c]) / std[c]` applied when batching.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    /// Per-channel mean of the pixel values scaled to `[0, 1]`.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of the pixel values scaled to `[0, 1]`.
    pub std: Vec<f32>,
}

impl Normalize {
    /// Normalisation with the given per-channel means and standard deviations.
    pub fn new(mean: Vec<f32>, std: Vec<f32>) -> Self {
        Normalize { mean, std }
    }

    /// No normalisation beyond scaling to `[0, 1]`, for `channels` channels.
    pub fn identity(channels: usize) -> Self {
        Normalize {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// The usual MNIST constants: mean 0.1307, std 0.3081.
    pub fn mnist() -> Self {
        Normalize::new(vec![0.1307], vec![0.3081])
    }

    /// The usual Fashion-MNIST constants: mean 0.2860, std 0.3530.
    pub fn fashion_mnist() -> Self {
        Normalize::new(vec![0.2860], vec![0.3530])
    }

    /// The usual CIFAR-10 constants: mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435,
    /// 0.2616), the per-channel statistics of the 50k training images.
    pub fn cifar10() -> Self {
        Normalize::new(vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616])
    }

    /// NAS-Bench-201's ImageNet-16 constants: mean (122.68, 116.66, 104.01) / 255, std
    /// (63.22, 61.26, 65.09) / 255.
    pub fn imagenet16() -> Self {
        let s = |v: [f32; 3]| v.iter().map(|x| x / 255.0).collect();
        Normalize::new(s([122.68, 116.66, 104.01]), s([63.22, 61.26, 65.09]))
    }

    /// Checks there is one finite mean and one positive finite std per channel.
    fn check(&self, channels: usize) -> Result<()> {
        if self.mean.len() != channels || self.std.len() != channels {
            return Err(Error::Config(format!(
                "normalisation has {} means and {} stds for {channels} channels",
                self.mean.len(),
                self.std.len()
            )));
        }
        if self.mean.iter().any(|m| !m.is_finite())
            || self.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
        {
            return Err(Error::Config(format!(
                "normalisation needs finite means and positive stds, got {self:?}"
            )));
        }
        Ok(())
    }

    /// One 256-entry lookup table per channel mapping a raw byte to its normalised value.
    fn tables(&self) -> Vec<[f32; 256]> {
        self.mean
            .iter()
            .zip(&self.std)
            .map(|(&m, &s)| {
                let mut t = [0f32; 256];
                for (v, slot) in t.iter_mut().enumerate() {
                    *slot = (v as f32 / 255.0 - m) / s;
                }
                t
            })
            .collect()
    }
}

/// A set of labelled images whose storage is shared between its subsets and splits.
///
/// Images are raw bytes, `N x C x H x W`; the set is a list of indices into that storage,
/// so [`take`](ImageSet::take), [`subset`](ImageSet::subset) and
/// [`split`](ImageSet::split) copy no pixels. Positions `0..len()` used by the methods are
/// positions in this set, not in the storage. Subsets keep the set's [`Augment`] setting,
/// which [`batches`](ImageSet::batches) applies when shuffling.
#[derive(Clone, Debug)]
pub struct ImageSet {
    images: Arc<Vec<u8>>,
    labels: Arc<Vec<u32>>,
    indices: Arc<Vec<usize>>,
    shape: [usize; 3],
    num_classes: usize,
    normalize: Normalize,
    augment: Augment,
}

impl ImageSet {
    /// A set over all of `images` (`N x C x H x W` bytes) and `labels` (`N` values).
    pub fn new(
        images: Vec<u8>,
        labels: Vec<u32>,
        shape: [usize; 3],
        num_classes: usize,
        normalize: Normalize,
    ) -> Result<Self> {
        let per = shape.iter().product::<usize>();
        if per == 0 {
            return Err(Error::Config(format!("image shape {shape:?} is empty")));
        }
        if images.len() != labels.len() * per {
            return Err(Error::Config(format!(
                "{} image bytes do not hold {} images of shape {shape:?}",
                images.len(),
                labels.len()
            )));
        }
        if let Some((i, l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l as usize >= num_classes)
        {
            return Err(Error::Config(format!(
                "label {l} of image {i} is not below the {num_classes} classes"
            )));
        }
        normalize.check(shape[0])?;
        let indices = (0..labels.len()).collect();
        Ok(ImageSet {
            images: Arc::new(images),
            labels: Arc::new(labels),
            indices: Arc::new(indices),
            shape,
            num_classes,
            normalize,
            augment: Augment::None,
        })
    }

    /// The same storage restricted to `indices` (storage indices).
    fn with_indices(&self, indices: Vec<usize>) -> Self {
        ImageSet {
            indices: Arc::new(indices),
            ..self.clone()
        }
    }

    /// Number of images in the set.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the set holds no image.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Image shape `[channels, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        self.shape
    }

    /// Number of classes; every label is below it.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// The normalisation applied by [`batch`](ImageSet::batch).
    pub fn normalize(&self) -> &Normalize {
        &self.normalize
    }

    /// The same images with another normalisation (one mean and std per channel).
    pub fn with_normalize(&self, normalize: Normalize) -> Result<Self> {
        normalize.check(self.shape[0])?;
        Ok(ImageSet {
            normalize,
            ..self.clone()
        })
    }

    /// The augmentation that [`batches`](ImageSet::batches) applies when shuffling.
    pub fn augment(&self) -> Augment {
        self.augment
    }

    /// The same images with another augmentation for shuffled batches (copies no pixels).
    pub fn with_augment(&self, augment: Augment) -> Self {
        ImageSet {
            augment,
            ..self.clone()
        }
    }

    /// The storage indices of the set's images, in set order.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Label of the image at position `i`; panics when `i >= len()`.
    pub fn label(&self, i: usize) -> u32 {
        self.labels[self.indices[i]]
    }

    /// Raw bytes (`C x H x W`) of the image at position `i`; panics when `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let per = self.shape.iter().product::<usize>();
        let k = self.indices[i];
        &self.images[k * per..(k + 1) * per]
    }

    /// The first `n` images (all of them when `n >= len()`), e.g. for smoke-test budgets.
    pub fn take(&self, n: usize) -> Self {
        self.with_indices(self.indices[..n.min(self.len())].to_vec())
    }

    /// `n` images drawn at random without replacement with a ChaCha8 generator seeded by
    /// `seed`, kept in set order (all of them when `n >= len()`).
    pub fn subset(&self, seed: u64, n: usize) -> Self {
        if n >= self.len() {
            return self.clone();
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut pos = rand::seq::index::sample(&mut rng, self.len(), n).into_vec();
        pos.sort_unstable();
        self.with_indices(pos.into_iter().map(|p| self.indices[p]).collect())
    }

    /// Splits into `(train, valid)` by a seeded ChaCha8 shuffle: `valid_size` images go to
    /// `valid`, the rest to `train`; both keep set order and are disjoint and covering.
    pub fn split(&self, valid_size: usize, seed: u64) -> Result<(Self, Self)> {
        if valid_size >= self.len() {
            return Err(Error::Config(format!(
                "validation size {valid_size} leaves no training image out of {}",
                self.len()
            )));
        }
        let mut perm: Vec<usize> = (0..self.len()).collect();
        perm.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let (valid, train) = perm.split_at_mut(valid_size);
        valid.sort_unstable();
        train.sort_unstable();
        let pick = |p: &[usize]| self.with_indices(p.iter().map(|&p| self.indices[p]).collect());
        Ok((pick(train), pick(valid)))
    }

    /// Number of images of each class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.num_classes];
        for &k in self.indices.iter() {
            counts[self.labels[k] as usize] += 1;
        }
        counts
    }

    /// The images at `positions` as normalised `f32` of shape `(b, c, h, w)` and their
    /// labels as `u32` of shape `(b,)`, on `device`; never augmented (for evaluation).
    pub fn batch(&self, positions: &[usize], device: &Device) -> Result<(Tensor, Tensor)> {
        let tables = self.normalize.tables();
        self.batch_with(positions, &tables, None, device)
    }

    /// Like [`batch`](ImageSet::batch), augmenting each image with `rng` when given.
    fn batch_with(
        &self,
        positions: &[usize],
        tables: &[[f32; 256]],
        mut rng: Option<&mut ChaCha8Rng>,
        device: &Device,
    ) -> Result<(Tensor, Tensor)> {
        let [c, h, w] = self.shape;
        let plane = h * w;
        let mut xs = Vec::with_capacity(positions.len() * c * plane);
        let mut ys = Vec::with_capacity(positions.len());
        let mut scratch = vec![0u8; if rng.is_some() { c * plane } else { 0 }];
        for &p in positions {
            if p >= self.len() {
                return Err(Error::Config(format!(
                    "batch position {p} is out of range for a set of {} images",
                    self.len()
                )));
            }
            let k = self.indices[p];
            let mut img = &self.images[k * c * plane..(k + 1) * c * plane];
            if let Some(rng) = rng.as_deref_mut() {
                self.augment.apply(img, self.shape, rng, &mut scratch);
                img = &scratch;
            }
            for (ch, table) in img.chunks_exact(plane).zip(tables) {
                xs.extend(ch.iter().map(|&v| table[v as usize]));
            }
            ys.push(self.labels[k]);
        }
        let b = positions.len();
        let xs = Tensor::from_vec(xs, (b, c, h, w), device)?;
        let ys = Tensor::from_vec(ys, b, device)?;
        Ok((xs, ys))
    }

    /// Iterates over the whole set in batches of `batch_size` (the last may be smaller):
    /// in a ChaCha8 permutation seeded by `shuffle_seed` when `Some`, in order when `None`.
    ///
    /// With `Some(seed)` and an [`augment`](ImageSet::augment) setting other than
    /// [`Augment::None`], each image is augmented on the fly from a ChaCha8 generator
    /// seeded by `seed` on stream `k + 1` for batch `k` (the shuffle uses stream 0): the
    /// same seed gives the same augmented batches, whatever batches were skipped. With
    /// `None` (evaluation) nothing is augmented.
    ///
    /// Panics when `batch_size` is 0.
    pub fn batches(
        &self,
        batch_size: usize,
        shuffle_seed: Option<u64>,
        device: &Device,
    ) -> Batches {
        assert!(batch_size > 0, "batch size must be positive");
        let mut order: Vec<usize> = (0..self.len()).collect();
        if let Some(seed) = shuffle_seed {
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        }
        Batches {
            set: self.clone(),
            tables: self.normalize.tables(),
            order,
            batch_size,
            next: 0,
            augment_seed: shuffle_seed.filter(|_| !self.augment.is_none()),
            device: device.clone(),
        }
    }
}

/// Iterator over one epoch of `(images, labels)` batches; see [`ImageSet::batches`].
///
/// Its [`len`](ExactSizeIterator::len) is the number of batches still to come (all of
/// them before the first `next`); [`num_batches`](Batches::num_batches) is the total.
pub struct Batches {
    set: ImageSet,
    tables: Vec<[f32; 256]>,
    order: Vec<usize>,
    batch_size: usize,
    next: usize,
    augment_seed: Option<u64>,
    device: Device,
}

impl Batches {
    /// Total number of batches in the epoch, the last partial one included.
    pub fn num_batches(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    /// The positions (in the set) visited this epoch, in visiting order.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

impl Iterator for Batches {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.order.len() {
            return None;
        }
        let end = (self.next + self.batch_size).min(self.order.len());
        let pos = &self.order[self.next..end];
        let mut rng = self.augment_seed.map(|seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream((self.next / self.batch_size) as u64 + 1);
            rng
        });
        self.next = end;
        Some(
            self.set
                .batch_with(pos, &self.tables, rng.as_mut(), &self.device),
        )
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.next).div_ceil(self.batch_size);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Batches {}

/// The three parts of a data set: training, validation (held out of training) and test.
#[derive(Clone, Debug)]
pub struct Splits {
    /// Images the weights are trained on.
    pub train: ImageSet,
    /// Images held out of training, for search and early decisions.
    pub valid: ImageSet,
    /// The separate test images, for final reporting only.
    pub test: ImageSet,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` images of shape `shape`; label `i` (so one class per image) and pixel
    /// `j` of image `i` equal to `(i * 31 + j) % 256`.
    fn numbered(n: usize, shape: [usize; 3]) -> ImageSet {
        let per: usize = shape.iter().product();
        let images = (0..n * per)
            .map(|k| ((k / per) * 31 + k % per) as u8)
            .collect();
        let labels = (0..n as u32).collect();
        ImageSet::new(images, labels, shape, n, Normalize::identity(shape[0])).unwrap()
    }

    fn epoch_labels(set: &ImageSet, bs: usize, seed: Option<u64>) -> Vec<u32> {
        set.batches(bs, seed, &Device::Cpu)
            .flat_map(|b| b.unwrap().1.to_vec1::<u32>().unwrap())
            .collect()
    }

    #[test]
    fn batch_count_and_shapes_with_partial_last() {
        let set = numbered(10, [1, 2, 3]);
        let it = set.batches(4, Some(0), &Device::Cpu);
        assert_eq!(it.len(), 3);
        assert_eq!(it.num_batches(), 3);
        let shapes: Vec<(Vec<usize>, Vec<usize>)> = it
            .map(|b| {
                let (x, y) = b.unwrap();
                (x.dims().to_vec(), y.dims().to_vec())
            })
            .collect();
        assert_eq!(
            shapes,
            vec![
                (vec![4, 1, 2, 3], vec![4]),
                (vec![4, 1, 2, 3], vec![4]),
                (vec![2, 1, 2, 3], vec![2]),
            ]
        );
        assert_eq!(set.batches(5, None, &Device::Cpu).len(), 2);
        assert_eq!(set.batches(11, None, &Device::Cpu).len(), 1);
        assert_eq!(
            numbered(0, [1, 1, 1]).batches(3, None, &Device::Cpu).len(),
            0
        );
    }

    #[test]
    fn batch_dtypes_and_pixels_follow_labels() {
        let set = numbered(7, [2, 2, 2]);
        for b in set.batches(3, Some(5), &Device::Cpu) {
            let (x, y) = b.unwrap();
            assert_eq!(x.dtype(), candle_core::DType::F32);
            assert_eq!(y.dtype(), candle_core::DType::U32);
            let xs = x.flatten_from(1).unwrap().to_vec2::<f32>().unwrap();
            for (row, l) in xs.iter().zip(y.to_vec1::<u32>().unwrap()) {
                let want: Vec<f32> = (0..8)
                    .map(|j| ((l as usize * 31 + j) as u8) as f32 / 255.0)
                    .collect();
                assert_eq!(row, &want);
            }
        }
    }

    #[test]
    fn shuffle_is_seeded_and_a_permutation() {
        let set = numbered(50, [1, 1, 1]);
        let a = epoch_labels(&set, 8, Some(1));
        let b = epoch_labels(&set, 8, Some(1));
        let c = epoch_labels(&set, 8, Some(2));
        assert_eq!(a, b, "same seed, same order");
        assert_ne!(a, c, "different seed, different order");
        let inorder = epoch_labels(&set, 8, None);
        assert_eq!(inorder, (0..50).collect::<Vec<u32>>());
        assert_ne!(a, inorder);
        for order in [a, c] {
            let mut s = order.clone();
            s.sort_unstable();
            assert_eq!(
                s,
                (0..50).collect::<Vec<u32>>(),
                "each index once per epoch"
            );
        }
    }

    #[test]
    fn normalisation_of_known_pixels() {
        let images = vec![0u8, 255, 128, 51];
        let set = ImageSet::new(images, vec![3], [1, 2, 2], 10, Normalize::mnist()).unwrap();
        let (x, y) = set.batch(&[0], &Device::Cpu).unwrap();
        let v = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let f = |p: f32| (p / 255.0 - 0.1307) / 0.3081;
        for (got, p) in v.iter().zip([0.0, 255.0, 128.0, 51.0]) {
            assert!((got - f(p)).abs() < 1e-6, "{got} vs {}", f(p));
        }
        assert!((v[1] - 2.821_487).abs() < 1e-5, "{}", v[1]);
        assert!((v[0] + 0.424_213).abs() < 1e-5, "{}", v[0]);
        assert_eq!(y.to_vec1::<u32>().unwrap(), vec![3]);

        // Per-channel constants apply to their own channel.
        let norm = Normalize::new(vec![0.0, 0.5], vec![1.0, 0.25]);
        let set = ImageSet::new(vec![255, 255], vec![0], [2, 1, 1], 1, norm).unwrap();
        let (x, _) = set.batch(&[0], &Device::Cpu).unwrap();
        assert_eq!(
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![1.0, 2.0]
        );
    }

    #[test]
    fn split_is_disjoint_covering_and_seeded() {
        let set = numbered(100, [1, 1, 1]);
        let (train, valid) = set.split(20, 7).unwrap();
        assert_eq!((train.len(), valid.len()), (80, 20));
        let mut all: Vec<usize> = train.indices().to_vec();
        all.extend_from_slice(valid.indices());
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        let (train2, valid2) = set.split(20, 7).unwrap();
        assert_eq!(train2.indices(), train.indices());
        assert_eq!(valid2.indices(), valid.indices());
        let (_, valid3) = set.split(20, 8).unwrap();
        assert_ne!(valid3.indices(), valid.indices());
        // Not just the first or last 20.
        assert_ne!(valid.indices(), &(0..20).collect::<Vec<_>>()[..]);
        assert_ne!(valid.indices(), &(80..100).collect::<Vec<_>>()[..]);
        // Labels follow the storage through the split.
        for i in 0..valid.len() {
            assert_eq!(valid.label(i) as usize, valid.indices()[i]);
        }
        // Splitting a split stays inside it.
        let (a, b) = valid.split(5, 0).unwrap();
        for k in a.indices().iter().chain(b.indices()) {
            assert!(valid.indices().contains(k));
        }
        assert!(set.split(100, 0).is_err());
        assert_eq!(set.split(0, 0).unwrap().1.len(), 0);
    }

    #[test]
    fn take_subset_counts() {
        let images = vec![0u8; 12];
        let labels = vec![0, 1, 1, 2, 2, 2, 0, 1, 2, 2, 2, 2];
        let set = ImageSet::new(images, labels, [1, 1, 1], 4, Normalize::identity(1)).unwrap();
        assert_eq!(set.class_counts(), vec![2, 3, 7, 0]);
        let t = set.take(4);
        assert_eq!(t.len(), 4);
        assert_eq!(t.class_counts(), vec![1, 2, 1, 0]);
        assert_eq!(set.take(100).len(), 12);
        let s = set.subset(3, 5);
        assert_eq!(s.len(), 5);
        assert_eq!(s.indices(), set.subset(3, 5).indices());
        assert!(s.indices().windows(2).all(|w| w[0] < w[1]));
        assert_ne!(s.indices(), set.subset(4, 5).indices());
        assert_eq!(set.subset(0, 50).len(), 12);
        assert!(set.batch(&[12], &Device::Cpu).is_err());
        assert_eq!(
            s.batch(&[0, 4], &Device::Cpu).unwrap().0.dims(),
            &[2, 1, 1, 1]
        );
    }

    fn epoch(set: &ImageSet, bs: usize, seed: Option<u64>) -> Vec<(Vec<f32>, Vec<u32>)> {
        set.batches(bs, seed, &Device::Cpu)
            .map(|b| {
                let (x, y) = b.unwrap();
                (
                    x.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    y.to_vec1::<u32>().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn augmented_batches_are_seeded_and_only_when_shuffling() {
        let set = numbered(20, [3, 6, 6]);
        let aug = set.with_augment(Augment::CropFlip { pad: 2 });
        assert_eq!(aug.augment(), Augment::CropFlip { pad: 2 });
        assert_eq!(set.augment(), Augment::None);
        let a = epoch(&aug, 8, Some(3));
        assert_eq!(
            a,
            epoch(&aug, 8, Some(3)),
            "same seed, same augmented batches"
        );
        assert_ne!(a, epoch(&aug, 8, Some(4)));
        let plain = epoch(&set, 8, Some(3));
        // Same order and labels as without augmentation, some pixels differ.
        assert_eq!(
            a.iter().map(|b| b.1.clone()).collect::<Vec<_>>(),
            plain.iter().map(|b| b.1.clone()).collect::<Vec<_>>()
        );
        assert_ne!(a, plain);
        // Shapes are kept.
        for b in aug.batches(8, Some(3), &Device::Cpu) {
            assert_eq!(&b.unwrap().0.dims()[1..], &[3, 6, 6]);
        }
        // Each augmented image is a crop/flip of its own image (zeros from padding).
        let (x, y) = &a[0];
        for (i, &l) in y.iter().enumerate() {
            let img = &x[i * 108..(i + 1) * 108];
            let own: Vec<f32> = aug
                .image(l as usize)
                .iter()
                .map(|&v| v as f32 / 255.0)
                .collect();
            let found = (0..=4).any(|dy| {
                (0..=4).any(|dx| {
                    [false, true].iter().any(|&flip| {
                        let mut d = vec![0u8; 108];
                        crate::data::augment::crop_flip(
                            aug.image(l as usize),
                            [3, 6, 6],
                            2,
                            (dy, dx),
                            flip,
                            &mut d,
                        );
                        d.iter().zip(img).all(|(&p, &q)| p as f32 / 255.0 == q)
                    })
                })
            });
            assert!(found, "image {i} is no crop/flip of {own:?}");
        }
        // Batch k's augmentation does not depend on the batches before it.
        let mut it = aug.batches(8, Some(3), &Device::Cpu);
        it.next();
        let second = it.next().unwrap().unwrap().0.flatten_all().unwrap();
        assert_eq!(second.to_vec1::<f32>().unwrap(), a[1].0);
        // No shuffle seed (evaluation) and batch(): never augmented; subsets keep it.
        assert_eq!(epoch(&aug, 8, None), epoch(&set, 8, None));
        let (xa, _) = aug.batch(&[0, 1], &Device::Cpu).unwrap();
        let (xs, _) = set.batch(&[0, 1], &Device::Cpu).unwrap();
        assert_eq!(
            xa.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            xs.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
        assert_eq!(aug.take(5).augment(), aug.augment());
        assert_eq!(aug.split(5, 0).unwrap().0.augment(), aug.augment());
        assert_eq!(aug.subset(1, 5).augment(), aug.augment());
    }

    #[test]
    fn dataset_constants() {
        let c = Normalize::cifar10();
        assert_eq!(c.mean, vec![0.4914, 0.4822, 0.4465]);
        assert_eq!(c.std, vec![0.2470, 0.2435, 0.2616]);
        let i = Normalize::imagenet16();
        let want_mean = [0.481_098, 0.457_490, 0.407_882];
        let want_std = [0.247_922, 0.240_235, 0.255_255];
        for k in 0..3 {
            assert!((i.mean[k] - want_mean[k]).abs() < 1e-5, "{:?}", i.mean);
            assert!((i.std[k] - want_std[k]).abs() < 1e-5, "{:?}", i.std);
        }
    }

    #[test]
    fn constructor_validates() {
        let n = Normalize::identity(1);
        assert!(ImageSet::new(vec![0; 5], vec![0, 0], [1, 1, 2], 1, n.clone()).is_err());
        assert!(ImageSet::new(vec![0; 4], vec![0, 1], [1, 1, 2], 1, n.clone()).is_err());
        assert!(
            ImageSet::new(vec![0; 4], vec![0, 0], [1, 1, 2], 1, Normalize::identity(3)).is_err()
        );
        let bad = Normalize::new(vec![0.0], vec![0.0]);
        assert!(ImageSet::new(vec![0; 4], vec![0, 0], [1, 1, 2], 1, bad).is_err());
        assert!(ImageSet::new(vec![0; 4], vec![0, 0], [1, 1, 2], 1, n).is_ok());
    }
}
