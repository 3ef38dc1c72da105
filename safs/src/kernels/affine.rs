//! A per-channel affine map `y = x * scale[c] + shift[c]` of an (N, C, H, W) batch in one
//! pass: BatchNorm in eval mode, with running statistics folded into scale and shift.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::alloc::zeros;
use super::bias::{channel_sums, ChannelSum, Dims};
use super::storage::{dispatch_float, gradient_op2, slice};
use super::use_custom;
use crate::model::expand_channels;
use crate::{Error, Result};

struct ChannelAffine(Dims);
/// Gradient of the scale: per-channel sums of x * dy, from (x, dy).
struct ScaleGrad(Dims);

impl CustomOp3 for ChannelAffine {
    fn name(&self) -> &'static str {
        "safs-channel-affine"
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
        let d = self.0;
        dispatch_float!(s1, self.name(), |T| {
            let x: &[T] = slice(s1, l1, "channel affine input")?;
            let scale: &[T] = slice(s2, l2, "channel affine scale")?;
            let shift: &[T] = slice(s3, l3, "channel affine shift")?;
            let mut y = zeros(x.len());
            y.par_chunks_mut(d.hw)
                .zip(x.par_chunks(d.hw))
                .enumerate()
                .for_each(|(p, (yp, xp))| {
                    let (a, b) = (scale[p % d.c], shift[p % d.c]);
                    yp.iter_mut().zip(xp).for_each(|(o, &v)| *o = v * a + b);
                });
            Ok((T::to_cpu_storage_owned(y), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        scale: &Tensor,
        shift: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.0;
        let dy = dy.contiguous()?;
        let dx = if x.track_op() {
            // dx = dy * scale: the same op with a zero shift.
            let zero = shift.zeros_like()?;
            Some(dy.apply_op3_no_bwd(&scale.detach(), &zero, self)?)
        } else {
            None
        };
        let dscale = if scale.track_op() {
            Some(x.contiguous()?.apply_op2_no_bwd(&dy, &ScaleGrad(d))?)
        } else {
            None
        };
        let dshift = if shift.track_op() {
            Some(dy.apply_op1_no_bwd(&ChannelSum(d))?)
        } else {
            None
        };
        Ok((dx, dscale, dshift))
    }
}

fn scale_grad<T: WithDType>(d: &Dims, x: &[T], dy: &[T]) -> Vec<T> {
    let prod: Vec<T> = x.iter().zip(dy).map(|(&a, &b)| a * b).collect();
    let sums = channel_sums(&prod, d.n, d.c, d.hw);
    sums.into_iter().map(T::from_f64).collect()
}

gradient_op2!(
    ScaleGrad,
    "safs-channel-affine-scale-grad",
    scale_grad,
    ("channel affine input", "channel affine dy"),
    |d| d.c
);

/// `y[n, c, h, w] = x[n, c, h, w] * scale[c] + shift[c]` for an (N, C, H, W) batch.
pub fn channel_affine(x: &Tensor, scale: &Tensor, shift: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if scale.dims() != [c] || shift.dims() != [c] {
        return Err(Error::Config(format!(
            "channel_affine: scale {:?} and shift {:?} for input {:?}",
            scale.dims(),
            shift.dims(),
            x.dims()
        )));
    }
    if !use_custom(x) || scale.dtype() != x.dtype() || shift.dtype() != x.dtype() {
        let y = x.mul(&expand_channels(scale, n, h, w)?)?;
        return Ok(y.add(&expand_channels(shift, n, h, w)?)?);
    }
    let d = Dims { n, c, hw: h * w };
    Ok(x.contiguous()?
        .apply_op3(&scale.contiguous()?, &shift.contiguous()?, ChannelAffine(d))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{check_grad, max_diff, random};
    use candle_core::Var;

    #[test]
    fn matches_broadcast_maths_and_finite_differences() -> Result<()> {
        for (idx, &(n, c, h, w)) in [(2, 3, 4, 5), (1, 2, 1, 1), (3, 1, 2, 3)]
            .iter()
            .enumerate()
        {
            let x = Var::from_tensor(&random(&[n, c, h, w], 600 + idx as u64)?)?;
            let a = Var::from_tensor(&random(&[c], 610 + idx as u64)?)?;
            let b = Var::from_tensor(&random(&[c], 620 + idx as u64)?)?;
            let y = channel_affine(x.as_tensor(), a.as_tensor(), b.as_tensor())?;
            let want = x
                .as_tensor()
                .broadcast_mul(&a.as_tensor().reshape((1, c, 1, 1))?)?
                .broadcast_add(&b.as_tensor().reshape((1, c, 1, 1))?)?;
            assert!(max_diff(&y, &want)? < 1e-15);
            let r = random(&[n, c, h, w], 630 + idx as u64)?;
            let loss = || -> Result<Tensor> {
                Ok(channel_affine(x.as_tensor(), a.as_tensor(), b.as_tensor())?
                    .mul(&r)?
                    .sum_all()?)
            };
            check_grad("affine input", &loss, &x, 20)?;
            check_grad("affine scale", &loss, &a, 3)?;
            check_grad("affine shift", &loss, &b, 3)?;
        }
        Ok(())
    }
}
