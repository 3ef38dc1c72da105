//! Non-overlapping max pooling whose gradient goes to each window's argmax.
//!
//! Candle 0.11's `max_pool2d` backward scales the gradient by 1/k^2. The stock fallback here
//! is a reshape and a max reduction (correct, but it sends a tied window's gradient to every
//! tied element); the kernel routes it to the first maximum, as PyTorch does.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::alloc::zeros;
use super::storage::{dispatch_float, gradient_op2, slice};
use super::use_custom;
use crate::{Error, Result};

#[derive(Clone, Copy, Debug)]
struct PoolGeom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
}

impl PoolGeom {
    fn out(&self) -> (usize, usize) {
        (self.h / self.k, self.w / self.k)
    }

    /// The flat in-plane index of the maximum of window (oy, ox): first maximum, NaN wins.
    #[inline]
    fn argmax<T: WithDType>(&self, plane: &[T], oy: usize, ox: usize) -> usize {
        let mut best = oy * self.k * self.w + ox * self.k;
        let mut m = plane[best];
        for i in 0..self.k {
            for j in 0..self.k {
                let at = (oy * self.k + i) * self.w + ox * self.k + j;
                let v = plane[at];
                #[allow(clippy::eq_op)]
                if v > m || (v != v && m == m) {
                    m = v;
                    best = at;
                }
            }
        }
        best
    }
}

/// Which of a 2x2 window's values `[top-left, top-right, bottom-left, bottom-right]` is its
/// first maximum (NaN wins), the rule of [`PoolGeom::argmax`] unrolled for k = 2.
#[inline(always)]
fn argmax4<T: WithDType>(v: [T; 4]) -> usize {
    #[allow(clippy::eq_op)]
    let nan = (v[0] != v[0]) | (v[1] != v[1]) | (v[2] != v[2]) | (v[3] != v[3]);
    if nan {
        #[allow(clippy::eq_op)]
        return v.iter().position(|x| x != x).unwrap_or(0);
    }
    // Selects rather than branches: on real data the comparisons are unpredictable.
    let (mut best, mut m) = (0, v[0]);
    for (i, &x) in v.iter().enumerate().skip(1) {
        let gt = x > m;
        best = if gt { i } else { best };
        m = if gt { x } else { m };
    }
    best
}

/// Calls `f(oy, ox, window_values)` for each 2x2 window of an `h x w` plane,
/// row pair by row pair (no per-element index arithmetic or bounds checks).
#[inline(always)]
fn windows2<T: WithDType>(plane: &[T], w: usize, mut f: impl FnMut(usize, usize, [T; 4])) {
    for (oy, rows) in plane.chunks_exact(2 * w).enumerate() {
        let (r0, r1) = rows.split_at(w);
        for (ox, (a, b)) in r0.chunks_exact(2).zip(r1.chunks_exact(2)).enumerate() {
            f(oy, ox, [a[0], a[1], b[0], b[1]]);
        }
    }
}

struct MaxPoolForward(PoolGeom);
struct MaxPoolGrad(PoolGeom);

impl CustomOp1 for MaxPoolForward {
    fn name(&self) -> &'static str {
        "safs-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = self.0;
        let (ho, wo) = g.out();
        dispatch_float!(s, self.name(), |T| {
            let x: &[T] = slice(s, l, "max_pool2d input")?;
            let mut y = zeros(g.n * g.c * ho * wo);
            y.par_chunks_mut(ho * wo).enumerate().for_each(|(p, yp)| {
                let plane = &x[p * g.h * g.w..(p + 1) * g.h * g.w];
                if g.k == 2 {
                    windows2(plane, g.w, |oy, ox, v| yp[oy * wo + ox] = v[argmax4(v)]);
                    return;
                }
                for oy in 0..ho {
                    for ox in 0..wo {
                        yp[oy * wo + ox] = plane[g.argmax(plane, oy, ox)];
                    }
                }
            });
            Ok((T::to_cpu_storage_owned(y), Shape::from((g.n, g.c, ho, wo))))
        })
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        if !x.track_op() {
            return Ok(None);
        }
        Ok(Some(x.apply_op2_no_bwd(
            &dy.contiguous()?,
            &MaxPoolGrad(self.0),
        )?))
    }
}

/// The gradient of the input: each window's output gradient lands on its argmax.
fn pool_grad<T: WithDType>(g: &PoolGeom, x: &[T], dy: &[T]) -> Vec<T> {
    let (ho, wo) = g.out();
    let hw = g.h * g.w;
    let mut dx = zeros(g.n * g.c * hw);
    dx.par_chunks_mut(hw).enumerate().for_each(|(p, dxp)| {
        let plane = &x[p * hw..(p + 1) * hw];
        if g.k == 2 {
            let dyp = &dy[p * ho * wo..(p + 1) * ho * wo];
            windows2(plane, g.w, |oy, ox, v| {
                let at = argmax4(v);
                dxp[(2 * oy + at / 2) * g.w + 2 * ox + at % 2] = dyp[oy * wo + ox];
            });
            return;
        }
        for oy in 0..ho {
            for ox in 0..wo {
                dxp[g.argmax(plane, oy, ox)] += dy[(p * ho + oy) * wo + ox];
            }
        }
    });
    dx
}

gradient_op2!(
    MaxPoolGrad,
    "safs-max-pool2d-grad",
    pool_grad,
    ("max_pool2d input", "max_pool2d dy"),
    |g| (g.n, g.c, g.h, g.w)
);

/// k x k max pooling with stride k of an (N, C, H, W) batch; H and W must divide by k.
pub fn max_pool2d(x: &Tensor, k: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if k == 0 || h % k != 0 || w % k != 0 {
        return Err(Error::Config(format!(
            "max_pool2d: kernel {k} does not tile a {h}x{w} input"
        )));
    }
    if !use_custom(x) {
        return Ok(x.reshape((n, c, h / k, k, w / k, k))?.max(5)?.max(3)?);
    }
    Ok(x.contiguous()?
        .apply_op1(MaxPoolForward(PoolGeom { n, c, h, w, k }))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{check_grad, max_diff, random};
    use candle_core::{DType, Device, Var};

    #[test]
    fn matches_stock_forward_and_finite_differences() -> Result<()> {
        for (idx, &(n, c, h, w, k)) in [
            (2, 3, 4, 6, 2),
            (1, 2, 6, 3, 3),
            (3, 1, 2, 2, 2),
            (1, 2, 5, 5, 1),
        ]
        .iter()
        .enumerate()
        {
            // Random values are distinct, so every window has one maximum.
            let x = Var::from_tensor(&random(&[n, c, h, w], 100 + idx as u64)?)?;
            let ours = max_pool2d(x.as_tensor(), k)?;
            let stock = x.as_tensor().max_pool2d(k)?;
            assert!(max_diff(&ours, &stock)? == 0.0, "case {idx}");
            let r = random(ours.dims(), 110 + idx as u64)?;
            let loss =
                || -> Result<Tensor> { Ok(max_pool2d(x.as_tensor(), k)?.mul(&r)?.sum_all()?) };
            check_grad(&format!("max_pool2d case {idx}"), &loss, &x, 200)?;
        }
        Ok(())
    }

    #[test]
    fn ties_send_the_gradient_to_the_first_maximum_and_nan_propagates() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::from_vec(
            vec![1f32, 1., 0., f32::NAN, 2., 2., 2., 2.],
            (1, 2, 2, 2),
            &dev,
        )?;
        let y = max_pool2d(x.as_tensor(), 2)?;
        let v: Vec<f32> = y.flatten_all()?.to_vec1()?;
        assert!(v[0].is_nan() && v[1] == 2.0, "{v:?}");
        let g = y.sum_all()?.backward()?;
        let gx: Vec<f32> = g.get(x.as_tensor()).unwrap().flatten_all()?.to_vec1()?;
        assert_eq!(gx, [0., 0., 0., 1., 1., 0., 0., 0.]);
        assert_eq!(y.dtype(), DType::F32);
        Ok(())
    }

    #[test]
    fn unrolled_2x2_rule_equals_the_general_one() {
        // Every 2x2 window over {0, 1, NaN}: ties and NaN in every position.
        let vals = [0.0f32, 1.0, f32::NAN];
        let g = PoolGeom {
            n: 1,
            c: 1,
            h: 2,
            w: 2,
            k: 2,
        };
        for code in 0..81 {
            let v: [f32; 4] = std::array::from_fn(|i| vals[code / 3usize.pow(i as u32) % 3]);
            assert_eq!(argmax4(v), g.argmax(&v, 0, 0), "{v:?}");
        }
    }

    #[test]
    fn rejects_untiled_input() {
        let x = Tensor::zeros((1, 1, 5, 4), DType::F32, &Device::Cpu).unwrap();
        let err = max_pool2d(&x, 2).unwrap_err().to_string();
        assert!(err.contains("5x4"), "{err}");
    }
}
