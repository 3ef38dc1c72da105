//! Training-time augmentation of raw `u8` images, applied per batch before normalisation:
//! torchvision's `RandomCrop(size, padding=pad)` (zero padding) and
//! `RandomHorizontalFlip()`.
//!
//! Padding with raw byte 0 and then normalising gives what torchvision gives (it pads the
//! PIL image before `ToTensor`/`Normalize`). The randomness comes from the caller's
//! generator; [`ImageSet::batches`](super::ImageSet::batches) seeds one per batch from the
//! shuffle seed, so the same seed gives the same augmented batches.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which random augmentation to apply to training images.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Augment {
    /// No augmentation (`"none"`).
    #[default]
    None,
    /// Random crop back to the image size after `pad` pixels of zero padding on each side,
    /// then a horizontal flip with probability 1/2 (`{"crop-flip": {"pad": 4}}`).
    CropFlip {
        /// Zero padding on each side, in pixels (4 for CIFAR-10, 2 for ImageNet-16).
        pad: usize,
    },
    /// A horizontal flip with probability 1/2 (`"flip"`).
    Flip,
}

impl Augment {
    /// Whether this is [`Augment::None`].
    pub fn is_none(self) -> bool {
        self == Augment::None
    }

    /// Writes a random augmentation of `src` (`C x H x W` bytes of shape `shape`) into
    /// `dst` (same size), drawing the crop offsets and then the flip from `rng`.
    ///
    /// Panics when `src` or `dst` does not hold `C * H * W` bytes.
    pub fn apply(self, src: &[u8], shape: [usize; 3], rng: &mut impl Rng, dst: &mut [u8]) {
        let (pad, dy, dx, flip) = match self {
            Augment::None => (0, 0, 0, false),
            Augment::CropFlip { pad } => {
                let dy = rng.gen_range(0..=2 * pad);
                let dx = rng.gen_range(0..=2 * pad);
                (pad, dy, dx, rng.gen_bool(0.5))
            }
            Augment::Flip => (0, 0, 0, rng.gen_bool(0.5)),
        };
        crop_flip(src, shape, pad, (dy, dx), flip, dst);
    }
}

/// The deterministic transform behind [`Augment::apply`]: pads `src` with `pad` zero pixels
/// on each side, takes the `H x W` window whose top-left corner is `(dy, dx)` in the padded
/// image (`0..=2 * pad` each; `(pad, pad)` is the identity), then mirrors it left-right
/// when `flip`. Writes into `dst`.
///
/// Panics when `src` or `dst` does not hold `C * H * W` bytes or an offset exceeds `2 * pad`.
pub fn crop_flip(
    src: &[u8],
    shape: [usize; 3],
    pad: usize,
    (dy, dx): (usize, usize),
    flip: bool,
    dst: &mut [u8],
) {
    let [c, h, w] = shape;
    assert_eq!(src.len(), c * h * w, "source image size");
    assert_eq!(dst.len(), c * h * w, "destination image size");
    assert!(
        dy <= 2 * pad && dx <= 2 * pad,
        "crop offset beyond the padding"
    );
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        let out = &mut dst[ch * h * w..(ch + 1) * h * w];
        for (y, row) in out.chunks_exact_mut(w).enumerate() {
            // Source row in the unpadded image, if inside it.
            let sy = (y + dy).checked_sub(pad).filter(|&sy| sy < h);
            let Some(sy) = sy else {
                row.fill(0);
                continue;
            };
            let srow = &plane[sy * w..(sy + 1) * w];
            for (x, px) in row.iter_mut().enumerate() {
                let cx = if flip { w - 1 - x } else { x };
                *px = (cx + dx)
                    .checked_sub(pad)
                    .filter(|&sx| sx < w)
                    .map_or(0, |sx| srow[sx]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// A 2 x 3 x 4 image with distinct non-zero pixels.
    fn img() -> Vec<u8> {
        (1..=24).collect()
    }

    fn run(src: &[u8], pad: usize, off: (usize, usize), flip: bool) -> Vec<u8> {
        let mut dst = vec![99; src.len()];
        crop_flip(src, [2, 3, 4], pad, off, flip, &mut dst);
        dst
    }

    #[test]
    fn identity_flip_and_flip_twice() {
        let src = img();
        assert_eq!(run(&src, 0, (0, 0), false), src);
        assert_eq!(
            run(&src, 2, (2, 2), false),
            src,
            "centre crop is the identity"
        );
        let f = run(&src, 0, (0, 0), true);
        assert_eq!(&f[..4], &[4, 3, 2, 1]);
        assert_eq!(&f[12..16], &[16, 15, 14, 13]);
        assert_eq!(run(&f, 0, (0, 0), true), src, "flip twice is the identity");
    }

    #[test]
    fn padding_fills_zeros() {
        let src = img();
        // Window shifted one up and one left: first row and column come from padding.
        let d = run(&src, 1, (0, 0), false);
        assert_eq!(
            d,
            vec![
                0, 0, 0, 0, 0, 1, 2, 3, 0, 5, 6, 7, //
                0, 0, 0, 0, 0, 13, 14, 15, 0, 17, 18, 19
            ]
        );
        // Shifted fully down-right by 2 with pad 2: last two rows/cols are zeros.
        let d = run(&src, 2, (4, 4), false);
        assert_eq!(&d[..4], &[11, 12, 0, 0]);
        assert!(d[4..12].iter().all(|&v| v == 0));
        // Then flipped: zeros move to the left.
        let d = run(&src, 2, (4, 4), true);
        assert_eq!(&d[..4], &[0, 0, 12, 11]);
        // A padding larger than the image gives an all-zero window.
        let d = run(&src, 5, (0, 0), false);
        assert!(d.iter().all(|&v| v == 0));
    }

    #[test]
    fn random_apply_is_seeded_and_keeps_shape() {
        let src: Vec<u8> = (0..3 * 32 * 32).map(|i| (i % 251 + 1) as u8).collect();
        let aug = Augment::CropFlip { pad: 4 };
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..8)
                .map(|_| {
                    let mut d = vec![0; src.len()];
                    aug.apply(&src, [3, 32, 32], &mut rng, &mut d);
                    d
                })
                .collect::<Vec<_>>()
        };
        let a = draw(1);
        assert_eq!(a, draw(1));
        assert_ne!(a, draw(2));
        assert!(a.iter().all(|d| d.len() == src.len()));
        assert!(a.iter().any(|d| d != &src), "some draw changes the image");
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut d = vec![0; src.len()];
        Augment::None.apply(&src, [3, 32, 32], &mut rng, &mut d);
        assert_eq!(d, src);
        // Flip only: every draw is the image or its mirror, and both occur.
        let mirror = {
            let mut m = vec![0; src.len()];
            crop_flip(&src, [3, 32, 32], 0, (0, 0), true, &mut m);
            m
        };
        let mut seen = [false; 2];
        for _ in 0..32 {
            Augment::Flip.apply(&src, [3, 32, 32], &mut rng, &mut d);
            assert!(d == src || d == mirror);
            seen[(d == mirror) as usize] = true;
        }
        assert_eq!(seen, [true, true]);
        // All 81 crop offsets and both flips are reachable.
        let mut offsets = std::collections::HashSet::new();
        let mut r = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..3000 {
            let dy = r.gen_range(0..=8usize);
            let dx = r.gen_range(0..=8usize);
            offsets.insert((dy, dx, r.gen_bool(0.5)));
        }
        assert_eq!(offsets.len(), 162);
    }

    #[test]
    fn serde_names() {
        assert_eq!(serde_json::to_string(&Augment::None).unwrap(), "\"none\"");
        assert_eq!(serde_json::to_string(&Augment::Flip).unwrap(), "\"flip\"");
        assert_eq!(
            serde_json::to_string(&Augment::CropFlip { pad: 4 }).unwrap(),
            r#"{"crop-flip":{"pad":4}}"#
        );
        let a: Augment = serde_json::from_str(r#"{"crop-flip":{"pad":2}}"#).unwrap();
        assert_eq!(a, Augment::CropFlip { pad: 2 });
    }
}
