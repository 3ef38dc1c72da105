//! The unary operators an activation slot can hold, as Candle tensor code and as plain
//! `f64` reference functions.

use std::str::FromStr;

use candle_core::{Result, Tensor};

use crate::Error;

/// TanhSoft-1 (Biswas et al. 2020), `tanh(a*x) * softplus(x)`, with `a` fixed to this value.
pub const TANHSOFT1_A: f64 = 0.87;
/// ACON-C (Ma et al. 2021) parameter `p1`, fixed (not learned per channel here).
pub const ACON_P1: f64 = 1.0;
/// ACON-C (Ma et al. 2021) parameter `p2`, fixed.
pub const ACON_P2: f64 = 0.25;
/// ACON-C (Ma et al. 2021) switching factor `beta`, fixed.
pub const ACON_BETA: f64 = 1.0;
/// Soft-Root-Sign (Zhou et al. 2020) parameter `a` in `x / (x/a + exp(-x/b))`.
pub const SRS_A: f64 = 2.0;
/// Soft-Root-Sign (Zhou et al. 2020) parameter `b` in `x / (x/a + exp(-x/b))`.
pub const SRS_B: f64 = 3.0;
/// Soft-Root-Sign clamps its exponent argument `-x/b` at this value so `exp` never overflows.
pub const SRS_EXP_CLAMP: f64 = 30.0;
/// Symexp clamps `|x|` at this value before `exp`, so large inputs give large but finite
/// outputs (`exp(20) ~ 4.9e8`, fine in f32) and zero gradient beyond it.
pub const SYMEXP_CLAMP: f64 = 20.0;
/// SELU scale, PyTorch's constant.
pub const SELU_SCALE: f64 = 1.050_700_987_355_480_5;
/// SELU alpha, PyTorch's constant.
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;

/// A unary activation operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[derive(strum::VariantArray, strum::IntoStaticStr, strum::Display)]
#[strum(serialize_all = "lowercase")]
pub enum Op {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x * relu6(x + 3) / 6`.
    Hardswish,
    /// `x * sigmoid(x)` (SiLU).
    Swish,
    /// `tanh(a*x) * softplus(x)`, `a` = [`TANHSOFT1_A`].
    Tanhsoft1,
    /// ACON-C with fixed `p1`, `p2`, `beta` ([`ACON_P1`], [`ACON_P2`], [`ACON_BETA`]).
    Acon,
    /// `x * Phi(x)`, the exact (erf) form.
    Gelu,
    /// Soft-Root-Sign `x / (x/a + exp(-x/b))`, `a` = [`SRS_A`], `b` = [`SRS_B`].
    Srs,
    /// ELU with alpha 1.
    Elu,
    /// SELU with PyTorch's constants.
    Selu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `ln(1 + exp(x))`.
    Softplus,
    /// `ln(sigmoid(x))`.
    Logsigmoid,
    /// `sign(x) * ln(1 + |x|)`.
    Symlog,
    /// `sign(x) * (exp(min(|x|, SYMEXP_CLAMP)) - 1)`.
    Symexp,
    /// `x`.
    Identity,
}

/// Every operator, in declaration order.
pub const ALL: &[Op] = <Op as strum::VariantArray>::VARIANTS;

/// The candidate operators of the SAFS search space, in the paper's order.
pub const SEARCH_SPACE: [Op; 13] = [
    Op::Relu6,
    Op::Hardswish,
    Op::Swish,
    Op::Tanhsoft1,
    Op::Acon,
    Op::Gelu,
    Op::Srs,
    Op::Elu,
    Op::Tanh,
    Op::Softplus,
    Op::Logsigmoid,
    Op::Symlog,
    Op::Symexp,
];

impl Op {
    /// Every operator (same as the module-level [`ALL`]).
    pub const ALL: &'static [Op] = ALL;
    /// The paper's candidates (same as the module-level [`SEARCH_SPACE`]).
    pub const SEARCH_SPACE: [Op; 13] = SEARCH_SPACE;

    /// The lowercase name, as used in configs and serde.
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// Applies the operator elementwise (any float dtype, shape and device; differentiable).
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        match self {
            Op::Relu => crate::kernels::relu(x).map_err(candle_error),
            Op::Relu6 => relu6(x),
            Op::Hardswish => x.mul(&relu6(&x.affine(1.0, 3.0)?)?)?.affine(1.0 / 6.0, 0.0),
            Op::Swish => crate::kernels::silu(x).map_err(candle_error),
            Op::Tanhsoft1 => x.affine(TANHSOFT1_A, 0.0)?.tanh()?.mul(&softplus(x)?),
            Op::Acon => {
                // (p1-p2) x sigmoid(beta (p1-p2) x) = silu(beta (p1-p2) x) / beta.
                let d = ACON_P1 - ACON_P2;
                let switch = x
                    .affine(ACON_BETA * d, 0.0)?
                    .silu()?
                    .affine(1.0 / ACON_BETA, 0.0)?;
                switch.add(&x.affine(ACON_P2, 0.0)?)
            }
            Op::Gelu => x.gelu_erf(),
            Op::Srs => {
                // The denominator x/a + exp(-x/b) has its minimum 0.892 at x = -b ln(b/a)
                // (a=2, b=3), so it is always > 0.89 and the division is safe. With the
                // exponent clamped at 30 this stays true for every x > -2 a e^30 ~ -2e13.
                let e = x.affine(-1.0 / SRS_B, 0.0)?.minimum(SRS_EXP_CLAMP)?.exp()?;
                let den = x.affine(1.0 / SRS_A, 0.0)?.add(&e)?;
                x.div(&den)
            }
            Op::Elu => elu_like(x, 1.0),
            Op::Selu => elu_like(x, SELU_ALPHA)?.affine(SELU_SCALE, 0.0),
            Op::Tanh => x.tanh(),
            Op::Sigmoid => sigmoid(x),
            Op::Softplus => softplus(x),
            Op::Logsigmoid => {
                // min(x, 0) - ln(1 + exp(-|x|))
                let l = x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
                x.minimum(0.0)?.sub(&l)
            }
            Op::Symlog => {
                let s = x.sign()?.detach();
                x.abs()?.affine(1.0, 1.0)?.log()?.mul(&s)
            }
            Op::Symexp => {
                let s = x.sign()?.detach();
                x.abs()?
                    .minimum(SYMEXP_CLAMP)?
                    .exp()?
                    .affine(1.0, -1.0)?
                    .mul(&s)
            }
            Op::Identity => Ok(x.clone()),
        }
    }

    /// The same function on a plain `f64`, computed directly from the formulas (a reference
    /// independent of the tensor code, also used for plots).
    pub fn eval_f64(self, x: f64) -> f64 {
        match self {
            Op::Relu => x.max(0.0),
            Op::Relu6 => x.clamp(0.0, 6.0),
            Op::Hardswish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
            Op::Swish => x * sigmoid_f64(x),
            Op::Tanhsoft1 => (TANHSOFT1_A * x).tanh() * softplus_f64(x),
            Op::Acon => {
                let d = ACON_P1 - ACON_P2;
                d * x * sigmoid_f64(ACON_BETA * d * x) + ACON_P2 * x
            }
            Op::Gelu => x * phi_f64(x),
            Op::Srs => x / (x / SRS_A + (-x / SRS_B).min(SRS_EXP_CLAMP).exp()),
            Op::Elu => {
                if x > 0.0 {
                    x
                } else {
                    x.exp_m1()
                }
            }
            Op::Selu => {
                if x > 0.0 {
                    SELU_SCALE * x
                } else {
                    SELU_SCALE * SELU_ALPHA * x.exp_m1()
                }
            }
            Op::Tanh => x.tanh(),
            Op::Sigmoid => sigmoid_f64(x),
            Op::Softplus => softplus_f64(x),
            Op::Logsigmoid => -softplus_f64(-x),
            Op::Symlog => x.signum() * x.abs().ln_1p(),
            Op::Symexp => {
                if x == 0.0 {
                    0.0
                } else {
                    x.signum() * x.abs().min(SYMEXP_CLAMP).exp_m1()
                }
            }
            Op::Identity => x,
        }
    }
}

impl FromStr for Op {
    type Err = Error;

    fn from_str(s: &str) -> std::result::Result<Self, Error> {
        let lower = s.trim().to_ascii_lowercase();
        if lower == "silu" {
            return Ok(Op::Swish);
        }
        crate::util::parse_variant(&lower, str::to_string).ok_or_else(|| Error::UnknownOp {
            name: s.to_string(),
            valid: crate::util::variant_names::<Op>(),
        })
    }
}

// ---------------------------------------------------------------- tensor helpers

/// A kernel's error as Candle's, for `Op::apply`'s Candle-style signature.
pub(crate) fn candle_error(e: Error) -> candle_core::Error {
    match e {
        Error::Candle(e) => e,
        other => candle_core::Error::Msg(other.to_string()),
    }
}

fn relu6(x: &Tensor) -> Result<Tensor> {
    x.relu()?.minimum(6.0)
}

/// Stable sigmoid: with `e = exp(-|x|)`, `1/(1+e)` for `x >= 0`, `e/(1+e)` otherwise.
pub(super) fn sigmoid(x: &Tensor) -> Result<Tensor> {
    let e = x.abs()?.neg()?.exp()?;
    let pos = x.ge(0.0)?.to_dtype(x.dtype())?.detach();
    // numerator: 1 where x >= 0, e where x < 0
    let num = e.add(&pos.mul(&e.affine(-1.0, 1.0)?)?)?;
    num.div(&e.affine(1.0, 1.0)?)
}

/// Stable softplus `max(x, 0) + ln(1 + exp(-|x|))`.
pub(super) fn softplus(x: &Tensor) -> Result<Tensor> {
    let l = x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    x.relu()?.add(&l)
}

/// `max(x, 0) + alpha * (exp(min(x, 0)) - 1)`: ELU without overflow for large `x`.
fn elu_like(x: &Tensor, alpha: f64) -> Result<Tensor> {
    let neg = x.minimum(0.0)?.exp()?.affine(alpha, -alpha)?;
    x.relu()?.add(&neg)
}

// ---------------------------------------------------------------- scalar references

fn sigmoid_f64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn softplus_f64(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Standard normal CDF, `0.5 * erfc(-x / sqrt(2))`.
fn phi_f64(x: f64) -> f64 {
    0.5 * erfc_f64(-x * std::f64::consts::FRAC_1_SQRT_2)
}

/// `erf` by its everywhere-convergent series with positive terms
/// `erf(z) = 2/sqrt(pi) exp(-z^2) sum_n 2^n z^(2n+1) / (1*3*...*(2n+1))`, for `|z| < 2.5`.
fn erf_series(z: f64) -> f64 {
    let z2 = z * z;
    let mut term = z;
    let mut sum = z;
    let mut n = 0.0;
    while term.abs() > 1e-17 * sum.abs() {
        n += 1.0;
        term *= 2.0 * z2 / (2.0 * n + 1.0);
        sum += term;
    }
    2.0 / std::f64::consts::PI.sqrt() * (-z2).exp() * sum
}

/// `erfc(z)` for `z >= 2.5` by its continued fraction
/// `exp(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...))))`.
fn erfc_cf(z: f64) -> f64 {
    let mut t = z;
    for n in (1..=300).rev() {
        t = z + (n as f64 / 2.0) / t;
    }
    (-z * z).exp() / std::f64::consts::PI.sqrt() / t
}

fn erfc_f64(z: f64) -> f64 {
    if z >= 2.5 {
        erfc_cf(z)
    } else if z > -2.5 {
        1.0 - erf_series(z)
    } else {
        2.0 - erfc_cf(-z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    fn grid() -> Vec<f64> {
        let mut v: Vec<f64> = (0..=43).map(|k| -8.0 + 0.37 * k as f64).collect();
        v.push(0.5);
        v.push(-0.5);
        v
    }

    fn apply_vec(op: Op, xs: &[f64], dtype: DType) -> Vec<f64> {
        let t = Tensor::new(xs, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let y = op.apply(&t).unwrap();
        assert_eq!(y.dtype(), dtype, "{op}");
        assert_eq!(y.dims(), t.dims(), "{op}");
        y.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
    }

    fn grad_vec(op: Op, xs: &[f64], dtype: DType) -> Vec<f64> {
        let t = Tensor::new(xs, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let v = Var::from_tensor(&t).unwrap();
        let grads = op
            .apply(v.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g = grads
            .get(v.as_tensor())
            .expect("no gradient reached the input");
        g.to_dtype(DType::F64).unwrap().to_vec1().unwrap()
    }

    #[test]
    fn activation_erf_reference_values() {
        // math.erf / math.erfc values from Python 3.
        let cases = [
            (0.1, 0.1124629160182849),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (2.4, 0.9993114861033549),
        ];
        for (z, e) in cases {
            assert!((1.0 - erfc_f64(z) - e).abs() < 1e-15, "erf({z})");
            assert!((1.0 - erfc_f64(-z) + e).abs() < 1e-15, "erf(-{z})");
        }
        let tail = [
            (2.5, 0.000_406_952_017_444_959),
            (3.0, 2.209049699858544e-05),
            (4.0, 1.541725790028002e-08),
            (6.0, 2.151973671249892e-17),
        ];
        for (z, e) in tail {
            assert!(
                ((erfc_f64(z) - e) / e).abs() < 1e-13,
                "erfc({z}) = {}",
                erfc_f64(z)
            );
        }
    }

    #[test]
    fn activation_apply_matches_eval_f64() {
        let xs = grid();
        for &op in ALL {
            let ys = apply_vec(op, &xs, DType::F64);
            for (x, y) in xs.iter().zip(&ys) {
                let r = op.eval_f64(*x);
                assert!(close(*y, r, 1e-12), "{op}({x}): tensor {y} vs scalar {r}");
            }
        }
    }

    #[test]
    fn activation_apply_any_shape_f32() {
        let xs = grid();
        let n = xs.len();
        for &op in ALL {
            let t = Tensor::new(xs.as_slice(), &Device::Cpu)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .reshape((2, n / 2, 1))
                .unwrap();
            let y = op.apply(&t).unwrap();
            assert_eq!(y.dims(), &[2, n / 2, 1]);
            assert_eq!(y.dtype(), DType::F32);
            let ys: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
            for (x, y) in xs.iter().zip(&ys) {
                let r = op.eval_f64(*x);
                assert!(close(*y as f64, r, 1e-5), "{op}({x}): f32 {y} vs {r}");
            }
        }
    }

    #[test]
    fn activation_backward_matches_finite_differences() {
        let xs = grid();
        let h = 1e-6;
        for &op in ALL {
            let gs = grad_vec(op, &xs, DType::F64);
            for (x, g) in xs.iter().zip(&gs) {
                let fd = (op.eval_f64(x + h) - op.eval_f64(x - h)) / (2.0 * h);
                assert!(close(*g, fd, 1e-5), "{op}'({x}): backward {g} vs fd {fd}");
            }
        }
    }

    #[test]
    fn activation_large_inputs_finite_f32() {
        let xs = [1e4, -1e4, 88.0, -88.0, 0.0];
        for &op in ALL {
            let ys = apply_vec(op, &xs, DType::F32);
            let gs = grad_vec(op, &xs, DType::F32);
            for ((x, y), g) in xs.iter().zip(&ys).zip(&gs) {
                assert!(y.is_finite(), "{op}({x}) = {y}");
                assert!(g.is_finite(), "{op}'({x}) = {g}");
            }
        }
        // and f64 at extremes
        let xs = [1e300, -1e300, 1e4, -1e4, 800.0, -800.0];
        for &op in ALL {
            for (x, y) in xs.iter().zip(apply_vec(op, &xs, DType::F64)) {
                assert!(y.is_finite(), "{op}({x}) = {y}");
            }
        }
    }

    #[test]
    fn activation_sigmoid_extremes_exact() {
        let ys = apply_vec(Op::Sigmoid, &[-1e4, -40.0, 0.0, 40.0, 1e4], DType::F64);
        assert_eq!(ys[0], 0.0);
        assert!(close(ys[1], (-40f64).exp() / (1.0 + (-40f64).exp()), 1e-15) && ys[1] > 0.0);
        assert_eq!(ys[2], 0.5);
        assert_eq!(ys[4], 1.0);
        // the tail is kept to full relative precision
        assert!(((ys[1] - 4.248354255291589e-18) / 4.248354255291589e-18).abs() < 1e-12);
    }

    #[derive(serde::Deserialize)]
    struct Reference(std::collections::BTreeMap<String, Vec<(f64, f64)>>);

    #[test]
    fn activation_matches_pytorch_reference() {
        let reference: Reference =
            serde_json::from_str(include_str!("reference/pytorch_reference.json")).unwrap();
        let mut seen = 0;
        for (name, points) in &reference.0 {
            let op: Op = name.parse().unwrap();
            let xs: Vec<f64> = points.iter().map(|p| p.0).collect();
            let y64 = apply_vec(op, &xs, DType::F64);
            let y32 = apply_vec(op, &xs, DType::F32);
            for (i, (x, want)) in points.iter().enumerate() {
                assert!(
                    (y64[i] - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "{op}({x}) f64: {} vs pytorch {want}",
                    y64[i]
                );
                assert!(
                    (y32[i] - want).abs() <= 1e-5 * want.abs() + 1e-6,
                    "{op}({x}) f32: {} vs pytorch {want}",
                    y32[i]
                );
                assert!(
                    (op.eval_f64(*x) - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "{op}({x}) eval_f64 vs pytorch"
                );
            }
            seen += 1;
        }
        assert_eq!(seen, ALL.len(), "reference must cover every operator");
    }

    #[test]
    fn activation_names_round_trip() {
        for &op in ALL {
            assert_eq!(op.name().parse::<Op>().unwrap(), op);
            assert_eq!(op.to_string().to_uppercase().parse::<Op>().unwrap(), op);
            let json = serde_json::to_string(&op).unwrap();
            assert_eq!(json, format!("\"{}\"", op.name()));
            assert_eq!(serde_json::from_str::<Op>(&json).unwrap(), op);
        }
        assert_eq!("SiLU".parse::<Op>().unwrap(), Op::Swish);
        assert_eq!(serde_json::to_string(&Op::Relu6).unwrap(), "\"relu6\"");
        assert_eq!(serde_json::from_str::<Op>("\"relu6\"").unwrap(), Op::Relu6);
        let err = "mish".parse::<Op>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("'mish'"), "{msg}");
        for &op in ALL {
            assert!(msg.contains(op.name()), "{msg} lacks {op}");
        }
        assert!(matches!(err, Error::UnknownOp { .. }));
    }

    #[test]
    fn activation_search_space_is_the_papers() {
        let names: Vec<&str> = SEARCH_SPACE.iter().map(|op| op.name()).collect();
        assert_eq!(
            names,
            [
                "relu6",
                "hardswish",
                "swish",
                "tanhsoft1",
                "acon",
                "gelu",
                "srs",
                "elu",
                "tanh",
                "softplus",
                "logsigmoid",
                "symlog",
                "symexp"
            ]
        );
        let distinct: std::collections::HashSet<_> = ALL.iter().collect();
        assert_eq!(distinct.len(), ALL.len());
    }
}
