//! Every operator as a scalar function with its derivatives, for the fused CPU kernel
//! ([`crate::kernels::scaled_activation`]): the value `f(u; theta)`, `df/du` and
//! `df/dtheta_k`, in the tensor's own precision ([`Real`]: f32 or f64).
//!
//! Values equal [`Op::eval_f64_with`]; at the few points where a derivative is not
//! defined, the choice is the one of the tensor code in [`Op::apply_with`] (and of PyTorch
//! where it has the operator): ReLU, ReLU6 and Hardswish's kinks as PyTorch's backward,
//! symlog and symexp have slope 0 at 0 (their sign is a constant there).

use std::ops::{Add, Div, Mul, Neg, Sub};

use super::op::{Op, SELU_ALPHA, SELU_SCALE, SRS_EXP_CLAMP, SYMEXP_CLAMP};

/// The float operations the operators need, for f32 and f64.
pub(crate) trait Real:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// The constant `v` in this precision.
    fn c(v: f64) -> Self;
    fn exp(self) -> Self;
    fn ln_1p(self) -> Self;
    fn tanh(self) -> Self;
    fn erf(self) -> Self;
    fn abs(self) -> Self;
    fn min(self, o: Self) -> Self;
    fn max(self, o: Self) -> Self;
    fn is_nan(self) -> bool;

    /// The logistic function, in the form stable for either sign of `self`.
    #[inline(always)]
    fn sigmoid(self) -> Self {
        let one = Self::c(1.0);
        if self >= Self::c(0.0) {
            one / (one + (-self).exp())
        } else {
            let e = self.exp();
            e / (one + e)
        }
    }
}

macro_rules! real {
    ($t:ty, $erf:path) => {
        impl Real for $t {
            #[inline(always)]
            fn c(v: f64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn min(self, o: Self) -> Self {
                <$t>::min(self, o)
            }
            #[inline(always)]
            fn max(self, o: Self) -> Self {
                <$t>::max(self, o)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
        }
    };
}
real!(f32, candle_core::cpu::erf::erf_f32);
real!(f64, candle_core::cpu::erf::erf_f64);

/// `f(u)`, `df/du` and `df/dtheta` (entries past the operator's parameters are 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Slope<R> {
    pub value: R,
    pub du: R,
    pub dtheta: [R; 3],
}

impl<R: Real> Slope<R> {
    #[inline(always)]
    fn plain(value: R, du: R) -> Self {
        Slope {
            value,
            du,
            dtheta: [R::c(0.0); 3],
        }
    }
}

/// The logistic function ([`Real::sigmoid`]).
#[inline(always)]
fn sigmoid<R: Real>(u: R) -> R {
    u.sigmoid()
}

/// `ln(1 + exp(u))` without overflow.
#[inline(always)]
fn softplus<R: Real>(u: R) -> R {
    u.max(R::c(0.0)) + (-u.abs()).exp().ln_1p()
}

/// `sign(u)` with `sign(0) = 0` (Candle's and PyTorch's `sign`).
#[inline(always)]
fn sign<R: Real>(u: R) -> R {
    if u > R::c(0.0) {
        R::c(1.0)
    } else if u < R::c(0.0) {
        R::c(-1.0)
    } else {
        u // 0 (keeping -0) or NaN
    }
}

/// `x / sqrt(2)` for the normal CDF.
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;
/// `1 / sqrt(2 pi)`, the normal density at 0.
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// `f(u; theta)`; `theta` holds the operator's parameters (see [`super::params`]).
#[inline(always)]
pub(crate) fn value<R: Real>(op: Op, u: R, theta: &[R; 3]) -> R {
    let (zero, one) = (R::c(0.0), R::c(1.0));
    match op {
        // `u > 0 || NaN`: NaN propagates, as PyTorch's relu.
        Op::Relu => {
            if u > zero || u.is_nan() {
                u
            } else {
                zero
            }
        }
        Op::Relu6 => {
            if u.is_nan() {
                u
            } else {
                u.max(zero).min(R::c(6.0))
            }
        }
        Op::Hardswish => u * (u + R::c(3.0)).max(zero).min(R::c(6.0)) / R::c(6.0),
        Op::Swish => u * sigmoid(u),
        Op::Tanhsoft1 => (theta[0] * u).tanh() * softplus(u),
        Op::Acon => {
            let d = (theta[0] - theta[1]) * u;
            d * sigmoid(theta[2] * d) + theta[1] * u
        }
        Op::Gelu => R::c(0.5) * u * (one + (u * R::c(FRAC_1_SQRT_2)).erf()),
        Op::Srs => u / (u / theta[0] + (-u / theta[1]).min(R::c(SRS_EXP_CLAMP)).exp()),
        Op::Elu => u.max(zero) + (u.min(zero).exp() - one),
        Op::Selu => R::c(SELU_SCALE) * (u.max(zero) + R::c(SELU_ALPHA) * (u.min(zero).exp() - one)),
        Op::Tanh => u.tanh(),
        Op::Sigmoid => sigmoid(u),
        Op::Softplus => softplus(u),
        Op::Logsigmoid => u.min(zero) - (-u.abs()).exp().ln_1p(),
        Op::Symlog => sign(u) * u.abs().ln_1p(),
        Op::Symexp => sign(u) * (u.abs().min(R::c(SYMEXP_CLAMP)).exp() - one),
        Op::Identity => u,
    }
}

/// The value and its derivatives at `u` (a caller that needs only `du` lets the compiler
/// drop the rest).
#[inline(always)]
pub(crate) fn slope<R: Real>(op: Op, u: R, theta: &[R; 3]) -> Slope<R> {
    let (zero, one) = (R::c(0.0), R::c(1.0));
    let step = |on: bool| if on { one } else { zero };
    match op {
        Op::Relu => Slope::plain(value(op, u, theta), step(u > zero)),
        // PyTorch's hardtanh backward: slope 1 strictly inside (0, 6).
        Op::Relu6 => Slope::plain(value(op, u, theta), step(u > zero && u < R::c(6.0))),
        // PyTorch's hardswish backward: 0 below -3, u/3 + 1/2 up to 3, 1 above.
        Op::Hardswish => {
            let du = if u < R::c(-3.0) {
                zero
            } else if u <= R::c(3.0) {
                u / R::c(3.0) + R::c(0.5)
            } else {
                one
            };
            Slope::plain(value(op, u, theta), du)
        }
        Op::Swish => {
            let s = sigmoid(u);
            Slope::plain(u * s, s * (one + u * (one - s)))
        }
        Op::Tanhsoft1 => {
            let a = theta[0];
            let (t, sp) = ((a * u).tanh(), softplus(u));
            let dt = one - t * t;
            Slope {
                value: t * sp,
                du: a * dt * sp + t * sigmoid(u),
                dtheta: [u * dt * sp, zero, zero],
            }
        }
        Op::Acon => {
            // f = d s + p2 u with d = (p1 - p2) u, s = sigmoid(beta d).
            let (p1, p2, beta) = (theta[0], theta[1], theta[2]);
            let d = (p1 - p2) * u;
            let s = sigmoid(beta * d);
            let ds = s * (one - s); // ds/d(beta d)
            let df_dd = s + d * ds * beta;
            Slope {
                value: d * s + p2 * u,
                du: df_dd * (p1 - p2) + p2,
                dtheta: [df_dd * u, u - df_dd * u, d * ds * d],
            }
        }
        Op::Gelu => {
            let cdf = R::c(0.5) * (one + (u * R::c(FRAC_1_SQRT_2)).erf());
            let pdf = (R::c(-0.5) * u * u).exp() * R::c(FRAC_1_SQRT_2PI);
            Slope::plain(u * cdf, cdf + u * pdf)
        }
        Op::Srs => {
            let (a, b) = (theta[0], theta[1]);
            let z = -u / b;
            let clamped = z > R::c(SRS_EXP_CLAMP);
            let e = z.min(R::c(SRS_EXP_CLAMP)).exp();
            let den = u / a + e;
            let (de_du, de_db) = if clamped {
                (zero, zero)
            } else {
                (-e / b, e * u / (b * b))
            };
            let q = u / (den * den);
            Slope {
                value: u / den,
                du: one / den - q * (one / a + de_du),
                dtheta: [q * u / (a * a), -(q * de_db), zero],
            }
        }
        Op::Elu => {
            let du = if u > zero { one } else { u.exp() };
            Slope::plain(value(op, u, theta), du)
        }
        Op::Selu => {
            let du = if u > zero {
                one
            } else {
                R::c(SELU_ALPHA) * u.exp()
            };
            Slope::plain(value(op, u, theta), R::c(SELU_SCALE) * du)
        }
        Op::Tanh => {
            let t = u.tanh();
            Slope::plain(t, one - t * t)
        }
        Op::Sigmoid => {
            let s = sigmoid(u);
            Slope::plain(s, s * (one - s))
        }
        Op::Softplus => Slope::plain(softplus(u), sigmoid(u)),
        Op::Logsigmoid => Slope::plain(value(op, u, theta), sigmoid(-u)),
        Op::Symlog => {
            let du = if u == zero {
                zero
            } else {
                one / (one + u.abs())
            };
            Slope::plain(value(op, u, theta), du)
        }
        Op::Symexp => {
            let m = u.abs();
            let du = if u == zero || m >= R::c(SYMEXP_CLAMP) {
                zero
            } else {
                m.exp()
            };
            Slope::plain(value(op, u, theta), du)
        }
        Op::Identity => Slope::plain(u, one),
    }
}

/// Calls `$body` with `$c` a constant equal to `$op`, so the per-element `match` on the
/// operator folds away in each arm.
macro_rules! with_const_op {
    ($op:expr, |$c:ident| $body:expr) => {
        match $op {
            $crate::activation::Op::Relu => {
                const $c: $crate::activation::Op = $crate::activation::Op::Relu;
                $body
            }
            $crate::activation::Op::Relu6 => {
                const $c: $crate::activation::Op = $crate::activation::Op::Relu6;
                $body
            }
            $crate::activation::Op::Hardswish => {
                const $c: $crate::activation::Op = $crate::activation::Op::Hardswish;
                $body
            }
            $crate::activation::Op::Swish => {
                const $c: $crate::activation::Op = $crate::activation::Op::Swish;
                $body
            }
            $crate::activation::Op::Tanhsoft1 => {
                const $c: $crate::activation::Op = $crate::activation::Op::Tanhsoft1;
                $body
            }
            $crate::activation::Op::Acon => {
                const $c: $crate::activation::Op = $crate::activation::Op::Acon;
                $body
            }
            $crate::activation::Op::Gelu => {
                const $c: $crate::activation::Op = $crate::activation::Op::Gelu;
                $body
            }
            $crate::activation::Op::Srs => {
                const $c: $crate::activation::Op = $crate::activation::Op::Srs;
                $body
            }
            $crate::activation::Op::Elu => {
                const $c: $crate::activation::Op = $crate::activation::Op::Elu;
                $body
            }
            $crate::activation::Op::Selu => {
                const $c: $crate::activation::Op = $crate::activation::Op::Selu;
                $body
            }
            $crate::activation::Op::Tanh => {
                const $c: $crate::activation::Op = $crate::activation::Op::Tanh;
                $body
            }
            $crate::activation::Op::Sigmoid => {
                const $c: $crate::activation::Op = $crate::activation::Op::Sigmoid;
                $body
            }
            $crate::activation::Op::Softplus => {
                const $c: $crate::activation::Op = $crate::activation::Op::Softplus;
                $body
            }
            $crate::activation::Op::Logsigmoid => {
                const $c: $crate::activation::Op = $crate::activation::Op::Logsigmoid;
                $body
            }
            $crate::activation::Op::Symlog => {
                const $c: $crate::activation::Op = $crate::activation::Op::Symlog;
                $body
            }
            $crate::activation::Op::Symexp => {
                const $c: $crate::activation::Op = $crate::activation::Op::Symexp;
                $body
            }
            $crate::activation::Op::Identity => {
                const $c: $crate::activation::Op = $crate::activation::Op::Identity;
                $body
            }
        }
    };
}
pub(crate) use with_const_op;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Op;

    const US: [f64; 12] = [
        -25.0, -6.5, -3.2, -1.7, -0.45, -0.01, 0.03, 0.6, 1.3, 2.9, 5.4, 21.0,
    ];

    fn params(op: Op) -> [f64; 3] {
        // Off the literature values, so that every parameter's slope is exercised.
        let mut t = [0.0f64; 3];
        for (k, p) in op.default_params().iter().enumerate() {
            t[k] = p * 0.9 + 0.05 * (k as f64 + 1.0);
        }
        t
    }

    #[test]
    fn values_equal_the_scalar_references() {
        for &op in Op::ALL {
            let th = params(op);
            for u in US {
                let want = op.eval_f64_with(u, &th[..op.num_params()]);
                let got = value(op, u, &th);
                assert!(
                    (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                    "{op} at {u}: {got} vs {want}"
                );
                assert_eq!(slope(op, u, &th).value, got, "{op} at {u}");
            }
        }
    }

    #[test]
    fn slopes_match_central_differences_of_the_references() {
        let h = 1e-6;
        for &op in Op::ALL {
            let th = params(op);
            let n = op.num_params();
            for u in US {
                let s = slope(op, u, &th);
                let f = |u: f64, th: &[f64; 3]| op.eval_f64_with(u, &th[..n]);
                let fd = (f(u + h, &th) - f(u - h, &th)) / (2.0 * h);
                let tol = 1e-6 * fd.abs().max(1.0);
                assert!(
                    (s.du - fd).abs() < tol,
                    "{op} d/du at {u}: {} vs {fd}",
                    s.du
                );
                for k in 0..3 {
                    let (mut up, mut dn) = (th, th);
                    up[k] += h;
                    dn[k] -= h;
                    let fd = if k < n {
                        (f(u, &up) - f(u, &dn)) / (2.0 * h)
                    } else {
                        0.0
                    };
                    let tol = 1e-6 * fd.abs().max(1.0);
                    assert!(
                        (s.dtheta[k] - fd).abs() < tol,
                        "{op} d/dtheta{k} at {u}: {} vs {fd}",
                        s.dtheta[k]
                    );
                }
            }
        }
    }

    #[test]
    fn kinks_follow_pytorch_and_the_tensor_code() {
        let th = [0.0f64; 3];
        assert_eq!(slope(Op::Relu, 0.0, &th).du, 0.0);
        assert_eq!(
            (slope(Op::Relu6, 0.0, &th).du, slope(Op::Relu6, 6.0, &th).du),
            (0.0, 0.0)
        );
        assert_eq!(slope(Op::Hardswish, 3.0, &th).du, 1.5);
        assert_eq!(slope(Op::Hardswish, -3.0, &th).du, -0.5);
        assert_eq!(
            (
                slope(Op::Symlog, 0.0, &th).du,
                slope(Op::Symexp, 0.0, &th).du
            ),
            (0.0, 0.0)
        );
        assert!(
            value(Op::Relu, f64::NAN, &th).is_nan() && value(Op::Relu6, f64::NAN, &th).is_nan()
        );
    }

    #[test]
    fn f32_agrees_with_f64() {
        for &op in Op::ALL {
            let th = params(op);
            let th32 = th.map(|t| t as f32);
            for u in US {
                let (a, b) = (slope(op, u, &th), slope(op, u as f32, &th32));
                for (x, y) in [(a.value, b.value), (a.du, b.du), (a.dtheta[0], b.dtheta[0])] {
                    let tol = 1e-5 * x.abs().max(1.0);
                    assert!((x - y as f64).abs() <= tol, "{op} at {u}: {x} vs {y}");
                }
            }
        }
    }
}
