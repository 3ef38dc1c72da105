//! Choosing which weights to zero: per layer or across all layers.

use std::str::FromStr;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::Masks;
use crate::model::{Network, Param};
use crate::{Error, Result};

/// How weights to prune are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(strum::VariantArray, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "lowercase")]
pub enum PruneMethod {
    /// The same ratio in every layer (the paper's LWM).
    Layerwise,
    /// One magnitude threshold over all prunable weights.
    Global,
}

impl PruneMethod {
    /// Computes masks for `model` at `rate` (fraction of weights to zero, in [0, 1]).
    pub fn masks(self, model: &dyn Network, rate: f64) -> Result<Masks> {
        self.masks_of(model.prunable(), rate)
    }

    /// Masks for `model`'s prunable weights except those whose name matches a pattern of
    /// `keep` (`*` stands for any run of characters); an unmatched pattern is an error.
    pub fn masks_except(self, model: &dyn Network, rate: f64, keep: &[String]) -> Result<Masks> {
        let params = model.prunable();
        for pat in keep {
            if !params.iter().any(|p| glob_match(pat, &p.name)) {
                return Err(crate::Error::Config(format!(
                    "prune.keep_dense: '{pat}' matches no prunable weight of {}",
                    model.name()
                )));
            }
        }
        let kept = params
            .into_iter()
            .filter(|p| !keep.iter().any(|pat| glob_match(pat, &p.name)))
            .collect();
        self.masks_of(kept, rate)
    }

    fn masks_of(self, params: Vec<Param>, rate: f64) -> Result<Masks> {
        match self {
            PruneMethod::Layerwise => layerwise_of(params, rate),
            PruneMethod::Global => global_of(params, rate),
        }
    }
}

/// Whether `name` matches `pattern`, where `*` matches any (possibly empty) run of characters.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

impl FromStr for PruneMethod {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.eq_ignore_ascii_case("lwm") {
            return Ok(PruneMethod::Layerwise); // the paper's name for it
        }
        crate::util::parse_variant(s, str::to_ascii_lowercase).ok_or_else(|| {
            let valid = crate::util::variant_names::<Self>();
            Error::Config(format!("unknown pruning method '{s}'; valid: {valid}"))
        })
    }
}

fn check_rate(rate: f64) -> Result<()> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(Error::Config(format!(
            "pruning rate {rate} is outside [0, 1]"
        )));
    }
    Ok(())
}

/// Number of weights `l1_unstructured` prunes: Python's `round(rate * n)`.
pub(crate) fn count_to_prune(rate: f64, n: usize) -> usize {
    (rate * n as f64).round_ties_even() as usize
}

/// Indices of the `k` smallest magnitudes; ties broken by position, first wins.
fn smallest(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    idx.sort_by(|&a, &b| values[a].abs().total_cmp(&values[b].abs()).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

fn mask_from_zeroed(template: &Tensor, n: usize, zeroed: &[usize]) -> Result<Tensor> {
    let mut m = vec![1f32; n];
    for &i in zeroed {
        m[i] = 0.0;
    }
    Ok(Tensor::from_vec(m, template.shape(), template.device())?)
}

/// Layer-wise magnitude pruning: each prunable weight loses `round(rate * n)` entries.
pub fn layerwise_magnitude(model: &dyn Network, rate: f64) -> Result<Masks> {
    layerwise_of(model.prunable(), rate)
}

fn layerwise_of(params: Vec<Param>, rate: f64) -> Result<Masks> {
    check_rate(rate)?;
    let mut masks = Masks::default();
    for p in params {
        let t = p.var.as_tensor();
        let values = t
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        let k = count_to_prune(rate, values.len());
        let mask = mask_from_zeroed(t, values.len(), &smallest(&values, k))?;
        masks.insert(p.name, mask);
    }
    Ok(masks)
}

/// Global magnitude pruning: `round(rate * total)` smallest weights over all layers.
pub fn global_magnitude(model: &dyn Network, rate: f64) -> Result<Masks> {
    global_of(model.prunable(), rate)
}

fn global_of(params: Vec<Param>, rate: f64) -> Result<Masks> {
    check_rate(rate)?;
    let mut all = Vec::new();
    let mut offsets = Vec::with_capacity(params.len());
    for p in &params {
        offsets.push(all.len());
        let t = p.var.as_tensor();
        all.extend(
            t.flatten_all()?
                .to_dtype(candle_core::DType::F32)?
                .to_vec1::<f32>()?,
        );
    }
    let k = count_to_prune(rate, all.len());
    let mut zeroed_per_layer: Vec<Vec<usize>> = vec![Vec::new(); params.len()];
    for i in smallest(&all, k) {
        let layer = offsets.partition_point(|&o| o <= i) - 1;
        zeroed_per_layer[layer].push(i - offsets[layer]);
    }
    let mut masks = Masks::default();
    for (p, zeroed) in params.into_iter().zip(zeroed_per_layer) {
        let t = p.var.as_tensor();
        let mask = mask_from_zeroed(t, t.elem_count(), &zeroed)?;
        masks.insert(p.name, mask);
    }
    Ok(masks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LeNet5;
    use candle_core::Device;

    #[test]
    fn rounding_matches_python() {
        // Python: round(0.99 * 150) == 148 (148.5 rounds to even), round(0.5 * 5) == 2.
        assert_eq!(count_to_prune(0.99, 150), 148);
        assert_eq!(count_to_prune(0.5, 5), 2);
        assert_eq!(count_to_prune(0.99, 30720), 30413);
        assert_eq!(count_to_prune(0.0, 10), 0);
        assert_eq!(count_to_prune(1.0, 10), 10);
    }

    #[test]
    fn layerwise_zero_counts_at_99_percent() -> Result<()> {
        let model = LeNet5::new(10, 3, &Device::Cpu)?;
        let masks = layerwise_magnitude(&model, 0.99)?;
        // Layer sizes 150, 2400, 30720, 10080, 840 -> zeros round(0.99 n).
        let expected = [
            ("conv1.weight", 148),
            ("conv2.weight", 2376),
            ("fc1.weight", 30413),
            ("fc2.weight", 9979),
            ("fc3.weight", 832),
        ];
        for (name, zeros) in expected {
            let m = masks.get(name).expect(name);
            let kept = m.sum_all()?.to_scalar::<f32>()? as usize;
            assert_eq!(m.elem_count() - kept, zeros, "{name}");
        }
        Ok(())
    }

    #[test]
    fn layerwise_keeps_the_largest_magnitudes() -> Result<()> {
        let model = LeNet5::new(10, 5, &Device::Cpu)?;
        let masks = layerwise_magnitude(&model, 0.9)?;
        for p in model.prunable() {
            let w = p.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let m = masks
                .get(&p.name)
                .unwrap()
                .flatten_all()?
                .to_vec1::<f32>()?;
            let max_pruned = w
                .iter()
                .zip(&m)
                .filter(|(_, &k)| k == 0.0)
                .map(|(x, _)| x.abs())
                .fold(0f32, f32::max);
            let min_kept = w
                .iter()
                .zip(&m)
                .filter(|(_, &k)| k == 1.0)
                .map(|(x, _)| x.abs())
                .fold(f32::INFINITY, f32::min);
            assert!(
                max_pruned <= min_kept,
                "{}: pruned {max_pruned} > kept {min_kept}",
                p.name
            );
        }
        Ok(())
    }

    #[test]
    fn global_prunes_total_count_with_one_threshold() -> Result<()> {
        let model = LeNet5::new(10, 5, &Device::Cpu)?;
        let masks = global_magnitude(&model, 0.8)?;
        let total: usize = model.prunable().iter().map(|p| p.var.elem_count()).sum();
        assert_eq!(masks.num_zeros()?, count_to_prune(0.8, total));
        let mut max_pruned = 0f32;
        let mut min_kept = f32::INFINITY;
        for p in model.prunable() {
            let w = p.var.as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let m = masks
                .get(&p.name)
                .unwrap()
                .flatten_all()?
                .to_vec1::<f32>()?;
            for (x, k) in w.iter().zip(&m) {
                if *k == 0.0 {
                    max_pruned = max_pruned.max(x.abs())
                } else {
                    min_kept = min_kept.min(x.abs())
                }
            }
        }
        assert!(max_pruned <= min_kept);
        Ok(())
    }

    #[test]
    fn bad_rate_is_an_error() {
        let model = LeNet5::new(10, 0, &Device::Cpu).unwrap();
        assert!(layerwise_magnitude(&model, 1.5).is_err());
        assert!(global_magnitude(&model, -0.1).is_err());
        assert!("bogus".parse::<PruneMethod>().is_err());
    }

    #[test]
    fn keep_dense_patterns() -> Result<()> {
        assert!(glob_match("layers.*.fc2.weight", "layers.12.fc2.weight"));
        assert!(!glob_match("layers.*.fc2.weight", "layers.12.fc1.weight"));
        assert!(glob_match("fc1.weight", "fc1.weight") && !glob_match("fc1.weight", "fc1.weightx"));
        assert!(
            glob_match("*", "anything")
                && glob_match("a*b*c", "axxbyyc")
                && !glob_match("a*b*c", "acb")
        );
        let model = LeNet5::new(10, 3, &Device::Cpu)?;
        let keep = vec!["fc*.weight".to_string()];
        let masks = PruneMethod::Layerwise.masks_except(&model, 0.99, &keep)?;
        assert!(masks.get("conv1.weight").is_some() && masks.get("conv2.weight").is_some());
        assert!(masks.get("fc1.weight").is_none() && masks.get("fc3.weight").is_none());
        let e = PruneMethod::Layerwise
            .masks_except(&model, 0.99, &["shortcut.*".to_string()])
            .unwrap_err();
        assert!(e.to_string().contains("shortcut.*"), "{e}");
        Ok(())
    }
}
