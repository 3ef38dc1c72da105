//! Fromage (Bernstein, Vahdat, Yue & Liu 2020, "On the distance between two neural networks
//! and the stability of learning", <https://arxiv.org/abs/2002.03432>, Algorithm 1): every
//! tensor takes a step of relative size `lr`, then shrinks by `sqrt(1 + lr^2)`:
//! ```text
//! p = (p - lr * |p| / |g| * g) / sqrt(1 + lr^2)     if |p| > 0 and |g| > 0
//! p = (p - lr * g) / sqrt(1 + lr^2)                 otherwise
//! p = p * bound / |p|                               if p_bound is set and |p| > bound,
//!                                                   bound = p_bound * |p at the first step|
//! ```
//! (`|.|` is the Frobenius norm of the whole tensor.) There is no weight decay.

use candle_core::{DType, Tensor};

use super::optim::Param;
use crate::Result;

fn norm(t: &Tensor) -> Result<f64> {
    Ok(t.sqr()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?
        .sqrt())
}

/// One step for one tensor; returns its new value.
pub(super) fn update(
    param: &mut Param,
    grad: &Tensor,
    lr: f64,
    p_bound: Option<f64>,
) -> Result<Tensor> {
    let p = param.var.as_detached_tensor();
    let p_norm = norm(&p)?;
    if param.step == 0 {
        param.scalar = p_bound.map(|b| b * p_norm);
    }
    param.step += 1;
    let g_norm = norm(grad)?;
    let scale = if p_norm > 0.0 && g_norm > 0.0 {
        lr * p_norm / g_norm
    } else {
        lr
    };
    let mut new = (p - grad.affine(scale, 0.0)?)?.affine(1.0 / (1.0 + lr * lr).sqrt(), 0.0)?;
    if let Some(bound) = param.scalar {
        let n = norm(&new)?;
        if n > bound {
            new = new.affine(bound / n, 0.0)?;
        }
    }
    Ok(new)
}

#[cfg(test)]
mod tests {
    use crate::train::optim::trajectory;
    use crate::train::OptimizerConfig;

    fn step(cfg: &OptimizerConfig, p0: &[f64], grads: &[&[f64]]) -> Vec<f64> {
        trajectory(cfg, p0, grads).pop().unwrap()
    }

    fn fromage(lr: f64, p_bound: Option<f64>) -> OptimizerConfig {
        OptimizerConfig::Fromage { lr, p_bound }
    }

    fn close(got: &[f64], want: &[f64]) {
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn steps_by_hand() {
        // |p| = 5, |g| = 1, lr = 0.1: p - 0.1 * 5 * g = [2.5, 4], divided by sqrt(1.01).
        let s = 1.01f64.sqrt();
        close(
            &step(&fromage(0.1, None), &[3.0, 4.0], &[&[1.0, 0.0]]),
            &[2.5 / s, 4.0 / s],
        );
        // A step's size is lr * |p| whatever the gradient's scale.
        close(
            &step(&fromage(0.1, None), &[3.0, 4.0], &[&[1e-6, 0.0]]),
            &[2.5 / s, 4.0 / s],
        );
        // Zero gradient: only the shrink. Zero weights: a plain gradient step, then the shrink.
        close(
            &step(&fromage(0.1, None), &[3.0, 4.0], &[&[0.0, 0.0]]),
            &[3.0 / s, 4.0 / s],
        );
        close(
            &step(&fromage(0.1, None), &[0.0, 0.0], &[&[1.0, -2.0]]),
            &[-0.1 / s, 0.2 / s],
        );
    }

    #[test]
    fn p_bound_caps_the_norm() {
        // Gradients against p grow |p|; with p_bound 1.2 it never exceeds 1.2 * 5 = 6.
        let g: Vec<&[f64]> = (0..50).map(|_| &[-3.0, -4.0][..]).collect();
        let free = step(&fromage(0.1, None), &[3.0, 4.0], &g);
        let capped = step(&fromage(0.1, Some(1.2)), &[3.0, 4.0], &g);
        let n = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        assert!(n(&free) > 6.5, "{}", n(&free));
        assert!((n(&capped) - 6.0).abs() < 1e-9, "{}", n(&capped));
    }

    #[test]
    fn validation_and_toml() {
        assert!(fromage(0.0, None).validate().is_err());
        assert!(fromage(0.1, Some(-1.0))
            .validate()
            .unwrap_err()
            .to_string()
            .contains("p_bound"));
        let cfg: OptimizerConfig = toml::from_str("name = \"fromage\"\nlr = 0.01\n").unwrap();
        assert_eq!(cfg, fromage(0.01, None));
        assert_eq!(cfg.weight_decay(), 0.0);
        let cfg: OptimizerConfig =
            toml::from_str("name = \"tadam\"\nlr = 0.001\nvariant = \"tmomentum\"\n").unwrap();
        assert_eq!(cfg.name(), "tadam");
        assert!(matches!(cfg, OptimizerConfig::Tadam { dof_scale, .. } if dof_scale == 1.0));
    }
}
