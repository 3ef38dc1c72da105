//! The graph's feature-map layout: channel-major planes with zero borders.
//!
//! Channel `c` holds the `n` images one after another; each image is `h + 2 pad` rows of
//! `w + 2 pad` floats whose border is zero, and `slack` zeros follow the last image. A
//! convolution tap is then a fixed shift inside a plane ([`super::kernel`]), and the border
//! is the convolution's zero padding, written once when the buffer is allocated.

use rayon::prelude::*;

/// Calls `f(index, chunk)` on each `size`-long chunk of `data`, on rayon's pool when `par`
/// (a graph running one sub-batch per thread keeps its layers on that thread).
pub(crate) fn for_chunks<T: Send>(
    par: bool,
    data: &mut [T],
    size: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if par {
        data.par_chunks_mut(size.max(1))
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        data.chunks_mut(size.max(1))
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
}

/// A batch of feature maps in the padded channel-major layout.
#[derive(Clone, Debug)]
pub(crate) struct Planes {
    pub c: usize,
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub pad: usize,
    pub slack: usize,
    pub data: Vec<f32>,
}

impl Planes {
    /// All zeros.
    pub fn zeros(c: usize, n: usize, h: usize, w: usize, pad: usize, slack: usize) -> Self {
        let mut p = Self {
            c,
            n,
            h,
            w,
            pad,
            slack,
            data: Vec::new(),
        };
        p.data = vec![0f32; c * p.pstride()];
        p
    }

    /// Padded row length.
    pub fn wp(&self) -> usize {
        self.w + 2 * self.pad
    }

    /// Padded rows per image.
    pub fn hp(&self) -> usize {
        self.h + 2 * self.pad
    }

    /// Floats per image in a plane.
    pub fn image_len(&self) -> usize {
        self.hp() * self.wp()
    }

    /// Floats per channel plane (images and slack).
    pub fn pstride(&self) -> usize {
        self.n * self.image_len() + self.slack
    }

    /// Index inside a channel plane of interior pixel (y, x) of image `n`.
    pub fn at(&self, n: usize, y: usize, x: usize) -> usize {
        n * self.image_len() + (y + self.pad) * self.wp() + x + self.pad
    }

    /// The interior row `y` of image `n` in channel plane `plane` (a `pstride` slice).
    pub fn row<'a>(&self, plane: &'a [f32], n: usize, y: usize) -> &'a [f32] {
        let i = self.at(n, y, 0);
        &plane[i..i + self.w]
    }

    /// An (N, C, H, W) batch in this layout.
    pub fn from_nchw(x: &[f32], dims: [usize; 4], pad: usize, slack: usize, par: bool) -> Self {
        let [n, c, h, w] = dims;
        let mut p = Self::zeros(c, n, h, w, pad, slack);
        let ps = p.pstride();
        let geom = p.clone_geometry();
        for_chunks(par, &mut p.data, ps, |ci, plane| {
            for s in 0..n {
                for y in 0..h {
                    let src = &x[((s * c + ci) * h + y) * w..][..w];
                    let i = geom.at(s, y, 0);
                    plane[i..i + w].copy_from_slice(src);
                }
            }
        });
        p
    }

    /// The interior as an (N, C, H, W) row-major vector.
    pub fn to_nchw(&self, par: bool) -> Vec<f32> {
        let (n, c, h, w) = (self.n, self.c, self.h, self.w);
        let mut out = vec![0f32; n * c * h * w];
        for_chunks(par, &mut out, c * h * w, |s, sample| {
            for ci in 0..c {
                let plane = &self.data[ci * self.pstride()..][..self.pstride()];
                for y in 0..h {
                    sample[(ci * h + y) * w..][..w].copy_from_slice(self.row(plane, s, y));
                }
            }
        });
        out
    }

    /// The same geometry with no data (to index while the data is borrowed mutably).
    pub fn clone_geometry(&self) -> Planes {
        Planes {
            data: Vec::new(),
            ..*self
        }
    }

    /// Channel plane `c`.
    pub fn plane(&self, c: usize) -> &[f32] {
        &self.data[c * self.pstride()..(c + 1) * self.pstride()]
    }
}

/// Splits each padded plane of `x` into the stride-2 phases listed in `used` (phase
/// `2 py + px`): phase `(py, px)` of image `n` is the `ceil(hp/2) x ceil(wp/2)` grid of
/// padded pixels `(2i + py, 2j + px)` (zero where that falls outside). A stride-2
/// convolution over `x` is a stride-1 one over the phases, so the shifted-plane kernel
/// serves both. Plane `used.len() * c + slot`, `slack` zeros after each; returns the
/// buffer, the phase row length and rows per image.
pub(crate) fn phases(x: &Planes, used: &[u8], slack: usize, par: bool) -> (Vec<f32>, usize, usize) {
    let (hp, wp) = (x.hp(), x.wp());
    let (hq, wq) = (hp.div_ceil(2), wp.div_ceil(2));
    let pstride = x.n * hq * wq + slack;
    let k = used.len();
    let mut out = vec![0f32; k * x.c * pstride];
    for_chunks(par, &mut out, k * pstride, |c, group| {
        let src = x.plane(c);
        for (&phase, dst) in used.iter().zip(group.chunks_mut(pstride)) {
            let (py, px) = (usize::from(phase / 2), usize::from(phase % 2));
            for s in 0..x.n {
                for i in 0..hq {
                    let y = 2 * i + py;
                    if y >= hp {
                        continue;
                    }
                    let row = &src[s * hp * wp + y * wp + px..][..wp - px];
                    let d = &mut dst[(s * hq + i) * wq..][..wq];
                    for (v, pair) in d.iter_mut().zip(row.chunks(2)) {
                        *v = pair[0];
                    }
                }
            }
        }
    });
    (out, wq, hq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nchw_round_trip_keeps_values_and_zero_borders() {
        let dims = [2, 3, 4, 5];
        let x: Vec<f32> = (0..120).map(|i| i as f32 + 1.0).collect();
        let p = Planes::from_nchw(&x, dims, 1, 7, true);
        assert_eq!(p.pstride(), 2 * 6 * 7 + 7);
        assert_eq!(p.to_nchw(true), x);
        // Sample 1, channel 2, pixel (3, 4) is x[((1*3+2)*4+3)*5+4].
        assert_eq!(p.plane(2)[p.at(1, 3, 4)], x[((3 + 2) * 4 + 3) * 5 + 4]);
        let interior: f32 = x.iter().sum();
        assert_eq!(
            p.data.iter().sum::<f32>(),
            interior,
            "borders and slack are zero"
        );
    }

    #[test]
    fn phases_pick_every_other_padded_pixel() {
        // One 3x3 image, pad 1: padded 5x5, phases 3x3 each.
        let x: Vec<f32> = (1..=9).map(|i| i as f32).collect();
        let p = Planes::from_nchw(&x, [1, 1, 3, 3], 1, 0, false);
        let (ph, wq, hq) = phases(&p, &[0, 1, 2, 3], 2, true);
        assert_eq!((wq, hq), (3, 3));
        let pstride = 9 + 2;
        // Phase (1, 1): padded (1,1),(1,3),(3,1),(3,3) = x (0,0),(0,2),(2,0),(2,2).
        assert_eq!(&ph[3 * pstride..3 * pstride + 4], &[1.0, 3.0, 0.0, 7.0]);
        assert_eq!(ph[3 * pstride + 4], 9.0);
        // Phase (0, 0): padded even rows and columns; only (2, 2) = x (1, 1) is inside.
        assert_eq!(&ph[..9], &[0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0, 0.0, 0.0]);
        // Phase (1, 0): padded rows 1, 3; columns 0, 2, 4 -> x (0,1), (2,1).
        assert_eq!(
            &ph[2 * pstride..2 * pstride + 9],
            &[0.0, 2.0, 0.0, 0.0, 8.0, 0.0, 0.0, 0.0, 0.0]
        );
    }
}
