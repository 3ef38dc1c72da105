//! Per-layer sparsity of a model's prunable weights.

use serde::{Deserialize, Serialize};

use crate::model::Network;
use crate::Result;

/// Sparsity of one prunable weight.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSparsity {
    /// Weight name, e.g. `fc1.weight`.
    pub name: String,
    /// Number of entries.
    pub total: usize,
    /// Number of entries exactly zero.
    pub zeros: usize,
}

impl LayerSparsity {
    /// Fraction of entries that are zero.
    pub fn sparsity(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.zeros as f64 / self.total as f64
        }
    }
}

/// Counts the exact zeros of every prunable weight (what is really zero, not the masks).
pub fn sparsity_report(model: &dyn Network) -> Result<Vec<LayerSparsity>> {
    model
        .prunable()
        .into_iter()
        .map(|p| {
            let nonzero = p
                .var
                .as_tensor()
                .ne(0f32)?
                .to_dtype(candle_core::DType::F64)?
                .sum_all()?
                .to_scalar::<f64>()?;
            let total = p.var.elem_count();
            Ok(LayerSparsity {
                name: p.name,
                total,
                zeros: total - nonzero as usize,
            })
        })
        .collect()
}
