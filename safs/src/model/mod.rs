//! Networks with activation slots and prunable weights.
//!
//! Every model implements [`Network`]: a forward pass with a train flag, its activation
//! slots (the operator plan Stage 1 searches over), its named parameters, and which of
//! them magnitude pruning may touch.
//!
//! Models: [`LeNet5`] (MNIST), [`Vgg`] (VGG-11/VGG-16 with BatchNorm, CIFAR), [`ResNet18`]
//! (CIFAR) and [`EfficientNetB0`] (ImageNet-16, the SAFS reference's small-input variant),
//! built by [`ModelKind`]; the last three take a [`Scale`] (width, depth multipliers) for
//! cheap CPU budgets. Every parameter comes from a seeded [`Init`]; BatchNorm running
//! statistics are [`Network::buffers`], never trained.

mod batchnorm;
mod efficientnet;
mod init;
mod layers;
mod lenet5;
mod pool;
mod resnet;
#[cfg(test)]
pub(crate) mod testutil;
mod vgg;

use std::str::FromStr;

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::activation::{Activation, ActivationPlan, Op};
use crate::infer::{GraphBuilder, Value};
use crate::{Error, Result};

pub use crate::kernels::depthwise_conv2d;
pub use batchnorm::{BatchNorm2d, BN_EPS, BN_MOMENTUM};
pub use efficientnet::{EfficientNetB0, EFFICIENTNET_B0_CFG};
pub use init::Init;
pub use layers::{expand_channels, Conv2d, Linear};
pub use lenet5::LeNet5;
pub use pool::{global_avg_pool, max_pool2d};
pub use resnet::ResNet18;
pub use vgg::{Vgg, VggConfig};

/// What a parameter is, which decides pruning and weight decay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A conv or linear weight: prunable, decayed.
    Weight,
    /// A bias: never pruned, not decayed.
    Bias,
    /// A normalisation scale or shift: never pruned, not decayed.
    Norm,
}

/// A named trainable parameter.
#[derive(Clone, Debug)]
pub struct Param {
    /// Path of the parameter, e.g. `conv1.weight`.
    pub name: String,
    /// The variable itself.
    pub var: Var,
    /// Its role.
    pub kind: ParamKind,
}

/// A network SAFS can prune and whose activations it can search.
pub trait Network: Send + Sync {
    /// Short model name, e.g. `lenet5`.
    fn name(&self) -> &str;

    /// Logits for a batch; `train` selects training behaviour (BatchNorm, dropout).
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor>;

    /// The activation slots in forward order.
    fn activations(&self) -> &[Activation];

    /// The activation slots, mutable.
    fn activations_mut(&mut self) -> &mut [Activation];

    /// Trainable parameters (not the activation scales), in a fixed order.
    fn parameters(&self) -> Vec<Param>;

    /// Describes the network to the inference graph, from input `x` to the logits
    /// ([`crate::infer::InferenceGraph::build`]).
    fn build_inference(&self, g: &mut GraphBuilder, x: Value) -> Result<Value> {
        let _ = (g, x);
        Err(Error::Config(format!(
            "{} has no inference graph",
            self.name()
        )))
    }

    /// Saved but untrained state, e.g. BatchNorm running statistics.
    fn buffers(&self) -> Vec<(String, Var)> {
        Vec::new()
    }

    /// Number of activation slots.
    fn num_slots(&self) -> usize {
        self.activations().len()
    }

    /// The current operator of every slot.
    fn plan(&self) -> ActivationPlan {
        ActivationPlan(self.activations().iter().map(|a| a.op()).collect())
    }

    /// Sets every slot's operator; the plan must have one entry per slot.
    fn set_plan(&mut self, plan: &ActivationPlan) -> Result<()> {
        plan.check_len(self.num_slots(), self.name())?;
        for (slot, op) in self.activations_mut().iter_mut().zip(plan.ops()) {
            slot.set_op(*op);
        }
        Ok(())
    }

    /// Makes every slot's alpha and beta trainable (Stage 2) or frozen.
    fn set_scales_trainable(&mut self, trainable: bool) {
        for slot in self.activations_mut() {
            slot.set_trainable(trainable);
        }
    }

    /// The weights magnitude pruning may zero (conv and linear weights).
    fn prunable(&self) -> Vec<Param> {
        self.parameters()
            .into_iter()
            .filter(|p| p.kind == ParamKind::Weight)
            .collect()
    }

    /// Total number of trainable parameters (activation scales excluded).
    fn num_parameters(&self) -> usize {
        self.parameters().iter().map(|p| p.var.elem_count()).sum()
    }

    /// Every saved variable by name: parameters, buffers, `act.{i}.alpha|beta`, and
    /// `act.{i}.params` for slots whose operator has parameters of its own.
    fn state_vars(&self) -> Vec<(String, Var)> {
        let mut out: Vec<(String, Var)> = self
            .parameters()
            .into_iter()
            .map(|p| (p.name, p.var))
            .collect();
        out.extend(self.buffers());
        for (i, slot) in self.activations().iter().enumerate() {
            out.push((format!("act.{i}.alpha"), slot.alpha_var().clone()));
            out.push((format!("act.{i}.beta"), slot.beta_var().clone()));
            if slot.op().num_params() > 0 {
                out.push((format!("act.{i}.params"), slot.params_var().clone()));
            }
        }
        out
    }

    /// [`Network::state_vars`] as tensors (sharing storage with the variables).
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(self
            .state_vars()
            .into_iter()
            .map(|(n, v)| (n, v.as_tensor().clone()))
            .collect())
    }

    /// A copy of every state variable's value, for [`Network::restore`].
    fn snapshot(&self) -> Result<Vec<Tensor>> {
        self.state_vars()
            .iter()
            .map(|(_, v)| Ok(v.as_tensor().copy()?))
            .collect()
    }

    /// Puts back the values of a [`Network::snapshot`] taken with the same plan.
    fn restore(&self, snapshot: &[Tensor]) -> Result<()> {
        let vars = self.state_vars();
        if vars.len() != snapshot.len() {
            return Err(Error::Config(format!(
                "{}: a snapshot of {} tensors cannot restore {} (was the plan changed?)",
                self.name(),
                snapshot.len(),
                vars.len()
            )));
        }
        for ((_, v), t) in vars.iter().zip(snapshot) {
            v.set(t)?;
        }
        Ok(())
    }
}

/// Width and depth multipliers for cheaper variants of a model (1.0 = the paper's network).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scale {
    /// Channel multiplier: every width is scaled and rounded, at least 1.
    pub width: f64,
    /// Block-count multiplier (ResNet, EfficientNet): repeats scaled up, at least 1.
    pub depth: f64,
}

impl Default for Scale {
    fn default() -> Self {
        Self::FULL
    }
}

impl Scale {
    /// The unscaled architecture.
    pub const FULL: Scale = Scale {
        width: 1.0,
        depth: 1.0,
    };

    /// Width multiplier only.
    pub fn width(width: f64) -> Self {
        Self { width, depth: 1.0 }
    }

    /// Errors unless both multipliers are finite and positive.
    pub fn check(&self) -> Result<()> {
        for (what, v) in [("width", self.width), ("depth", self.depth)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::Config(format!(
                    "model {what} multiplier must be positive, got {v}"
                )));
            }
        }
        Ok(())
    }

    /// `channels` scaled by the width multiplier: `max(1, round(channels * width))`.
    pub fn channels(&self, channels: usize) -> usize {
        ((channels as f64 * self.width).round() as usize).max(1)
    }

    /// `repeats` scaled by the depth multiplier: `max(1, ceil(repeats * depth))`.
    pub fn repeats(&self, repeats: usize) -> usize {
        ((repeats as f64 * self.depth).ceil() as usize).max(1)
    }
}

/// The models this crate builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(strum::VariantArray, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "lowercase")]
pub enum ModelKind {
    /// LeNet-5 for 28x28 grey images.
    #[serde(alias = "lenet-5")]
    Lenet5,
    /// VGG-11 (configuration A) with BatchNorm for 32x32 images; what the SAFS code calls VGG-16.
    #[serde(alias = "vgg-11")]
    Vgg11,
    /// VGG-16 (configuration D) with BatchNorm for 32x32 images.
    #[serde(alias = "vgg-16")]
    Vgg16,
    /// ResNet-18 for 32x32 images (CIFAR stem).
    #[serde(alias = "resnet-18")]
    Resnet18,
    /// EfficientNet-B0 for small images, as the SAFS reference builds it.
    #[serde(rename = "efficientnet_b0", alias = "efficientnet-b0")]
    #[strum(serialize = "efficientnet_b0")]
    EfficientnetB0,
}

impl ModelKind {
    /// Every model kind.
    pub const ALL: &'static [ModelKind] = <Self as strum::VariantArray>::VARIANTS;

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The activation the architecture uses by default (ReLU, swish for EfficientNet).
    pub fn default_op(self) -> Op {
        match self {
            ModelKind::EfficientnetB0 => Op::Swish,
            _ => Op::Relu,
        }
    }

    /// Builds the model with seeded initial weights.
    pub fn build(self, num_classes: usize, seed: u64, device: &Device) -> Result<Box<dyn Network>> {
        self.build_with(num_classes, Scale::FULL, seed, device)
    }

    /// Builds the model with its channel widths scaled by `width` (LeNet-5 only at 1.0).
    pub fn build_scaled(
        self,
        num_classes: usize,
        width: f64,
        seed: u64,
        device: &Device,
    ) -> Result<Box<dyn Network>> {
        self.build_with(num_classes, Scale::width(width), seed, device)
    }

    /// Builds the model at `scale` (LeNet-5 only at full scale, VGG only at depth 1.0).
    pub fn build_with(
        self,
        num_classes: usize,
        scale: Scale,
        seed: u64,
        device: &Device,
    ) -> Result<Box<dyn Network>> {
        scale.check()?;
        Ok(match self {
            ModelKind::Lenet5 => {
                if scale != Scale::FULL {
                    return Err(Error::Config(format!(
                        "lenet5 has no width or depth option, got {scale:?}"
                    )));
                }
                Box::new(LeNet5::new(num_classes, seed, device)?)
            }
            ModelKind::Vgg11 => Box::new(Vgg::new(
                VggConfig::Vgg11,
                num_classes,
                scale,
                seed,
                device,
            )?),
            ModelKind::Vgg16 => Box::new(Vgg::new(
                VggConfig::Vgg16,
                num_classes,
                scale,
                seed,
                device,
            )?),
            ModelKind::Resnet18 => Box::new(ResNet18::new(num_classes, scale, seed, device)?),
            ModelKind::EfficientnetB0 => {
                Box::new(EfficientNetB0::new(num_classes, scale, seed, device)?)
            }
        })
    }
}

impl FromStr for ModelKind {
    type Err = Error;

    /// Case-insensitive; `-` and `_` are ignored (`VGG-16`, `resnet_18`, `efficientnet-b0`).
    fn from_str(s: &str) -> Result<Self> {
        let key = |t: &str| -> String {
            t.chars()
                .filter(|ch| *ch != '-' && *ch != '_')
                .flat_map(char::to_lowercase)
                .collect()
        };
        crate::util::parse_variant(s, key).ok_or_else(|| {
            let valid = crate::util::variant_names::<Self>();
            Error::Config(format!("unknown model '{s}'; valid: {valid}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_kind_names_parse_and_serde() {
        for &k in ModelKind::ALL {
            assert_eq!(k.name().parse::<ModelKind>().unwrap(), k);
            assert_eq!(k.to_string(), k.name());
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(serde_json::from_str::<ModelKind>(&json).unwrap(), k);
        }
        for (s, k) in [
            ("VGG-16", ModelKind::Vgg16),
            ("vgg-11", ModelKind::Vgg11),
            ("resnet-18", ModelKind::Resnet18),
            ("ResNet18", ModelKind::Resnet18),
            ("efficientnet-b0", ModelKind::EfficientnetB0),
            ("EfficientNetB0", ModelKind::EfficientnetB0),
            ("lenet-5", ModelKind::Lenet5),
        ] {
            assert_eq!(s.parse::<ModelKind>().unwrap(), k, "{s}");
        }
        assert_eq!(
            serde_json::from_str::<ModelKind>("\"efficientnet-b0\"").unwrap(),
            ModelKind::EfficientnetB0
        );
        let err = "vgg19".parse::<ModelKind>().unwrap_err().to_string();
        assert!(err.contains("efficientnet_b0"), "{err}");
        assert_eq!(ModelKind::EfficientnetB0.default_op(), Op::Swish);
        assert_eq!(ModelKind::Resnet18.default_op(), Op::Relu);
    }

    #[test]
    fn built_names_match_kinds_and_scale_is_checked() -> Result<()> {
        let dev = Device::Cpu;
        for &k in ModelKind::ALL {
            let width = if k == ModelKind::Lenet5 { 1.0 } else { 0.125 };
            let m = k.build_scaled(10, width, 0, &dev)?;
            assert_eq!(m.name(), k.name());
        }
        assert!(ModelKind::Lenet5.build_scaled(10, 0.5, 0, &dev).is_err());
        assert!(ModelKind::Resnet18.build_scaled(10, 0.0, 0, &dev).is_err());
        assert!(ModelKind::Resnet18
            .build_scaled(10, f64::NAN, 0, &dev)
            .is_err());
        let vgg_depth = Scale {
            width: 0.125,
            depth: 0.5,
        };
        assert!(ModelKind::Vgg16.build_with(10, vgg_depth, 0, &dev).is_err());
        Ok(())
    }

    #[test]
    fn scale_rounding() {
        let s = Scale {
            width: 0.25,
            depth: 0.5,
        };
        assert_eq!(s.channels(64), 16);
        assert_eq!(s.channels(3), 1);
        assert_eq!(s.channels(2), 1);
        assert_eq!(Scale::width(0.3).channels(10), 3);
        assert_eq!(s.repeats(1), 1);
        assert_eq!(s.repeats(3), 2);
        assert_eq!(s.repeats(4), 2);
        assert_eq!(Scale::FULL.repeats(4), 4);
    }
}
