//! A per-channel bias added to an (N, C, H, W) batch, with the bias gradient as one
//! per-channel sum instead of Candle's strided broadcast reduction.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::batchnorm::lane_sums;
use super::simd::vectorised;

use super::storage::{dispatch_float, slice};
use super::use_custom;
use crate::model::expand_channels;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
}

struct AddBias(Dims);
/// Per-channel sums of an (N, C, H, W) tensor, in f64 accumulators.
pub(crate) struct ChannelSum(pub Dims);

/// Per-channel sums over (N, H, W) of a contiguous (N, C, H*W) slice, accumulated in f64.
pub(crate) fn channel_sums<T: WithDType>(x: &[T], n: usize, c: usize, hw: usize) -> Vec<f64> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            vectorised(
                #[inline(always)]
                || {
                    (0..n)
                        .map(|s| {
                            let plane = &x[(s * c + ch) * hw..][..hw];
                            lane_sums(plane, plane, |v, _| [v.to_f64()])[0]
                        })
                        .sum()
                },
            )
        })
        .collect()
}

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "safs-add-channel-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.0;
        dispatch_float!(s1, self.name(), |T| {
            let x: &[T] = slice(s1, l1, "bias input")?;
            let b: &[T] = slice(s2, l2, "bias")?;
            let mut y = x.to_vec();
            y.par_chunks_mut(d.hw).enumerate().for_each(|(p, yp)| {
                let bc = b[p % d.c];
                yp.iter_mut().for_each(|v| *v += bc);
            });
            Ok((T::to_cpu_storage_owned(y), Shape::from((d.n, d.c, d.hw))))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = x.track_op().then(|| dy.clone());
        let db = if b.track_op() {
            Some(dy.contiguous()?.apply_op1_no_bwd(&ChannelSum(self.0))?)
        } else {
            None
        };
        Ok((dx, db))
    }
}

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "safs-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = self.0;
        dispatch_float!(s, self.name(), |T| {
            let sums = channel_sums::<T>(slice(s, l, "channel sum input")?, d.n, d.c, d.hw);
            let out: Vec<T> = sums.into_iter().map(T::from_f64).collect();
            Ok((T::to_cpu_storage_owned(out), Shape::from(d.c)))
        })
    }
}

/// `y[n, c, h, w] = x[n, c, h, w] + b[c]` for an (N, C, H, W) batch and C biases.
pub fn add_channel_bias(x: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if b.dims() != [c] {
        return Err(Error::Config(format!(
            "add_channel_bias: bias of shape {:?} for input {:?}",
            b.dims(),
            x.dims()
        )));
    }
    if !use_custom(x) || x.dtype() != b.dtype() {
        return Ok(x.add(&expand_channels(b, n, h, w)?)?);
    }
    let d = Dims { n, c, hw: h * w };
    Ok(x.contiguous()?
        .reshape((n, c, h * w))?
        .apply_op2(&b.contiguous()?, AddBias(d))?
        .reshape((n, c, h, w))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{check_grad, max_diff, random};
    use candle_core::Var;

    #[test]
    fn matches_broadcast_add_and_finite_differences() -> Result<()> {
        for (idx, &(n, c, h, w)) in [(2, 3, 4, 5), (1, 1, 1, 1), (3, 4, 1, 1)]
            .iter()
            .enumerate()
        {
            let x = Var::from_tensor(&random(&[n, c, h, w], 120 + idx as u64)?)?;
            let b = Var::from_tensor(&random(&[c], 130 + idx as u64)?)?;
            let ours = add_channel_bias(x.as_tensor(), b.as_tensor())?;
            let want = x
                .as_tensor()
                .broadcast_add(&b.as_tensor().reshape((1, c, 1, 1))?)?;
            assert!(max_diff(&ours, &want)? < 1e-15);
            let r = random(&[n, c, h, w], 140 + idx as u64)?;
            let loss = || -> Result<Tensor> {
                Ok(add_channel_bias(x.as_tensor(), b.as_tensor())?
                    .mul(&r)?
                    .sum_all()?)
            };
            check_grad("bias input", &loss, &x, 20)?;
            check_grad("bias", &loss, &b, 4)?;
        }
        assert!(add_channel_bias(&random(&[1, 2, 2, 2], 1)?, &random(&[3], 2)?).is_err());
        Ok(())
    }
}
