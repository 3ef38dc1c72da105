//! Zero-cost proxies: a score of an activation plan on the pruned network from a few
//! minibatches, with no training, for screening Stage 1 candidates (issue 12's
//! "accuracy predictors", the paper's first future work).
//!
//! Every proxy looks only at the weights that survive pruning (mask 1):
//! - **grad-norm** (Abdelfattah et al. 2021): `sum_l ||dL/dW_l||_2` on one minibatch;
//! - **ZiCo** (Li et al. 2023, eq. 4): over `N >= 2` minibatches, per layer `l`,
//!   `log sum_{w in l} mean_n |g_w,n| / std_n(g_w,n)` summed over layers, weights with
//!   zero spread left out;
//! - **SynFlow** (Tanaka et al. 2020): with every parameter replaced by its absolute
//!   value and an all-ones input, `R = sum f(1)`, score `sum_w |w * dR/dw|`; data-free.
//!
//! docs/results.md reports how well each ranks LeNet-5 plans at 99% against their
//! full-fidelity score (`examples/zero_cost_screen.rs`).

use std::str::FromStr;

use candle_core::{DType, Tensor};

use crate::model::Network;
use crate::prune::Masks;
use crate::{Error, Result};

/// A zero-cost proxy (larger = predicted better).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::VariantArray, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "snake_case")]
pub enum ZeroCost {
    /// Sum of the per-layer gradient norms on the first minibatch.
    GradNorm,
    /// Sum over layers of the log of mean |gradient| / its standard deviation.
    Zico,
    /// Synaptic flow of the absolute-valued network on an all-ones input.
    Synflow,
}

impl ZeroCost {
    /// Every proxy.
    pub const ALL: &'static [ZeroCost] = <Self as strum::VariantArray>::VARIANTS;

    /// The name used in configs and tables.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Minibatches the proxy needs (SynFlow: none).
    pub fn min_batches(self) -> usize {
        match self {
            ZeroCost::GradNorm => 1,
            ZeroCost::Zico => 2,
            ZeroCost::Synflow => 0,
        }
    }
}

impl FromStr for ZeroCost {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        crate::util::parse_variant(s, str::to_string).ok_or_else(|| {
            let valid = crate::util::variant_names::<Self>();
            Error::Config(format!("unknown zero-cost proxy '{s}' ({valid})"))
        })
    }
}

/// The proxy's score of `model` as it stands (its plan, scales and weights), its gradients
/// taken on `batches` of `(images, labels)` with cross-entropy. The weights are left as
/// they were (SynFlow restores them). An error names a proxy given too few batches or a
/// score that is not finite.
pub fn zero_cost_score(
    proxy: ZeroCost,
    model: &dyn Network,
    masks: Option<&Masks>,
    batches: &[(Tensor, Tensor)],
) -> Result<f64> {
    if batches.len() < proxy.min_batches() {
        return Err(Error::Config(format!(
            "zero-cost proxy {proxy} needs {} minibatches, {} given",
            proxy.min_batches(),
            batches.len()
        )));
    }
    let score = match proxy {
        ZeroCost::GradNorm => {
            let live = live_weights(model, masks)?;
            let grads = masked_grads(model, &live, &batches[0])?;
            grads.iter().map(|g| norm2(g)).sum()
        }
        ZeroCost::Zico => {
            let live = live_weights(model, masks)?;
            let per_batch = batches
                .iter()
                .map(|b| masked_grads(model, &live, b))
                .collect::<Result<Vec<_>>>()?;
            zico(&per_batch, &live)
        }
        ZeroCost::Synflow => synflow(model, masks, batches)?,
    };
    if !score.is_finite() {
        return Err(Error::Diverged(format!(
            "zero-cost proxy {proxy} of {} is {score}",
            model.plan()
        )));
    }
    Ok(score)
}

/// The gradient of the cross-entropy on one batch for every prunable weight, entries not
/// `live` zeroed, flattened to `f64`.
fn masked_grads(
    model: &dyn Network,
    live: &[Vec<bool>],
    (x, y): &(Tensor, Tensor),
) -> Result<Vec<Vec<f64>>> {
    let logits = model.forward_t(x, true)?;
    let loss = candle_nn::loss::cross_entropy(&logits, y)?;
    let grads = loss.backward()?;
    model
        .prunable()
        .iter()
        .zip(live)
        .map(|(p, keep)| {
            let g = match grads.get(p.var.as_tensor()) {
                Some(g) => flat(g)?,
                None => vec![0.0; keep.len()],
            };
            Ok(g.iter()
                .zip(keep)
                .map(|(g, &k)| if k { *g } else { 0.0 })
                .collect())
        })
        .collect()
}

/// Per prunable weight, which entries survive pruning (all without masks).
fn live_weights(model: &dyn Network, masks: Option<&Masks>) -> Result<Vec<Vec<bool>>> {
    model
        .prunable()
        .iter()
        .map(|p| match masks.and_then(|m| m.get(&p.name)) {
            Some(m) => Ok(flat(m)?.into_iter().map(|v| v != 0.0).collect()),
            None => Ok(vec![true; p.var.elem_count()]),
        })
        .collect()
}

fn flat(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?.to_dtype(DType::F64)?.to_vec1()?)
}

fn norm2(v: &[f64]) -> f64 {
    v.iter().map(|g| g * g).sum::<f64>().sqrt()
}

/// ZiCo from per-batch, per-layer gradients (`per_batch[n][l][w]`) and the live entries.
fn zico(per_batch: &[Vec<Vec<f64>>], live: &[Vec<bool>]) -> f64 {
    let n = per_batch.len() as f64;
    let mut total = 0.0;
    for (l, keep) in live.iter().enumerate() {
        let mut ratio_sum = 0.0;
        for (w, &k) in keep.iter().enumerate() {
            if !k {
                continue;
            }
            let values = per_batch.iter().map(|b| b[l][w]);
            let mean = values.clone().sum::<f64>() / n;
            let mean_abs = values.clone().map(f64::abs).sum::<f64>() / n;
            // numpy's std (ddof 0), as in the paper's definition of the spread.
            let var = values.map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            if var > 0.0 {
                ratio_sum += mean_abs / var.sqrt();
            }
        }
        if ratio_sum > 0.0 {
            total += ratio_sum.ln();
        }
    }
    total
}

/// SynFlow on a copy of the weights made absolute; the input shape comes from `batches`
/// (or LeNet-5's 1x28x28 without batches would be a guess, so an error asks for one).
fn synflow(
    model: &dyn Network,
    masks: Option<&Masks>,
    batches: &[(Tensor, Tensor)],
) -> Result<f64> {
    let (x, _) = batches.first().ok_or_else(|| {
        Error::Config("zero-cost proxy synflow needs one minibatch for the input shape".into())
    })?;
    let mut shape = x.dims().to_vec();
    shape[0] = 1;
    let params = model.parameters();
    let saved = params
        .iter()
        .map(|p| p.var.as_tensor().copy())
        .collect::<candle_core::Result<Vec<_>>>()?;
    let run = || -> Result<f64> {
        for p in &params {
            p.var.set(&p.var.as_tensor().abs()?)?;
        }
        if let Some(m) = masks {
            m.apply(model)?;
        }
        let ones = Tensor::ones(shape.as_slice(), x.dtype(), x.device())?;
        let r = model.forward_t(&ones, false)?.sum_all()?;
        let grads = r.backward()?;
        let mut score = 0.0;
        for p in model.prunable() {
            if let Some(g) = grads.get(p.var.as_tensor()) {
                let w = flat(p.var.as_tensor())?;
                score += flat(g)?
                    .iter()
                    .zip(&w)
                    .map(|(g, w)| (g * w).abs())
                    .sum::<f64>();
            }
        }
        Ok(score)
    };
    let score = run();
    for (p, t) in params.iter().zip(&saved) {
        p.var.set(t)?;
    }
    score
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::{ActivationPlan, Op};
    use crate::model::LeNet5;
    use crate::prune::layerwise_magnitude;
    use candle_core::Device;

    #[test]
    fn zico_by_hand() {
        // One layer, three live weights (the third pruned), two batches:
        // w0: g = 1, 3 -> mean|g| 2, std 1 -> 2; w1: g = -2, 2 -> mean|g| 2, std 2 -> 1;
        // w2 is pruned. Layer 2: one weight with zero spread -> left out, no log term.
        let b1 = vec![vec![1.0, -2.0, 9.0], vec![5.0]];
        let b2 = vec![vec![3.0, 2.0, 9.0], vec![5.0]];
        let live = vec![vec![true, true, false], vec![true]];
        let z = zico(&[b1, b2], &live);
        assert!((z - 3f64.ln()).abs() < 1e-12, "{z}");
    }

    #[test]
    fn names_round_trip_and_too_few_batches_is_an_error() -> Result<()> {
        for &p in ZeroCost::ALL {
            assert_eq!(p.name().parse::<ZeroCost>()?, p);
        }
        assert!("naswot".parse::<ZeroCost>().is_err());
        let m = LeNet5::new(10, 0, &Device::Cpu)?;
        let x = Tensor::zeros((2, 1, 28, 28), DType::F32, &Device::Cpu)?;
        let y = Tensor::new(&[0u32, 1], &Device::Cpu)?;
        let err = zero_cost_score(ZeroCost::Zico, &m, None, &[(x, y)]).unwrap_err();
        assert!(err.to_string().contains("needs 2 minibatches"), "{err}");
        Ok(())
    }

    #[test]
    fn grad_norm_matches_the_gradients_candle_computes_and_skips_pruned_weights() -> Result<()> {
        let dev = Device::Cpu;
        let m = LeNet5::new(10, 3, &dev)?;
        let masks = layerwise_magnitude(&m, 0.9)?;
        masks.apply(&m)?;
        let x = Tensor::randn(0f32, 1.0, (8, 1, 28, 28), &dev)?;
        let y = Tensor::new(&[0u32, 1, 2, 3, 4, 5, 6, 7], &dev)?;
        let got = zero_cost_score(
            ZeroCost::GradNorm,
            &m,
            Some(&masks),
            &[(x.clone(), y.clone())],
        )?;
        // Independent: the norm of (grad * mask) per weight with tensor ops.
        let grads = candle_nn::loss::cross_entropy(&m.forward_t(&x, true)?, &y)?.backward()?;
        let mut want = 0.0;
        let mut unmasked = 0.0;
        for p in m.prunable() {
            let g = grads.get(p.var.as_tensor()).unwrap();
            let mask = masks.get(&p.name).unwrap();
            want += g.mul(mask)?.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt() as f64;
            unmasked += g.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt() as f64;
        }
        assert!((got - want).abs() < 1e-4 * want, "{got} vs {want}");
        assert!(unmasked > want * 1.01, "the mask must matter here");
        Ok(())
    }

    #[test]
    fn synflow_of_a_linear_chain_is_its_path_sum_and_weights_come_back() -> Result<()> {
        // With identity activations and |w|, R = sum over input-output paths of the
        // product of weights, and sum_w |w dR/dw| counts each path once per layer on it:
        // (number of weight layers) * R when biases are 0.
        let dev = Device::Cpu;
        let mut m = LeNet5::new(10, 1, &dev)?;
        m.set_plan(&ActivationPlan::uniform(Op::Identity, 4))?;
        for p in m.parameters() {
            if p.name.ends_with("bias") {
                p.var.set(&p.var.as_tensor().zeros_like()?)?;
            }
        }
        let before = m.state()?;
        let x = Tensor::zeros((4, 1, 28, 28), DType::F32, &dev)?;
        let y = Tensor::new(&[0u32, 1, 2, 3], &dev)?;
        let got = zero_cost_score(ZeroCost::Synflow, &m, None, &[(x, y)])?;
        let after = m.state()?;
        for ((n, a), (_, b)) in before.iter().zip(&after) {
            let d = a.sub(b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(d, 0.0, "{n} changed");
        }
        // R itself, on a copy made absolute by hand. Max-pooling keeps one path per window
        // (the largest), which the gradient follows too, so the identity still holds.
        for p in m.parameters() {
            p.var.set(&p.var.as_tensor().abs()?)?;
        }
        let ones = Tensor::ones((1, 1, 28, 28), DType::F32, &dev)?;
        let r = m.forward_t(&ones, false)?.sum_all()?.to_scalar::<f32>()? as f64;
        assert!((got - 5.0 * r).abs() < 1e-3 * got, "{got} vs 5 x {r}");
        Ok(())
    }
}
