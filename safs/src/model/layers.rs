//! Conv and linear layers whose parameters are seeded `Var`s with explicit names.

use candle_core::{Tensor, Var};

use super::{Init, Param, ParamKind};
use crate::kernels;
use crate::Result;

/// A 2-D convolution with bias, PyTorch's `nn.Conv2d` semantics.
#[derive(Clone, Debug)]
pub struct Conv2d {
    pub(crate) name: String,
    pub(crate) weight: Var,
    pub(crate) bias: Option<Var>,
    pub(crate) stride: usize,
    pub(crate) padding: usize,
    pub(crate) groups: usize,
}

impl Conv2d {
    /// A `k x k` convolution `cin -> cout` named `name` (parameters `name.weight`, `name.bias`).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        init: &mut Init,
        name: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        padding: usize,
        groups: usize,
        bias: bool,
    ) -> Result<Self> {
        let fan_in = cin / groups * k * k;
        let weight = init.torch_default(&[cout, cin / groups, k, k], fan_in)?;
        let bias = if bias {
            Some(init.torch_default(&[cout], fan_in)?)
        } else {
            None
        };
        Ok(Self {
            name: name.to_string(),
            weight,
            bias,
            stride,
            padding,
            groups,
        })
    }

    /// Applies the convolution to an (N, C, H, W) batch.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.weight.as_tensor();
        let bias = self.bias.as_ref().map(|b| b.as_tensor());
        let (s, p, g) = (self.stride, self.padding, self.groups);
        if g > 1 && w.dim(1)? == 1 && w.dim(0)? == g {
            let y = kernels::depthwise_conv2d(x, w, s, p)?;
            return match bias {
                Some(b) => kernels::add_channel_bias(&y, b),
                None => Ok(y),
            };
        }
        match bias {
            Some(b) => kernels::conv2d_bias(x, w, b, s, p, g),
            None => kernels::conv2d(x, w, s, p, g),
        }
    }

    /// The layer's parameters, weight first.
    pub fn params(&self) -> Vec<Param> {
        named(&self.name, &self.weight, self.bias.as_ref())
    }
}

/// A per-channel vector `v` (C values) repeated to (N, C, H, W), built with two outer-product
/// matmuls so that its backward is two matmuls as well.
///
/// `x.broadcast_mul(v.reshape((1, C, 1, 1)))` gives the same values, but Candle's backward of a
/// broadcast sums over dims (0, 2, 3) with a slow strided reduction on the CPU; this form
/// (then a same-shape op) keeps the per-channel gradient sums fast.
pub fn expand_channels(v: &Tensor, n: usize, h: usize, w: usize) -> Result<Tensor> {
    let c = v.elem_count();
    let (dtype, dev) = (v.dtype(), v.device());
    let per_sample = if h * w == 1 {
        v.reshape((1, c))?
    } else {
        v.reshape((c, 1))?
            .matmul(&Tensor::ones((1, h * w), dtype, dev)?)?
            .reshape((1, c * h * w))?
    };
    let full = if n == 1 {
        per_sample
    } else {
        Tensor::ones((n, 1), dtype, dev)?.matmul(&per_sample)?
    };
    Ok(full.reshape((n, c, h, w))?)
}

/// A fully connected layer, PyTorch's `nn.Linear` semantics (y = x W^T + b).
#[derive(Clone, Debug)]
pub struct Linear {
    pub(crate) name: String,
    pub(crate) weight: Var,
    pub(crate) bias: Var,
}

impl Linear {
    /// A linear layer `fin -> fout` named `name`.
    pub fn new(init: &mut Init, name: &str, fin: usize, fout: usize) -> Result<Self> {
        Ok(Self {
            name: name.to_string(),
            weight: init.torch_default(&[fout, fin], fin)?,
            bias: init.torch_default(&[fout], fin)?,
        })
    }

    /// Applies the layer to an (N, fin) batch.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight.as_tensor().t()?)?;
        Ok(y.broadcast_add(self.bias.as_tensor())?)
    }

    /// The layer's parameters, weight first.
    pub fn params(&self) -> Vec<Param> {
        named(&self.name, &self.weight, Some(&self.bias))
    }
}

fn named(prefix: &str, weight: &Var, bias: Option<&Var>) -> Vec<Param> {
    let mut out = vec![Param {
        name: format!("{prefix}.weight"),
        var: weight.clone(),
        kind: ParamKind::Weight,
    }];
    if let Some(b) = bias {
        out.push(Param {
            name: format!("{prefix}.bias"),
            var: b.clone(),
            kind: ParamKind::Bias,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testutil::{check_grad, pseudo_random};
    use candle_core::{DType, Device};

    #[test]
    fn expand_channels_values_and_gradient() -> Result<()> {
        let v = Var::from_tensor(&pseudo_random(&[3], 1)?)?;
        for (n, h, w) in [(2, 2, 3), (1, 1, 1), (3, 1, 1), (1, 2, 2)] {
            let ours = expand_channels(v.as_tensor(), n, h, w)?;
            let want = v
                .as_tensor()
                .reshape((1, 3, 1, 1))?
                .broadcast_as((n, 3, h, w))?;
            assert_eq!(ours.dims(), &[n, 3, h, w]);
            let d: f64 = ours.sub(&want)?.abs()?.max_all()?.to_scalar()?;
            assert_eq!(d, 0.0);
            let r = pseudo_random(&[n, 3, h, w], 2)?;
            let loss = || -> Result<Tensor> {
                Ok(expand_channels(v.as_tensor(), n, h, w)?
                    .mul(&r)?
                    .sum_all()?)
            };
            check_grad("expand_channels", &loss, &v, 3)?;
        }
        Ok(())
    }

    #[test]
    fn depthwise_gradients_match_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        let mut init = Init::with_dtype(3, &dev, DType::F64);
        for stride in [1, 2] {
            let conv = Conv2d::new(&mut init, "dw", 3, 3, 3, stride, 1, 3, false)?;
            let x = Var::from_tensor(&pseudo_random(&[2, 3, 5, 5], 4)?)?;
            let out = (5 - 1) / stride + 1;
            let r = pseudo_random(&[2, 3, out, out], 5)?;
            let loss =
                || -> Result<Tensor> { Ok(conv.forward(x.as_tensor())?.mul(&r)?.sum_all()?) };
            check_grad("depthwise x", &loss, &x, 150)?;
            check_grad("depthwise weight", &loss, &conv.params()[0].var, 27)?;
        }
        Ok(())
    }
}
