//! ReLU and swish (SiLU) with one-pass backward kernels.
//!
//! Candle's stock ReLU backward builds a zeros tensor, a comparison mask, a dtype cast and a
//! product; here the gradient is one pass. ReLU's gradient at exactly 0 is 0, as in PyTorch.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::alloc::zeros;
use super::storage::{dispatch_float, slice};
use super::use_custom;
use crate::Result;

/// Elements per parallel task of the element-wise kernels.
const CHUNK: usize = 1 << 14;

#[derive(Clone, Copy)]
enum Kind {
    Relu,
    Silu,
}

struct Forward(Kind);
/// (ReLU: the output y, SiLU: the input x) and dy -> dx.
struct Grad(Kind);

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp1 for Forward {
    fn name(&self) -> &'static str {
        match self.0 {
            Kind::Relu => "safs-relu",
            Kind::Silu => "safs-silu",
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let kind = self.0;
        dispatch_float!(s, self.name(), |T| {
            let x: &[T] = slice(s, l, self.name())?;
            let mut y = zeros(x.len());
            let zero = T::from_f64(0.0);
            y.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .for_each(|(ys, xs)| match kind {
                    // `v > 0` keeps NaN out of the maximum's way: NaN propagates as in PyTorch.
                    #[allow(clippy::eq_op)]
                    Kind::Relu => ys
                        .iter_mut()
                        .zip(xs)
                        .for_each(|(o, &v)| *o = if v > zero || v != v { v } else { zero }),
                    Kind::Silu => ys.iter_mut().zip(xs).for_each(|(o, &v)| {
                        let f = v.to_f64();
                        *o = T::from_f64(f * sigmoid(f));
                    }),
                });
            Ok((T::to_cpu_storage_owned(y), l.shape().clone()))
        })
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let saved = match self.0 {
            Kind::Relu => y,
            Kind::Silu => x,
        };
        Ok(Some(
            saved.apply_op2_no_bwd(&dy.contiguous()?, &Grad(self.0))?,
        ))
    }
}

impl CustomOp2 for Grad {
    fn name(&self) -> &'static str {
        "safs-activation-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let kind = self.0;
        dispatch_float!(s1, self.name(), |T| {
            let saved: &[T] = slice(s1, l1, "activation input")?;
            let dy: &[T] = slice(s2, l2, "activation dy")?;
            let zero = T::from_f64(0.0);
            let mut dx = vec![zero; dy.len()];
            dx.par_chunks_mut(CHUNK)
                .zip(saved.par_chunks(CHUNK).zip(dy.par_chunks(CHUNK)))
                .for_each(|(out, (ss, gs))| match kind {
                    Kind::Relu => out
                        .iter_mut()
                        .zip(ss.iter().zip(gs))
                        .for_each(|(o, (&y, &g))| *o = if y > zero { g } else { zero }),
                    Kind::Silu => {
                        out.iter_mut()
                            .zip(ss.iter().zip(gs))
                            .for_each(|(o, (&x, &g))| {
                                let (f, s) = (x.to_f64(), sigmoid(x.to_f64()));
                                *o = T::from_f64(g.to_f64() * s * (1.0 + f * (1.0 - s)));
                            })
                    }
                });
            Ok((T::to_cpu_storage_owned(dx), l2.shape().clone()))
        })
    }
}

/// max(x, 0), PyTorch's `relu` (gradient 0 at 0).
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !use_custom(x) {
        return Ok(x.relu()?);
    }
    Ok(x.contiguous()?.apply_op1(Forward(Kind::Relu))?)
}

/// x * sigmoid(x), PyTorch's `silu` (swish).
pub fn silu(x: &Tensor) -> Result<Tensor> {
    if !use_custom(x) {
        return Ok(x.silu()?);
    }
    Ok(x.contiguous()?.apply_op1(Forward(Kind::Silu))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{check_grad, max_diff, random};
    use candle_core::Var;

    #[test]
    fn match_stock_ops_and_finite_differences() -> Result<()> {
        let x = Var::from_tensor(&random(&[3, 4, 5, 7], 400)?.affine(3.0, 0.0)?)?;
        let r = random(&[3, 4, 5, 7], 401)?;
        assert!(max_diff(&relu(x.as_tensor())?, &x.as_tensor().relu()?)? == 0.0);
        assert!(max_diff(&silu(x.as_tensor())?, &x.as_tensor().silu()?)? < 1e-14);
        let loss_relu = || -> Result<Tensor> { Ok(relu(x.as_tensor())?.mul(&r)?.sum_all()?) };
        check_grad("relu", &loss_relu, &x, 100)?;
        let loss_silu = || -> Result<Tensor> { Ok(silu(x.as_tensor())?.mul(&r)?.sum_all()?) };
        check_grad("silu", &loss_silu, &x, 100)?;
        Ok(())
    }

    #[test]
    fn relu_gradient_is_zero_at_zero_and_nan_propagates() -> Result<()> {
        let x = Var::from_vec(vec![0f32, -1., 2., f32::NAN], 4, &candle_core::Device::Cpu)?;
        let y = relu(x.as_tensor())?;
        let v: Vec<f32> = y.to_vec1()?;
        assert_eq!(&v[..3], &[0., 0., 2.]);
        assert!(v[3].is_nan());
        let g: Vec<f32> = y
            .sum_all()?
            .backward()?
            .get(x.as_tensor())
            .unwrap()
            .to_vec1()?;
        assert_eq!(&g[..3], &[0., 0., 1.]);
        Ok(())
    }
}
