//! Training-mode BatchNorm, forward and backward each fused into two passes over the batch.
//!
//! Forward: per-channel mean and biased variance (f64 accumulators, two-pass), then
//! `y = x * gamma / sqrt(var + eps) + (beta - mean * gamma / sqrt(var + eps))`. Backward, with
//! xhat the normalised input and m = N*H*W values per channel:
//! `dx = gamma / sqrt(var + eps) / m * (m * dy - sum(dy) - xhat * sum(dy * xhat))`,
//! `dgamma = sum(dy * xhat)`, `dbeta = sum(dy)`.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::alloc::zeros;
use super::bn_rows::{self, channel_sums, dx_value, expand, per_rows, SMALL_MAP};
use super::simd::vectorised;
use super::storage::{dispatch_float, slice};
use super::use_custom;
use crate::model::expand_channels;
use crate::{Error, Result};

/// The per-channel statistics of one training batch (detached, the input's dtype).
#[derive(Clone, Debug)]
pub struct BatchStats {
    /// Mean over (N, H, W).
    pub mean: Tensor,
    /// Biased variance over (N, H, W), the one the batch is normalised with.
    pub var: Tensor,
    /// Values per channel (N * H * W), for the unbiased running variance.
    pub count: usize,
}

/// (N, C, H*W) of a batch.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dims {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

/// (mean, biased variance, 1/sqrt(var + eps)) per channel, left by a forward pass for its
/// backward.
pub(super) type Moments = Arc<Mutex<Option<(Vec<f64>, Vec<f64>, Vec<f64>)>>>;

struct BnForward {
    d: Dims,
    eps: f64,
    /// (mean, biased var, 1/sqrt(var + eps)), written by the forward pass.
    moments: Moments,
}

struct BnBackward {
    d: Dims,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

/// Mean, biased variance and 1/sqrt(var + eps) per channel (f64, two passes).
pub(super) fn moments<T: WithDType>(x: &[T], d: Dims, eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = (d.n * d.hw) as f64;
    if d.hw < SMALL_MAP {
        let row = d.c * d.hw;
        let mean: Vec<f64> = channel_sums(x, x, &vec![(); row], d, |v, _, ()| [v.to_f64()])
            .iter()
            .map(|s| s[0] / m)
            .collect();
        let var: Vec<f64> = channel_sums(x, x, &expand(&mean, d.hw), d, |v, _, mu| {
            [(v.to_f64() - mu).powi(2)]
        })
        .iter()
        .map(|s| s[0] / m)
        .collect();
        let inv_std = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        return (mean, var, inv_std);
    }
    let per: Vec<(f64, f64)> = (0..d.c)
        .into_par_iter()
        .map(|ch| {
            vectorised(
                #[inline(always)]
                || {
                    let planes = || (0..d.n).map(|s| &x[(s * d.c + ch) * d.hw..][..d.hw]);
                    let mean = planes()
                        .map(|p| lane_sums(p, p, |v, _| [v.to_f64()])[0])
                        .sum::<f64>()
                        / m;
                    let var = planes()
                        .map(|p| lane_sums(p, p, |v, _| [(v.to_f64() - mean).powi(2)])[0])
                        .sum::<f64>()
                        / m;
                    (mean, var)
                },
            )
        })
        .collect();
    let mean: Vec<f64> = per.iter().map(|p| p.0).collect();
    let var: Vec<f64> = per.iter().map(|p| p.1).collect();
    let inv_std = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    (mean, var, inv_std)
}

/// Per-channel `(scale, shift)` with `y = x * scale + shift`: `scale = gamma / sqrt(var +
/// eps)`, `shift = beta - mean * scale`.
pub(super) fn scale_shift(
    gamma: &[f64],
    beta: &[f64],
    mean: &[f64],
    inv_std: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let scale: Vec<f64> = gamma.iter().zip(inv_std).map(|(g, is)| g * is).collect();
    let shift = (0..scale.len())
        .map(|c| beta[c] - mean[c] * scale[c])
        .collect();
    (scale, shift)
}

/// Per channel, `[sum(gy), sum(gy * xhat)]` with `xhat = (x - mean) / std`: the sums
/// BatchNorm's backward needs.
pub(super) fn grad_sums<T: WithDType>(
    gy: &[T],
    x: &[T],
    d: Dims,
    (mean, inv_std): (&[f64], &[f64]),
) -> Vec<[f64; 2]> {
    if d.hw < SMALL_MAP {
        let coef: Vec<[f64; 2]> = expand(
            &mean
                .iter()
                .zip(inv_std)
                .map(|(&mu, &is)| [mu, is])
                .collect::<Vec<_>>(),
            d.hw,
        );
        return channel_sums(gy, x, &coef, d, |g, v, [mu, is]| {
            let g = g.to_f64();
            [g, g * (v.to_f64() - mu) * is]
        });
    }
    (0..d.c)
        .into_par_iter()
        .map(|c| {
            vectorised(
                #[inline(always)]
                || {
                    let (mu, is) = (mean[c], inv_std[c]);
                    let mut sums = [0.0; 2];
                    for s in 0..d.n {
                        let at = (s * d.c + c) * d.hw;
                        let [a, b] = lane_sums(&gy[at..at + d.hw], &x[at..at + d.hw], |g, v| {
                            let g = g.to_f64();
                            [g, g * (v.to_f64() - mu) * is]
                        });
                        sums[0] += a;
                        sums[1] += b;
                    }
                    sums
                },
            )
        })
        .collect()
}

/// BatchNorm's input gradient from `gy` (in `dx` itself when `gy` is `None`), with
/// `sums` from [`grad_sums`]:
/// `dx = gamma / sqrt(var + eps) / m * (m * gy - sum(gy) - xhat * sum(gy * xhat))`.
pub(super) fn input_grad<T: WithDType>(
    dx: &mut [T],
    gy: Option<&[T]>,
    x: &[T],
    d: Dims,
    gamma: &[f64],
    stats: (&[f64], &[f64]),
    sums: &[[f64; 2]],
) {
    if d.hw < SMALL_MAP {
        return bn_rows::input_grad(dx, gy, x, d, gamma, stats, sums);
    }
    let m = (d.n * d.hw) as f64;
    let (mean, inv_std) = stats;
    dx.par_chunks_mut(d.hw).enumerate().for_each(|(p, dxp)| {
        vectorised(
            #[inline(always)]
            || {
                let c = p % d.c;
                let is = inv_std[c];
                let k = [mean[c], is, gamma[c] * is / m, sums[c][0], sums[c][1]];
                let plane = p * d.hw..(p + 1) * d.hw;
                let xs = &x[plane.clone()];
                match gy {
                    Some(gy) => {
                        for ((o, &v), &g) in dxp.iter_mut().zip(xs).zip(&gy[plane]) {
                            *o = T::from_f64(dx_value(g.to_f64(), v.to_f64(), m, &k));
                        }
                    }
                    None => {
                        for (o, &v) in dxp.iter_mut().zip(xs) {
                            *o = T::from_f64(dx_value(o.to_f64(), v.to_f64(), m, &k));
                        }
                    }
                }
            },
        )
    });
}

/// `y = x * scale + shift` per channel.
fn normalise<T: WithDType>(y: &mut [T], x: &[T], d: Dims, scale: &[f64], shift: &[f64]) {
    if d.hw < SMALL_MAP {
        let like_x = |v: &[f64]| v.iter().map(|&u| T::from_f64(u)).collect::<Vec<T>>();
        let (a, b) = (expand(&like_x(scale), d.hw), expand(&like_x(shift), d.hw));
        let row = d.c * d.hw;
        per_rows(
            y,
            d,
            #[inline(always)]
            |first, rows| {
                for (r, yr) in rows.chunks_mut(row).enumerate() {
                    let xr = &x[(first + r) * row..][..row];
                    for (((o, &v), &a), &b) in yr.iter_mut().zip(xr).zip(&a).zip(&b) {
                        *o = v * a + b;
                    }
                }
            },
        );
        return;
    }
    y.par_chunks_mut(d.hw).enumerate().for_each(|(p, yp)| {
        vectorised(
            #[inline(always)]
            || {
                let c = p % d.c;
                let (a, b) = (T::from_f64(scale[c]), T::from_f64(shift[c]));
                for (o, &v) in yp.iter_mut().zip(&x[p * d.hw..(p + 1) * d.hw]) {
                    *o = v * a + b;
                }
            },
        )
    });
}

/// `sum_i f(a_i, b_i)` (K sums at once) in f64 over paired slices, in 8 interleaved partial
/// sums: one running sum is a chain of dependent adds that neither vectorises nor hides
/// the add latency. The order is fixed by the slice length alone.
#[inline(always)]
pub(super) fn lane_sums<T: Copy, const K: usize>(
    a: &[T],
    b: &[T],
    f: impl Fn(T, T) -> [f64; K],
) -> [f64; K] {
    const LANES: usize = 8;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [[0.0f64; LANES]; K];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (xa, xb) in ca.zip(cb) {
        for l in 0..LANES {
            let v = f(xa[l], xb[l]);
            for k in 0..K {
                acc[k][l] += v[k];
            }
        }
    }
    let mut out = [0.0; K];
    for (&xa, &xb) in ra.iter().zip(rb) {
        let v = f(xa, xb);
        for k in 0..K {
            out[k] += v[k];
        }
    }
    for k in 0..K {
        out[k] += acc[k].iter().sum::<f64>();
    }
    out
}

impl CustomOp3 for BnForward {
    fn name(&self) -> &'static str {
        "safs-batch-norm"
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
        let d = self.d;
        dispatch_float!(s1, self.name(), |T| {
            let x: &[T] = slice(s1, l1, "batch norm input")?;
            let gamma: &[T] = slice(s2, l2, "batch norm weight")?;
            let beta: &[T] = slice(s3, l3, "batch norm bias")?;
            let (mean, var, inv_std) = moments(x, d, self.eps);
            let f64s = |v: &[T]| v.iter().map(|v| v.to_f64()).collect::<Vec<f64>>();
            let (scale, shift) = scale_shift(&f64s(gamma), &f64s(beta), &mean, &inv_std);
            let mut y = zeros(x.len());
            normalise(&mut y, x, d, &scale, &shift);
            *self.moments.lock().expect("moments lock") = Some((mean, var, inv_std));
            Ok((T::to_cpu_storage_owned(y), Shape::from((d.n, d.c, d.hw))))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some((mean, _, inv_std)) = self.moments.lock().expect("moments lock").clone() else {
            candle_core::bail!("batch norm backward before its forward pass");
        };
        let op = BnBackward {
            d: self.d,
            mean,
            inv_std,
        };
        let packed = x.apply_op3_no_bwd(gamma, &dy.contiguous()?, &op)?;
        let (len, c) = (x.elem_count(), self.d.c);
        let dx = packed.narrow(0, 0, len)?.reshape(x.shape())?;
        let dgamma = packed.narrow(0, len, c)?;
        let dbeta = packed.narrow(0, len + c, c)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

impl CustomOp3 for BnBackward {
    fn name(&self) -> &'static str {
        "safs-batch-norm-backward"
    }

    /// Output: dx (N*C*HW values) followed by dgamma (C) and dbeta (C).
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.d;
        dispatch_float!(s1, self.name(), |T| {
            let x: &[T] = slice(s1, l1, "batch norm input")?;
            let gamma: &[T] = slice(s2, l2, "batch norm weight")?;
            let dy: &[T] = slice(s3, l3, "batch norm dy")?;
            let stats = (&self.mean[..], &self.inv_std[..]);
            let sums = grad_sums(dy, x, d, stats);
            let gamma: Vec<f64> = gamma.iter().map(|g| g.to_f64()).collect();
            let mut out = zeros(x.len() + 2 * d.c);
            let (dx, tail) = out.split_at_mut(x.len());
            input_grad(dx, Some(dy), x, d, &gamma, stats, &sums);
            for c in 0..d.c {
                tail[c] = T::from_f64(sums[c][1]);
                tail[d.c + c] = T::from_f64(sums[c][0]);
            }
            Ok((T::to_cpu_storage_owned(out), Shape::from(x.len() + 2 * d.c)))
        })
    }
}

/// Training-mode batch normalisation of an (N, C, H, W) batch with per-channel `gamma` and
/// `beta`: the output and the batch statistics (for the running averages).
pub fn batch_norm_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, BatchStats)> {
    let d = check(x, gamma, beta, "batch_norm_train")?;
    if !use_custom(x) || gamma.dtype() != x.dtype() || beta.dtype() != x.dtype() {
        return stock(x, gamma, beta, eps);
    }
    let moments: Moments = Arc::default();
    let op = BnForward {
        d,
        eps,
        moments: moments.clone(),
    };
    let y = x
        .contiguous()?
        .reshape((d.n, d.c, d.hw))?
        .apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?
        .reshape(x.shape())?;
    Ok((y, batch_stats(&moments, d, x)?))
}

/// The (N, C, H*W) of an (N, C, H, W) batch normalised with per-channel `gamma` and `beta`,
/// or an error naming `what` and the shapes.
pub(super) fn check(x: &Tensor, gamma: &Tensor, beta: &Tensor, what: &str) -> Result<Dims> {
    let (n, c, h, w) = x.dims4()?;
    if gamma.dims() != [c] || beta.dims() != [c] || n * h * w < 2 {
        return Err(Error::Config(format!(
            "{what}: input {:?} with weight {:?} and bias {:?} (needs C values each and more than one value per channel)",
            x.dims(),
            gamma.dims(),
            beta.dims()
        )));
    }
    Ok(Dims { n, c, hw: h * w })
}

/// The statistics a forward pass left in `moments`, as tensors like `x`.
pub(super) fn batch_stats(moments: &Moments, d: Dims, x: &Tensor) -> Result<BatchStats> {
    // Read, not taken: the backward pass needs the same moments.
    let guard = moments.lock().expect("moments lock");
    let (mean, var, _) = guard
        .as_ref()
        .ok_or_else(|| Error::Config("batch norm: forward pass left no statistics".into()))?;
    Ok(BatchStats {
        mean: Tensor::from_slice(mean, d.c, x.device())?.to_dtype(x.dtype())?,
        var: Tensor::from_slice(var, d.c, x.device())?.to_dtype(x.dtype())?,
        count: d.n * d.hw,
    })
}

/// The same maths in stock tensor ops, differentiated by Candle's autograd.
fn stock(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<(Tensor, BatchStats)> {
    let (n, c, h, w) = x.dims4()?;
    let m = n * h * w;
    // Per-channel vectors are expanded with `expand_channels` rather than broadcast: same
    // values, much faster backward on the CPU.
    let expand = |v: &Tensor| expand_channels(v, n, h, w);
    // Per-channel means (C,): reduce the contiguous H*W axis first (Candle's fast path), then N.
    let channel_mean = |t: &Tensor| -> Result<Tensor> {
        Ok(t.reshape((n, c, h * w))?
            .sum(2)?
            .sum(0)?
            .affine(1.0 / m as f64, 0.0)?)
    };
    let mean = channel_mean(x)?;
    let centred = x.sub(&expand(&mean)?)?;
    let var = channel_mean(&centred.sqr()?)?; // biased, as PyTorch normalises
    let inv_std = var.affine(1.0, eps)?.sqrt()?.recip()?;
    let y = centred
        .mul(&expand(&inv_std.mul(gamma)?)?)?
        .add(&expand(beta)?)?;
    let stats = BatchStats {
        mean: mean.detach(),
        var: var.detach(),
        count: m,
    };
    Ok((y, stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{check_grad, max_diff, random};
    use candle_core::Var;

    #[test]
    fn matches_stock_maths_and_finite_differences() -> Result<()> {
        for (idx, &(n, c, h, w)) in [
            (2, 3, 4, 5),
            (1, 2, 3, 1),
            (4, 5, 1, 1),
            (3, 1, 2, 2),
            (2, 3, 8, 9),
            (17, 130, 2, 2),
        ]
        .iter()
        .enumerate()
        {
            let x = Var::from_tensor(&random(&[n, c, h, w], 150 + idx as u64)?.affine(3.0, 0.5)?)?;
            let gamma = Var::from_tensor(&random(&[c], 160 + idx as u64)?)?;
            let beta = Var::from_tensor(&random(&[c], 170 + idx as u64)?)?;
            let (ours, s1) =
                batch_norm_train(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5)?;
            let (want, s2) = stock(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5)?;
            assert!(max_diff(&ours, &want)? < 1e-12, "case {idx} forward");
            assert!(max_diff(&s1.mean, &s2.mean)? < 1e-12 && max_diff(&s1.var, &s2.var)? < 1e-12);
            assert_eq!(s1.count, n * h * w);
            let r = random(&[n, c, h, w], 180 + idx as u64)?;
            let g1 = ours.mul(&r)?.sum_all()?.backward()?;
            let g2 = want.mul(&r)?.sum_all()?.backward()?;
            for v in [&x, &gamma, &beta] {
                let d = max_diff(
                    g1.get(v.as_tensor()).unwrap(),
                    g2.get(v.as_tensor()).unwrap(),
                )?;
                assert!(d < 1e-10, "case {idx} gradient {d}");
            }
            let loss = || -> Result<Tensor> {
                let (y, _) =
                    batch_norm_train(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), 1e-5)?;
                Ok(y.mul(&r)?.sum_all()?)
            };
            check_grad(&format!("bn case {idx} input"), &loss, &x, 40)?;
            check_grad(&format!("bn case {idx} weight"), &loss, &gamma, 5)?;
            check_grad(&format!("bn case {idx} bias"), &loss, &beta, 5)?;
        }
        Ok(())
    }

    #[test]
    fn lane_sums_equal_plain_sums() {
        for n in [0, 1, 7, 8, 9, 100] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).cos()).collect();
            let want_a: f64 = a.iter().map(|&v| v as f64).sum();
            let want_ab: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let [sa, sab] = lane_sums(&a, &b, |x, y| [x as f64, x as f64 * y as f64]);
            assert!(
                (sa - want_a).abs() < 1e-12 && (sab - want_ab).abs() < 1e-12,
                "n = {n}"
            );
        }
    }

    #[test]
    fn refuses_a_single_value_per_channel() {
        let x = random(&[1, 2, 1, 1], 1).unwrap();
        let g = random(&[2], 2).unwrap();
        let err = batch_norm_train(&x, &g, &g, 1e-5).unwrap_err().to_string();
        assert!(err.contains("[1, 2, 1, 1]"), "{err}");
    }
}
