//! An activation slot frozen into constants for the graph: `beta * op(alpha * x; theta)`.

use crate::activation::pointwise::{value, Real};
use crate::activation::{Activation, Op};
use crate::Result;

/// The slot's operator, scales and operator parameters, read once from its variables.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PointAct {
    pub op: Op,
    pub alpha: f32,
    pub beta: f32,
    pub theta: [f32; 3],
}

impl PointAct {
    /// No activation (identity, unit scales: exactly `x`).
    pub const NONE: PointAct = PointAct {
        op: Op::Identity,
        alpha: 1.0,
        beta: 1.0,
        theta: [0.0; 3],
    };

    /// A bare operator with unit scales and no parameters (the SE gate's sigmoid).
    pub fn plain(op: Op) -> Self {
        PointAct { op, ..Self::NONE }
    }

    /// The current values of a slot.
    pub fn from_slot(slot: &Activation) -> Result<Self> {
        let mut theta = [0f32; 3];
        if slot.op().num_params() > 0 {
            for (t, v) in theta.iter_mut().zip(slot.params()?) {
                *t = v as f32;
            }
        }
        Ok(PointAct {
            op: slot.op(),
            alpha: slot.alpha()? as f32,
            beta: slot.beta()? as f32,
            theta,
        })
    }

    /// The activation of one value (the operator matched per call; loops use
    /// [`crate::activation::pointwise::with_const_op`] instead).
    pub fn eval(&self, v: f32) -> f32 {
        self.beta * value(self.op, self.alpha * v, &self.theta)
    }
}

/// f32 whose `exp` is a branch-free polynomial, so that an output loop calling the
/// operators vectorises (libm's `expf` is a call per element). Everything else is f32's.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub(crate) struct Fast(pub f32);

/// `e^x` to about 2 ulp: `2^k * p(r)` with `k = round(x / ln 2)`, `|r| <= ln 2 / 2` and
/// Cephes' degree-6 polynomial for `e^r`; inputs are clamped to where `2^k` is a normal
/// float (so `e^-100` gives about 1.2e-38, not 0).
#[inline(always)]
pub(crate) fn exp_poly(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits: k as a float
    // and as bits without a float-to-int conversion (whose saturating form does not
    // vectorise).
    const SHIFTER: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let t = x * std::f32::consts::LOG2_E + SHIFTER;
    let k = t - SHIFTER;
    let r = x - k * LN2_HI - k * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let er = p * r * r + r + 1.0;
    let k_bits = t.to_bits().wrapping_sub(SHIFTER.to_bits());
    let scale = f32::from_bits(k_bits.wrapping_add(127) << 23);
    er * scale
}

macro_rules! fast_op {
    ($tr:ident, $f:ident, $op:tt) => {
        impl std::ops::$tr for Fast {
            type Output = Fast;
            #[inline(always)]
            fn $f(self, o: Fast) -> Fast {
                Fast(self.0 $op o.0)
            }
        }
    };
}
fast_op!(Add, add, +);
fast_op!(Sub, sub, -);
fast_op!(Mul, mul, *);
fast_op!(Div, div, /);

impl std::ops::Neg for Fast {
    type Output = Fast;
    #[inline(always)]
    fn neg(self) -> Fast {
        Fast(-self.0)
    }
}

impl Real for Fast {
    #[inline(always)]
    fn c(v: f64) -> Self {
        Fast(v as f32)
    }
    #[inline(always)]
    fn exp(self) -> Self {
        Fast(exp_poly(self.0))
    }
    #[inline(always)]
    fn ln_1p(self) -> Self {
        Fast(self.0.ln_1p())
    }
    #[inline(always)]
    fn tanh(self) -> Self {
        Fast(self.0.tanh())
    }
    #[inline(always)]
    fn erf(self) -> Self {
        Fast(candle_core::cpu::erf::erf_f32(self.0))
    }
    #[inline(always)]
    fn abs(self) -> Self {
        Fast(self.0.abs())
    }
    #[inline(always)]
    fn min(self, o: Self) -> Self {
        Fast(self.0.min(o.0))
    }
    #[inline(always)]
    fn max(self, o: Self) -> Self {
        Fast(self.0.max(o.0))
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        self.0.is_nan()
    }
    /// One exp, not one per branch: the clamped exp never overflows, so `1 / (1 + e^-u)`
    /// is stable for either sign.
    #[inline(always)]
    fn sigmoid(self) -> Self {
        Fast(1.0 / (1.0 + exp_poly(-self.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// The polynomial against f64's exp over the range the operators use, and at the edges.
    #[test]
    fn exp_poly_is_within_a_few_ulp() {
        let mut worst = 0f64;
        for i in -8000..=8000 {
            let x = i as f32 * 0.01;
            let want = (x as f64).exp();
            worst = worst.max(((exp_poly(x) as f64) - want).abs() / want);
        }
        assert!(worst < 3e-7, "relative error {worst}");
        assert!(exp_poly(f32::NAN).is_nan());
        assert!(exp_poly(-1000.0) > 0.0 && exp_poly(-1000.0) < 1.3e-38);
        assert!(exp_poly(1000.0).is_finite() && exp_poly(1000.0) > 1e38);
    }

    #[test]
    fn a_slot_reads_back_as_its_formula() -> Result<()> {
        let mut slot = Activation::new(Op::Elu, &Device::Cpu, DType::F32)?;
        slot.set_scales(2.0, 0.5)?;
        let a = PointAct::from_slot(&slot)?;
        // 0.5 * elu(2 * -1) = 0.5 * (e^-2 - 1)
        let want = 0.5 * ((-2f64).exp() - 1.0);
        assert!((a.eval(-1.0) as f64 - want).abs() < 1e-6);
        assert_eq!(PointAct::NONE.eval(-3.25), -3.25);
        Ok(())
    }
}
