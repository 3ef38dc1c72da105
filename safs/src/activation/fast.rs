//! f32 operators with a vectorisable exp, for the CPU kernels' element loops (training and
//! the inference graph): libm's `expf` is a call per element, which keeps a loop scalar.

use super::pointwise::Real;

/// f32 whose `exp` is a branch-free polynomial, so that an output loop calling the
/// operators vectorises (libm's `expf` is a call per element). Everything else is f32's.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
#[repr(transparent)]
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

impl From<Fast> for f64 {
    #[inline(always)]
    fn from(v: Fast) -> f64 {
        v.0 as f64
    }
}

/// The float a CPU kernel evaluates the operators in: f32 as [`Fast`], f64 as itself.
pub(crate) trait FastFloat: Copy {
    /// The evaluation type.
    type R: Real + Send + Sync;
    /// `s` viewed as the evaluation type.
    fn fast(s: &[Self]) -> &[Self::R];
    /// `s` viewed mutably as the evaluation type.
    fn fast_mut(s: &mut [Self]) -> &mut [Self::R];
}

impl FastFloat for f32 {
    type R = Fast;
    #[inline(always)]
    fn fast(s: &[f32]) -> &[Fast] {
        // SAFETY: Fast is a repr(transparent) f32.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) }
    }
    #[inline(always)]
    fn fast_mut(s: &mut [f32]) -> &mut [Fast] {
        // SAFETY: Fast is a repr(transparent) f32.
        unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) }
    }
}

impl FastFloat for f64 {
    type R = f64;
    #[inline(always)]
    fn fast(s: &[f64]) -> &[f64] {
        s
    }
    #[inline(always)]
    fn fast_mut(s: &mut [f64]) -> &mut [f64] {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn views_keep_the_values() {
        let mut v = [1.5f32, -2.0];
        assert_eq!(f32::fast(&v)[1].0, -2.0);
        f32::fast_mut(&mut v)[0] = Fast(3.0);
        assert_eq!(v[0], 3.0);
    }
}
