//! The graph's feature-map layout: channel-major planes with zero borders, the images of a
//! batch side by side at each position.
//!
//! Channel `c` is the padded grid of `h + 2 pad` rows of `w + 2 pad` positions, and each
//! position holds the `n` images' values one after another; `slack` zeros follow. A
//! convolution tap is then a fixed shift inside a plane ([`super::kernel`]), the border is
//! the convolution's zero padding (written once when the buffer is allocated), and one
//! output row of all the images is one contiguous run of `w n` floats, so the kernel
//! computes no border (with 8 images, a 4x4 map's row is 32 floats, its padded grid 2.25x
//! more).

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

/// A batch of feature maps in the padded channel-major layout, images innermost.
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

    /// Padded row length, in positions.
    pub fn wp(&self) -> usize {
        self.w + 2 * self.pad
    }

    /// Padded rows.
    pub fn hp(&self) -> usize {
        self.h + 2 * self.pad
    }

    /// Floats per channel plane (the padded grid of all images, and slack).
    pub fn pstride(&self) -> usize {
        self.hp() * self.wp() * self.n + self.slack
    }

    /// Index inside a channel plane of interior position (y, x), image 0 (image `s` is
    /// `s` further).
    pub fn at(&self, y: usize, x: usize) -> usize {
        ((y + self.pad) * self.wp() + x + self.pad) * self.n
    }

    /// The interior row `y` of all the images in channel plane `plane` (a `pstride`
    /// slice): `w n` floats, position-major.
    pub fn row<'a>(&self, plane: &'a [f32], y: usize) -> &'a [f32] {
        let i = self.at(y, 0);
        &plane[i..i + self.w * self.n]
    }

    /// An (N, C, H, W) batch in this layout.
    pub fn from_nchw(x: &[f32], dims: [usize; 4], pad: usize, slack: usize, par: bool) -> Self {
        let [n, c, h, w] = dims;
        let mut p = Self::zeros(c, n, h, w, pad, slack);
        let ps = p.pstride();
        let geom = p.clone_geometry();
        for_chunks(par, &mut p.data, ps, |ci, plane| {
            for y in 0..h {
                let row = geom.at(y, 0);
                for s in 0..n {
                    let src = &x[((s * c + ci) * h + y) * w..][..w];
                    if n == 1 {
                        plane[row..row + w].copy_from_slice(src);
                        continue;
                    }
                    let dst = plane[row + s..row + w * n].iter_mut().step_by(n);
                    dst.zip(src).for_each(|(d, &v)| *d = v);
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
                for y in 0..h {
                    let row = self.row(self.plane(ci), y);
                    let dst = &mut sample[(ci * h + y) * w..][..w];
                    if n == 1 {
                        dst.copy_from_slice(row);
                        continue;
                    }
                    let src = row[s..].iter().step_by(n);
                    dst.iter_mut().zip(src).for_each(|(d, &v)| *d = v);
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
/// `2 py + px`): phase `(py, px)` is the `ceil(hp/2) x ceil(wp/2)` grid of padded positions
/// `(2i + py, 2j + px)` (zero where that falls outside), all images at each. A stride-2
/// convolution over `x` is a stride-1 one over the phases, so the shifted-plane kernel
/// serves both. Plane `used.len() * c + slot`, `slack` zeros after each; returns the
/// buffer, the phase row length and rows.
pub(crate) fn phases(x: &Planes, used: &[u8], slack: usize, par: bool) -> (Vec<f32>, usize, usize) {
    let (hp, wp, n) = (x.hp(), x.wp(), x.n);
    let (hq, wq) = (hp.div_ceil(2), wp.div_ceil(2));
    let pstride = hq * wq * n + slack;
    let k = used.len();
    let mut out = vec![0f32; k * x.c * pstride];
    for_chunks(par, &mut out, k * pstride, |c, group| {
        let src = x.plane(c);
        for (&phase, dst) in used.iter().zip(group.chunks_mut(pstride)) {
            let (py, px) = (usize::from(phase / 2), usize::from(phase % 2));
            for i in 0..hq {
                let y = 2 * i + py;
                if y >= hp {
                    continue;
                }
                let row = &src[(y * wp + px) * n..(y + 1) * wp * n];
                let d = &mut dst[i * wq * n..(i + 1) * wq * n];
                if n == 1 {
                    // One image: a float per position (a copy call each would cost more).
                    d.iter_mut()
                        .zip(row.iter().step_by(2))
                        .for_each(|(v, &p)| *v = p);
                } else {
                    for (v, pair) in d.chunks_exact_mut(n).zip(row.chunks(2 * n)) {
                        v.copy_from_slice(&pair[..n]);
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
        assert_eq!(p.pstride(), 6 * 7 * 2 + 7);
        assert_eq!(p.to_nchw(true), x);
        // Sample 1, channel 2, pixel (3, 4) is x[((1*3+2)*4+3)*5+4], at padded position
        // (4, 5), after sample 0's value there.
        assert_eq!(
            p.plane(2)[(4 * 7 + 5) * 2 + 1],
            x[((3 + 2) * 4 + 3) * 5 + 4]
        );
        assert_eq!(p.plane(2)[p.at(3, 4) + 1], x[((3 + 2) * 4 + 3) * 5 + 4]);
        // Row 3 of channel 2 holds both samples' pixels position by position.
        let row = p.row(p.plane(2), 3);
        assert_eq!(row.len(), 10);
        assert_eq!(row[..2], [x[(2 * 4 + 3) * 5], x[((3 + 2) * 4 + 3) * 5]]);
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

    #[test]
    fn phases_keep_the_images_side_by_side() {
        // Two 2x3 images, pad 1: padded 4x5, phases 2x3 positions of 2 floats.
        let x: Vec<f32> = (1..=12).map(|i| i as f32).collect();
        let p = Planes::from_nchw(&x, [2, 1, 2, 3], 1, 0, false);
        let (ph, wq, hq) = phases(&p, &[3], 0, false);
        assert_eq!((wq, hq, ph.len()), (3, 2, 12));
        // Phase (1, 1): padded (1,1),(1,3),(3,*) = x (0,0),(0,2) and the bottom border.
        assert_eq!(&ph[..6], &[1.0, 7.0, 3.0, 9.0, 0.0, 0.0]);
        assert_eq!(&ph[6..], &[0.0; 6]);
    }
}
