//! Conv and linear layers whose parameters are seeded `Var`s with explicit names.

use candle_core::{Tensor, Var};

use super::{Init, Param, ParamKind};
use crate::Result;

/// A 2-D convolution with bias, PyTorch's `nn.Conv2d` semantics.
#[derive(Clone, Debug)]
pub struct Conv2d {
    name: String,
    weight: Var,
    bias: Option<Var>,
    stride: usize,
    padding: usize,
    groups: usize,
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
        let y = if self.groups > 1 && w.dim(1)? == 1 && w.dim(0)? == self.groups {
            depthwise_conv2d(x, w, self.stride, self.padding)?
        } else {
            x.conv2d(w, self.padding, self.stride, 1, self.groups)?
        };
        match &self.bias {
            Some(b) => {
                let (n, _, h, w) = y.dims4()?;
                Ok(y.add(&expand_channels(b.as_tensor(), n, h, w)?)?)
            }
            None => Ok(y),
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

/// Depthwise convolution (groups = channels, one filter per channel) of an (N, C, H, W)
/// batch with a (C, 1, k, k) weight, as a sum of k*k shifted, channel-scaled views.
///
/// Same result as `conv2d` with `groups = C`, which Candle runs as C separate convolutions
/// (very slow on the CPU); this form is differentiable with ordinary tensor ops.
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let (n, c, h, wd) = x.dims4()?;
    let (wc, one, kh, kw) = w.dims4()?;
    if wc != c || one != 1 || stride == 0 || h + 2 * padding < kh || wd + 2 * padding < kw {
        return Err(crate::Error::Config(format!(
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

/// A fully connected layer, PyTorch's `nn.Linear` semantics (y = x W^T + b).
#[derive(Clone, Debug)]
pub struct Linear {
    name: String,
    weight: Var,
    bias: Var,
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
    fn depthwise_matches_grouped_conv() -> Result<()> {
        for (h, w, k, stride, padding) in [
            (5, 5, 3, 1, 1),
            (4, 6, 3, 2, 1),
            (5, 7, 3, 2, 1),
            (1, 1, 3, 2, 1),
            (2, 2, 3, 2, 1),
            (6, 6, 5, 2, 2),
            (7, 5, 3, 3, 0),
            (4, 4, 1, 1, 0),
        ] {
            let x = pseudo_random(&[2, 3, h, w], 1)?;
            let wt = pseudo_random(&[3, 1, k, k], 2)?;
            let ours = depthwise_conv2d(&x, &wt, stride, padding)?;
            let stock = x.conv2d(&wt, padding, stride, 1, 3)?;
            assert_eq!(
                ours.dims(),
                stock.dims(),
                "{h}x{w} k{k} s{stride} p{padding}"
            );
            let d: f64 = ours.sub(&stock)?.abs()?.max_all()?.to_scalar()?;
            assert!(d < 1e-12, "{h}x{w} k{k} s{stride} p{padding}: {d}");
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
