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

/// One kernel tap's contiguous stretch of a plane: outputs `out..out + len` read inputs
/// `inp..inp + len` through tap `tap`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Run {
    out: usize,
    inp: usize,
    len: usize,
    tap: usize,
}

/// Every (output, tap) pair of one plane whose input is inside the image, as runs: a row's
/// stretch of columns at stride 1, single positions otherwise. The same for every plane,
/// so it is made once per call: small maps (1x1 to 4x4 in EfficientNet-B0 at 16x16) have
/// more taps than outputs, and working out which are inside per plane cost more than the
/// arithmetic.
fn runs(g: &ConvGeom) -> Vec<Run> {
    let spans: Vec<(usize, usize)> = (0..g.kw).map(|j| g.valid_cols(j)).collect();
    let mut runs = Vec::new();
    for oy in 0..g.ho {
        for i in 0..g.kh {
            let Some(iy) = g.in_row(oy, i) else { continue };
            for (j, &(lo, hi)) in spans.iter().enumerate() {
                let tap = i * g.kw + j;
                let inp = |ox: usize| iy * g.w + ox * g.stride + j - g.padding;
                if g.stride == 1 && lo < hi {
                    runs.push(Run {
                        out: oy * g.wo + lo,
                        inp: inp(lo),
                        len: hi - lo,
                        tap,
                    });
                } else if g.stride > 1 {
                    for ox in lo..hi {
                        let (out, inp, len) = (oy * g.wo + ox, inp(ox), 1);
                        runs.push(Run { out, inp, len, tap });
                    }
                }
            }
        }
    }
    runs
}

/// `dst[i] += a * src[i]`.
#[inline(always)]
fn axpy<T: WithDType>(dst: &mut [T], a: T, src: &[T]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += a * s;
    }
}

fn forward<T: WithDType>(g: &ConvGeom, x: &[T], w: &[T]) -> Vec<T> {
    let (hw, kk, p) = (g.h * g.w, g.kh * g.kw, g.p());
    let runs = runs(g);
    let mut y = zeros(g.n * g.cin * p);
    y.par_chunks_mut(p).enumerate().for_each(|(plane, yp)| {
        let c = plane % g.cin;
        let (xp, wc) = (&x[plane * hw..(plane + 1) * hw], &w[c * kk..(c + 1) * kk]);
        for r in &runs {
            axpy(
                &mut yp[r.out..r.out + r.len],
                wc[r.tap],
                &xp[r.inp..r.inp + r.len],
            );
        }
    });
    y
}

fn input_grad<T: WithDType>(g: &ConvGeom, dy: &[T], w: &[T]) -> Vec<T> {
    let (hw, kk, p) = (g.h * g.w, g.kh * g.kw, g.p());
    let runs = runs(g);
    let mut dx = zeros(g.n * g.cin * hw);
    dx.par_chunks_mut(hw).enumerate().for_each(|(plane, dxp)| {
        let c = plane % g.cin;
        let (dyp, wc) = (&dy[plane * p..(plane + 1) * p], &w[c * kk..(c + 1) * kk]);
        for r in &runs {
            axpy(
                &mut dxp[r.inp..r.inp + r.len],
                wc[r.tap],
                &dyp[r.out..r.out + r.len],
            );
        }
    });
    dx
}

fn weight_grad<T: WithDType>(g: &ConvGeom, x: &[T], dy: &[T]) -> Vec<T> {
    let (hw, kk, p) = (g.h * g.w, g.kh * g.kw, g.p());
    let runs = runs(g);
    // Each run's products summed element-wise over the samples (an element-wise
    // multiply-add rather than a dependent sum), reduced per tap at the end.
    let starts: Vec<usize> = runs
        .iter()
        .scan(0, |at, r| {
            let s = *at;
            *at += r.len;
            Some(s)
        })
        .collect();
    let total = runs.iter().map(|r| r.len).sum::<usize>();
    let mut dw = vec![T::from_f64(0.0); g.cin * kk];
    dw.par_chunks_mut(kk).enumerate().for_each(|(c, dwc)| {
        let mut acc = vec![T::from_f64(0.0); total];
        for s in 0..g.n {
            let plane = s * g.cin + c;
            let (xp, dyp) = (
                &x[plane * hw..(plane + 1) * hw],
                &dy[plane * p..(plane + 1) * p],
            );
            for (r, &at) in runs.iter().zip(&starts) {
                let (d, xs) = (&dyp[r.out..r.out + r.len], &xp[r.inp..r.inp + r.len]);
                for ((o, &dv), &xv) in acc[at..at + r.len].iter_mut().zip(d).zip(xs) {
                    *o += dv * xv;
                }
            }
        }
        for (r, &at) in runs.iter().zip(&starts) {
            dwc[r.tap] += acc[at..at + r.len]
                .iter()
                .fold(T::from_f64(0.0), |a, &v| a + v);
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

    /// The runs hold exactly the (output, input, tap) triples inside the image, each once.
    #[test]
    fn runs_cover_every_tap_inside_the_image_once() {
        for &(_, c, h, w, k, s, p) in CASES {
            let g = ConvGeom::new(&[1, c, h, w], &[c, 1, k, k], s, p, c).unwrap();
            let mut got: Vec<(usize, usize, usize)> = runs(&g)
                .iter()
                .flat_map(|r| (0..r.len).map(move |e| (r.out + e, r.inp + e, r.tap)))
                .collect();
            got.sort();
            let mut want = Vec::new();
            for oy in 0..g.ho {
                for ox in 0..g.wo {
                    for i in 0..k {
                        for j in 0..k {
                            let iy = (oy * s + i) as isize - p as isize;
                            let ix = (ox * s + j) as isize - p as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                let inp = iy as usize * w + ix as usize;
                                want.push((oy * g.wo + ox, inp, i * k + j));
                            }
                        }
                    }
                }
            }
            want.sort();
            assert_eq!(got, want, "({h}x{w}) k{k} s{s} p{p}");
        }
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
