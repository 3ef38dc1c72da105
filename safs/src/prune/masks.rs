//! Pruning masks: name -> 0/1 tensor, applied after every optimiser step.

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::model::Network;
use crate::{Error, Result};

/// One 0/1 mask per pruned weight, keyed by the weight's name.
#[derive(Clone, Debug, Default)]
pub struct Masks {
    map: BTreeMap<String, Tensor>,
}

impl Masks {
    /// Adds or replaces the mask of `name`.
    pub fn insert(&mut self, name: String, mask: Tensor) {
        self.map.insert(name, mask);
    }

    /// The mask of `name`, if pruned.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.map.get(name)
    }

    /// Masks in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Tensor)> {
        self.map.iter()
    }

    /// Number of masked weights.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is masked.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Total number of zero entries over all masks.
    pub fn num_zeros(&self) -> Result<usize> {
        let mut zeros = 0;
        for m in self.map.values() {
            let kept = m
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
            zeros += m.elem_count() - kept as usize;
        }
        Ok(zeros)
    }

    /// Multiplies every masked weight of `model` by its mask (pruned weights become 0).
    pub fn apply(&self, model: &dyn Network) -> Result<()> {
        let params = model.prunable();
        for (name, mask) in &self.map {
            let p = params.iter().find(|p| &p.name == name).ok_or_else(|| {
                Error::Config(format!(
                    "mask '{name}' names no prunable weight of {}",
                    model.name()
                ))
            })?;
            if p.var.shape() != mask.shape() {
                return Err(Error::Config(format!(
                    "mask '{name}' has shape {:?} but the weight has {:?}",
                    mask.dims(),
                    p.var.dims()
                )));
            }
            p.var.set(&p.var.as_tensor().mul(mask)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LeNet5;
    use crate::prune::layerwise_magnitude;
    use candle_core::Device;

    #[test]
    fn apply_zeroes_exactly_the_masked_weights() -> Result<()> {
        let model = LeNet5::new(10, 1, &Device::Cpu)?;
        let masks = layerwise_magnitude(&model, 0.75)?;
        masks.apply(&model)?;
        for p in model.prunable() {
            let w = p.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let m = masks
                .get(&p.name)
                .unwrap()
                .flatten_all()?
                .to_vec1::<f32>()?;
            for (x, k) in w.iter().zip(&m) {
                if *k == 0.0 {
                    assert_eq!(*x, 0.0);
                } else {
                    assert_ne!(*x, 0.0);
                }
            }
        }
        Ok(())
    }

    #[test]
    fn mismatched_mask_is_an_error() {
        let model = LeNet5::new(10, 1, &Device::Cpu).unwrap();
        let mut masks = Masks::default();
        masks.insert(
            "conv9.weight".into(),
            Tensor::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
        );
        let err = masks.apply(&model).unwrap_err().to_string();
        assert!(err.contains("conv9.weight"), "{err}");
    }
}
