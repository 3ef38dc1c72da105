//! An activation slot: an operator with learnable input and output scales (and, for
//! TanhSoft-1, ACON-C and SRS, the operator's own parameters).

use candle_core::{DType, Device, Tensor, Var};

use super::op::Op;
use super::params::OpParams;
use crate::kernels::SlotArgs;

/// One activation of a network, `f(x) = beta * op(alpha * x; theta)`, with scalar `alpha` and
/// `beta` (shape `[1]`, initialised to 1) that are learned when the slot is trainable, and the
/// operator's own parameters `theta` (shape `[op.num_params()]`, see [`super::params`]).
///
/// `Clone` is shallow: a clone shares its variables with the original.
#[derive(Clone, Debug)]
pub struct Activation {
    op: Op,
    alpha: Var,
    beta: Var,
    trainable: bool,
    params: Var,
    params_mode: OpParams,
}

impl Activation {
    /// A frozen slot with `alpha = beta = 1` and the operator's literature parameters.
    pub fn new(op: Op, device: &Device, dtype: DType) -> crate::Result<Self> {
        Ok(Self {
            op,
            alpha: Var::ones(1, dtype, device)?,
            beta: Var::ones(1, dtype, device)?,
            trainable: false,
            params: params_var(op, OpParams::Fixed, device, dtype)?,
            params_mode: OpParams::Fixed,
        })
    }

    /// The operator.
    pub fn op(&self) -> Op {
        self.op
    }

    /// Replaces the operator (the scales are kept; the operator's parameters start anew
    /// from the current [`OpParams`] mode).
    pub fn set_op(&mut self, op: Op) {
        if op != self.op {
            self.op = op;
            self.reset_params();
        }
    }

    /// The current input scale.
    pub fn alpha(&self) -> crate::Result<f64> {
        scalar(&self.alpha)
    }

    /// The current output scale.
    pub fn beta(&self) -> crate::Result<f64> {
        scalar(&self.beta)
    }

    /// Overwrites both scales (in place: handles from [`Self::vars`] see the new values).
    pub fn set_scales(&mut self, alpha: f64, beta: f64) -> crate::Result<()> {
        for (var, value) in [(&self.alpha, alpha), (&self.beta, beta)] {
            let t = Tensor::new(&[value], var.device())?.to_dtype(var.dtype())?;
            var.set(&t)?;
        }
        Ok(())
    }

    /// Whether `alpha` and `beta` receive gradients in [`candle_nn::Module::forward`].
    pub fn trainable(&self) -> bool {
        self.trainable
    }

    /// Makes the scales learnable (`true`) or constants (`false`).
    pub fn set_trainable(&mut self, trainable: bool) {
        self.trainable = trainable;
    }

    /// `[alpha, beta]`; pass them to the optimiser only when the slot is trainable.
    pub fn vars(&self) -> Vec<Var> {
        vec![self.alpha.clone(), self.beta.clone()]
    }

    /// The input scale's variable.
    pub fn alpha_var(&self) -> &Var {
        &self.alpha
    }

    /// The output scale's variable.
    pub fn beta_var(&self) -> &Var {
        &self.beta
    }

    /// The operator's own parameters (shape `[op.num_params()]`, possibly empty).
    pub fn params_var(&self) -> &Var {
        &self.params
    }

    /// The operator's own parameter values.
    pub fn params(&self) -> crate::Result<Vec<f64>> {
        Ok(self.params.as_tensor().to_dtype(DType::F64)?.to_vec1()?)
    }

    /// Overwrites the operator's parameters; `values` must have one entry per parameter.
    pub fn set_params(&mut self, values: &[f64]) -> crate::Result<()> {
        if values.len() != self.op.num_params() {
            return Err(crate::Error::Config(format!(
                "{} takes {} parameters, {} given",
                self.op,
                self.op.num_params(),
                values.len()
            )));
        }
        if !values.is_empty() {
            let t = Tensor::new(values, self.params.device())?.to_dtype(self.params.dtype())?;
            self.params.set(&t)?;
        }
        Ok(())
    }

    /// How the operator's parameters start and whether they train.
    pub fn params_mode(&self) -> OpParams {
        self.params_mode
    }

    /// Sets the mode and resets the parameters to its starting values.
    pub fn set_params_mode(&mut self, mode: OpParams) {
        self.params_mode = mode;
        self.reset_params();
    }

    /// Whether the operator has parameters that receive gradients.
    pub fn params_trainable(&self) -> bool {
        self.params_mode.trained() && self.op.num_params() > 0
    }

    fn reset_params(&mut self) {
        // Infallible for a freshly built vector of the right length on the var's device.
        self.params = params_var(
            self.op,
            self.params_mode,
            self.alpha.device(),
            self.alpha.dtype(),
        )
        .expect("a small vector on the slot's own device");
    }

    /// The operator applied with its parameters (tracked when they train).
    fn apply_op(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let n = self.op.num_params();
        if n == 0 {
            return self.op.apply(x);
        }
        let all = if self.params_trainable() {
            self.params.as_tensor().clone()
        } else {
            self.params.as_detached_tensor()
        };
        let ps = (0..n)
            .map(|i| all.narrow(0, i, 1))
            .collect::<candle_core::Result<Vec<_>>>()?;
        self.op.apply_with(x, &ps)
    }
}

fn params_var(op: Op, mode: OpParams, device: &Device, dtype: DType) -> crate::Result<Var> {
    let init = mode.init(op);
    // The CUDA driver refuses a 0-byte allocation (CUDA_ERROR_INVALID_VALUE), so an operator
    // without parameters keeps its empty vector on the CPU; nothing computes with it.
    let device = if init.is_empty() {
        &Device::Cpu
    } else {
        device
    };
    let t = Tensor::from_vec(init.clone(), init.len(), device)?.to_dtype(dtype)?;
    Ok(Var::from_tensor(&t)?)
}

/// The single value of a shape-`[1]` variable, as `f64`.
fn scalar(v: &Var) -> crate::Result<f64> {
    let values: Vec<f64> = v.as_tensor().to_dtype(DType::F64)?.to_vec1()?;
    Ok(values[0])
}

impl Activation {
    /// The slot as one fused CPU kernel ([`crate::kernels::scaled_activation`]).
    fn forward_fused(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let a = self.slot_args(x.dtype()).map_err(super::op::candle_error)?;
        crate::kernels::scaled_activation(x, a.op, &a.p, a.param_grads)
            .map_err(super::op::candle_error)
    }

    /// The slot as a fused kernel takes it: operator, `[alpha, beta, theta...]` in `dtype`
    /// (tracked only when trainable), and whether those need a gradient.
    pub(crate) fn slot_args(&self, dtype: DType) -> crate::Result<SlotArgs> {
        let tracked = |v: &Var, on: bool| {
            if on {
                v.as_tensor().clone()
            } else {
                v.as_detached_tensor()
            }
        };
        let mut p = vec![
            tracked(&self.alpha, self.trainable),
            tracked(&self.beta, self.trainable),
        ];
        if self.op.num_params() > 0 {
            p.push(tracked(&self.params, self.params_trainable()));
        }
        Ok(SlotArgs {
            op: self.op,
            p: Tensor::cat(&p, 0)?.to_dtype(dtype)?,
            param_grads: self.trainable || self.params_trainable(),
        })
    }

    /// The slot as Candle tensor ops (any device; the reference of the fused kernel).
    pub(crate) fn forward_stock(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if self.trainable {
            let y = self
                .apply_op(&x.broadcast_mul(self.alpha.as_tensor())?)?
                .broadcast_mul(self.beta.as_tensor())?;
            // A rank-0 input would come back with shape [1].
            return if y.dims() == x.dims() {
                Ok(y)
            } else {
                y.reshape(x.shape())
            };
        }
        if x.device().is_cpu() {
            // Constants: read the scales (free on the CPU), skip them when they are 1.
            let values: Vec<f64> =
                Tensor::cat(&[self.alpha.as_tensor(), self.beta.as_tensor()], 0)?
                    .to_dtype(DType::F64)?
                    .to_vec1()?;
            let (alpha, beta) = (values[0], values[1]);
            let scaled = if alpha == 1.0 {
                x.clone()
            } else {
                x.affine(alpha, 0.0)?
            };
            let y = self.apply_op(&scaled)?;
            let y = if beta == 1.0 { y } else { y.affine(beta, 0.0)? };
            return if y.dims() == x.dims() {
                Ok(y)
            } else {
                y.reshape(x.shape())
            };
        }
        // On an accelerator reading the scales would force a host sync per call;
        // multiply by detached copies instead (constants, no gradient).
        let y = self
            .apply_op(&x.broadcast_mul(&self.alpha.as_detached_tensor())?)?
            .broadcast_mul(&self.beta.as_detached_tensor())?;
        if y.dims() == x.dims() {
            Ok(y)
        } else {
            y.reshape(x.shape())
        }
    }
}

impl candle_nn::Module for Activation {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        if crate::kernels::use_custom(x) && x.rank() > 0 {
            return self.forward_fused(x);
        }
        self.forward_stock(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Module;

    fn loss_grads(slot: &Activation, xs: &[f64]) -> (f64, candle_core::backprop::GradStore, Var) {
        let x = Var::from_slice(xs, xs.len(), &Device::Cpu).unwrap();
        let loss = slot.forward(x.as_tensor()).unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        (loss.to_scalar::<f64>().unwrap(), grads, x)
    }

    fn reference_loss(op: Op, alpha: f64, beta: f64, xs: &[f64]) -> f64 {
        xs.iter().map(|x| beta * op.eval_f64(alpha * x)).sum()
    }

    const XS: [f64; 8] = [-3.7, -1.3, -0.4, 0.2, 0.9, 1.7, 2.6, 4.1];

    #[test]
    fn activation_slot_gradients_match_finite_differences() {
        let h = 1e-6;
        for op in [
            Op::Swish,
            Op::Gelu,
            Op::Srs,
            Op::Symexp,
            Op::Tanhsoft1,
            Op::Elu,
        ] {
            for (a, b) in [(1.0, 1.0), (0.7, 1.3), (1.6, -0.8)] {
                let mut slot = Activation::new(op, &Device::Cpu, DType::F64).unwrap();
                slot.set_trainable(true);
                slot.set_scales(a, b).unwrap();
                let (loss, grads, x) = loss_grads(&slot, &XS);
                let want = reference_loss(op, a, b, &XS);
                assert!((loss - want).abs() < 1e-12 * want.abs().max(1.0), "{op}");

                let ga: Vec<f64> = grads.get(slot.alpha_var()).unwrap().to_vec1().unwrap();
                let gb: Vec<f64> = grads.get(slot.beta_var()).unwrap().to_vec1().unwrap();
                let fda = (reference_loss(op, a + h, b, &XS) - reference_loss(op, a - h, b, &XS))
                    / (2.0 * h);
                let fdb = (reference_loss(op, a, b + h, &XS) - reference_loss(op, a, b - h, &XS))
                    / (2.0 * h);
                assert!(
                    (ga[0] - fda).abs() < 1e-5 * fda.abs().max(1.0),
                    "{op} dalpha {ga:?} vs {fda}"
                );
                assert!(
                    (gb[0] - fdb).abs() < 1e-5 * fdb.abs().max(1.0),
                    "{op} dbeta {gb:?} vs {fdb}"
                );

                // and the input gradient is beta * alpha * op'(alpha x)
                let gx: Vec<f64> = grads.get(x.as_tensor()).unwrap().to_vec1().unwrap();
                for (xi, g) in XS.iter().zip(gx) {
                    let f = |x: f64| b * op.eval_f64(a * x);
                    let fd = (f(xi + h) - f(xi - h)) / (2.0 * h);
                    assert!((g - fd).abs() < 1e-5 * fd.abs().max(1.0), "{op} dx at {xi}");
                }
            }
        }
    }

    #[test]
    fn activation_frozen_slot_gives_no_scale_gradients() {
        for (a, b) in [(1.0, 1.0), (0.5, 2.0)] {
            let mut slot = Activation::new(Op::Gelu, &Device::Cpu, DType::F64).unwrap();
            assert!(!slot.trainable());
            slot.set_scales(a, b).unwrap();
            let (loss, grads, x) = loss_grads(&slot, &XS);
            assert!((loss - reference_loss(Op::Gelu, a, b, &XS)).abs() < 1e-12);
            assert!(grads.get(slot.alpha_var()).is_none());
            assert!(grads.get(slot.beta_var()).is_none());
            assert!(grads.get(x.as_tensor()).is_some());
        }
    }

    #[test]
    fn activation_slot_accessors() {
        let mut slot = Activation::new(Op::Relu, &Device::Cpu, DType::F32).unwrap();
        assert_eq!(slot.op(), Op::Relu);
        assert_eq!((slot.alpha().unwrap(), slot.beta().unwrap()), (1.0, 1.0));
        assert_eq!(slot.alpha_var().dims(), &[1]);
        assert_eq!(slot.alpha_var().dtype(), DType::F32);
        slot.set_scales(0.5, -2.0).unwrap();
        assert_eq!((slot.alpha().unwrap(), slot.beta().unwrap()), (0.5, -2.0));
        // handles share storage with the slot
        let vars = slot.vars();
        assert_eq!(vars.len(), 2);
        let v: Vec<f32> = vars[0].as_tensor().to_vec1().unwrap();
        assert_eq!(v, [0.5]);
        vars[1]
            .set(&Tensor::new(&[3f32], &Device::Cpu).unwrap())
            .unwrap();
        assert_eq!(slot.beta().unwrap(), 3.0);

        slot.set_op(Op::Symlog);
        assert_eq!(slot.op(), Op::Symlog);
        slot.set_trainable(true);
        assert!(slot.trainable());

        // frozen and trainable forwards agree, for f32 and any shape
        let x = Tensor::new(&[[-2f32, -0.5, 0.0], [0.3, 1.0, 7.0]], &Device::Cpu).unwrap();
        let yt = slot.forward(&x).unwrap();
        slot.set_trainable(false);
        let yf = slot.forward(&x).unwrap();
        assert_eq!(yt.dims(), &[2, 3]);
        let (yt, yf): (Vec<Vec<f32>>, Vec<Vec<f32>>) =
            (yt.to_vec2().unwrap(), yf.to_vec2().unwrap());
        for (rt, rf) in yt.iter().zip(&yf) {
            for (t, f) in rt.iter().zip(rf) {
                assert!((t - f).abs() < 1e-6);
            }
        }
        assert!((yf[1][2] as f64 - 3.0 * Op::Symlog.eval_f64(3.5)).abs() < 1e-5);

        // a rank-0 input keeps its shape
        slot.set_trainable(true);
        let s = Tensor::new(2f32, &Device::Cpu).unwrap();
        assert_eq!(slot.forward(&s).unwrap().dims(), &[] as &[usize]);
    }

    #[test]
    fn activation_unit_scales_are_the_plain_op() {
        let slot = Activation::new(Op::Hardswish, &Device::Cpu, DType::F64).unwrap();
        let x = Tensor::new(&[-4.0, -1.0, 0.5, 2.0, 5.0], &Device::Cpu).unwrap();
        let a: Vec<f64> = slot.forward_stock(&x).unwrap().to_vec1().unwrap();
        let b: Vec<f64> = Op::Hardswish.apply(&x).unwrap().to_vec1().unwrap();
        assert_eq!(a, b);
        // The fused kernel rounds in its own order.
        let f: Vec<f64> = slot.forward(&x).unwrap().to_vec1().unwrap();
        for (f, b) in f.iter().zip(&b) {
            assert!((f - b).abs() <= 1e-15 * b.abs().max(1.0), "{f} vs {b}");
        }
    }

    #[test]
    fn operator_parameters_train_only_when_learnt() {
        let mut slot = Activation::new(Op::Srs, &Device::Cpu, DType::F64).unwrap();
        assert_eq!(slot.params().unwrap(), Op::Srs.default_params());
        assert!(!slot.params_trainable());
        let (_, grads, _) = loss_grads(&slot, &XS);
        assert!(grads.get(slot.params_var()).is_none());

        slot.set_params_mode(OpParams::LearntFromOne);
        assert_eq!(slot.params().unwrap(), [1.0, 1.0]);
        assert!(slot.params_trainable());
        let (loss, grads, _) = loss_grads(&slot, &XS);
        let want: f64 = XS
            .iter()
            .map(|&x| Op::Srs.eval_f64_with(x, &[1.0, 1.0]))
            .sum();
        assert!((loss - want).abs() < 1e-12);
        let g: Vec<f64> = grads.get(slot.params_var()).unwrap().to_vec1().unwrap();
        assert_eq!(g.len(), 2);

        // A new operator restarts from the mode's values; relu has none and nothing trains.
        slot.set_params(&[2.0, 0.5]).unwrap();
        slot.set_op(Op::Acon);
        assert_eq!(slot.params().unwrap(), [1.0, 1.0, 1.0]);
        slot.set_op(Op::Relu);
        assert!(slot.params().unwrap().is_empty() && !slot.params_trainable());
        assert!(slot.set_params(&[1.0]).is_err());
    }
}
