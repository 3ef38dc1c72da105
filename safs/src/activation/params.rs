//! The operators' own parameters: TanhSoft-1's slope `a`, ACON-C's `p1, p2, beta` and
//! Soft-Root-Sign's `a, b`.
//!
//! Fixed, they take the literature values ([`Op::default_params`]); the SAFS authors' code
//! learns them with the weights from 1.0 in every fine-tune (Stage 1 included). These are
//! the parametric forms (`x` is the slot's input after `alpha`):
//!
//! | op          | parameters     | f(x)                                              |
//! |-------------|----------------|---------------------------------------------------|
//! | `tanhsoft1` | `a`            | `tanh(a x) * softplus(x)`                         |
//! | `acon`      | `p1, p2, beta` | `(p1 - p2) x * sigmoid(beta (p1 - p2) x) + p2 x`  |
//! | `srs`       | `a, b`         | `x / (x / a + exp(-x / b))` (exponent clamped)    |

use candle_core::{Result, Tensor};

use super::op::{
    sigmoid, softplus, Op, ACON_BETA, ACON_P1, ACON_P2, SRS_A, SRS_B, SRS_EXP_CLAMP, TANHSOFT1_A,
};

/// How the parametric operators' own parameters are set and whether they are trained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpParams {
    /// The literature values, constant.
    #[default]
    Fixed,
    /// Trained with the weights, starting from the literature values.
    LearntFromDefaults,
    /// Trained with the weights, starting from 1.0 (the SAFS authors' code).
    LearntFromOne,
}

impl OpParams {
    /// Whether the parameters receive gradients.
    pub fn trained(self) -> bool {
        self != OpParams::Fixed
    }

    /// The starting values of `op`'s parameters.
    pub fn init(self, op: Op) -> Vec<f64> {
        match self {
            OpParams::LearntFromOne => vec![1.0; op.num_params()],
            _ => op.default_params().to_vec(),
        }
    }
}

impl Op {
    /// Names of the operator's own parameters (empty for most operators).
    pub fn param_names(self) -> &'static [&'static str] {
        match self {
            Op::Tanhsoft1 => &["a"],
            Op::Acon => &["p1", "p2", "beta"],
            Op::Srs => &["a", "b"],
            _ => &[],
        }
    }

    /// Number of the operator's own parameters.
    pub fn num_params(self) -> usize {
        self.param_names().len()
    }

    /// The literature values that [`Op::apply`] uses as constants.
    pub fn default_params(self) -> &'static [f64] {
        match self {
            Op::Tanhsoft1 => &[TANHSOFT1_A],
            Op::Acon => &[ACON_P1, ACON_P2, ACON_BETA],
            Op::Srs => &[SRS_A, SRS_B],
            _ => &[],
        }
    }

    /// Applies the operator with its parameters given as shape-`[1]` tensors (differentiable
    /// in them); operators without parameters ignore `params` and call [`Op::apply`].
    pub fn apply_with(self, x: &Tensor, params: &[Tensor]) -> Result<Tensor> {
        if params.len() != self.num_params() {
            candle_core::bail!(
                "{self} takes {} parameters, {} given",
                self.num_params(),
                params.len()
            );
        }
        match self {
            Op::Tanhsoft1 => x.broadcast_mul(&params[0])?.tanh()?.mul(&softplus(x)?),
            Op::Acon => {
                let dx = x.broadcast_mul(&params[0].sub(&params[1])?)?;
                let gate = sigmoid(&dx.broadcast_mul(&params[2])?)?;
                dx.mul(&gate)?.add(&x.broadcast_mul(&params[1])?)
            }
            Op::Srs => {
                let e = x
                    .neg()?
                    .broadcast_div(&params[1])?
                    .minimum(SRS_EXP_CLAMP)?
                    .exp()?;
                x.div(&x.broadcast_div(&params[0])?.add(&e)?)
            }
            _ => self.apply(x),
        }
    }

    /// [`Op::eval_f64`] with explicit parameter values (a reference for the tensor code).
    pub fn eval_f64_with(self, x: f64, params: &[f64]) -> f64 {
        let sig = |z: f64| 1.0 / (1.0 + (-z).exp());
        let softplus = |z: f64| z.max(0.0) + (-z.abs()).exp().ln_1p();
        match self {
            Op::Tanhsoft1 => (params[0] * x).tanh() * softplus(x),
            Op::Acon => {
                let d = (params[0] - params[1]) * x;
                d * sig(params[2] * d) + params[1] * x
            }
            Op::Srs => x / (x / params[0] + (-x / params[1]).min(SRS_EXP_CLAMP).exp()),
            _ => self.eval_f64(x),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    const XS: [f64; 7] = [-3.1, -1.2, -0.3, 0.1, 0.8, 1.9, 3.7];

    fn tensor_sum(op: Op, params: &[f64]) -> (f64, Vec<f64>) {
        let vars: Vec<Var> = params
            .iter()
            .map(|p| Var::from_slice(&[*p], 1, &Device::Cpu).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let x = Tensor::new(&XS, &Device::Cpu).unwrap();
        let loss = op.apply_with(&x, &ts).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let g = vars
            .iter()
            .map(|v| grads.get(v.as_tensor()).unwrap().to_vec1::<f64>().unwrap()[0])
            .collect();
        (loss.to_scalar::<f64>().unwrap(), g)
    }

    #[test]
    fn defaults_reproduce_the_fixed_operators() {
        for op in [Op::Tanhsoft1, Op::Acon, Op::Srs] {
            let ps: Vec<Tensor> = op
                .default_params()
                .iter()
                .map(|p| Tensor::new(&[*p], &Device::Cpu).unwrap())
                .collect();
            let x = Tensor::new(&XS, &Device::Cpu).unwrap();
            let a: Vec<f64> = op.apply_with(&x, &ps).unwrap().to_vec1().unwrap();
            let b: Vec<f64> = op.apply(&x).unwrap().to_vec1().unwrap();
            for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                assert!((u - v).abs() < 1e-12, "{op} at {}: {u} vs {v}", XS[i]);
                let r = op.eval_f64_with(XS[i], op.default_params());
                assert!((u - r).abs() < 1e-12, "{op} reference at {}", XS[i]);
            }
        }
    }

    #[test]
    fn parameter_gradients_match_finite_differences() {
        let h = 1e-6;
        for (op, params) in [
            (Op::Tanhsoft1, vec![1.0]),
            (Op::Tanhsoft1, vec![0.4]),
            (Op::Acon, vec![1.0, 1.0, 1.0]),
            (Op::Acon, vec![1.3, 0.2, 0.7]),
            (Op::Srs, vec![1.0, 1.0]),
            (Op::Srs, vec![2.5, 1.7]),
        ] {
            let (loss, grads) = tensor_sum(op, &params);
            let reference = |p: &[f64]| XS.iter().map(|&x| op.eval_f64_with(x, p)).sum::<f64>();
            assert!((loss - reference(&params)).abs() < 1e-10, "{op} {params:?}");
            for k in 0..params.len() {
                let (mut up, mut down) = (params.clone(), params.clone());
                up[k] += h;
                down[k] -= h;
                let fd = (reference(&up) - reference(&down)) / (2.0 * h);
                assert!(
                    (grads[k] - fd).abs() < 1e-5 * fd.abs().max(1.0),
                    "{op} {params:?} d{}: {} vs {fd}",
                    op.param_names()[k],
                    grads[k]
                );
            }
        }
    }

    #[test]
    fn acon_from_one_is_the_identity_and_inits() {
        // p1 = p2 gives (0) * sigmoid(0) + x: the authors' ACON starts as the identity.
        for x in XS {
            assert_eq!(Op::Acon.eval_f64_with(x, &[1.0, 1.0, 1.0]), x);
        }
        assert_eq!(OpParams::LearntFromOne.init(Op::Srs), vec![1.0, 1.0]);
        assert_eq!(OpParams::Fixed.init(Op::Srs), vec![SRS_A, SRS_B]);
        assert!(OpParams::Fixed.init(Op::Relu).is_empty());
        assert!(!OpParams::Fixed.trained() && OpParams::LearntFromOne.trained());
        let x = Tensor::new(&XS, &Device::Cpu).unwrap();
        assert!(Op::Srs.apply_with(&x, &[]).is_err());
    }
}
