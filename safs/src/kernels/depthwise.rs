//! Depthwise convolution (one k x k filter per channel) by direct loops over each plane.
//!
//! Stock Candle runs `groups = C` as C separate convolutions; here each (sample, channel)
//! plane is one task: forward and input gradient parallel over planes, weight gradient
//! parallel over channels.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::alloc::zeros;
use super::conv::{input_and_weight_grads, ConvGeom};
use super::storage::{dispatch_float, gradient_op2, slice};
use super::use_custom;
use crate::model::expand_channels;
use crate::{Error, Result};

/// The output columns each kernel column reads inside the image ([`ConvGeom::valid_cols`]),
/// computed once per call: they cost two divisions each, and small maps have more taps
/// than outputs.
fn col_spans(g: &ConvGeom) -> Vec<(usize, usize)> {
    (0..g.kw).map(|j| g.valid_cols(j)).collect()
}

/// Calls `f(oy, ox, iy, ix, tap)` for every output position and kernel tap inside the image.
#[inline]
fn for_taps(
    g: &ConvGeom,
    spans: &[(usize, usize)],
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    for oy in 0..g.ho {
        for i in 0..g.kh {
            let Some(iy) = g.in_row(oy, i) else { continue };
            for (j, &(lo, hi)) in spans.iter().enumerate() {
                for ox in lo..hi {
                    f(oy, ox, iy, ox * g.stride + j - g.padding, i * g.kw + j);
                }
            }
        }
    }
}

/// Calls `f(oy, iy, lo..hi, a, tap)` for each output row, kernel tap and the run of output
/// columns `lo..hi` whose inputs `a..a + hi - lo` of row `iy` are inside the image (stride 1
/// only: then both runs are contiguous, and the loops over them vectorise).
#[inline]
fn for_rows(
    g: &ConvGeom,
    spans: &[(usize, usize)],
    mut f: impl FnMut(usize, usize, std::ops::Range<usize>, usize, usize),
) {
    debug_assert_eq!(g.stride, 1);
    for oy in 0..g.ho {
        for i in 0..g.kh {
            let Some(iy) = g.in_row(oy, i) else { continue };
            for (j, &(lo, hi)) in spans.iter().enumerate() {
                if lo < hi {
                    f(oy, iy, lo..hi, lo + j - g.padding, i * g.kw + j);
                }
            }
        }
    }
}

fn forward<T: WithDType>(g: &ConvGeom, x: &[T], w: &[T]) -> Vec<T> {
    let (hw, kk, p) = (g.h * g.w, g.kh * g.kw, g.p());
    let spans = col_spans(g);
    let mut y = zeros(g.n * g.cin * p);
    y.par_chunks_mut(p).enumerate().for_each(|(plane, yp)| {
        let c = plane % g.cin;
        let (xp, wc) = (&x[plane * hw..(plane + 1) * hw], &w[c * kk..(c + 1) * kk]);
        if g.stride == 1 {
            for_rows(g, &spans, |oy, iy, cols, a, t| {
                let src = &xp[iy * g.w + a..iy * g.w + a + cols.len()];
                let dst = &mut yp[oy * g.wo + cols.start..oy * g.wo + cols.end];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d += wc[t] * s;
                }
            });
        } else {
            for_taps(g, &spans, |oy, ox, iy, ix, t| {
                yp[oy * g.wo + ox] += wc[t] * xp[iy * g.w + ix]
            });
        }
    });
    y
}

fn input_grad<T: WithDType>(g: &ConvGeom, dy: &[T], w: &[T]) -> Vec<T> {
    let (hw, kk, p) = (g.h * g.w, g.kh * g.kw, g.p());
    let spans = col_spans(g);
    let mut dx = zeros(g.n * g.cin * hw);
    dx.par_chunks_mut(hw).enumerate().for_each(|(plane, dxp)| {
        let c = plane % g.cin;
        let (dyp, wc) = (&dy[plane * p..(plane + 1) * p], &w[c * kk..(c + 1) * kk]);
        if g.stride == 1 {
            for_rows(g, &spans, |oy, iy, cols, a, t| {
                let src = &dyp[oy * g.wo + cols.start..oy * g.wo + cols.end];
                let dst = &mut dxp[iy * g.w + a..iy * g.w + a + cols.len()];
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d += wc[t] * s;
                }
            });
        } else {
            for_taps(g, &spans, |oy, ox, iy, ix, t| {
                dxp[iy * g.w + ix] += wc[t] * dyp[oy * g.wo + ox]
            });
        }
    });
    dx
}

fn weight_grad<T: WithDType>(g: &ConvGeom, x: &[T], dy: &[T]) -> Vec<T> {
    let (hw, kk, p) = (g.h * g.w, g.kh * g.kw, g.p());
    let spans = col_spans(g);
    let mut dw = vec![T::from_f64(0.0); g.cin * kk];
    dw.par_chunks_mut(kk).enumerate().for_each(|(c, dwc)| {
        // Stride 1: per tap, one partial sum per output column, summed at the end, so the
        // inner loop is an element-wise multiply-add rather than a dependent sum.
        let mut acc = vec![T::from_f64(0.0); if g.stride == 1 { kk * g.wo } else { 0 }];
        for s in 0..g.n {
            let plane = s * g.cin + c;
            let (xp, dyp) = (
                &x[plane * hw..(plane + 1) * hw],
                &dy[plane * p..(plane + 1) * p],
            );
            if g.stride == 1 {
                for_rows(g, &spans, |oy, iy, cols, a, t| {
                    let d = &dyp[oy * g.wo + cols.start..oy * g.wo + cols.end];
                    let xs = &xp[iy * g.w + a..iy * g.w + a + cols.len()];
                    let at = &mut acc[t * g.wo + cols.start..t * g.wo + cols.end];
                    for ((o, &dv), &xv) in at.iter_mut().zip(d).zip(xs) {
                        *o += dv * xv;
                    }
                });
            } else {
                for_taps(g, &spans, |oy, ox, iy, ix, t| {
                    dwc[t] += dyp[oy * g.wo + ox] * xp[iy * g.w + ix]
                });
            }
        }
        if g.stride == 1 {
            for (o, part) in dwc.iter_mut().zip(acc.chunks(g.wo)) {
                *o = part.iter().fold(T::from_f64(0.0), |a, &v| a + v);
            }
        }
    });
    dw
}

struct DepthwiseForward(ConvGeom);
struct DepthwiseInputGrad(ConvGeom);
struct DepthwiseWeightGrad(ConvGeom);

impl CustomOp2 for DepthwiseForward {
    fn name(&self) -> &'static str {
        "safs-depthwise"
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
                slice(s1, l1, "depthwise input")?,
                slice(s2, l2, "depthwise weight")?,
            );
            Ok((
                T::to_cpu_storage_owned(y),
                Shape::from((g.n, g.cin, g.ho, g.wo)),
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
        let (input_op, weight_op) = (DepthwiseInputGrad(self.0), DepthwiseWeightGrad(self.0));
        input_and_weight_grads(x, w, &dy.contiguous()?, &input_op, &weight_op)
    }
}

gradient_op2!(
    DepthwiseInputGrad,
    "safs-depthwise-input-grad",
    input_grad,
    ("depthwise dy", "depthwise weight"),
    |g| (g.n, g.cin, g.h, g.w)
);

gradient_op2!(
    DepthwiseWeightGrad,
    "safs-depthwise-weight-grad",
    weight_grad,
    ("depthwise input", "depthwise dy"),
    |g| (g.cin, 1, g.kh, g.kw)
);

/// Depthwise convolution of an (N, C, H, W) batch with a (C, 1, k, k) weight: PyTorch's
/// `conv2d(x, w, stride, padding, groups = C)`.
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let c = x.dims().get(1).copied().unwrap_or(0);
    let g = ConvGeom::new(x.dims(), w.dims(), stride, padding, c.max(1))?;
    if g.cout != g.cin {
        return Err(Error::Config(format!(
            "depthwise_conv2d: weight {:?} must have one filter per input channel ({c})",
            w.dims()
        )));
    }
    if !use_custom(x) || x.dtype() != w.dtype() {
        return shifted_sum(x, w, stride, padding);
    }
    Ok(x.contiguous()?
        .apply_op2(&w.contiguous()?, DepthwiseForward(g))?)
}

/// The stock fallback: a sum of k*k shifted, channel-scaled views, differentiable with
/// ordinary tensor ops (Candle runs `groups = C` as C separate convolutions, far slower).
fn shifted_sum(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (wc, one, kh, kw) = w.dims4()?;
    if wc != c || one != 1 || stride == 0 || h + 2 * padding < kh || wd + 2 * padding < kw {
        return Err(Error::Config(format!(
            "depthwise_conv2d: input {:?}, weight {:?}, stride {stride}, padding {padding}",
            x.dims(),
            w.dims()
        )));
    }
    let s = stride;
    let (ho, wo) = (
        (h + 2 * padding - kh) / s + 1,
        (wd + 2 * padding - kw) / s + 1,
    );
    // Pad to a multiple of the stride and split into s*s phases, so that tap (i, j) reads
    // phase (i % s, j % s) at offset (i / s, j / s) with unit stride.
    let (lh, lw) = (
        (h + 2 * padding).div_ceil(s) * s,
        (wd + 2 * padding).div_ceil(s) * s,
    );
    let xp = x
        .pad_with_zeros(2, padding, lh - h - padding)?
        .pad_with_zeros(3, padding, lw - wd - padding)?;
    let phases: Vec<Vec<Tensor>> = if s == 1 {
        vec![vec![xp]]
    } else {
        let split = xp.reshape((n, c, lh / s, s, lw / s, s))?;
        (0..s)
            .map(|a| {
                (0..s)
                    .map(|b| {
                        split
                            .narrow(3, a, 1)?
                            .narrow(5, b, 1)?
                            .reshape((n, c, lh / s, lw / s))
                    })
                    .collect::<candle_core::Result<Vec<_>>>()
            })
            .collect::<candle_core::Result<Vec<_>>>()?
    };
    let mut acc: Option<Tensor> = None;
    for i in 0..kh {
        for j in 0..kw {
            let patch = phases[i % s][j % s]
                .narrow(2, i / s, ho)?
                .narrow(3, j / s, wo)?;
            let tap = w.narrow(2, i, 1)?.narrow(3, j, 1)?;
            let term = patch.mul(&expand_channels(&tap, n, ho, wo)?)?;
            acc = Some(match acc {
                None => term,
                Some(a) => a.add(&term)?,
            });
        }
    }
    Ok(acc.expect("kernel has at least one tap"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{check_grad, max_diff, random};
    use candle_core::Var;

    /// (n, c, h, w, k, stride, padding)
    const CASES: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
        (2, 3, 5, 5, 3, 1, 1),
        (1, 4, 6, 7, 3, 2, 1),
        (2, 2, 5, 7, 3, 2, 1),
        (1, 3, 1, 1, 3, 2, 1),
        (2, 2, 2, 2, 3, 2, 1),
        (1, 2, 6, 6, 5, 2, 2),
        (3, 2, 7, 5, 3, 3, 0),
        (2, 3, 4, 4, 1, 1, 0),
        (2, 2, 7, 6, 5, 1, 2),
        (3, 2, 6, 5, 3, 1, 0),
    ];

    #[test]
    fn matches_grouped_conv_and_finite_differences() -> Result<()> {
        for (idx, &(n, c, h, w, k, s, p)) in CASES.iter().enumerate() {
            let what = format!("case {idx} ({n},{c},{h},{w}) k{k} s{s} p{p}");
            let x = Var::from_tensor(&random(&[n, c, h, w], 70 + idx as u64)?)?;
            let wt = Var::from_tensor(&random(&[c, 1, k, k], 80 + idx as u64)?)?;
            let ours = depthwise_conv2d(x.as_tensor(), wt.as_tensor(), s, p)?;
            let stock = x.as_tensor().conv2d(wt.as_tensor(), p, s, 1, c)?;
            assert_eq!(ours.dims(), stock.dims(), "{what}");
            assert!(max_diff(&ours, &stock)? < 1e-12, "{what} forward");
            let r = random(ours.dims(), 90 + idx as u64)?;
            let g1 = ours.mul(&r)?.sum_all()?.backward()?;
            // Candle's stock backward fails on some strided shapes (see conv.rs).
            if let Ok(g2) = stock.mul(&r)?.sum_all()?.backward() {
                for v in [&x, &wt] {
                    let d = max_diff(
                        g1.get(v.as_tensor()).unwrap(),
                        g2.get(v.as_tensor()).unwrap(),
                    )?;
                    assert!(d < 1e-12, "{what} gradient {d}");
                }
            } else {
                assert!(s > 1, "{what}: stock backward failed at stride 1");
            }
            let loss = || -> Result<Tensor> {
                Ok(depthwise_conv2d(x.as_tensor(), wt.as_tensor(), s, p)?
                    .mul(&r)?
                    .sum_all()?)
            };
            check_grad(&format!("{what} input"), &loss, &x, 30)?;
            check_grad(&format!("{what} weight"), &loss, &wt, 30)?;
        }
        Ok(())
    }

    #[test]
    fn stock_fallback_matches_grouped_conv() -> Result<()> {
        for (idx, &(n, c, h, w, k, s, p)) in CASES.iter().enumerate() {
            let x = random(&[n, c, h, w], 300 + idx as u64)?;
            let wt = random(&[c, 1, k, k], 310 + idx as u64)?;
            let ours = shifted_sum(&x, &wt, s, p)?;
            let stock = x.conv2d(&wt, p, s, 1, c)?;
            assert!(max_diff(&ours, &stock)? < 1e-12, "case {idx}");
        }
        Ok(())
    }

    #[test]
    fn wrong_filter_count_is_an_error() {
        let x = random(&[1, 3, 4, 4], 1).unwrap();
        let w = random(&[2, 1, 3, 3], 2).unwrap();
        assert!(depthwise_conv2d(&x, &w, 1, 1).is_err());
    }
}
