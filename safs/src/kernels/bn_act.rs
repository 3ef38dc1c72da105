//! Training-mode BatchNorm followed by an activation slot, as one op:
//! `z = beta_a * op(alpha * y; theta)` with `y = x * gamma / sqrt(var + eps) + shift`, or
//! with `y + r` for a residual `r` (a ResNet block's end; `r` gets `y`'s gradient).
//!
//! Composed, the two ops write `y`, read it back, and Candle's backward gives `y` a gradient
//! tensor of its own (a zeroed buffer plus an add). Fused, `y` is recomputed from `x` in the
//! backward, plane by plane while the plane is in cache. The arithmetic is the composed ops':
//! the same `y`, the same per-element activation gradient ([`grad_chunk`]), and
//! BatchNorm's backward on it:
//! `dx = gamma / sqrt(var + eps) / m * (m * gy - sum(gy) - xhat * sum(gy * xhat))`.

use std::ops::Range;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor, WithDType};

use super::alloc::zeros;
use super::batchnorm::{
    batch_stats, check, grad_sums, input_grad, lane_sums, moments, scale_shift, BatchStats, Dims,
    Moments,
};
use super::bn_rows::{expand, per_rows, per_runs, SMALL_MAP};
use super::scaled_activation::{grad_chunk, scalars, Scalars};
use super::storage::{dispatch_float, slice};
use super::use_custom;
use crate::activation::fast::FastFloat;
use crate::activation::pointwise::{value, with_const_op, Real};
use crate::activation::Op;
use crate::Result;

/// The activation slot that follows the BatchNorm: its operator, `p = [alpha, beta,
/// theta...]` and whether `p` needs a gradient (as [`super::scaled_activation`] takes them).
#[derive(Clone, Debug)]
pub struct SlotArgs {
    /// The unary operator.
    pub op: Op,
    /// `[alpha, beta, theta...]`, in the input's dtype.
    pub p: Tensor,
    /// Whether `p` gets a gradient.
    pub param_grads: bool,
}

/// `(x, params)` or `(x, r, params)` -> z, with `params = [gamma, beta, alpha, beta_a,
/// theta...]`; leaves the batch moments for the backward.
struct Forward {
    d: Dims,
    eps: f64,
    op: Op,
    param_grads: bool,
    moments: Moments,
}

/// `(x, dz)` or `(x, r, dz)` -> `[dx, dr (with r), dparams]` flattened.
struct Backward {
    d: Dims,
    op: Op,
    gb: Vec<f64>,
    act: Scalars,
    param_grads: bool,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
}

/// `[gamma, beta]` as f64 and the slot's scalars, out of the packed parameters.
fn unpack<T: WithDType>(
    params: &[T],
    c: usize,
    op: Op,
) -> candle_core::Result<(Vec<f64>, Scalars)> {
    if params.len() < 2 * c {
        candle_core::bail!(
            "batch norm + activation: {} parameters for {c} channels",
            params.len()
        );
    }
    let gb = params[..2 * c].iter().map(|v| v.to_f64()).collect();
    Ok((gb, scalars(&params[2 * c..], op)?))
}

/// `f(i, plane i)` over the (sample, channel) planes of `buf`, several to a task.
fn per_plane<T: Send>(buf: &mut [T], hw: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    per_runs(
        buf,
        hw,
        #[inline(always)]
        |first, planes| {
            for (j, plane) in planes.chunks_mut(hw).enumerate() {
                f(first + j, plane);
            }
        },
    );
}

/// `z = beta * op(alpha * (x * a + b [+ r]))` along a run, `(a, b)` per element from
/// `coef`; `slot = (alpha, beta, theta)`.
#[inline(always)]
fn activate<R: Real>(
    op: Op,
    z: &mut [R],
    x: &[R],
    r: Option<&[R]>,
    coef: impl Iterator<Item = (R, R)>,
    (alpha, beta, theta): (R, R, &[R; 3]),
) {
    match r {
        None => {
            for ((o, &v), (a, b)) in z.iter_mut().zip(x).zip(coef) {
                *o = beta * value(op, alpha * (v * a + b), theta);
            }
        }
        Some(r) => {
            for (((o, &v), &rv), (a, b)) in z.iter_mut().zip(x).zip(r).zip(coef) {
                *o = beta * value(op, alpha * (v * a + b + rv), theta);
            }
        }
    }
}

impl Forward {
    fn run(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        residual: Option<(&CpuStorage, &Layout)>,
        (sp, lp): (&CpuStorage, &Layout),
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.d;
        dispatch_float!(s1, "safs-batch-norm-act", |T| {
            let x: &[T] = slice(s1, l1, "batch norm input")?;
            let r: Option<&[T]> = match residual {
                Some((s, l)) => Some(slice(s, l, "batch norm residual")?),
                None => None,
            };
            let (gb, p) = unpack(
                slice::<T>(sp, lp, "batch norm + activation parameters")?,
                d.c,
                self.op,
            )?;
            let (mean, var, inv_std) = moments(x, d, self.eps);
            let (scale, shift) = scale_shift(&gb[..d.c], &gb[d.c..], &mean, &inv_std);
            type R = <T as FastFloat>::R;
            let (alpha, beta, theta) = p.lanes::<R>();
            let slot = (alpha, beta, &theta);
            let mut z = zeros(x.len());
            let row = d.c * d.hw;
            let fast_r = |seg: Range<usize>| r.map(|r| T::fast(&r[seg]));
            with_const_op!(self.op, |OP| {
                if d.hw < SMALL_MAP {
                    let like = |v: &[f64]| v.iter().map(|&u| R::c(u)).collect::<Vec<R>>();
                    let (ae, be) = (expand(&like(&scale), d.hw), expand(&like(&shift), d.hw));
                    per_rows(
                        &mut z,
                        d,
                        #[inline(always)]
                        |first, rows| {
                            for (k, zr) in rows.chunks_mut(row).enumerate() {
                                let seg = (first + k) * row..(first + k + 1) * row;
                                let coef = ae.iter().copied().zip(be.iter().copied());
                                let (xs, rs) = (T::fast(&x[seg.clone()]), fast_r(seg));
                                activate(OP, T::fast_mut(zr), xs, rs, coef, slot);
                            }
                        },
                    );
                } else {
                    per_plane(
                        &mut z,
                        d.hw,
                        #[inline(always)]
                        |i, zp| {
                            let c = i % d.c;
                            let coef = std::iter::repeat((R::c(scale[c]), R::c(shift[c])));
                            let seg = i * d.hw..(i + 1) * d.hw;
                            let (xs, rs) = (T::fast(&x[seg.clone()]), fast_r(seg));
                            activate(OP, T::fast_mut(zp), xs, rs, coef, slot);
                        },
                    );
                }
            });
            *self.moments.lock().expect("moments lock") = Some((mean, var, inv_std));
            Ok((T::to_cpu_storage_owned(z), l1.shape().clone()))
        })
    }

    /// The gradients of (x, r, params), r's only when there is one.
    fn grads(
        &self,
        x: &Tensor,
        r: Option<&Tensor>,
        params: &Tensor,
        dz: &Tensor,
    ) -> candle_core::Result<(Tensor, Option<Tensor>, Tensor)> {
        let Some((mean, _, inv_std)) = self.moments.lock().expect("moments lock").clone() else {
            candle_core::bail!("batch norm backward before its forward pass");
        };
        let values: Vec<f64> = params.to_dtype(candle_core::DType::F64)?.to_vec1()?;
        let (gb, act) = unpack(&values, self.d.c, self.op)?;
        let op = Backward {
            d: self.d,
            op: self.op,
            gb,
            act,
            param_grads: self.param_grads,
            mean,
            inv_std,
        };
        let dz = dz.contiguous()?;
        let packed = match r {
            Some(r) => x.apply_op3_no_bwd(r, &dz, &op)?,
            None => x.apply_op2_no_bwd(&dz, &op)?,
        };
        let len = x.elem_count();
        let dx = packed.narrow(0, 0, len)?.reshape(x.shape())?;
        let (dr, rest) = match r {
            Some(r) => (
                Some(packed.narrow(0, len, len)?.reshape(r.shape())?),
                2 * len,
            ),
            None => (None, len),
        };
        let dparams = packed.narrow(0, rest, params.elem_count())?;
        Ok((dx, dr, dparams))
    }
}

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "safs-batch-norm-act"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run((s1, l1), None, (s2, l2))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _z: &Tensor,
        dz: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, _, dp) = self.grads(x, None, params, dz)?;
        Ok((Some(dx), Some(dp)))
    }
}

/// `act(bn(x) + r)`: (x, r, params).
impl CustomOp3 for Forward {
    fn name(&self) -> &'static str {
        "safs-batch-norm-add-act"
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
        self.run((s1, l1), Some((s2, l2)), (s3, l3))
    }

    fn bwd(
        &self,
        x: &Tensor,
        r: &Tensor,
        params: &Tensor,
        _z: &Tensor,
        dz: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dr, dp) = self.grads(x, Some(r), params, dz)?;
        Ok((Some(dx), dr, Some(dp)))
    }
}

impl Backward {
    fn run(
        &self,
        (s1, l1): (&CpuStorage, &Layout),
        residual: Option<(&CpuStorage, &Layout)>,
        (sz, lz): (&CpuStorage, &Layout),
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (d, act, gb) = (self.d, self.act, &self.gb);
        let k = 2 + self.op.num_params();
        dispatch_float!(s1, "safs-batch-norm-act-backward", |T| {
            let x: &[T] = slice(s1, l1, "batch norm input")?;
            let r: Option<&[T]> = match residual {
                Some((s, l)) => Some(slice(s, l, "batch norm residual")?),
                None => None,
            };
            let dz: &[T] = slice(sz, lz, "batch norm dz")?;
            let (scale, shift) = scale_shift(&gb[..d.c], &gb[d.c..], &self.mean, &self.inv_std);
            let len = x.len();
            let dr_len = if r.is_some() { len } else { 0 };
            let mut out = zeros(len + dr_len + 2 * d.c + k);
            let (dx, rest) = out.split_at_mut(len);
            let (dr, tail) = rest.split_at_mut(dr_len);
            // gy, the gradient at the BatchNorm's output, goes to dr (it is r's gradient) or,
            // without a residual, to dx, which pass 2 then turns into BatchNorm's dx in place.
            let gy_buf: &mut [T] = if r.is_some() { dr } else { &mut *dx };
            let (alpha, beta, theta) = act.lanes::<<T as FastFloat>::R>();
            // Pass 1, runs of whole planes (rows of whole samples for small maps) per task:
            // y, gy, the activation's parameter sums per task and BatchNorm's per plane.
            let (small, row) = (d.hw < SMALL_MAP, d.c * d.hw);
            let unit = if small { row } else { d.hw };
            let like = |v: &[f64]| v.iter().map(|&u| T::from_f64(u)).collect::<Vec<T>>();
            let expanded =
                small.then(|| (expand(&like(&scale), d.hw), expand(&like(&shift), d.hw)));
            let stats = (&self.mean[..], &self.inv_std[..]);
            let per_task: Vec<([f64; 5], Vec<[f64; 2]>)> = with_const_op!(self.op, |OP| {
                per_runs(
                    gy_buf,
                    unit,
                    #[inline(always)]
                    |first, gy| {
                        let at = first * unit;
                        let xs = &x[at..at + gy.len()];
                        let mut y = vec![T::from_f64(0.0); gy.len()];
                        match &expanded {
                            Some((ae, be)) => {
                                for (yr, xr) in y.chunks_mut(row).zip(xs.chunks(row)) {
                                    for (((o, &v), &a), &b) in yr.iter_mut().zip(xr).zip(ae).zip(be)
                                    {
                                        *o = v * a + b;
                                    }
                                }
                            }
                            None => {
                                for (j, yp) in y.chunks_mut(d.hw).enumerate() {
                                    let c = (at / d.hw + j) % d.c;
                                    let (a, b) = (T::from_f64(scale[c]), T::from_f64(shift[c]));
                                    for (o, &v) in yp.iter_mut().zip(&xs[j * d.hw..(j + 1) * d.hw])
                                    {
                                        *o = v * a + b;
                                    }
                                }
                            }
                        }
                        if let Some(r) = r {
                            for (o, &rv) in y.iter_mut().zip(&r[at..at + gy.len()]) {
                                *o += rv;
                            }
                        }
                        let gs = T::fast(&dz[at..at + gy.len()]);
                        let (gy_r, y_r) = (T::fast_mut(gy), T::fast(&y));
                        let act_sums = if self.param_grads {
                            grad_chunk::<_, true>(OP, gy_r, y_r, gs, alpha, beta, &theta)
                        } else {
                            grad_chunk::<_, false>(OP, gy_r, y_r, gs, alpha, beta, &theta)
                        };
                        if small {
                            return (act_sums, Vec::new());
                        }
                        let plane_sums = (0..gy.len() / d.hw)
                            .map(|j| {
                                let c = (at / d.hw + j) % d.c;
                                let (mu, is) = (self.mean[c], self.inv_std[c]);
                                let plane = j * d.hw..(j + 1) * d.hw;
                                lane_sums(&gy[plane.clone()], &xs[plane], |g, v| {
                                    let g = g.to_f64();
                                    [g, g * (v.to_f64() - mu) * is]
                                })
                            })
                            .collect();
                        (act_sums, plane_sums)
                    },
                )
            });
            let mut act_total = [0.0f64; 5];
            for (s, _) in &per_task {
                for (t, v) in act_total.iter_mut().zip(s) {
                    *t += v;
                }
            }
            // Per channel in sample order, per task in order: the same for any thread count.
            let sums = if small {
                let gy: &[T] = if r.is_some() { &*dr } else { &*dx };
                grad_sums(gy, x, d, stats)
            } else {
                let mut sums = vec![[0.0f64; 2]; d.c];
                for (i, s) in per_task.iter().flat_map(|(_, p)| p).enumerate() {
                    sums[i % d.c][0] += s[0];
                    sums[i % d.c][1] += s[1];
                }
                sums
            };
            // Pass 2: BatchNorm's input gradient from gy.
            let gy_all: Option<&[T]> = if r.is_some() { Some(&*dr) } else { None };
            input_grad(dx, gy_all, x, d, &gb[..d.c], stats, &sums);
            for c in 0..d.c {
                tail[c] = T::from_f64(sums[c][1]);
                tail[d.c + c] = T::from_f64(sums[c][0]);
            }
            if self.param_grads {
                let dp = &mut tail[2 * d.c..];
                dp[0] = T::from_f64(act.beta * act_total[0]);
                dp[1] = T::from_f64(act_total[1]);
                for t in 0..k - 2 {
                    dp[2 + t] = T::from_f64(act.beta * act_total[2 + t]);
                }
            }
            Ok((
                T::to_cpu_storage_owned(out),
                Shape::from(len + dr_len + 2 * d.c + k),
            ))
        })
    }
}

impl CustomOp2 for Backward {
    fn name(&self) -> &'static str {
        "safs-batch-norm-act-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.run((s1, l1), None, (s2, l2))
    }
}

impl CustomOp3 for Backward {
    fn name(&self) -> &'static str {
        "safs-batch-norm-add-act-backward"
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
        self.run((s1, l1), Some((s2, l2)), (s3, l3))
    }
}

/// [`super::batch_norm_train`] followed by the activation slot `act`, with `residual`
/// added before the activation when given: `act(bn(x) [+ residual])`, as one op. CPU
/// kernels only (f32 or f64 on the CPU, kernels on): elsewhere compose the two, as
/// [`crate::model::BatchNorm2d::forward_act`] does. The parameters and the residual are
/// taken in `x`'s dtype.
pub fn batch_norm_act_train(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    act: &SlotArgs,
    residual: Option<&Tensor>,
) -> Result<(Tensor, BatchStats)> {
    let d = check(x, gamma, beta, "batch_norm_act_train")?;
    if let Some(r) = residual {
        if r.dims() != x.dims() {
            return Err(crate::Error::Config(format!(
                "batch_norm_act_train: residual of shape {:?} for input {:?}",
                r.dims(),
                x.dims()
            )));
        }
    }
    if !use_custom(x) {
        return Err(crate::Error::Config(format!(
            "batch_norm_act_train: needs the CPU kernels (f32 or f64 on the CPU), got {:?} on {:?}",
            x.dtype(),
            x.device().location()
        )));
    }
    let moments: Moments = Arc::default();
    let op = Forward {
        d,
        eps,
        op: act.op,
        param_grads: act.param_grads,
        moments: moments.clone(),
    };
    // A frozen slot's scalars are constants: its zero gradients stop here.
    let p = if act.param_grads {
        act.p.clone()
    } else {
        act.p.detach()
    };
    let like_x = |t: &Tensor| t.to_dtype(x.dtype());
    let params = Tensor::cat(&[like_x(gamma)?, like_x(beta)?, like_x(&p)?], 0)?;
    let planes = |t: &Tensor| like_x(&t.contiguous()?)?.reshape((d.n, d.c, d.hw));
    let z = match residual {
        Some(r) => planes(x)?.apply_op3(&planes(r)?, &params, op)?,
        None => planes(x)?.apply_op2(&params, op)?,
    };
    Ok((z.reshape(x.shape())?, batch_stats(&moments, d, x)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::scaled_activation;
    use crate::kernels::testutil::{check_grad, diff_and_scale, random};
    use candle_core::{DType, Var};

    /// The fused op against BatchNorm, the residual add and the activation as separate
    /// ops: output, statistics and the gradients of x, gamma, beta, p and the residual, for
    /// every operator, with and without a residual, in f64 and f32.
    #[test]
    fn equals_the_ops_composed() -> Result<()> {
        for (dtype, tol) in [(DType::F64, 1e-10), (DType::F32, 2e-5)] {
            for (idx, &op) in Op::ALL.iter().enumerate() {
                for with_residual in [false, true] {
                    let shape = [(2, 3, 4, 5), (3, 2, 1, 1), (4, 5, 3, 2), (2, 2, 8, 9)][idx % 4];
                    compare_with_composed(op, idx, shape, with_residual, dtype, tol)?;
                }
            }
        }
        Ok(())
    }

    /// Small maps in batches of several row tasks and sum blocks (rows of 1200 and 1225
    /// values, 14 rows to a task, 512 values to a block).
    #[test]
    fn small_maps_in_many_tasks_equal_the_ops_composed() -> Result<()> {
        for (idx, op) in [Op::Swish, Op::Relu, Op::Elu].into_iter().enumerate() {
            for (shape, with_residual) in [((30, 300, 2, 2), false), ((29, 1225, 1, 1), true)] {
                compare_with_composed(op, 40 + idx, shape, with_residual, DType::F64, 1e-10)?;
                compare_with_composed(op, 50 + idx, shape, with_residual, DType::F32, 2e-5)?;
            }
        }
        Ok(())
    }

    fn compare_with_composed(
        op: Op,
        idx: usize,
        (n, c, h, w): (usize, usize, usize, usize),
        with_residual: bool,
        dtype: DType,
        tol: f64,
    ) -> Result<()> {
        let seed = 700 + 10 * idx as u64;
        let shape = [n, c, h, w];
        let x0 = random(&shape, seed)?.affine(3.0, 0.5)?.to_dtype(dtype)?;
        let g0 = random(&[c], seed + 1)?.to_dtype(dtype)?;
        let b0 = random(&[c], seed + 2)?.to_dtype(dtype)?;
        let mut p0 = vec![0.8, 1.3];
        p0.extend((0..op.num_params()).map(|t| 0.7 + 0.2 * t as f64));
        let p0 = Tensor::new(p0.as_slice(), x0.device())?.to_dtype(dtype)?;
        let r0 = random(&shape, seed + 4)?.to_dtype(dtype)?;
        let weights = random(&shape, seed + 3)?.to_dtype(dtype)?;
        let run = |fused: bool| -> Result<Vec<Tensor>> {
            let vars = [&x0, &g0, &b0, &p0, &r0].map(|t| Var::from_tensor(t).unwrap());
            let [x, g, b, p, r] = vars.each_ref().map(|v| v.as_tensor());
            let residual = with_residual.then_some(r);
            let (z, stats) = if fused {
                let args = SlotArgs {
                    op,
                    p: p.clone(),
                    param_grads: true,
                };
                batch_norm_act_train(x, g, b, 1e-5, &args, residual)?
            } else {
                let (y, stats) = crate::kernels::batch_norm_train(x, g, b, 1e-5)?;
                let y = match residual {
                    Some(r) => y.add(r)?,
                    None => y,
                };
                (scaled_activation(&y, op, p, true)?, stats)
            };
            let grads = z.mul(&weights)?.sum_all()?.backward()?;
            let mut out = vec![z.clone(), stats.mean, stats.var];
            for v in &vars[..4 + usize::from(with_residual)] {
                out.push(grads.get(v.as_tensor()).expect("gradient").clone());
            }
            Ok(out)
        };
        let (want, got) = (run(false)?, run(true)?);
        assert_eq!(want.len(), got.len());
        for (k, (a, b)) in want.iter().zip(&got).enumerate() {
            let (diff, scale) = diff_and_scale(a, b)?;
            assert!(
                diff <= tol * scale,
                "{op} {dtype:?} residual {with_residual}: output {k} differs by {diff} (scale {scale})"
            );
        }
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        for (idx, op) in [Op::Swish, Op::Elu, Op::Relu].into_iter().enumerate() {
            let seed = 900 + 10 * idx as u64;
            let x = Var::from_tensor(&random(&[3, 2, 3, 2], seed)?.affine(2.0, 0.3)?)?;
            let g = Var::from_tensor(&random(&[2], seed + 1)?)?;
            let b = Var::from_tensor(&random(&[2], seed + 2)?)?;
            let mut p0 = vec![0.9, 1.2];
            p0.extend((0..op.num_params()).map(|_| 0.8));
            let p = Var::from_tensor(&Tensor::new(p0.as_slice(), x.device())?)?;
            let r = random(&[3, 2, 3, 2], seed + 3)?;
            let loss = || -> Result<Tensor> {
                let args = SlotArgs {
                    op,
                    p: p.as_tensor().clone(),
                    param_grads: true,
                };
                let (z, _) = batch_norm_act_train(
                    x.as_tensor(),
                    g.as_tensor(),
                    b.as_tensor(),
                    1e-5,
                    &args,
                    None,
                )?;
                Ok(z.mul(&r)?.sum_all()?)
            };
            check_grad(&format!("{op} input"), &loss, &x, 36)?;
            check_grad(&format!("{op} gamma"), &loss, &g, 2)?;
            check_grad(&format!("{op} beta"), &loss, &b, 2)?;
            check_grad(&format!("{op} scalars"), &loss, &p, 2 + op.num_params())?;
        }
        Ok(())
    }

    #[test]
    fn a_residual_of_another_shape_is_a_named_error() -> Result<()> {
        let x = random(&[2, 3, 2, 2], 1)?;
        let g = random(&[3], 2)?;
        let args = SlotArgs {
            op: Op::Relu,
            p: Tensor::new(&[1.0f64, 1.0], x.device())?,
            param_grads: false,
        };
        let r = random(&[2, 3, 2, 1], 3)?;
        let err = batch_norm_act_train(&x, &g, &g, 1e-5, &args, Some(&r)).unwrap_err();
        assert!(err.to_string().contains("[2, 3, 2, 1]"), "{err}");
        Ok(())
    }

    #[test]
    fn a_frozen_slot_gets_no_parameter_gradient() -> Result<()> {
        let x = Var::from_tensor(&random(&[2, 3, 2, 2], 1)?)?;
        let g = random(&[3], 2)?;
        let p = Var::from_tensor(&Tensor::new(&[1.0f64, 1.0], x.device())?)?;
        let args = SlotArgs {
            op: Op::Relu,
            p: p.as_tensor().clone(),
            param_grads: false,
        };
        let (z, _) = batch_norm_act_train(x.as_tensor(), &g, &g, 1e-5, &args, None)?;
        let grads = z.sum_all()?.backward()?;
        assert!(grads.get(x.as_tensor()).is_some());
        assert!(grads.get(p.as_tensor()).is_none());
        Ok(())
    }
}
