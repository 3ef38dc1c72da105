//! One step of `torch.optim.SGD` (dampening 0) over a parameter, in fused passes:
//!
//! ```text
//! g    = grad + weight_decay * p
//! buf' = momentum * buf + g          (g itself at the first step)
//! d    = g + momentum * buf'          (Nesterov) or buf'
//! p'   = p - lr * d
//! ```
//!
//! Composed from tensor ops, the step makes five passes over the parameter's size with a
//! temporary each (VGG-16: 15M parameters, 60 MB a pass); here the momentum buffer and the
//! parameter are each written in one pass. Each value is rounded as the composed ops round
//! it (no fused multiply-add), so the results are the same to the bit.

use candle_core::{Storage, Tensor, WithDType};
use rayon::prelude::*;

use super::storage::{dispatch_float, slice};
use super::use_custom;
use crate::Result;

/// The hyperparameters of one SGD step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    /// Learning rate.
    pub lr: f64,
    /// L2 weight decay added to the gradient.
    pub weight_decay: f64,
    /// Momentum factor; 0 keeps no buffer.
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// `(p', buf')` after one step on `p` with gradient `grad` and momentum buffer `buf` (None
/// before the first step); `buf'` is None when `momentum` is 0. Returns `None` where the
/// kernels do not apply (not CPU f32/f64, or mixed dtypes or shapes): compose the ops then.
pub fn sgd_step(
    p: &Tensor,
    grad: &Tensor,
    buf: Option<&Tensor>,
    h: SgdStep,
) -> Result<Option<(Tensor, Option<Tensor>)>> {
    let like_p = |t: &Tensor| t.dtype() == p.dtype() && t.dims() == p.dims();
    if !use_custom(p) || !like_p(grad) || !buf.is_none_or(like_p) || !grad.device().is_cpu() {
        return Ok(None);
    }
    let (p, grad) = (p.contiguous()?, grad.contiguous()?);
    let buf = buf.map(Tensor::contiguous).transpose()?;
    let (ps, pl) = p.storage_and_layout();
    let (gs, gl) = grad.storage_and_layout();
    let bsl = buf.as_ref().map(|b| b.storage_and_layout());
    let (Storage::Cpu(ps), Storage::Cpu(gs)) = (&*ps, &*gs) else {
        return Ok(None);
    };
    let bs = match &bsl {
        Some((s, l)) => match &**s {
            Storage::Cpu(s) => Some((s, *l)),
            _ => return Ok(None),
        },
        None => None,
    };
    let run = || -> candle_core::Result<(Tensor, Option<Tensor>)> {
        dispatch_float!(ps, "sgd step", |T| {
            let pv: &[T] = slice(ps, pl, "sgd parameter")?;
            let gv: &[T] = slice(gs, gl, "sgd gradient")?;
            let bv: Option<&[T]> = match bs {
                Some((s, l)) => Some(slice(s, l, "sgd momentum buffer")?),
                None => None,
            };
            let (new_p, new_buf) = step(pv, gv, bv, h);
            let to = |v: Vec<T>| Tensor::from_vec(v, p.shape(), p.device());
            Ok((to(new_p)?, new_buf.map(to).transpose()?))
        })
    };
    Ok(Some(run()?))
}

/// The step on slices: `(p', buf')`.
fn step<T: WithDType>(p: &[T], g: &[T], buf: Option<&[T]>, h: SgdStep) -> (Vec<T>, Option<Vec<T>>) {
    let (wd, m, lr) = (
        T::from_f64(h.weight_decay),
        T::from_f64(h.momentum),
        T::from_f64(h.lr),
    );
    let decay = h.weight_decay != 0.0;
    // As `grad + p.affine(wd, 0)`.
    let decayed = move |g: T, p: T| if decay { g + p * wd } else { g };
    if h.momentum == 0.0 {
        let mut new_p = Vec::new();
        p.par_iter()
            .zip(g)
            .map(|(&p, &g)| p - decayed(g, p) * lr)
            .collect_into_vec(&mut new_p);
        return (new_p, None);
    }
    let mut new_buf = Vec::new();
    match buf {
        Some(b) => p
            .par_iter()
            .zip(g)
            .zip(b)
            .map(|((&p, &g), &b)| b * m + decayed(g, p))
            .collect_into_vec(&mut new_buf),
        None => p
            .par_iter()
            .zip(g)
            .map(|(&p, &g)| decayed(g, p))
            .collect_into_vec(&mut new_buf),
    }
    let mut new_p = Vec::new();
    if h.nesterov {
        p.par_iter()
            .zip(g)
            .zip(&new_buf)
            .map(|((&p, &g), &b)| p - (decayed(g, p) + b * m) * lr)
            .collect_into_vec(&mut new_p);
    } else {
        p.par_iter()
            .zip(&new_buf)
            .map(|(&p, &b)| p - b * lr)
            .collect_into_vec(&mut new_p);
    }
    (new_p, Some(new_buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    /// Hand-traced: p = 1, grad = 0.5, wd = 0.1, momentum 0.9, lr 0.1 over two steps.
    #[test]
    fn two_steps_by_hand() -> Result<()> {
        let dev = Device::Cpu;
        let p = Tensor::new(&[1f64, -2.0], &dev)?;
        let g = Tensor::new(&[0.5f64, 0.25], &dev)?;
        let h = SgdStep {
            lr: 0.1,
            weight_decay: 0.1,
            momentum: 0.9,
            nesterov: false,
        };
        let (p1, b1) = sgd_step(&p, &g, None, h)?.expect("CPU f64 runs the kernel");
        // g = 0.5 + 0.1 = 0.6 -> buf = 0.6, p = 1 - 0.06; g = 0.25 - 0.2 = 0.05 -> p = -2.005
        let b1 = b1.expect("a momentum buffer");
        assert_eq!(b1.to_vec1::<f64>()?, vec![0.5 + 0.1, 0.25 - 0.2]);
        assert_eq!(
            p1.to_vec1::<f64>()?,
            vec![1.0 - 0.1 * 0.6, -2.0 - 0.1 * (0.25 - 0.2)]
        );
        let (p2, b2) = sgd_step(&p1, &g, Some(&b1), h)?.expect("kernel");
        let g2 = 0.5 + 0.1 * (1.0 - 0.1 * 0.6);
        let buf2 = 0.9 * 0.6 + g2;
        assert_eq!(b2.expect("buffer").to_vec1::<f64>()?[0], buf2);
        assert_eq!(p2.to_vec1::<f64>()?[0], (1.0 - 0.1 * 0.6) - 0.1 * buf2);
        Ok(())
    }

    /// Bit for bit the composed tensor ops, f32, for every variant.
    #[test]
    fn equals_the_composed_ops_to_the_bit() -> Result<()> {
        let dev = Device::Cpu;
        let n = 10_000;
        let p = Tensor::randn(0f32, 1.0, n, &dev)?;
        let g = Tensor::randn(0f32, 1.0, n, &dev)?;
        let b = Tensor::randn(0f32, 1.0, n, &dev)?;
        for (wd, momentum, nesterov) in [
            (0.0, 0.0, false),
            (5e-4, 0.0, false),
            (0.0, 0.9, false),
            (5e-4, 0.9, false),
            (5e-4, 0.9, true),
        ] {
            let h = SgdStep {
                lr: 0.05,
                weight_decay: wd,
                momentum,
                nesterov,
            };
            for buf in [None, Some(&b)] {
                let (got_p, got_b) = sgd_step(&p, &g, buf, h)?.expect("kernel");
                let mut gg = g.clone();
                if wd != 0.0 {
                    gg = (gg + p.affine(wd, 0.0)?)?;
                }
                let mut want_b = None;
                if momentum != 0.0 {
                    let nb = match buf {
                        None => gg.copy()?,
                        Some(b) => (b.affine(momentum, 0.0)? + &gg)?,
                    };
                    gg = if nesterov {
                        (gg + nb.affine(momentum, 0.0)?)?
                    } else {
                        nb.clone()
                    };
                    want_b = Some(nb);
                }
                let want_p = (&p - gg.affine(0.05, 0.0)?)?;
                let bits = |t: &Tensor| -> Result<Vec<u32>> {
                    Ok(t.to_vec1::<f32>()?.iter().map(|v| v.to_bits()).collect())
                };
                assert_eq!(bits(&got_p)?, bits(&want_p)?, "{h:?} buf {}", buf.is_some());
                match (got_b, want_b) {
                    (Some(a), Some(b)) => assert_eq!(bits(&a)?, bits(&b)?, "{h:?}"),
                    (None, None) => {}
                    (a, b) => panic!("{h:?}: buffer {:?} vs {:?}", a.is_some(), b.is_some()),
                }
            }
        }
        Ok(())
    }

    #[test]
    fn mixed_dtypes_are_left_to_the_ops() -> Result<()> {
        let dev = Device::Cpu;
        let p = Tensor::zeros(4, DType::F32, &dev)?;
        let g = Tensor::zeros(4, DType::F64, &dev)?;
        let h = SgdStep {
            lr: 0.1,
            weight_decay: 0.0,
            momentum: 0.9,
            nesterov: false,
        };
        assert!(sgd_step(&p, &g, None, h)?.is_none());
        Ok(())
    }
}
