//! The activation slot `y = beta * op(alpha * x; theta)` as one CPU pass forward and one
//! backward, for all 17 operators (the stock path composes 3 to 10 tensor ops, each a
//! pass over the data and an allocation, and as many again in the backward).
//!
//! The scales and parameters travel as one small tensor `p = [alpha, beta, theta...]`, so
//! their gradients come back through Candle's graph like any other; with
//! `param_grads = false` (a frozen slot with fixed parameters) the backward skips the sums.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::alloc::zeros;
use super::storage::{dispatch_float, slice};
use crate::activation::fast::FastFloat;
use crate::activation::pointwise::{slope, value, with_const_op, Real};
use crate::activation::Op;
use crate::Result;

/// Elements per parallel task.
const CHUNK: usize = 1 << 14;

/// `p = [alpha, beta, theta_0, ...]` as read by the kernels.
#[derive(Clone, Copy)]
pub(super) struct Scalars {
    pub alpha: f64,
    pub beta: f64,
    pub theta: [f64; 3],
}

impl Scalars {
    /// `(alpha, beta, theta)` in the evaluation type `R`.
    pub fn lanes<R: Real>(&self) -> (R, R, [R; 3]) {
        (R::c(self.alpha), R::c(self.beta), self.theta.map(R::c))
    }
}

pub(super) fn scalars<T: WithDType>(p: &[T], op: Op) -> candle_core::Result<Scalars> {
    if p.len() != 2 + op.num_params() {
        candle_core::bail!(
            "scaled activation {op}: {} scalars given, alpha, beta and {} parameters expected",
            p.len(),
            op.num_params()
        );
    }
    let mut theta = [0.0; 3];
    for (t, v) in theta.iter_mut().zip(&p[2..]) {
        *t = v.to_f64();
    }
    Ok(Scalars {
        alpha: p[0].to_f64(),
        beta: p[1].to_f64(),
        theta,
    })
}

struct Forward {
    op: Op,
    param_grads: bool,
}

/// `(x, dy)` with the scalars in the op -> `[dx, dp]` flattened into one vector.
struct Backward {
    op: Op,
    p: Scalars,
    param_grads: bool,
}

impl CustomOp2 for Forward {
    fn name(&self) -> &'static str {
        "safs-scaled-activation"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(s1, self.name(), |T| {
            let x: &[T] = slice(s1, l1, "activation input")?;
            let p = scalars(slice::<T>(s2, l2, "activation scalars")?, self.op)?;
            let mut y = zeros(x.len());
            let (alpha, beta, theta) = p.lanes::<<T as FastFloat>::R>();
            with_const_op!(self.op, |OP| {
                y.par_chunks_mut(CHUNK)
                    .zip(x.par_chunks(CHUNK))
                    .for_each(|(ys, xs)| {
                        for (o, &v) in T::fast_mut(ys).iter_mut().zip(T::fast(xs)) {
                            *o = beta * value(OP, alpha * v, &theta);
                        }
                    })
            });
            Ok((T::to_cpu_storage_owned(y), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        p: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let values: Vec<f64> = p.to_dtype(candle_core::DType::F64)?.to_vec1()?;
        let scalars = scalars(&values, self.op)?;
        let both = x.apply_op2_no_bwd(
            &dy.contiguous()?,
            &Backward {
                op: self.op,
                p: scalars,
                param_grads: self.param_grads,
            },
        )?;
        let n = x.elem_count();
        let dx = both.narrow(0, 0, n)?.reshape(x.shape())?;
        let dp = if self.param_grads {
            Some(both.narrow(0, n, p.elem_count())?)
        } else {
            None
        };
        Ok((Some(dx), dp))
    }
}

impl CustomOp2 for Backward {
    fn name(&self) -> &'static str {
        "safs-scaled-activation-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (p, k) = (self.p, 2 + self.op.num_params());
        dispatch_float!(s1, self.name(), |T| {
            let x: &[T] = slice(s1, l1, "activation input")?;
            let dy: &[T] = slice(s2, l2, "activation dy")?;
            let n = x.len();
            let extra = if self.param_grads { k } else { 0 };
            let mut out = zeros(n + extra);
            let (dx, dp) = out.split_at_mut(n);
            let (alpha, beta, theta) = p.lanes::<<T as FastFloat>::R>();
            let sums: Vec<[f64; 5]> = with_const_op!(self.op, |OP| {
                let chunks = dx
                    .par_chunks_mut(CHUNK)
                    .zip(x.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)));
                if self.param_grads {
                    chunks
                        .map(|(o, (xs, gs))| {
                            let (o, xs, gs) = (T::fast_mut(o), T::fast(xs), T::fast(gs));
                            grad_chunk::<_, true>(OP, o, xs, gs, alpha, beta, &theta)
                        })
                        .collect()
                } else {
                    chunks
                        .map(|(o, (xs, gs))| {
                            let (o, xs, gs) = (T::fast_mut(o), T::fast(xs), T::fast(gs));
                            grad_chunk::<_, false>(OP, o, xs, gs, alpha, beta, &theta)
                        })
                        .collect()
                }
            });
            if self.param_grads {
                // Summed in chunk order: the result does not depend on the thread count.
                let mut total = [0.0; 5];
                for s in &sums {
                    for (t, v) in total.iter_mut().zip(s) {
                        *t += v;
                    }
                }
                dp[0] = T::from_f64(p.beta * total[0]);
                dp[1] = T::from_f64(total[1]);
                for t in 0..k - 2 {
                    dp[2 + t] = T::from_f64(p.beta * total[2 + t]);
                }
            }
            Ok((T::to_cpu_storage_owned(out), Shape::from(n + extra)))
        })
    }
}

/// One chunk of the backward: `dx = g beta alpha f'(alpha x)` into `out`; with `SUMS`,
/// returns the chunk's sums of `g f'(u) x`, `g f(u)` and `g df/dtheta` (in f64).
#[inline(always)]
pub(super) fn grad_chunk<T: Real, const SUMS: bool>(
    op: Op,
    out: &mut [T],
    xs: &[T],
    gs: &[T],
    alpha: T,
    beta: T,
    theta: &[T; 3],
) -> [f64; 5]
where
    f64: From<T>,
{
    let mut acc = [0.0; 5];
    for (o, (&v, &g)) in out.iter_mut().zip(xs.iter().zip(gs)) {
        let s = slope(op, alpha * v, theta);
        *o = g * beta * alpha * s.du;
        if SUMS {
            acc[0] += f64::from(g * s.du * v);
            acc[1] += f64::from(g * s.value);
            for t in 0..3 {
                acc[2 + t] += f64::from(g * s.dtheta[t]);
            }
        }
    }
    acc
}

/// `beta * op(alpha * x; theta)` with `p = [alpha, beta, theta...]` (shape `[2 + k]`, `k` the
/// operator's parameters); `param_grads` says whether `p` needs a gradient. CPU, f32 or
/// f64 only (callers check `use_custom`; elsewhere the kernel returns an error).
pub fn scaled_activation(x: &Tensor, op: Op, p: &Tensor, param_grads: bool) -> Result<Tensor> {
    Ok(x.contiguous()?
        .apply_op2(&p.contiguous()?, Forward { op, param_grads })?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::{Activation, OpParams};
    use crate::kernels::testutil::{diff_and_scale, random};
    use candle_core::{DType, Device, Var};
    use candle_nn::Module;

    /// Forward and every gradient (x, alpha, beta, theta) of the fused slot equal the stock
    /// tensor code's, for every operator, in f64, with trained scales and parameters.
    #[test]
    fn every_operator_matches_the_stock_tensor_code() -> Result<()> {
        // f64: to rounding (GELU's stock backward rounds 1/sqrt(2 pi) to 0.398942); f32:
        // the precision training runs in.
        for (dtype, tol) in [(DType::F64, 1e-6), (DType::F32, 2e-5)] {
            compare_with_stock(dtype, tol)?;
        }
        Ok(())
    }

    fn compare_with_stock(dtype: DType, tol: f64) -> Result<()> {
        let dev = Device::Cpu;
        let x0 = random(&[2, 3, 5, 7], 90)?
            .affine(4.0, 0.0)?
            .to_dtype(dtype)?;
        let r = random(&[2, 3, 5, 7], 91)?.to_dtype(dtype)?;
        for &op in Op::ALL {
            let run = |fused: bool| -> Result<Vec<Tensor>> {
                let mut slot = Activation::new(op, &dev, dtype)?;
                slot.set_params_mode(OpParams::LearntFromOne);
                slot.set_trainable(true);
                slot.set_scales(0.8, 1.3)?;
                let x = Var::from_tensor(&x0)?;
                let y = match fused {
                    true => slot.forward(x.as_tensor())?,
                    false => slot.forward_stock(x.as_tensor())?,
                };
                let grads = y.mul(&r)?.sum_all()?.backward()?;
                let mut out = vec![y.clone(), grads.get(x.as_tensor()).unwrap().clone()];
                for v in [slot.alpha_var(), slot.beta_var(), slot.params_var()] {
                    if v.elem_count() > 0 {
                        out.push(grads.get(v.as_tensor()).unwrap().clone());
                    }
                }
                Ok(out)
            };
            let (stock, fused) = (run(false)?, run(true)?);
            assert_eq!(stock.len(), fused.len(), "{op}");
            for (k, (a, b)) in stock.iter().zip(&fused).enumerate() {
                let (d, scale) = diff_and_scale(a, b)?;
                assert!(
                    d <= tol * scale,
                    "{op} {dtype:?}: output {k} differs by {d} (scale {scale})"
                );
            }
        }
        Ok(())
    }
}
