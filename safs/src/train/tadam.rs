//! TAdam (Ilboudo, Kobayashi & Sugimoto 2020, "TAdam: A Robust Stochastic Gradient Optimizer",
//! <https://arxiv.org/abs/2003.00179>, Algorithm 1): Adam whose first moment is a Student-t
//! weighted mean, so a gradient far from the running mean (in units of the running variance)
//! moves it less.
//!
//! Per tensor of `d` elements, with `nu = dof_scale * d` and `W_0 = beta1 / (1 - beta1)`:
//! ```text
//! g   = g + wd * p                                   (L2, if wd != 0)
//! w   = (nu + d) / (nu + sum_j (g_j - m_j)^2 / (v_j + eps))      (m, v of the previous step)
//! m   = W / (W + w) * m + w / (W + w) * g
//! W   = (2 beta1 - 1) / beta1 * W + w                (paper)   |  beta1 * (W + w)  (tmomentum)
//! v   = beta2 * v + (1 - beta2) * g^2
//! p   = p - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps)            (paper)
//! p   = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)            (tmomentum)
//! ```
//! With `w = 1` on every step both forms reduce to Adam's `m` (the fixed point of `W` is
//! `beta1 / (1 - beta1)`, so `W / (W + 1) = beta1`). `dof_scale = inf` gives Adam's moment.

use candle_core::{DType, Tensor};

use super::optim::Param;
use super::optim::TadamVariant;
use crate::Result;

/// TAdam's constants (the update lives here; the state in [`Param`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Tadam {
    pub(super) beta1: f64,
    pub(super) beta2: f64,
    pub(super) eps: f64,
    pub(super) dof_scale: f64,
    pub(super) variant: TadamVariant,
}

impl Tadam {
    /// One step for one tensor; returns its new value.
    pub(super) fn update(
        &self,
        param: &mut Param,
        grad: &Tensor,
        lr: f64,
        wd: f64,
    ) -> Result<Tensor> {
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        let p = param.var.as_detached_tensor();
        let mut g = grad.clone();
        if wd != 0.0 {
            g = (g + p.affine(wd, 0.0)?)?;
        }
        param.step += 1;
        let m_prev = match param.buf1.take() {
            Some(m) => m,
            None => g.zeros_like()?,
        };
        let v_prev = match param.buf2.take() {
            Some(v) => v,
            None => g.zeros_like()?,
        };
        let big_w = param.scalar.unwrap_or(b1 / (1.0 - b1));
        let beta_w = if self.dof_scale.is_infinite() {
            b1
        } else {
            let d = p.elem_count() as f64;
            let nu = self.dof_scale * d;
            let spread = (g.sub(&m_prev)?.sqr()? / v_prev.affine(1.0, eps)?)?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
            let w = (nu + d) / (nu + spread);
            let beta_w = big_w / (big_w + w);
            param.scalar = Some(match self.variant {
                TadamVariant::Paper => (2.0 * b1 - 1.0) / b1 * big_w + w,
                TadamVariant::Tmomentum => b1 * (big_w + w),
            });
            beta_w
        };
        let m = (m_prev.affine(beta_w, 0.0)? + g.affine(1.0 - beta_w, 0.0)?)?;
        let v = (v_prev.affine(b2, 0.0)? + g.sqr()?.affine(1.0 - b2, 0.0)?)?;
        let t = param.step as f64;
        let (bc1, bc2) = (1.0 - b1.powf(t), 1.0 - b2.powf(t));
        let update = match self.variant {
            TadamVariant::Paper => {
                (&m / v.sqrt()?.affine(1.0, eps)?)?.affine(lr * bc2.sqrt() / bc1, 0.0)?
            }
            TadamVariant::Tmomentum => {
                (&m / v.sqrt()?.affine(1.0 / bc2.sqrt(), eps)?)?.affine(lr / bc1, 0.0)?
            }
        };
        param.buf1 = Some(m);
        param.buf2 = Some(v);
        Ok((p - update)?)
    }
}

#[cfg(test)]
mod tests {
    use crate::train::optim::{trajectory, OptimizerConfig, TadamVariant};

    const P0: [f64; 3] = [1.0, -2.0, 0.5];
    const GRADS: [[f64; 4]; 3] = [
        [0.3, -0.1, 2.0, 0.0],
        [-0.5, 0.25, 1.5, 0.0],
        [0.1, 0.7, -0.2, 0.0],
    ];

    fn tadam(lr: f64, wd: f64, variant: TadamVariant) -> OptimizerConfig {
        OptimizerConfig::Tadam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: wd,
            dof_scale: 1.0,
            variant,
        }
    }

    fn run(cfg: &OptimizerConfig, p0: &[f64], grads: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let grads: Vec<&[f64]> = grads.iter().map(Vec::as_slice).collect();
        trajectory(cfg, p0, &grads)
    }

    /// Algorithm 1 of the paper written out element by element (W, w per tensor).
    fn reference(
        lr: f64,
        wd: f64,
        variant: TadamVariant,
        p0: &[f64],
        grads: &[Vec<f64>],
    ) -> Vec<Vec<f64>> {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let d = p0.len() as f64;
        let nu = d;
        let mut p = p0.to_vec();
        let mut m = vec![0.0; p.len()];
        let mut v = vec![0.0; p.len()];
        let mut big_w = b1 / (1.0 - b1);
        let mut out = Vec::new();
        for (t, grad) in grads.iter().enumerate() {
            let t = (t + 1) as i32;
            let g: Vec<f64> = grad.iter().zip(&p).map(|(g, p)| g + wd * p).collect();
            let spread: f64 = (0..p.len())
                .map(|j| (g[j] - m[j]).powi(2) / (v[j] + eps))
                .sum();
            let w = (nu + d) / (nu + spread);
            let beta_w = big_w / (big_w + w);
            big_w = match variant {
                TadamVariant::Paper => (2.0 * b1 - 1.0) / b1 * big_w + w,
                TadamVariant::Tmomentum => b1 * (big_w + w),
            };
            for j in 0..p.len() {
                m[j] = beta_w * m[j] + (1.0 - beta_w) * g[j];
                v[j] = b2 * v[j] + (1.0 - b2) * g[j] * g[j];
                let (bc1, bc2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
                p[j] -= match variant {
                    TadamVariant::Paper => lr * bc2.sqrt() / bc1 * m[j] / (v[j].sqrt() + eps),
                    TadamVariant::Tmomentum => lr / bc1 * m[j] / (v[j].sqrt() / bc2.sqrt() + eps),
                };
            }
            out.push(p.clone());
        }
        out
    }

    fn grads3() -> Vec<Vec<f64>> {
        GRADS.iter().map(|g| g[..3].to_vec()).collect()
    }

    #[test]
    fn matches_algorithm_1_both_variants() {
        for variant in [TadamVariant::Paper, TadamVariant::Tmomentum] {
            for wd in [0.0, 0.1] {
                let got = run(&tadam(0.01, wd, variant), &P0, &grads3());
                let want = reference(0.01, wd, variant, &P0, &grads3());
                for (s, (g, w)) in got.iter().zip(&want).enumerate() {
                    for (a, b) in g.iter().zip(w) {
                        assert!(
                            (a - b).abs() < 1e-12,
                            "{variant:?} wd {wd} step {s}: {a} vs {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn first_step_by_hand() {
        // One element, p = 1, g = 0.5, lr = 0.1. With m = v = 0 the spread is
        // 0.25 / 1e-8 = 2.5e7, so w = 2 / (1 + 2.5e7) = 7.99999968e-8 and the first gradient
        // is treated as an outlier: beta_w = 9 / (9 + w), m = (1 - beta_w) * 0.5 = 4.4444e-9.
        // v = 0.001 * 0.25 = 2.5e-4; paper step = 0.1 * sqrt(1e-3) / 0.1 * m / (0.0158114 + 1e-8)
        //   = 0.0316228 * 4.4444e-9 / 0.0158114 = 8.8889e-9.
        let got = run(&tadam(0.1, 0.0, TadamVariant::Paper), &[1.0], &[vec![0.5]]);
        let moved = 1.0 - got[0][0];
        assert!((moved - 8.8889e-9).abs() < 1e-12, "moved {moved}");
        // Adam's first step would move it by lr = 0.1.
        let adam = run(&OptimizerConfig::adam(0.1), &[1.0], &[vec![0.5]]);
        assert!((1.0 - adam[0][0] - 0.1).abs() < 1e-8);
    }

    #[test]
    fn an_outlier_gradient_moves_tadam_less_than_adam() {
        // 30 steady gradients, then one 100x larger: TAdam's first moment barely follows it.
        let mut grads: Vec<Vec<f64>> = (0..30).map(|_| vec![0.1, -0.1]).collect();
        grads.push(vec![10.0, -10.0]);
        let t = run(&tadam(0.01, 0.0, TadamVariant::Paper), &[0.0, 0.0], &grads);
        let a = run(&OptimizerConfig::adam(0.01), &[0.0, 0.0], &grads);
        let last = |r: &Vec<Vec<f64>>| (r[30][0] - r[29][0]).abs();
        assert!(
            last(&t) < 0.5 * last(&a),
            "tadam {} adam {}",
            last(&t),
            last(&a)
        );
    }

    #[test]
    fn infinite_dof_is_adam_with_the_papers_step() {
        let cfg = OptimizerConfig::Tadam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            dof_scale: f64::INFINITY,
            variant: TadamVariant::Tmomentum,
        };
        let got = run(&cfg, &P0, &grads3());
        let adam = run(&OptimizerConfig::adam(0.01), &P0, &grads3());
        for (g, a) in got.iter().zip(&adam) {
            for (x, y) in g.iter().zip(a) {
                assert!((x - y).abs() < 1e-12);
            }
        }
    }
}
