//! 2-D convolution as im2col + gemm: forward, input gradient and weight gradient.
//!
//! Per sample, with K = (C_in / groups) * kh * kw and P = H_out * W_out, group g computes
//! `y_g (C_out/groups x P) = W_g (C_out/groups x K) * cols_g (K x P)`; the gradients are
//! `dW_g += dy_g * cols_g^T` and `dcols_g = W_g^T * dy_g`, folded back by col2im. A 1x1,
//! stride-1, unpadded convolution uses the input itself as `cols`. Where P is small (late
//! layers), several samples share one product: their columns sit side by side.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::alloc::zeros;
use super::bias::{add_channel_bias, ChannelSum, Dims};
use super::conv_direct::DirectConv;
use super::conv_wgrad;
use super::gemm::{matmul, MatRef};
use super::storage::{dispatch_float, gradient_op2, slice};
use super::{split_mut, split_ranges, threads, use_custom};
use crate::{Error, Result};

/// Shapes of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConvGeom {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: usize,
    pub padding: usize,
    pub groups: usize,
    pub ho: usize,
    pub wo: usize,
}

impl ConvGeom {
    /// Checks the shapes of an (N, C, H, W) input and a (C_out, C_in/groups, kh, kw) weight.
    pub fn new(
        x: &[usize],
        w: &[usize],
        stride: usize,
        padding: usize,
        groups: usize,
    ) -> Result<Self> {
        let bad = |why: &str| {
            Err(Error::Config(format!(
                "conv2d: {why} (input {x:?}, weight {w:?}, stride {stride}, padding {padding}, groups {groups})"
            )))
        };
        let ([n, cin, h, wd], [cout, cig, kh, kw]) = (x, w) else {
            return bad("input and weight must both have rank 4");
        };
        if stride == 0 || groups == 0 || cin % groups != 0 || cout % groups != 0 {
            return bad("stride and groups must be positive and divide the channels");
        }
        if *cig != cin / groups {
            return bad("weight's second dimension must be input channels / groups");
        }
        if h + 2 * padding < *kh || wd + 2 * padding < *kw || *kh == 0 || *kw == 0 {
            return bad("kernel larger than the padded input");
        }
        Ok(Self {
            n: *n,
            cin: *cin,
            h: *h,
            w: *wd,
            cout: *cout,
            kh: *kh,
            kw: *kw,
            stride,
            padding,
            groups,
            ho: (h + 2 * padding - kh) / stride + 1,
            wo: (wd + 2 * padding - kw) / stride + 1,
        })
    }

    /// Rows of one group's `cols`: (C_in / groups) * kh * kw.
    pub(crate) fn k(&self) -> usize {
        self.cin / self.groups * self.kh * self.kw
    }

    /// Output positions per channel.
    pub(crate) fn p(&self) -> usize {
        self.ho * self.wo
    }

    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }

    pub(crate) fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }

    pub(crate) fn out_len(&self) -> usize {
        self.cout * self.p()
    }

    fn weight_len(&self) -> usize {
        self.cout * self.k()
    }

    /// The output columns `ox` whose input column `ox * stride + j - padding` is inside.
    pub(crate) fn valid_cols(&self, j: usize) -> (usize, usize) {
        let (s, p) = (self.stride, self.padding);
        let lo = if p > j { (p - j).div_ceil(s) } else { 0 };
        let hi = if self.w + p > j {
            ((self.w + p - j - 1) / s + 1).min(self.wo)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// For a stride-1 ungrouped "same" convolution (square kernel, `kh = 2p + 1`), the
    /// convolution whose forward pass is this one's input gradient: `dx = conv2d(dy, w
    /// flipped and transposed, padding p)`. It runs on the forward path, with no col2im.
    /// (Unpadded ones would need padding `kh - 1` and grow the columns; LeNet-5's second
    /// layer ran 1.5x slower that way.)
    fn transposed(&self) -> Option<ConvGeom> {
        if self.stride != 1
            || self.groups != 1
            || self.kh != self.kw
            || 2 * self.padding + 1 != self.kh
        {
            return None;
        }
        let gt = ConvGeom::new(
            &[self.n, self.cout, self.ho, self.wo],
            &[self.cin, self.cout, self.kh, self.kw],
            1,
            self.kh - 1 - self.padding,
            1,
        )
        .ok()?;
        (gt.ho == self.h && gt.wo == self.w).then_some(gt)
    }

    /// The input row of output row `oy` at kernel row `i`, if inside the image.
    pub(crate) fn in_row(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.stride + i)
            .checked_sub(self.padding)
            .filter(|&r| r < self.h)
    }
}

/// The weights of [`ConvGeom::transposed`]: `wt[ci][co][kh-1-i][kw-1-j] = w[co][ci][i][j]`.
fn flip<T: WithDType>(g: &ConvGeom, w: &[T]) -> Vec<T> {
    let taps = g.kh * g.kw;
    let mut wt = vec![T::from_f64(0.0); w.len()];
    for co in 0..g.cout {
        for ci in 0..g.cin {
            let src = &w[(co * g.cin + ci) * taps..][..taps];
            let dst = &mut wt[(ci * g.cout + co) * taps..][..taps];
            for (d, &v) in dst.iter_mut().zip(src.iter().rev()) {
                *d = v;
            }
        }
    }
    wt
}

/// im2col of one sample into column block `off` of `cols` (row stride `ld`):
/// `cols[(c*kh + i)*kw + j][off + oy*wo + ox] = x[c][iy][ix]` (0 outside the image).
fn im2col<T: WithDType>(g: &ConvGeom, x: &[T], cols: &mut [T], ld: usize, off: usize) {
    let (p, zero) = (g.p(), T::from_f64(0.0));
    if g.pointwise() {
        for (c, plane) in x.chunks(p).enumerate() {
            cols[c * ld + off..c * ld + off + p].copy_from_slice(plane);
        }
        return;
    }
    if g.stride == 1 && (g.ho, g.wo) == (g.h, g.w) {
        return im2col_same(g, x, cols, ld, off);
    }
    for c in 0..g.cin {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let r = (c * g.kh + i) * g.kw + j;
                let row = &mut cols[r * ld + off..r * ld + off + p];
                let (lo, hi) = g.valid_cols(j);
                for oy in 0..g.ho {
                    let dst = &mut row[oy * g.wo..(oy + 1) * g.wo];
                    let Some(iy) = g.in_row(oy, i) else {
                        dst.fill(zero);
                        continue;
                    };
                    let src = &plane[iy * g.w..(iy + 1) * g.w];
                    dst[..lo].fill(zero);
                    dst[hi..].fill(zero);
                    let off = j as isize - g.padding as isize;
                    if g.stride == 1 {
                        if lo < hi {
                            let a = (lo as isize + off) as usize;
                            dst[lo..hi].copy_from_slice(&src[a..a + hi - lo]);
                        }
                    } else {
                        for (ox, d) in dst.iter_mut().enumerate().take(hi).skip(lo) {
                            *d = src[(ox as isize * g.stride as isize + off) as usize];
                        }
                    }
                }
            }
        }
    }
}

/// [`im2col`] of a stride-1 "same" convolution (output as large as the input): row
/// (c, i, j) is plane c shifted by (i - p) rows and (j - p) columns, so it is one contiguous
/// copy (zeros where the shift leaves the plane) and then zeros in the columns that wrapped
/// around from the neighbouring row. Short per-row copies cost more than the data.
fn im2col_same<T: WithDType>(g: &ConvGeom, x: &[T], cols: &mut [T], ld: usize, off: usize) {
    let (hw, zero) = (g.h * g.w, T::from_f64(0.0));
    for c in 0..g.cin {
        let plane = &x[c * hw..(c + 1) * hw];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let r = (c * g.kh + i) * g.kw + j;
                let row = &mut cols[r * ld + off..r * ld + off + hw];
                // row[q] = plane[q + shift] where 0 <= q + shift < hw.
                let shift = (i as isize - g.padding as isize) * g.w as isize + j as isize
                    - g.padding as isize;
                let q0 = (-shift).clamp(0, hw as isize) as usize;
                let q1 = (hw as isize - shift).clamp(q0 as isize, hw as isize) as usize;
                row[..q0].fill(zero);
                row[q1..].fill(zero);
                let a = (q0 as isize + shift) as usize;
                row[q0..q1].copy_from_slice(&plane[a..a + q1 - q0]);
                let (lo, hi) = g.valid_cols(j);
                // The columns the shift wrapped into the next line, one strided pass each: a
                // fill per line of one or two values was a memset call each (about 1.5% of a
                // VGG-16 step).
                for col in (0..lo).chain(hi..g.w) {
                    row[col..].iter_mut().step_by(g.w).for_each(|v| *v = zero);
                }
            }
        }
    }
}

/// col2im of column block `off` of `cols` (row stride `ld`): the adjoint of [`im2col`],
/// accumulated into a zeroed `dx` of one sample.
fn col2im<T: WithDType>(g: &ConvGeom, cols: &[T], ld: usize, off: usize, dx: &mut [T]) {
    let p = g.p();
    if g.pointwise() {
        for (c, plane) in dx.chunks_mut(p).enumerate() {
            plane.copy_from_slice(&cols[c * ld + off..c * ld + off + p]);
        }
        return;
    }
    for c in 0..g.cin {
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let r = (c * g.kh + i) * g.kw + j;
                let row = &cols[r * ld + off..r * ld + off + p];
                let (lo, hi) = g.valid_cols(j);
                let off = j as isize - g.padding as isize;
                for oy in 0..g.ho {
                    let Some(iy) = g.in_row(oy, i) else { continue };
                    let src = &row[oy * g.wo..(oy + 1) * g.wo];
                    let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
                    if g.stride == 1 && lo < hi {
                        let a = (lo as isize + off) as usize;
                        for (d, &s) in dst[a..a + hi - lo].iter_mut().zip(&src[lo..hi]) {
                            *d += s;
                        }
                    } else if g.stride > 1 {
                        for (ox, &s) in src.iter().enumerate().take(hi).skip(lo) {
                            dst[(ox as isize * g.stride as isize + off) as usize] += s;
                        }
                    }
                }
            }
        }
    }
}

/// Per-thread work split: contiguous sample ranges, and the gemm threads inside each.
pub(crate) fn plan(n: usize) -> (Vec<std::ops::Range<usize>>, usize) {
    let t = threads();
    let ranges = split_ranges(n, t);
    let inner = if ranges.len() == 1 { t } else { 1 };
    (ranges, inner)
}

/// Sample ranges of a weight gradient's partial sums, and the gemm threads inside each. A
/// fixed number of ranges, whatever the threads (the partials are added in range order, so
/// the sum does not depend on them); more threads than ranges work inside the products.
pub(crate) fn plan_sums(n: usize) -> (Vec<std::ops::Range<usize>>, usize) {
    const RANGES: usize = 2;
    let ranges = split_ranges(n, RANGES);
    let inner = (threads() / ranges.len()).max(1);
    (ranges, inner)
}

/// Samples per gemm: enough that the shared dimension, samples * P, reaches 256 columns, so
/// late layers (P = 4 or 16) run a few large products rather than many thin ones.
pub(crate) fn group_len(g: &ConvGeom) -> usize {
    256usize.div_ceil(g.p()).max(1)
}

/// Copies rows of per-sample (rows x P) blocks, samples `s0..s0 + gs`, into one
/// (rows x gs*P) matrix: `dst[r][j*P + q] = src[s0 + j][r][q]` (or back, with `scatter`).
fn regroup<T: WithDType>(src: &[T], dst: &mut [T], rows: usize, p: usize, gs: usize) {
    let ld = gs * p;
    for j in 0..gs {
        for r in 0..rows {
            dst[r * ld + j * p..r * ld + (j + 1) * p]
                .copy_from_slice(&src[(j * rows + r) * p..(j * rows + r + 1) * p]);
        }
    }
}

pub(crate) fn scatter<T: WithDType>(src: &[T], dst: &mut [T], rows: usize, p: usize, gs: usize) {
    let ld = gs * p;
    for j in 0..gs {
        for r in 0..rows {
            dst[(j * rows + r) * p..(j * rows + r + 1) * p]
                .copy_from_slice(&src[r * ld + j * p..r * ld + (j + 1) * p]);
        }
    }
}

/// dy of samples `s0..s0 + gs` as one (C_out x gs*P) matrix: dy itself for one sample,
/// else regrouped into `mat`.
pub(crate) fn grouped_dy<'a, T: WithDType>(
    g: &ConvGeom,
    dy: &'a [T],
    s0: usize,
    gs: usize,
    mat: &'a mut [T],
) -> &'a [T] {
    let dy_s = &dy[s0 * g.out_len()..(s0 + gs) * g.out_len()];
    if gs == 1 {
        return dy_s;
    }
    regroup(dy_s, mat, g.cout, g.p(), gs);
    mat
}

/// Per-thread scratch: the grouped columns and a grouped output or gradient.
struct Scratch<T> {
    cols: Vec<T>,
    mat: Vec<T>,
}

impl<T: WithDType> Scratch<T> {
    fn new(g: &ConvGeom, rows: usize) -> Self {
        let ld = group_len(g) * g.p();
        Self {
            cols: vec![T::from_f64(0.0); g.groups * g.k() * ld],
            mat: vec![T::from_f64(0.0); rows * ld],
        }
    }
}

/// Fills `cols` with the im2col of samples `s0..s0 + gs` (row stride gs*P).
pub(crate) fn gather_cols<T: WithDType>(
    g: &ConvGeom,
    x: &[T],
    s0: usize,
    gs: usize,
    cols: &mut [T],
) {
    let ld = gs * g.p();
    for j in 0..gs {
        let xn = &x[(s0 + j) * g.in_len()..(s0 + j + 1) * g.in_len()];
        im2col(g, xn, cols, ld, j * g.p());
    }
}

fn forward<T: WithDType + DirectConv>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    if let Some(y) = T::direct_forward(g, x, w, bias) {
        return y;
    }
    let (k, p, cog) = (g.k(), g.p(), g.cout / g.groups);
    let mut y = zeros(g.n * g.out_len());
    let (ranges, inner) = plan(g.n);
    split_mut(&mut y, &ranges, g.out_len())
        .into_par_iter()
        .zip(ranges)
        .for_each(|(ys, r)| {
            let mut sc = Scratch::new(g, g.cout);
            let mut s0 = r.start;
            while s0 < r.end {
                let gs = group_len(g).min(r.end - s0);
                let ld = gs * p;
                let out = &mut ys[(s0 - r.start) * g.out_len()..(s0 - r.start + gs) * g.out_len()];
                let cols: &[T] = if gs == 1 && g.pointwise() {
                    &x[s0 * g.in_len()..(s0 + 1) * g.in_len()]
                } else {
                    gather_cols(g, x, s0, gs, &mut sc.cols);
                    &sc.cols
                };
                // One sample: write in place; several: compute (C_out x gs*P), then scatter.
                let dst: &mut [T] = if gs == 1 { &mut *out } else { &mut sc.mat };
                for gi in 0..g.groups {
                    matmul(
                        cog,
                        ld,
                        k,
                        &mut dst[gi * cog * ld..(gi + 1) * cog * ld],
                        false,
                        MatRef::rows(&w[gi * cog * k..(gi + 1) * cog * k], k),
                        MatRef::rows(&cols[gi * k * ld..(gi + 1) * k * ld], ld),
                        inner,
                    );
                }
                if gs > 1 {
                    scatter(&sc.mat, out, g.cout, p, gs);
                }
                if let Some(b) = bias {
                    for (plane, &bc) in out.chunks_mut(p).zip(b.iter().cycle()) {
                        plane.iter_mut().for_each(|v| *v += bc);
                    }
                }
                s0 += gs;
            }
        });
    y
}

fn input_grad<T: WithDType + DirectConv>(g: &ConvGeom, dy: &[T], w: &[T]) -> Vec<T> {
    if let Some(gt) = g.transposed() {
        return forward(&gt, dy, &flip(g, w), None);
    }
    let (k, p, cog) = (g.k(), g.p(), g.cout / g.groups);
    let mut dx = zeros(g.n * g.in_len());
    let (ranges, inner) = plan(g.n);
    split_mut(&mut dx, &ranges, g.in_len())
        .into_par_iter()
        .zip(ranges)
        .for_each(|(dxs, r)| {
            let mut sc = Scratch::new(g, g.cout);
            let mut s0 = r.start;
            while s0 < r.end {
                let gs = group_len(g).min(r.end - s0);
                let ld = gs * p;
                let dyg = grouped_dy(g, dy, s0, gs, &mut sc.mat);
                for gi in 0..g.groups {
                    matmul(
                        k,
                        ld,
                        cog,
                        &mut sc.cols[gi * k * ld..(gi + 1) * k * ld],
                        false,
                        MatRef::transposed(&w[gi * cog * k..(gi + 1) * cog * k], k),
                        MatRef::rows(&dyg[gi * cog * ld..(gi + 1) * cog * ld], ld),
                        inner,
                    );
                }
                for j in 0..gs {
                    let at = (s0 - r.start + j) * g.in_len();
                    col2im(g, &sc.cols, ld, j * p, &mut dxs[at..at + g.in_len()]);
                }
                s0 += gs;
            }
        });
    dx
}

fn weight_grad<T: WithDType + DirectConv>(g: &ConvGeom, x: &[T], dy: &[T]) -> Vec<T> {
    if let Some(dw) = T::direct_weight_grad(g, x, dy) {
        return dw;
    }
    if conv_wgrad::applies(g) {
        return conv_wgrad::weight_grad(g, x, dy);
    }
    let (k, p, cog) = (g.k(), g.p(), g.cout / g.groups);
    let (ranges, inner) = plan_sums(g.n);
    let partials: Vec<Vec<T>> = ranges
        .into_par_iter()
        .map(|r| {
            let mut dw = vec![T::from_f64(0.0); g.weight_len()];
            let mut sc = Scratch::new(g, g.cout);
            let mut s0 = r.start;
            while s0 < r.end {
                let gs = group_len(g).min(r.end - s0);
                let ld = gs * p;
                let dyg = grouped_dy(g, dy, s0, gs, &mut sc.mat);
                let cols: &[T] = if gs == 1 && g.pointwise() {
                    &x[s0 * g.in_len()..(s0 + 1) * g.in_len()]
                } else {
                    gather_cols(g, x, s0, gs, &mut sc.cols);
                    &sc.cols
                };
                for gi in 0..g.groups {
                    matmul(
                        cog,
                        k,
                        ld,
                        &mut dw[gi * cog * k..(gi + 1) * cog * k],
                        s0 > r.start,
                        MatRef::rows(&dyg[gi * cog * ld..(gi + 1) * cog * ld], ld),
                        MatRef::transposed(&cols[gi * k * ld..(gi + 1) * k * ld], ld),
                        inner,
                    );
                }
                s0 += gs;
            }
            dw
        })
        .collect();
    sum_partials(partials, g.weight_len())
}

/// The per-thread partial weight gradients added in thread order (`len` zeros if none).
pub(crate) fn sum_partials<T: WithDType>(partials: Vec<Vec<T>>, len: usize) -> Vec<T> {
    let mut parts = partials.into_iter();
    let mut sum = parts.next().unwrap_or_else(|| vec![T::from_f64(0.0); len]);
    for part in parts {
        for (a, b) in sum.iter_mut().zip(part) {
            *a += b;
        }
    }
    sum
}

/// Forward convolution of (x, weight).
struct ConvForward(ConvGeom);
/// Input gradient of (dy, weight).
struct ConvInputGrad(ConvGeom);
/// Weight gradient of (x, dy).
struct ConvWeightGrad(ConvGeom);

impl ConvForward {
    fn run(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        bias: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = &self.0;
        dispatch_float!(s1, "safs-conv2d", |T| {
            let b: Option<&[T]> = match bias {
                Some((s3, l3)) => Some(slice(s3, l3, "conv2d bias")?),
                None => None,
            };
            let x = slice(s1, l1, "conv2d input")?;
            let y = forward::<T>(g, x, slice(s2, l2, "conv2d weight")?, b);
            Ok((
                T::to_cpu_storage_owned(y),
                Shape::from((g.n, g.cout, g.ho, g.wo)),
            ))
        })
    }

    fn grads(
        &self,
        x: &Tensor,
        w: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Tensor)> {
        let dy = dy.contiguous()?;
        let (dx, dw) =
            input_and_weight_grads(x, w, &dy, &ConvInputGrad(self.0), &ConvWeightGrad(self.0))?;
        Ok((dx, dw, dy))
    }
}

/// The gradients of a convolution-like op's (input, weight) from its two gradient ops
/// (`input_op` on (dy, weight), `weight_op` on (input, dy)), each skipped when its argument
/// needs none: no input gradient for the first layer's images.
pub(crate) fn input_and_weight_grads(
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    input_op: &impl CustomOp2,
    weight_op: &impl CustomOp2,
) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
    let dx = if x.track_op() {
        Some(dy.apply_op2_no_bwd(w, input_op)?)
    } else {
        None
    };
    let dw = if w.track_op() {
        Some(x.apply_op2_no_bwd(dy, weight_op)?)
    } else {
        None
    };
    Ok((dx, dw))
}

impl CustomOp2 for ConvForward {
    fn name(&self) -> &'static str {
        "safs-conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run((s1, l1), (s2, l2), None)
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = self.grads(x, w, dy)?;
        Ok((dx, dw))
    }
}

/// The convolution with its bias added in the same pass: (x, weight, bias).
impl CustomOp3 for ConvForward {
    fn name(&self) -> &'static str {
        "safs-conv2d-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run((s1, l1), (s2, l2), Some((s3, l3)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, dy) = self.grads(x, w, dy)?;
        let g = &self.0;
        let db = if b.track_op() {
            let dims = Dims {
                n: g.n,
                c: g.cout,
                hw: g.p(),
            };
            Some(dy.apply_op1_no_bwd(&ChannelSum(dims))?)
        } else {
            None
        };
        Ok((dx, dw, db))
    }
}

gradient_op2!(
    ConvInputGrad,
    "safs-conv2d-input-grad",
    input_grad,
    ("conv2d dy", "conv2d weight"),
    |g| (g.n, g.cin, g.h, g.w)
);

gradient_op2!(
    ConvWeightGrad,
    "safs-conv2d-weight-grad",
    weight_grad,
    ("conv2d input", "conv2d dy"),
    |g| (g.cout, g.cin / g.groups, g.kh, g.kw)
);

/// PyTorch's `conv2d(x, w, stride, padding, groups)` without bias, for (N, C, H, W) input.
pub fn conv2d(
    x: &Tensor,
    w: &Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Tensor> {
    let g = ConvGeom::new(x.dims(), w.dims(), stride, padding, groups)?;
    if !use_custom(x) || x.dtype() != w.dtype() {
        return Ok(x.conv2d(w, padding, stride, 1, groups)?);
    }
    Ok(x.contiguous()?
        .apply_op2(&w.contiguous()?, ConvForward(g))?)
}

/// [`conv2d`] plus a per-channel bias (C_out values), fused into one op on the CPU.
pub fn conv2d_bias(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Tensor> {
    let g = ConvGeom::new(x.dims(), w.dims(), stride, padding, groups)?;
    if b.dims() != [g.cout] {
        return Err(Error::Config(format!(
            "conv2d: bias of shape {:?} for {} output channels",
            b.dims(),
            g.cout
        )));
    }
    if !use_custom(x) || x.dtype() != w.dtype() || x.dtype() != b.dtype() {
        return add_channel_bias(&x.conv2d(w, padding, stride, 1, groups)?, b);
    }
    let (x, w, b) = (x.contiguous()?, w.contiguous()?, b.contiguous()?);
    Ok(x.apply_op3(&w, &b, ConvForward(g))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{check_grad, max_diff, random};
    use candle_core::{DType, Var};

    /// (n, cin, h, w, cout, k, stride, padding, groups)
    type Case = (
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
        usize,
    );
    const CASES: &[Case] = &[
        (2, 3, 5, 5, 4, 3, 1, 1, 1),
        (1, 2, 7, 6, 3, 3, 2, 1, 1),
        (3, 4, 6, 5, 6, 3, 2, 0, 2),
        (2, 3, 4, 4, 5, 1, 1, 0, 1),
        (2, 4, 5, 3, 4, 1, 2, 0, 1),
        (1, 1, 9, 9, 2, 5, 1, 2, 1),
        (2, 6, 4, 4, 6, 3, 1, 1, 3),
        (1, 2, 3, 3, 2, 3, 3, 1, 1),
        (5, 2, 2, 2, 3, 2, 1, 0, 1),
        (3, 2, 17, 16, 3, 3, 1, 1, 1),
        (2, 3, 16, 16, 4, 1, 1, 0, 1),
    ];

    #[test]
    fn forward_and_gradients_match_stock_candle() -> Result<()> {
        for (idx, &(n, cin, h, w, cout, k, s, p, gr)) in CASES.iter().enumerate() {
            let x = Var::from_tensor(&random(&[n, cin, h, w], 10 + idx as u64)?)?;
            let wt = Var::from_tensor(&random(&[cout, cin / gr, k, k], 20 + idx as u64)?)?;
            let ours = conv2d(x.as_tensor(), wt.as_tensor(), s, p, gr)?;
            let stock = x.as_tensor().conv2d(wt.as_tensor(), p, s, 1, gr)?;
            assert_eq!(ours.dims(), stock.dims(), "case {idx}");
            assert!(max_diff(&ours, &stock)? < 1e-12, "case {idx} forward");
            let r = random(ours.dims(), 30 + idx as u64)?;
            let g1 = ours.mul(&r)?.sum_all()?.backward()?;
            // Candle's stock backward fails when a strided output drops input rows (its
            // transposed convolution has no output padding); finite differences cover those.
            let Ok(g2) = stock.mul(&r)?.sum_all()?.backward() else {
                assert!(s > 1, "case {idx}: stock backward failed at stride 1");
                continue;
            };
            for (v, what) in [(&x, "input"), (&wt, "weight")] {
                let a = g1.get(v.as_tensor()).expect("custom grad");
                let b = g2.get(v.as_tensor()).expect("stock grad");
                assert!(max_diff(a, b)? < 1e-12, "case {idx} {what} gradient");
            }
        }
        Ok(())
    }

    /// The gradients are the same to the bit on 1, 2, 3 and 4 threads: the weight
    /// gradient's partial sums are split by the batch, not by the threads.
    #[test]
    fn results_do_not_depend_on_the_threads() -> Result<()> {
        // f32 (the gemm path's sums round), an ungrouped "same" conv, a grouped one, a
        // strided one, and a 4x4 map where several samples share a product.
        let cases = [
            (7, 8, 12, 12, 16, 3, 1, 1, 1),
            (5, 6, 9, 9, 6, 3, 1, 1, 3),
            (6, 8, 10, 10, 12, 3, 2, 1, 1),
            (64, 16, 4, 4, 32, 3, 1, 1, 1),
        ];
        for (idx, &(n, cin, h, w, cout, k, s, p, gr)) in cases.iter().enumerate() {
            let x = random(&[n, cin, h, w], 900 + idx as u64)?.to_dtype(DType::F32)?;
            let wt = random(&[cout, cin / gr, k, k], 910 + idx as u64)?.to_dtype(DType::F32)?;
            let run = |threads: usize| -> Result<Vec<Vec<u32>>> {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("a thread pool");
                pool.install(|| {
                    let (xv, wv) = (Var::from_tensor(&x)?, Var::from_tensor(&wt)?);
                    let y = conv2d(xv.as_tensor(), wv.as_tensor(), s, p, gr)?;
                    let r = random(y.dims(), 920 + idx as u64)?.to_dtype(DType::F32)?;
                    let grads = y.mul(&r)?.sum_all()?.backward()?;
                    let bits = |t: &Tensor| -> Result<Vec<u32>> {
                        let v = t.flatten_all()?.to_vec1::<f32>()?;
                        Ok(v.iter().map(|f| f.to_bits()).collect())
                    };
                    Ok(vec![
                        bits(&y)?,
                        bits(grads.get(xv.as_tensor()).expect("input gradient"))?,
                        bits(grads.get(wv.as_tensor()).expect("weight gradient"))?,
                    ])
                })
            };
            let one = run(1)?;
            for t in [2, 3, 4] {
                let got = run(t)?;
                for (what, (a, b)) in ["output", "input gradient", "weight gradient"]
                    .iter()
                    .zip(one.iter().zip(&got))
                {
                    assert!(a == b, "case {idx}: {what} on {t} threads differs from 1");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn fused_bias_matches_separate_bias_and_finite_differences() -> Result<()> {
        for (idx, &(n, cin, h, w, cout, k, s, p, gr)) in CASES.iter().enumerate().take(4) {
            let x = Var::from_tensor(&random(&[n, cin, h, w], 500 + idx as u64)?)?;
            let wt = Var::from_tensor(&random(&[cout, cin / gr, k, k], 510 + idx as u64)?)?;
            let b = Var::from_tensor(&random(&[cout], 520 + idx as u64)?)?;
            let fused = conv2d_bias(x.as_tensor(), wt.as_tensor(), b.as_tensor(), s, p, gr)?;
            let stock = x
                .as_tensor()
                .conv2d(wt.as_tensor(), p, s, 1, gr)?
                .broadcast_add(&b.as_tensor().reshape((1, cout, 1, 1))?)?;
            assert!(max_diff(&fused, &stock)? < 1e-12, "case {idx}");
            let r = random(fused.dims(), 530 + idx as u64)?;
            let loss = || -> Result<Tensor> {
                let y = conv2d_bias(x.as_tensor(), wt.as_tensor(), b.as_tensor(), s, p, gr)?;
                Ok(y.mul(&r)?.sum_all()?)
            };
            check_grad(&format!("case {idx} input"), &loss, &x, 20)?;
            check_grad(&format!("case {idx} weight"), &loss, &wt, 20)?;
            check_grad(&format!("case {idx} bias"), &loss, &b, 10)?;
        }
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        for (idx, &(n, cin, h, w, cout, k, s, p, gr)) in CASES.iter().enumerate() {
            let x = Var::from_tensor(&random(&[n, cin, h, w], 40 + idx as u64)?)?;
            let wt = Var::from_tensor(&random(&[cout, cin / gr, k, k], 50 + idx as u64)?)?;
            let g = ConvGeom::new(x.dims(), wt.dims(), s, p, gr)?;
            let r = random(&[n, cout, g.ho, g.wo], 60 + idx as u64)?;
            let loss = || -> Result<Tensor> {
                Ok(conv2d(x.as_tensor(), wt.as_tensor(), s, p, gr)?
                    .mul(&r)?
                    .sum_all()?)
            };
            check_grad(&format!("case {idx} input"), &loss, &x, 40)?;
            check_grad(&format!("case {idx} weight"), &loss, &wt, 40)?;
        }
        Ok(())
    }

    #[test]
    fn f32_matches_stock_and_skips_the_image_gradient() -> Result<()> {
        let x = random(&[4, 3, 8, 8], 1)?.to_dtype(candle_core::DType::F32)?;
        let w = Var::from_tensor(&random(&[5, 3, 3, 3], 2)?.to_dtype(candle_core::DType::F32)?)?;
        let ours = conv2d(&x, w.as_tensor(), 1, 1, 1)?;
        let stock = x.conv2d(w.as_tensor(), 1, 1, 1, 1)?;
        assert!(max_diff(&ours, &stock)? < 1e-5);
        let grads = ours.sum_all()?.backward()?;
        assert!(grads.get(&x).is_none(), "a plain input gets no gradient");
        assert!(grads.get(w.as_tensor()).is_some());
        Ok(())
    }

    #[test]
    fn bad_shapes_are_named_errors() {
        let x = Tensor::zeros(
            (1, 3, 4, 4),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let w = Tensor::zeros(
            (2, 2, 3, 3),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        let err = conv2d(&x, &w, 1, 1, 1).unwrap_err().to_string();
        assert!(
            err.contains("conv2d") && err.contains("[2, 2, 3, 3]"),
            "{err}"
        );
        let w = Tensor::zeros(
            (2, 3, 7, 7),
            candle_core::DType::F32,
            &candle_core::Device::Cpu,
        )
        .unwrap();
        assert!(conv2d(&x, &w, 1, 1, 1).is_err());
    }
}
