//! Networks with activation slots and prunable weights.
//!
//! Every model implements [`Network`]: a forward pass with a train flag, its activation
//! slots (the operator plan Stage 1 searches over), its named parameters, and which of
//! them magnitude pruning may touch.

mod init;
mod layers;
mod lenet5;
mod pool;

use std::fmt;
use std::str::FromStr;

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::activation::{Activation, ActivationPlan, Op};
use crate::{Error, Result};

pub use init::Init;
pub use layers::{Conv2d, Linear};
pub use lenet5::LeNet5;
pub use pool::max_pool2d;

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
pub trait Network: Send {
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

    /// Every saved tensor by name: parameters, buffers and `act.{i}.alpha|beta`.
    fn state(&self) -> Result<Vec<(String, Tensor)>> {
        let mut out: Vec<(String, Tensor)> = self
            .parameters()
            .into_iter()
            .map(|p| (p.name, p.var.as_tensor().clone()))
            .collect();
        out.extend(
            self.buffers()
                .into_iter()
                .map(|(n, v)| (n, v.as_tensor().clone())),
        );
        for (i, slot) in self.activations().iter().enumerate() {
            out.push((
                format!("act.{i}.alpha"),
                slot.alpha_var().as_tensor().clone(),
            ));
            out.push((format!("act.{i}.beta"), slot.beta_var().as_tensor().clone()));
        }
        Ok(out)
    }
}

/// The models this crate builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// LeNet-5 for 28x28 grey images.
    Lenet5,
}

impl ModelKind {
    /// Every model kind.
    pub const ALL: [ModelKind; 1] = [ModelKind::Lenet5];

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Lenet5 => "lenet5",
        }
    }

    /// The activation the architecture uses by default (ReLU, swish for EfficientNet).
    pub fn default_op(self) -> Op {
        match self {
            ModelKind::Lenet5 => Op::Relu,
        }
    }

    /// Builds the model with seeded initial weights.
    pub fn build(self, num_classes: usize, seed: u64, device: &Device) -> Result<Box<dyn Network>> {
        match self {
            ModelKind::Lenet5 => Ok(Box::new(LeNet5::new(num_classes, seed, device)?)),
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ModelKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| k.name() == lower || (lower == "lenet-5" && *k == ModelKind::Lenet5))
            .ok_or_else(|| {
                let valid: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                Error::Config(format!("unknown model '{s}'; valid: {}", valid.join(", ")))
            })
    }
}
