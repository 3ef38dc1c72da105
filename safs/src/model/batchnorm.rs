//! 2-D batch normalisation with PyTorch's `nn.BatchNorm2d` semantics.
//!
//! Composed from tensor ops, so Candle's autograd differentiates through the batch
//! statistics. The running statistics are `Var`s updated in place with detached values;
//! they are buffers ([`super::Network::buffers`]), never handed to an optimiser.

use candle_core::{Tensor, Var};

use candle_nn::Module;

use super::{Init, Param, ParamKind};
use crate::activation::Activation;
use crate::kernels;
use crate::{Error, Result};

/// PyTorch's default momentum of the running statistics.
pub const BN_MOMENTUM: f64 = 0.1;
/// PyTorch's default epsilon added to the variance.
pub const BN_EPS: f64 = 1e-5;

/// Batch normalisation over (N, H, W) per channel of an (N, C, H, W) batch.
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    pub(crate) name: String,
    channels: usize,
    weight: Var,
    bias: Var,
    running_mean: Var,
    running_var: Var,
}

impl BatchNorm2d {
    /// `channels` channels named `name`: gamma = 1, beta = 0, running mean 0, running var 1.
    pub fn new(init: &mut Init, name: &str, channels: usize) -> Result<Self> {
        Ok(Self {
            name: name.to_string(),
            channels,
            weight: init.constant(&[channels], 1.0)?,
            bias: init.constant(&[channels], 0.0)?,
            running_mean: init.constant(&[channels], 0.0)?,
            running_var: init.constant(&[channels], 1.0)?,
        })
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The eval-mode map as per-channel `(scale, shift)`: `y = x * scale + shift`.
    pub(crate) fn eval_scale_shift(&self) -> Result<(Tensor, Tensor)> {
        // y = x * (gamma / sqrt(rv + eps)) + (beta - rm * gamma / sqrt(rv + eps))
        let inv_std = self
            .running_var
            .as_detached_tensor()
            .affine(1.0, BN_EPS)?
            .sqrt()?
            .recip()?;
        let scale = self.weight.as_tensor().mul(&inv_std)?;
        let shift = self
            .bias
            .as_tensor()
            .sub(&self.running_mean.as_detached_tensor().mul(&scale)?)?;
        Ok((scale, shift))
    }

    /// Normalises `x`: with batch statistics (updating the running ones) when `train`,
    /// with the running statistics otherwise.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.check_channels(x)?;
        let gamma = self.weight.as_tensor();
        let beta = self.bias.as_tensor();
        if !train {
            let (scale, shift) = self.eval_scale_shift()?;
            return kernels::channel_affine(x, &scale, &shift);
        }
        let (y, stats) = kernels::batch_norm_train(x, gamma, beta, BN_EPS)
            .map_err(|e| Error::Config(format!("{}: {e}", self.name)))?;
        self.update_running(stats)?;
        Ok(y)
    }

    /// `act(self.forward_t(x, train))`; in training on the CPU kernels, one fused op
    /// ([`kernels::batch_norm_act_train`]).
    pub fn forward_act(&self, x: &Tensor, train: bool, act: &Activation) -> Result<Tensor> {
        self.forward_act_with(x, None, train, act)
    }

    /// `act(self.forward_t(x, train) + residual)` (a residual block's output), fused like
    /// [`Self::forward_act`].
    pub fn forward_add_act(
        &self,
        x: &Tensor,
        residual: &Tensor,
        train: bool,
        act: &Activation,
    ) -> Result<Tensor> {
        self.forward_act_with(x, Some(residual), train, act)
    }

    fn forward_act_with(
        &self,
        x: &Tensor,
        residual: Option<&Tensor>,
        train: bool,
        act: &Activation,
    ) -> Result<Tensor> {
        if !train || !kernels::use_custom(x) {
            let y = self.forward_t(x, train)?;
            let y = match residual {
                Some(r) => y.add(r)?,
                None => y,
            };
            return Ok(act.forward(&y)?);
        }
        self.check_channels(x)?;
        let args = act.slot_args(x.dtype())?;
        let (weight, bias) = (self.weight.as_tensor(), self.bias.as_tensor());
        let (z, stats) = kernels::batch_norm_act_train(x, weight, bias, BN_EPS, &args, residual)
            .map_err(|e| Error::Config(format!("{}: {e}", self.name)))?;
        self.update_running(stats)?;
        Ok(z)
    }

    fn check_channels(&self, x: &Tensor) -> Result<()> {
        let (_, c, _, _) = x.dims4()?;
        if c != self.channels {
            return Err(Error::Config(format!(
                "{}: expected {} channels, got input of shape {:?}",
                self.name,
                self.channels,
                x.dims()
            )));
        }
        Ok(())
    }

    /// Moves the running statistics towards one batch's (detached; unbiased variance, as
    /// PyTorch).
    fn update_running(&self, stats: kernels::BatchStats) -> Result<()> {
        let m = stats.count;
        let var_unbiased = stats.var.affine(m as f64 / (m - 1) as f64, 0.0)?;
        let new_mean = self
            .running_mean
            .as_detached_tensor()
            .affine(1.0 - BN_MOMENTUM, 0.0)?
            .add(&stats.mean.affine(BN_MOMENTUM, 0.0)?)?;
        let new_var = self
            .running_var
            .as_detached_tensor()
            .affine(1.0 - BN_MOMENTUM, 0.0)?
            .add(&var_unbiased.affine(BN_MOMENTUM, 0.0)?)?;
        self.running_mean.set(&new_mean)?;
        self.running_var.set(&new_var)?;
        Ok(())
    }

    /// `{name}.weight` and `{name}.bias`, both [`ParamKind::Norm`].
    pub fn params(&self) -> Vec<Param> {
        vec![
            Param {
                name: format!("{}.weight", self.name),
                var: self.weight.clone(),
                kind: ParamKind::Norm,
            },
            Param {
                name: format!("{}.bias", self.name),
                var: self.bias.clone(),
                kind: ParamKind::Norm,
            },
        ]
    }

    /// `{name}.running_mean` and `{name}.running_var`.
    pub fn buffers(&self) -> Vec<(String, Var)> {
        vec![
            (
                format!("{}.running_mean", self.name),
                self.running_mean.clone(),
            ),
            (
                format!("{}.running_var", self.name),
                self.running_var.clone(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{check_grad, pseudo_random};
    use candle_core::{DType, Device};

    fn values(t: &Tensor) -> Vec<f64> {
        t.to_dtype(DType::F64)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// gamma and beta set to non-trivial values so they matter in the checks.
    fn bn_f64(c: usize) -> Result<BatchNorm2d> {
        let mut init = Init::with_dtype(0, &Device::Cpu, DType::F64);
        let bn = BatchNorm2d::new(&mut init, "bn", c)?;
        let g: Vec<f64> = (0..c).map(|i| 0.5 + 0.25 * i as f64).collect();
        let b: Vec<f64> = (0..c).map(|i| -0.3 + 0.2 * i as f64).collect();
        bn.weight.set(&Tensor::from_vec(g, c, &Device::Cpu)?)?;
        bn.bias.set(&Tensor::from_vec(b, c, &Device::Cpu)?)?;
        Ok(bn)
    }

    #[test]
    fn training_forward_matches_hand_loops_and_updates_running_stats() -> Result<()> {
        let (n, c, h, w) = (3, 2, 2, 3);
        let x = pseudo_random(&[n, c, h, w], 1)?.affine(2.0, 0.7)?;
        let xs = values(&x);
        let bn = bn_f64(c)?;
        let y = values(&bn.forward_t(&x, true)?);
        let gamma = values(bn.weight.as_tensor());
        let beta = values(bn.bias.as_tensor());
        let idx = |a: usize, ch: usize, i: usize, j: usize| ((a * c + ch) * h + i) * w + j;
        let m = (n * h * w) as f64;
        for ch in 0..c {
            let mut sum = 0.0;
            for a in 0..n {
                for i in 0..h {
                    for j in 0..w {
                        sum += xs[idx(a, ch, i, j)];
                    }
                }
            }
            let mean = sum / m;
            let mut ss = 0.0;
            for a in 0..n {
                for i in 0..h {
                    for j in 0..w {
                        ss += (xs[idx(a, ch, i, j)] - mean).powi(2);
                    }
                }
            }
            let var_biased = ss / m;
            for a in 0..n {
                for i in 0..h {
                    for j in 0..w {
                        let k = idx(a, ch, i, j);
                        let want =
                            (xs[k] - mean) / (var_biased + BN_EPS).sqrt() * gamma[ch] + beta[ch];
                        assert!((y[k] - want).abs() < 1e-12, "{k}: {} vs {want}", y[k]);
                    }
                }
            }
            // Running stats after one step from (0, 1): 0.1 * mean, 0.9 + 0.1 * unbiased var.
            let rm = values(bn.running_mean.as_tensor())[ch];
            let rv = values(bn.running_var.as_tensor())[ch];
            assert!((rm - 0.1 * mean).abs() < 1e-12, "{rm} vs {}", 0.1 * mean);
            let unbiased = ss / (m - 1.0);
            assert!((rv - (0.9 + 0.1 * unbiased)).abs() < 1e-12);
            // And the unbiased variance is really what was used, not the biased one.
            assert!((rv - (0.9 + 0.1 * var_biased)).abs() > 1e-6);
        }
        // A second step compounds: rm2 = 0.9 * rm1 + 0.1 * mean.
        let rm1 = values(bn.running_mean.as_tensor());
        bn.forward_t(&x, true)?;
        let rm2 = values(bn.running_mean.as_tensor());
        for ch in 0..c {
            let mean = rm1[ch] / 0.1;
            assert!((rm2[ch] - (0.9 * rm1[ch] + 0.1 * mean)).abs() < 1e-12);
        }
        Ok(())
    }

    #[test]
    fn running_stats_numbers() -> Result<()> {
        // One channel, values 1, 2, 3, 4 (m = 4): mean 2.5, biased var 1.25, unbiased 5/3.
        let mut init = Init::with_dtype(0, &Device::Cpu, DType::F64);
        let bn = BatchNorm2d::new(&mut init, "bn", 1)?;
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], (2, 1, 1, 2), &Device::Cpu)?;
        let y = values(&bn.forward_t(&x, true)?);
        let s = (1.25f64 + BN_EPS).sqrt();
        for (got, v) in y.iter().zip([1.0, 2.0, 3.0, 4.0]) {
            assert!((got - (v - 2.5) / s).abs() < 1e-12);
        }
        assert!((values(bn.running_mean.as_tensor())[0] - 0.25).abs() < 1e-15);
        assert!((values(bn.running_var.as_tensor())[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-15);
        Ok(())
    }

    #[test]
    fn eval_uses_running_stats() -> Result<()> {
        let c = 2;
        let bn = bn_f64(c)?;
        let dev = Device::Cpu;
        bn.running_mean
            .set(&Tensor::from_vec(vec![0.5f64, -1.0], c, &dev)?)?;
        bn.running_var
            .set(&Tensor::from_vec(vec![4.0f64, 0.25], c, &dev)?)?;
        let x = pseudo_random(&[2, c, 3, 3], 5)?;
        let xs = values(&x);
        let y = values(&bn.forward_t(&x, false)?);
        let gamma = values(bn.weight.as_tensor());
        let beta = values(bn.bias.as_tensor());
        let (rm, rv) = ([0.5, -1.0], [4.0, 0.25]);
        for (k, (xv, yv)) in xs.iter().zip(&y).enumerate() {
            let ch = (k / 9) % c;
            let want = (xv - rm[ch]) / (rv[ch] + BN_EPS).sqrt() * gamma[ch] + beta[ch];
            assert!((yv - want).abs() < 1e-12);
        }
        // Eval leaves the running statistics alone.
        assert_eq!(values(bn.running_mean.as_tensor()), vec![0.5, -1.0]);
        assert_eq!(values(bn.running_var.as_tensor()), vec![4.0, 0.25]);
        Ok(())
    }

    #[test]
    fn gradients_match_finite_differences() -> Result<()> {
        let (n, c, h, w) = (2, 3, 2, 2);
        let bn = bn_f64(c)?;
        let x = Var::from_tensor(&pseudo_random(&[n, c, h, w], 2)?)?;
        let r = pseudo_random(&[n, c, h, w], 3)?;
        for train in [true, false] {
            let loss = || -> Result<Tensor> {
                Ok(bn.forward_t(x.as_tensor(), train)?.mul(&r)?.sum_all()?)
            };
            check_grad("bn x", &loss, &x, 100)?;
            check_grad("bn gamma", &loss, &bn.weight, 100)?;
            check_grad("bn beta", &loss, &bn.bias, 100)?;
        }
        // The buffers never receive gradients.
        let grads = bn
            .forward_t(x.as_tensor(), true)?
            .mul(&r)?
            .sum_all()?
            .backward()?;
        assert!(grads.get(bn.running_mean.as_tensor()).is_none());
        assert!(grads.get(bn.running_var.as_tensor()).is_none());
        Ok(())
    }

    #[test]
    fn params_and_buffers_are_named() -> Result<()> {
        let mut init = Init::new(0, &Device::Cpu);
        let bn = BatchNorm2d::new(&mut init, "features.1", 4)?;
        let p: Vec<(String, ParamKind)> =
            bn.params().into_iter().map(|p| (p.name, p.kind)).collect();
        assert_eq!(
            p,
            [
                ("features.1.weight".to_string(), ParamKind::Norm),
                ("features.1.bias".to_string(), ParamKind::Norm)
            ]
        );
        let b: Vec<String> = bn.buffers().into_iter().map(|(n, _)| n).collect();
        assert_eq!(b, ["features.1.running_mean", "features.1.running_var"]);
        assert_eq!(bn.params()[0].var.dtype(), DType::F32);
        let err = bn
            .forward_t(
                &Tensor::zeros((1, 3, 2, 2), DType::F32, &Device::Cpu)?,
                true,
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("[1, 3, 2, 2]"), "{err}");
        Ok(())
    }
}
