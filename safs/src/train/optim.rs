//! Optimisers over Candle [`Var`]s that reproduce PyTorch's update rules exactly.
//!
//! * SGD follows `torch.optim.SGD` (<https://pytorch.org/docs/stable/generated/torch.optim.SGD.html>)
//!   with dampening 0: L2 weight decay is added to the gradient, the momentum buffer starts as
//!   the first gradient, and Nesterov uses `g + momentum * buf`.
//! * Adam follows `torch.optim.Adam` (<https://pytorch.org/docs/stable/generated/torch.optim.Adam.html>)
//!   (L2 weight decay added to the gradient, bias-corrected moments, `amsgrad = false`).
//! * AdamW follows `torch.optim.AdamW` (<https://pytorch.org/docs/stable/generated/torch.optim.AdamW.html>)
//!   (decoupled weight decay `p *= 1 - lr * wd` before the Adam step).
//! * TAdam follows Algorithm 1 of Ilboudo et al. 2020 (<https://arxiv.org/abs/2003.00179>), the
//!   Student-t first moment; see [`super::tadam`] for the update and the `tmomentum` variant the
//!   SAFS authors ran.
//! * Fromage follows Bernstein et al. 2020 (<https://arxiv.org/abs/2002.03432>), a step relative
//!   to each tensor's norm; see [`super::fromage`].
//!
//! All arithmetic is done with tensor ops in the parameter's own dtype and on its device; the
//! new value is written with [`Var::set`], so updates never enter the autograd graph.
//!
//! ```toml
//! [optimizer]
//! name = "sgd"
//! lr = 0.1
//! momentum = 0.9
//! nesterov = true
//! weight_decay = 5e-4
//! ```

use std::collections::HashSet;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

fn default_momentum() -> f64 {
    0.9
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}
fn default_eps() -> f64 {
    1e-8
}
fn default_adamw_weight_decay() -> f64 {
    0.01
}

/// Which optimiser to use and its hyper-parameters (the `[optimizer]` table of an experiment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// `torch.optim.SGD` with dampening 0.
    Sgd {
        /// Learning rate.
        lr: f64,
        /// Momentum factor in `[0, 1)`; 0 disables the momentum buffer.
        #[serde(default = "default_momentum")]
        momentum: f64,
        /// Nesterov momentum (requires `momentum > 0`).
        #[serde(default)]
        nesterov: bool,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
    },
    /// `torch.optim.Adam` (L2 weight decay added to the gradient).
    Adam {
        /// Learning rate.
        lr: f64,
        /// Decay of the first-moment estimate.
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Decay of the second-moment estimate.
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Term added to the denominator for stability.
        #[serde(default = "default_eps")]
        eps: f64,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
    },
    /// `torch.optim.AdamW` (decoupled weight decay).
    AdamW {
        /// Learning rate.
        lr: f64,
        /// Decay of the first-moment estimate.
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Decay of the second-moment estimate.
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Term added to the denominator for stability.
        #[serde(default = "default_eps")]
        eps: f64,
        /// Decoupled weight decay coefficient (`p *= 1 - lr * weight_decay`).
        #[serde(default = "default_adamw_weight_decay")]
        weight_decay: f64,
    },
    /// TAdam (Ilboudo et al. 2020): Adam whose first moment weights each gradient by a
    /// Student-t likelihood, so outlying gradients move it less.
    Tadam {
        /// Learning rate.
        lr: f64,
        /// Decay of the first-moment estimate.
        #[serde(default = "default_beta1")]
        beta1: f64,
        /// Decay of the second-moment estimate.
        #[serde(default = "default_beta2")]
        beta2: f64,
        /// Term added to the denominator for stability.
        #[serde(default = "default_eps")]
        eps: f64,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
        /// Degrees of freedom as a multiple of the tensor's size (`nu = dof_scale * d`).
        #[serde(default = "default_dof_scale")]
        dof_scale: f64,
        /// The paper's Algorithm 1 or the `tmomentum` 1.0.1 package the SAFS authors used.
        #[serde(default)]
        variant: TadamVariant,
    },
    /// Fromage (Bernstein et al. 2020): each tensor moves by `lr` relative to its own norm.
    Fromage {
        /// Learning rate (relative step size).
        lr: f64,
        /// Keep each tensor's norm within `p_bound` times its initial norm.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        p_bound: Option<f64>,
    },
}

fn default_dof_scale() -> f64 {
    1.0
}

/// Which published form of TAdam's update to follow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TadamVariant {
    /// Algorithm 1 of the paper (and its authors' code): `W = (2 beta1 - 1) / beta1 * W + w`,
    /// step `lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)`.
    #[default]
    Paper,
    /// The `tmomentum` 1.0.1 package: `W = beta1 * (W + w)`, step as PyTorch's Adam
    /// (`lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`).
    Tmomentum,
}

fn check(
    ok: bool,
    opt: &str,
    field: &str,
    value: impl std::fmt::Display,
    want: &str,
) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "optimizer {opt}: {field} = {value} is invalid; it must be {want}"
        )))
    }
}

impl OptimizerConfig {
    /// SGD with the given learning rate and the defaults (momentum 0.9, no Nesterov, no decay).
    pub fn sgd(lr: f64) -> Self {
        OptimizerConfig::Sgd {
            lr,
            momentum: default_momentum(),
            nesterov: false,
            weight_decay: 0.0,
        }
    }

    /// Adam with the given learning rate and PyTorch's defaults.
    pub fn adam(lr: f64) -> Self {
        OptimizerConfig::Adam {
            lr,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: 0.0,
        }
    }

    /// AdamW with the given learning rate and PyTorch's defaults (weight decay 0.01).
    pub fn adamw(lr: f64) -> Self {
        OptimizerConfig::AdamW {
            lr,
            beta1: default_beta1(),
            beta2: default_beta2(),
            eps: default_eps(),
            weight_decay: default_adamw_weight_decay(),
        }
    }

    /// The optimiser's name as written in TOML (`sgd`, `adam`, `adamw`, `tadam`, `fromage`).
    pub fn name(&self) -> &'static str {
        match self {
            OptimizerConfig::Sgd { .. } => "sgd",
            OptimizerConfig::Adam { .. } => "adam",
            OptimizerConfig::AdamW { .. } => "adamw",
            OptimizerConfig::Tadam { .. } => "tadam",
            OptimizerConfig::Fromage { .. } => "fromage",
        }
    }

    /// The (initial) learning rate.
    pub fn lr(&self) -> f64 {
        match *self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::AdamW { lr, .. }
            | OptimizerConfig::Tadam { lr, .. }
            | OptimizerConfig::Fromage { lr, .. } => lr,
        }
    }

    /// Replaces the (initial) learning rate.
    pub fn set_lr(&mut self, new_lr: f64) {
        match self {
            OptimizerConfig::Sgd { lr, .. }
            | OptimizerConfig::Adam { lr, .. }
            | OptimizerConfig::AdamW { lr, .. }
            | OptimizerConfig::Tadam { lr, .. }
            | OptimizerConfig::Fromage { lr, .. } => *lr = new_lr,
        }
    }

    /// The weight-decay coefficient (L2 for SGD/Adam/TAdam, decoupled for AdamW, none for
    /// Fromage).
    pub fn weight_decay(&self) -> f64 {
        match *self {
            OptimizerConfig::Sgd { weight_decay, .. }
            | OptimizerConfig::Adam { weight_decay, .. }
            | OptimizerConfig::AdamW { weight_decay, .. }
            | OptimizerConfig::Tadam { weight_decay, .. } => weight_decay,
            OptimizerConfig::Fromage { .. } => 0.0,
        }
    }

    /// Replaces the weight-decay coefficient (Fromage has none and is left unchanged).
    pub fn set_weight_decay(&mut self, wd: f64) {
        match self {
            OptimizerConfig::Sgd { weight_decay, .. }
            | OptimizerConfig::Adam { weight_decay, .. }
            | OptimizerConfig::AdamW { weight_decay, .. }
            | OptimizerConfig::Tadam { weight_decay, .. } => *weight_decay = wd,
            OptimizerConfig::Fromage { .. } => {}
        }
    }

    /// Checks every hyper-parameter's range; the error names the field and its value.
    pub fn validate(&self) -> Result<()> {
        let name = self.name();
        let lr = self.lr();
        check(lr.is_finite() && lr > 0.0, name, "lr", lr, "finite and > 0")?;
        let wd = self.weight_decay();
        check(
            wd.is_finite() && wd >= 0.0,
            name,
            "weight_decay",
            wd,
            "finite and >= 0",
        )?;
        match *self {
            OptimizerConfig::Sgd {
                momentum, nesterov, ..
            } => {
                check(
                    (0.0..1.0).contains(&momentum),
                    name,
                    "momentum",
                    momentum,
                    "in [0, 1)",
                )?;
                check(
                    !nesterov || momentum > 0.0,
                    name,
                    "momentum",
                    momentum,
                    "> 0 when nesterov = true",
                )?;
            }
            OptimizerConfig::Adam {
                beta1, beta2, eps, ..
            }
            | OptimizerConfig::AdamW {
                beta1, beta2, eps, ..
            }
            | OptimizerConfig::Tadam {
                beta1, beta2, eps, ..
            } => {
                check(
                    (0.0..1.0).contains(&beta1),
                    name,
                    "beta1",
                    beta1,
                    "in [0, 1)",
                )?;
                check(
                    (0.0..1.0).contains(&beta2),
                    name,
                    "beta2",
                    beta2,
                    "in [0, 1)",
                )?;
                check(
                    eps.is_finite() && eps > 0.0,
                    name,
                    "eps",
                    eps,
                    "finite and > 0",
                )?;
                if let OptimizerConfig::Tadam { dof_scale, .. } = *self {
                    check(
                        dof_scale > 0.0 && !dof_scale.is_nan(),
                        name,
                        "dof_scale",
                        dof_scale,
                        "> 0 (inf gives Adam's first moment)",
                    )?;
                }
            }
            OptimizerConfig::Fromage { p_bound, .. } => {
                if let Some(b) = p_bound {
                    check(
                        b.is_finite() && b > 0.0,
                        name,
                        "p_bound",
                        b,
                        "finite and > 0",
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Builds an optimiser in which every var is subject to weight decay.
    pub fn build(&self, vars: Vec<Var>) -> Result<Optimizer> {
        self.build_with_groups(vars, Vec::new())
    }

    /// Builds an optimiser with two parameter groups: `decay` gets weight decay, `no_decay`
    /// (biases, activation scales) does not. A var may appear only once across both groups.
    pub fn build_with_groups(&self, decay: Vec<Var>, no_decay: Vec<Var>) -> Result<Optimizer> {
        self.validate()?;
        let mut seen = HashSet::new();
        let mut params = Vec::with_capacity(decay.len() + no_decay.len());
        let tagged = decay
            .into_iter()
            .map(|v| (v, true))
            .chain(no_decay.into_iter().map(|v| (v, false)));
        for (i, (var, decay)) in tagged.enumerate() {
            if !var.dtype().is_float() {
                return Err(Error::Config(format!(
                    "optimizer {}: parameter #{i} (shape {:?}) has non-float dtype {:?}",
                    self.name(),
                    var.shape(),
                    var.dtype()
                )));
            }
            if !seen.insert(var.id()) {
                return Err(Error::Config(format!(
                    "optimizer {}: parameter #{i} (shape {:?}) was given twice",
                    self.name(),
                    var.shape()
                )));
            }
            params.push(Param {
                var,
                decay,
                step: 0,
                buf1: None,
                buf2: None,
                scalar: None,
            });
        }
        let kind = match *self {
            OptimizerConfig::Sgd {
                momentum, nesterov, ..
            } => Kind::Sgd { momentum, nesterov },
            OptimizerConfig::Adam {
                beta1, beta2, eps, ..
            } => Kind::Adam {
                beta1,
                beta2,
                eps,
                decoupled: false,
            },
            OptimizerConfig::AdamW {
                beta1, beta2, eps, ..
            } => Kind::Adam {
                beta1,
                beta2,
                eps,
                decoupled: true,
            },
            OptimizerConfig::Tadam {
                beta1,
                beta2,
                eps,
                dof_scale,
                variant,
                ..
            } => Kind::Tadam(super::tadam::Tadam {
                beta1,
                beta2,
                eps,
                dof_scale,
                variant,
            }),
            OptimizerConfig::Fromage { p_bound, .. } => Kind::Fromage { p_bound },
        };
        Ok(Optimizer {
            config: self.clone(),
            kind,
            lr: self.lr(),
            weight_decay: self.weight_decay(),
            params,
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Sgd {
        momentum: f64,
        nesterov: bool,
    },
    Adam {
        beta1: f64,
        beta2: f64,
        eps: f64,
        decoupled: bool,
    },
    Tadam(super::tadam::Tadam),
    Fromage {
        p_bound: Option<f64>,
    },
}

/// One parameter and its optimiser state (PyTorch keeps state, incl. `step`, per parameter).
#[derive(Debug)]
pub(super) struct Param {
    pub(super) var: Var,
    decay: bool,
    /// Number of updates this parameter has received (Adam's bias correction).
    pub(super) step: u64,
    /// SGD momentum buffer / Adam `exp_avg`.
    pub(super) buf1: Option<Tensor>,
    /// Adam `exp_avg_sq`.
    pub(super) buf2: Option<Tensor>,
    /// A scalar of state: TAdam's weight sum `W`, Fromage's norm bound.
    pub(super) scalar: Option<f64>,
}

/// One parameter's optimiser state, as saved between epochs ([`super::resume`]).
#[derive(Clone, Debug)]
pub(super) struct ParamState {
    pub(super) step: u64,
    pub(super) scalar: Option<f64>,
    pub(super) buf1: Option<Tensor>,
    pub(super) buf2: Option<Tensor>,
}

/// A stateful optimiser built by [`OptimizerConfig::build`].
#[derive(Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    kind: Kind,
    lr: f64,
    weight_decay: f64,
    params: Vec<Param>,
}

impl Optimizer {
    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate used by the following steps (e.g. from a [`super::Scheduler`]).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The configuration this optimiser was built from (its `lr` is the initial one).
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// All optimised vars, decayed group first.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.params.iter().map(|p| &p.var)
    }

    /// Every parameter's state in order: step count, scalar, and its buffers (for
    /// [`super::resume`]).
    pub(super) fn export_state(&self) -> Vec<ParamState> {
        self.params
            .iter()
            .map(|p| ParamState {
                step: p.step,
                scalar: p.scalar,
                buf1: p.buf1.clone(),
                buf2: p.buf2.clone(),
            })
            .collect()
    }

    /// Puts back what [`Optimizer::export_state`] gave, checking count, shapes and dtypes.
    pub(super) fn import_state(&mut self, state: Vec<ParamState>) -> Result<()> {
        if state.len() != self.params.len() {
            return Err(Error::Config(format!(
                "saved optimiser state has {} parameters, the model {}",
                state.len(),
                self.params.len()
            )));
        }
        for (i, (p, st)) in self.params.iter_mut().zip(state).enumerate() {
            for b in [&st.buf1, &st.buf2].into_iter().flatten() {
                if b.shape() != p.var.shape() {
                    return Err(Error::Config(format!(
                        "saved optimiser buffer {i} has shape {:?}, the parameter {:?}",
                        b.dims(),
                        p.var.dims()
                    )));
                }
                if b.dtype() != p.var.dtype() {
                    return Err(Error::Config(format!(
                        "saved optimiser buffer {i} is {:?}, the parameter {:?}",
                        b.dtype(),
                        p.var.dtype()
                    )));
                }
            }
            p.step = st.step;
            p.scalar = st.scalar;
            p.buf1 = st.buf1;
            p.buf2 = st.buf2;
        }
        Ok(())
    }

    /// Forgets momentum / moment estimates and step counts (e.g. before fine-tuning).
    pub fn reset_state(&mut self) {
        for p in &mut self.params {
            p.step = 0;
            p.buf1 = None;
            p.buf2 = None;
            p.scalar = None;
        }
    }

    /// Computes the gradients of `loss` and applies one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// Applies one update to every var that has a gradient in `grads`; others are skipped
    /// (their state is left untouched, as in PyTorch).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        let lr = self.lr;
        for param in &mut self.params {
            let Some(grad) = grads.get(param.var.as_tensor()) else {
                continue;
            };
            if param.var.elem_count() == 0 {
                continue;
            }
            let wd = if param.decay { self.weight_decay } else { 0.0 };
            let grad = grad.detach();
            let new = match self.kind {
                Kind::Sgd { momentum, nesterov } => {
                    sgd_update(param, &grad, lr, wd, momentum, nesterov)?
                }
                Kind::Adam {
                    beta1,
                    beta2,
                    eps,
                    decoupled,
                } => adam_update(param, &grad, lr, wd, beta1, beta2, eps, decoupled)?,
                Kind::Tadam(t) => t.update(param, &grad, lr, wd)?,
                Kind::Fromage { p_bound } => super::fromage::update(param, &grad, lr, p_bound)?,
            };
            param.var.set(&new)?;
        }
        Ok(())
    }
}

/// `torch.optim.SGD` (dampening 0, maximize false):
/// ```text
/// g = g + wd * p                          if wd != 0
/// buf = g (first step) | momentum * buf + g
/// g = g + momentum * buf (nesterov) | buf  if momentum != 0
/// p = p - lr * g
/// ```
fn sgd_update(
    param: &mut Param,
    grad: &Tensor,
    lr: f64,
    wd: f64,
    momentum: f64,
    nesterov: bool,
) -> Result<Tensor> {
    let p = param.var.as_detached_tensor();
    let h = crate::kernels::SgdStep {
        lr,
        weight_decay: wd,
        momentum,
        nesterov,
    };
    if let Some((new, buf)) = crate::kernels::sgd_step(&p, grad, param.buf1.as_ref(), h)? {
        param.buf1 = buf;
        param.step += 1;
        return Ok(new);
    }
    let mut g = grad.clone();
    if wd != 0.0 {
        g = (g + p.affine(wd, 0.0)?)?;
    }
    if momentum != 0.0 {
        let buf = match param.buf1.take() {
            None => g.copy()?,
            Some(buf) => (buf.affine(momentum, 0.0)? + &g)?,
        };
        g = if nesterov {
            (g + buf.affine(momentum, 0.0)?)?
        } else {
            buf.clone()
        };
        param.buf1 = Some(buf);
    }
    param.step += 1;
    Ok((p - g.affine(lr, 0.0)?)?)
}

/// `torch.optim.Adam` / `torch.optim.AdamW` (amsgrad false, maximize false):
/// ```text
/// t += 1
/// p = p * (1 - lr * wd)                    AdamW
/// g = g + wd * p                           Adam, if wd != 0
/// m = beta1 * m + (1 - beta1) * g
/// v = beta2 * v + (1 - beta2) * g * g
/// p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// ```
#[allow(clippy::too_many_arguments)]
fn adam_update(
    param: &mut Param,
    grad: &Tensor,
    lr: f64,
    wd: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    decoupled: bool,
) -> Result<Tensor> {
    let mut p = param.var.as_detached_tensor();
    let mut g = grad.clone();
    param.step += 1;
    if wd != 0.0 {
        if decoupled {
            p = p.affine(1.0 - lr * wd, 0.0)?;
        } else {
            g = (g + p.affine(wd, 0.0)?)?;
        }
    }
    let m = match param.buf1.take() {
        None => g.affine(1.0 - beta1, 0.0)?,
        Some(m) => (m.affine(beta1, 0.0)? + g.affine(1.0 - beta1, 0.0)?)?,
    };
    let g2 = g.sqr()?.affine(1.0 - beta2, 0.0)?;
    let v = match param.buf2.take() {
        None => g2,
        Some(v) => (v.affine(beta2, 0.0)? + g2)?,
    };
    let t = param.step as f64;
    let bias_correction1 = 1.0 - beta1.powf(t);
    let bias_correction2 = 1.0 - beta2.powf(t);
    let step_size = lr / bias_correction1;
    let denom = v.sqrt()?.affine(1.0 / bias_correction2.sqrt(), eps)?;
    let update = (&m / denom)?.affine(step_size, 0.0)?;
    param.buf1 = Some(m);
    param.buf2 = Some(v);
    Ok((p - update)?)
}

/// The parameter values after each of `grads` applied in turn by `cfg`'s optimiser (tests of
/// the update rules in this module and its siblings).
#[cfg(test)]
pub(crate) fn trajectory(cfg: &OptimizerConfig, p0: &[f64], grads: &[&[f64]]) -> Vec<Vec<f64>> {
    let dev = candle_core::Device::Cpu;
    let v = Var::from_slice(p0, p0.len(), &dev).unwrap();
    let mut opt = cfg.build(vec![v.clone()]).unwrap();
    grads
        .iter()
        .map(|g| {
            let mut store = GradStore::default();
            store.insert(v.as_tensor(), Tensor::from_slice(g, g.len(), &dev).unwrap());
            opt.step(&store).unwrap();
            v.as_tensor().to_vec1::<f64>().unwrap()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    const P0: [f64; 3] = [1.0, -2.0, 0.5];
    const GRADS: [[f64; 3]; 3] = [[0.3, -0.1, 2.0], [-0.5, 0.25, 1.5], [0.1, 0.7, -0.2]];

    fn var(values: &[f64]) -> Var {
        Var::from_slice(values, values.len(), &Device::Cpu).unwrap()
    }

    fn grads_for(v: &Var, g: &[f64]) -> GradStore {
        let mut store = GradStore::default();
        let t = Tensor::from_slice(g, g.len(), &Device::Cpu).unwrap();
        store.insert(v.as_tensor(), t);
        store
    }

    fn values(v: &Var) -> Vec<f64> {
        v.as_tensor().to_vec1::<f64>().unwrap()
    }

    fn assert_close(got: &[f64], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!((a - b).abs() < 1e-12, "{what}[{i}]: got {a}, want {b}");
        }
    }

    /// torch.optim.SGD pseudo-code, element-wise in plain f64.
    fn reference_sgd(lr: f64, momentum: f64, nesterov: bool, wd: f64) -> Vec<Vec<f64>> {
        let mut p = P0.to_vec();
        let mut buf = [0.0; 3];
        let mut out = Vec::new();
        for (t, grad) in GRADS.iter().enumerate() {
            for i in 0..3 {
                let mut g = grad[i];
                if wd != 0.0 {
                    g += wd * p[i];
                }
                if momentum != 0.0 {
                    buf[i] = if t == 0 { g } else { momentum * buf[i] + g };
                    g = if nesterov {
                        g + momentum * buf[i]
                    } else {
                        buf[i]
                    };
                }
                p[i] -= lr * g;
            }
            out.push(p.clone());
        }
        out
    }

    /// torch.optim.Adam / AdamW pseudo-code, element-wise in plain f64.
    fn reference_adam(
        lr: f64,
        b1: f64,
        b2: f64,
        eps: f64,
        wd: f64,
        decoupled: bool,
    ) -> Vec<Vec<f64>> {
        let mut p = P0.to_vec();
        let mut m = [0.0; 3];
        let mut v = [0.0; 3];
        let mut out = Vec::new();
        for (t, grad) in GRADS.iter().enumerate() {
            let t = (t + 1) as i32;
            for i in 0..3 {
                let mut g = grad[i];
                if decoupled {
                    p[i] *= 1.0 - lr * wd;
                } else if wd != 0.0 {
                    g += wd * p[i];
                }
                m[i] = b1 * m[i] + (1.0 - b1) * g;
                v[i] = b2 * v[i] + (1.0 - b2) * g * g;
                let m_hat = m[i] / (1.0 - b1.powi(t));
                let v_hat = v[i] / (1.0 - b2.powi(t));
                p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
            }
            out.push(p.clone());
        }
        out
    }

    fn run(config: &OptimizerConfig) -> Vec<Vec<f64>> {
        let v = var(&P0);
        let mut opt = config.build(vec![v.clone()]).unwrap();
        GRADS
            .iter()
            .map(|g| {
                opt.step(&grads_for(&v, g)).unwrap();
                values(&v)
            })
            .collect()
    }

    fn compare(config: OptimizerConfig, want: Vec<Vec<f64>>) {
        let got = run(&config);
        for (step, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_close(g, w, &format!("{config:?} step {}", step + 1));
        }
    }

    fn sgd(lr: f64, momentum: f64, nesterov: bool, weight_decay: f64) -> OptimizerConfig {
        OptimizerConfig::Sgd {
            lr,
            momentum,
            nesterov,
            weight_decay,
        }
    }

    #[test]
    fn sgd_plain_matches_pytorch() {
        compare(
            sgd(0.1, 0.0, false, 0.0),
            reference_sgd(0.1, 0.0, false, 0.0),
        );
        // Hand-checked first step: p - lr * g.
        let got = run(&sgd(0.1, 0.0, false, 0.0));
        assert_close(
            &got[0],
            &[1.0 - 0.03, -2.0 + 0.01, 0.5 - 0.2],
            "plain step 1",
        );
    }

    #[test]
    fn sgd_momentum_matches_pytorch() {
        compare(
            sgd(0.1, 0.9, false, 0.0),
            reference_sgd(0.1, 0.9, false, 0.0),
        );
        // Step 2 by hand for element 0: buf = 0.9 * 0.3 - 0.5 = -0.23.
        let got = run(&sgd(0.1, 0.9, false, 0.0));
        assert_close(&got[1][..1], &[1.0 - 0.03 + 0.023], "momentum step 2");
    }

    #[test]
    fn sgd_nesterov_matches_pytorch() {
        compare(
            sgd(0.05, 0.9, true, 0.0),
            reference_sgd(0.05, 0.9, true, 0.0),
        );
    }

    #[test]
    fn sgd_weight_decay_matches_pytorch() {
        compare(
            sgd(0.1, 0.0, false, 0.01),
            reference_sgd(0.1, 0.0, false, 0.01),
        );
        compare(
            sgd(0.1, 0.9, false, 5e-4),
            reference_sgd(0.1, 0.9, false, 5e-4),
        );
        compare(
            sgd(0.1, 0.9, true, 5e-2),
            reference_sgd(0.1, 0.9, true, 5e-2),
        );
    }

    #[test]
    fn adam_matches_pytorch() {
        compare(
            OptimizerConfig::adam(1e-3),
            reference_adam(1e-3, 0.9, 0.999, 1e-8, 0.0, false),
        );
        let cfg = OptimizerConfig::Adam {
            lr: 0.01,
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 0.1,
        };
        compare(cfg, reference_adam(0.01, 0.8, 0.99, 1e-6, 0.1, false));
        // First Adam step moves every element by ~lr * sign(g).
        let got = run(&OptimizerConfig::adam(1e-3));
        for (i, g) in GRADS[0].iter().enumerate() {
            assert!((P0[i] - got[0][i] - 1e-3 * g.signum()).abs() < 1e-8);
        }
    }

    #[test]
    fn adamw_matches_pytorch() {
        compare(
            OptimizerConfig::adamw(1e-3),
            reference_adam(1e-3, 0.9, 0.999, 1e-8, 0.01, true),
        );
        let cfg = OptimizerConfig::AdamW {
            lr: 0.05,
            beta1: 0.5,
            beta2: 0.9,
            eps: 1e-4,
            weight_decay: 0.2,
        };
        compare(cfg, reference_adam(0.05, 0.5, 0.9, 1e-4, 0.2, true));
    }

    #[test]
    fn no_decay_group_and_missing_grads() {
        let w = var(&P0);
        let b = var(&P0);
        let skipped = var(&P0);
        let cfg = sgd(0.1, 0.0, false, 0.5);
        let mut opt = cfg
            .build_with_groups(vec![w.clone(), skipped.clone()], vec![b.clone()])
            .unwrap();
        let g = [0.0, 0.0, 0.0];
        let mut store = grads_for(&w, &g);
        store.insert(b.as_tensor(), Tensor::new(&g, &Device::Cpu).unwrap());
        opt.step(&store).unwrap();
        // Decayed: p - lr * wd * p; no decay: unchanged; no gradient: unchanged.
        let want: Vec<f64> = P0.iter().map(|p| p - 0.1 * 0.5 * p).collect();
        assert_close(&values(&w), &want, "decay");
        assert_close(&values(&b), &P0, "no_decay");
        assert_close(&values(&skipped), &P0, "no grad");
        assert_eq!(opt.vars().count(), 3);
        // Giving a var twice is an error.
        let err = cfg.build_with_groups(vec![w.clone()], vec![w]).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn set_lr_changes_step_size() {
        let v = var(&P0);
        let mut opt = sgd(0.1, 0.0, false, 0.0).build(vec![v.clone()]).unwrap();
        opt.set_lr(0.01);
        assert_eq!(opt.lr(), 0.01);
        opt.step(&grads_for(&v, &[1.0, 1.0, 1.0])).unwrap();
        assert_close(&values(&v), &[0.99, -2.01, 0.49], "lr 0.01");
    }

    /// Minimises sum((p - target)^2) through autograd, in f32 like the models.
    fn minimise(cfg: OptimizerConfig, steps: usize) -> f32 {
        let dev = Device::Cpu;
        let target = Tensor::new(&[3.0f32, -1.0, 0.5, 2.0], &dev).unwrap();
        let p = Var::zeros(4, DType::F32, &dev).unwrap();
        let mut opt = cfg.build(vec![p.clone()]).unwrap();
        for _ in 0..steps {
            let loss = p
                .as_tensor()
                .sub(&target)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap();
            opt.backward_step(&loss).unwrap();
        }
        assert_eq!(p.dtype(), DType::F32);
        let loss = p
            .as_tensor()
            .sub(&target)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        loss.to_scalar::<f32>().unwrap()
    }

    #[test]
    fn quadratic_converges() {
        assert!(minimise(sgd(0.1, 0.0, false, 0.0), 200) < 1e-6);
        assert!(minimise(sgd(0.05, 0.9, false, 0.0), 300) < 1e-6);
        assert!(minimise(sgd(0.05, 0.9, true, 0.0), 300) < 1e-6);
        assert!(minimise(OptimizerConfig::adam(0.1), 500) < 1e-4);
        let adamw = OptimizerConfig::AdamW {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        assert!(minimise(adamw, 500) < 1e-4);
    }

    #[test]
    fn validate_rejects_bad_values() {
        let cases = [
            (sgd(0.0, 0.9, false, 0.0), "lr = 0"),
            (sgd(f64::NAN, 0.9, false, 0.0), "lr = NaN"),
            (sgd(0.1, 1.0, false, 0.0), "momentum = 1"),
            (sgd(0.1, -0.1, false, 0.0), "momentum = -0.1"),
            (sgd(0.1, 0.0, true, 0.0), "nesterov"),
            (sgd(0.1, 0.9, false, -1e-4), "weight_decay = -0.0001"),
            (
                OptimizerConfig::Adam {
                    lr: 1e-3,
                    beta1: 1.0,
                    beta2: 0.999,
                    eps: 1e-8,
                    weight_decay: 0.0,
                },
                "beta1 = 1",
            ),
            (
                OptimizerConfig::AdamW {
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: -0.5,
                    eps: 1e-8,
                    weight_decay: 0.0,
                },
                "beta2 = -0.5",
            ),
            (
                OptimizerConfig::Adam {
                    lr: 1e-3,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 0.0,
                    weight_decay: 0.0,
                },
                "eps = 0",
            ),
        ];
        for (cfg, needle) in cases {
            let err = cfg.validate().unwrap_err();
            assert!(matches!(err, Error::Config(_)));
            assert!(err.to_string().contains(needle), "{err} lacks '{needle}'");
            assert!(cfg.build(vec![var(&P0)]).is_err());
        }
        for cfg in [
            OptimizerConfig::sgd(0.1),
            OptimizerConfig::adam(1e-3),
            OptimizerConfig::adamw(1e-3),
        ] {
            cfg.validate().unwrap();
        }
        // Integer vars cannot be optimised.
        let ints = Var::zeros(3, DType::U32, &Device::Cpu).unwrap();
        assert!(OptimizerConfig::sgd(0.1).build(vec![ints]).is_err());
    }

    #[test]
    fn toml_round_trip_and_defaults() {
        let cfg: OptimizerConfig = toml::from_str("name = \"sgd\"\nlr = 0.1\n").unwrap();
        assert_eq!(cfg, OptimizerConfig::sgd(0.1));
        let cfg: OptimizerConfig = toml::from_str(
            "name = \"sgd\"\nlr = 1\nmomentum = 0.8\nnesterov = true\nweight_decay = 5e-4\n",
        )
        .unwrap();
        assert_eq!(cfg, sgd(1.0, 0.8, true, 5e-4));
        let cfg: OptimizerConfig = toml::from_str("name = \"adam\"\nlr = 1e-3\n").unwrap();
        assert_eq!(cfg, OptimizerConfig::adam(1e-3));
        let cfg: OptimizerConfig =
            toml::from_str("name = \"adamw\"\nlr = 1e-3\nbeta2 = 0.98\n").unwrap();
        assert_eq!(
            cfg,
            OptimizerConfig::AdamW {
                lr: 1e-3,
                beta1: 0.9,
                beta2: 0.98,
                eps: 1e-8,
                weight_decay: 0.01
            }
        );
        for cfg in [
            sgd(0.1, 0.9, true, 5e-4),
            OptimizerConfig::adam(3e-4),
            OptimizerConfig::adamw(1e-3),
        ] {
            let text = toml::to_string(&cfg).unwrap();
            let back: OptimizerConfig = toml::from_str(&text).unwrap();
            assert_eq!(back, cfg, "{text}");
        }
        // Typos and unknown optimisers are rejected.
        assert!(
            toml::from_str::<OptimizerConfig>("name = \"sgd\"\nlr = 0.1\nmomentun = 0.9\n")
                .is_err()
        );
        assert!(toml::from_str::<OptimizerConfig>("name = \"rmsprop\"\nlr = 0.1\n").is_err());
        assert!(toml::from_str::<OptimizerConfig>("name = \"sgd\"\n").is_err());
    }
}
