//! 2-D convolution as im2col + gemm: forward, input gradient and weight gradient.
//!
//! Per sample, with K = (C_in / groups) * kh * kw and P = H_out * W_out, group g computes
//! `y_g (C_out/groups x P) = W_g (C_out/groups x K) * cols_g (K x P)`; the gradients are
//! `dW_g += dy_g * cols_g^T` and `dcols_g = W_g^T * dy_g`, folded back by col2im. A 1x1,
//! stride-1, unpadded convolution uses the input itself as `cols`.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::gemm::{matmul, MatRef};
use super::storage::{dispatch_float, slice};
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
    fn k(&self) -> usize {
        self.cin / self.groups * self.kh * self.kw
    }

    /// Output positions per channel.
    pub(crate) fn p(&self) -> usize {
        self.ho * self.wo
    }

    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == 1 && self.padding == 0
    }

    fn in_len(&self) -> usize {
        self.cin * self.h * self.w
    }

    fn out_len(&self) -> usize {
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

    /// The input row of output row `oy` at kernel row `i`, if inside the image.
    pub(crate) fn in_row(&self, oy: usize, i: usize) -> Option<usize> {
        (oy * self.stride + i)
            .checked_sub(self.padding)
            .filter(|&r| r < self.h)
    }
}

/// im2col of one sample: `cols[(c*kh + i)*kw + j][oy*wo + ox] = x[c][iy][ix]` (0 outside).
fn im2col<T: WithDType>(g: &ConvGeom, x: &[T], cols: &mut [T]) {
    let (p, zero) = (g.p(), T::from_f64(0.0));
    for c in 0..g.cin {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &mut cols[((c * g.kh + i) * g.kw + j) * p..][..p];
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

/// col2im of one sample: the adjoint of [`im2col`], accumulated into a zeroed `dx`.
fn col2im<T: WithDType>(g: &ConvGeom, cols: &[T], dx: &mut [T]) {
    let p = g.p();
    for c in 0..g.cin {
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for i in 0..g.kh {
            for j in 0..g.kw {
                let row = &cols[((c * g.kh + i) * g.kw + j) * p..][..p];
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
fn plan(n: usize) -> (Vec<std::ops::Range<usize>>, usize) {
    let t = threads();
    let ranges = split_ranges(n, t);
    let inner = if ranges.len() == 1 { t } else { 1 };
    (ranges, inner)
}

fn forward<T: WithDType>(g: &ConvGeom, x: &[T], w: &[T]) -> Vec<T> {
    let (k, p, cog) = (g.k(), g.p(), g.cout / g.groups);
    let mut y = vec![T::from_f64(0.0); g.n * g.out_len()];
    let (ranges, inner) = plan(g.n);
    split_mut(&mut y, &ranges, g.out_len())
        .into_par_iter()
        .zip(ranges)
        .for_each(|(ys, r)| {
            let mut buf = if g.pointwise() {
                Vec::new()
            } else {
                vec![T::from_f64(0.0); g.groups * k * p]
            };
            for (yn, s) in ys.chunks_mut(g.out_len()).zip(r) {
                let xn = &x[s * g.in_len()..(s + 1) * g.in_len()];
                let cols: &[T] = if g.pointwise() {
                    xn
                } else {
                    im2col(g, xn, &mut buf);
                    &buf
                };
                for gi in 0..g.groups {
                    matmul(
                        cog,
                        p,
                        k,
                        &mut yn[gi * cog * p..(gi + 1) * cog * p],
                        false,
                        MatRef::rows(&w[gi * cog * k..(gi + 1) * cog * k], k),
                        MatRef::rows(&cols[gi * k * p..(gi + 1) * k * p], p),
                        inner,
                    );
                }
            }
        });
    y
}

fn input_grad<T: WithDType>(g: &ConvGeom, dy: &[T], w: &[T]) -> Vec<T> {
    let (k, p, cog) = (g.k(), g.p(), g.cout / g.groups);
    let mut dx = vec![T::from_f64(0.0); g.n * g.in_len()];
    let (ranges, inner) = plan(g.n);
    split_mut(&mut dx, &ranges, g.in_len())
        .into_par_iter()
        .zip(ranges)
        .for_each(|(dxs, r)| {
            let mut buf = if g.pointwise() {
                Vec::new()
            } else {
                vec![T::from_f64(0.0); g.groups * k * p]
            };
            for (dxn, s) in dxs.chunks_mut(g.in_len()).zip(r) {
                let dy_n = &dy[s * g.out_len()..(s + 1) * g.out_len()];
                let dcols: &mut [T] = if g.pointwise() { &mut *dxn } else { &mut buf };
                for gi in 0..g.groups {
                    matmul(
                        k,
                        p,
                        cog,
                        &mut dcols[gi * k * p..(gi + 1) * k * p],
                        false,
                        MatRef::transposed(&w[gi * cog * k..(gi + 1) * cog * k], k),
                        MatRef::rows(&dy_n[gi * cog * p..(gi + 1) * cog * p], p),
                        inner,
                    );
                }
                if !g.pointwise() {
                    col2im(g, &buf, dxn);
                }
            }
        });
    dx
}

fn weight_grad<T: WithDType>(g: &ConvGeom, x: &[T], dy: &[T]) -> Vec<T> {
    let (k, p, cog) = (g.k(), g.p(), g.cout / g.groups);
    let (ranges, inner) = plan(g.n);
    let partials: Vec<Vec<T>> = ranges
        .into_par_iter()
        .map(|r| {
            let mut dw = vec![T::from_f64(0.0); g.weight_len()];
            let mut buf = if g.pointwise() {
                Vec::new()
            } else {
                vec![T::from_f64(0.0); g.groups * k * p]
            };
            for (i, s) in r.enumerate() {
                let xn = &x[s * g.in_len()..(s + 1) * g.in_len()];
                let dy_n = &dy[s * g.out_len()..(s + 1) * g.out_len()];
                let cols: &[T] = if g.pointwise() {
                    xn
                } else {
                    im2col(g, xn, &mut buf);
                    &buf
                };
                for gi in 0..g.groups {
                    matmul(
                        cog,
                        k,
                        p,
                        &mut dw[gi * cog * k..(gi + 1) * cog * k],
                        i > 0,
                        MatRef::rows(&dy_n[gi * cog * p..(gi + 1) * cog * p], p),
                        MatRef::transposed(&cols[gi * k * p..(gi + 1) * k * p], p),
                        inner,
                    );
                }
            }
            dw
        })
        .collect();
    let mut parts = partials.into_iter();
    let mut dw = parts
        .next()
        .unwrap_or_else(|| vec![T::from_f64(0.0); g.weight_len()]);
    for part in parts {
        for (a, b) in dw.iter_mut().zip(part) {
            *a += b;
        }
    }
    dw
}

/// Forward convolution of (x, weight).
struct ConvForward(ConvGeom);
/// Input gradient of (dy, weight).
struct ConvInputGrad(ConvGeom);
/// Weight gradient of (x, dy).
struct ConvWeightGrad(ConvGeom);

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
        let g = &self.0;
        dispatch_float!(s1, self.name(), |T| {
            let y = forward::<T>(
                g,
                slice(s1, l1, "conv2d input")?,
                slice(s2, l2, "conv2d weight")?,
            );
            Ok((
                T::to_cpu_storage_owned(y),
                Shape::from((g.n, g.cout, g.ho, g.wo)),
            ))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        // No input gradient where nothing upstream needs one (the first layer's images).
        let dx = if x.track_op() {
            Some(dy.apply_op2_no_bwd(w, &ConvInputGrad(self.0))?)
        } else {
            None
        };
        let dw = if w.track_op() {
            Some(x.apply_op2_no_bwd(&dy, &ConvWeightGrad(self.0))?)
        } else {
            None
        };
        Ok((dx, dw))
    }
}

impl CustomOp2 for ConvInputGrad {
    fn name(&self) -> &'static str {
        "safs-conv2d-input-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = &self.0;
        dispatch_float!(s1, self.name(), |T| {
            let dx = input_grad::<T>(
                g,
                slice(s1, l1, "conv2d dy")?,
                slice(s2, l2, "conv2d weight")?,
            );
            Ok((
                T::to_cpu_storage_owned(dx),
                Shape::from((g.n, g.cin, g.h, g.w)),
            ))
        })
    }
}

impl CustomOp2 for ConvWeightGrad {
    fn name(&self) -> &'static str {
        "safs-conv2d-weight-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = &self.0;
        dispatch_float!(s1, self.name(), |T| {
            let dw = weight_grad::<T>(
                g,
                slice(s1, l1, "conv2d input")?,
                slice(s2, l2, "conv2d dy")?,
            );
            let shape = (g.cout, g.cin / g.groups, g.kh, g.kw);
            Ok((T::to_cpu_storage_owned(dw), Shape::from(shape)))
        })
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{check_grad, max_diff, random};
    use candle_core::Var;

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
