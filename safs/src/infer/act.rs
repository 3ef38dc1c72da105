//! An activation slot frozen into constants for the graph: `beta * op(alpha * x; theta)`.

use crate::activation::pointwise::value;
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

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
