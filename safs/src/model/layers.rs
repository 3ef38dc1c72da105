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
        let y = x.conv2d(
            self.weight.as_tensor(),
            self.padding,
            self.stride,
            1,
            self.groups,
        )?;
        match &self.bias {
            Some(b) => Ok(y.broadcast_add(&b.as_tensor().reshape((1, (), 1, 1))?)?),
            None => Ok(y),
        }
    }

    /// The layer's parameters, weight first.
    pub fn params(&self) -> Vec<Param> {
        named(&self.name, &self.weight, self.bias.as_ref())
    }
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
