//! Max pooling with a correct gradient.
//!
//! Candle 0.11's `max_pool2d` backward scales the gradient by 1/k^2; here pooling with
//! kernel == stride is a reshape and a max reduction, whose backward routes the gradient
//! to the window's maximum as PyTorch does.

use candle_core::Tensor;

use crate::{Error, Result};

/// Non-overlapping k x k max pooling of an (N, C, H, W) tensor; H and W must divide by k.
pub fn max_pool2d(x: &Tensor, k: usize) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    if k == 0 || h % k != 0 || w % k != 0 {
        return Err(Error::Config(format!(
            "max_pool2d: kernel {k} does not tile a {h}x{w} input"
        )));
    }
    let y = x.reshape((n, c, h / k, k, w / k, k))?.max(5)?.max(3)?;
    Ok(y)
}

/// Global average pooling of an (N, C, H, W) tensor to (N, C): the mean over H and W.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    Ok(x.reshape((n, c, h * w))?.mean(2)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Central finite differences of sum(pool(x) * r) against Candle's backward.
    #[test]
    fn gradient_matches_finite_differences() -> Result<()> {
        let dev = Device::Cpu;
        // Distinct values so the maximum of each window is unique.
        let vals: Vec<f64> = (0..2 * 3 * 4 * 6)
            .map(|i| ((i * 37 % 101) as f64 - 50.0) / 7.0)
            .collect();
        let x = Var::from_vec(vals.clone(), (2, 3, 4, 6), &dev)?;
        let r = Tensor::rand(-1.0f64, 1.0, (2, 3, 2, 3), &dev)?;
        let loss = |t: &Tensor| -> Result<f64> {
            Ok(max_pool2d(t, 2)?.mul(&r)?.sum_all()?.to_scalar::<f64>()?)
        };
        let grads = max_pool2d(x.as_tensor(), 2)?
            .mul(&r)?
            .sum_all()?
            .backward()?;
        let g = grads
            .get(x.as_tensor())
            .expect("grad")
            .flatten_all()?
            .to_vec1::<f64>()?;
        let h = 1e-6;
        for i in 0..vals.len() {
            let mut p = vals.clone();
            p[i] += h;
            let mut m = vals.clone();
            m[i] -= h;
            let fp = loss(&Tensor::from_vec(p, (2, 3, 4, 6), &dev)?)?;
            let fm = loss(&Tensor::from_vec(m, (2, 3, 4, 6), &dev)?)?;
            let fd = (fp - fm) / (2.0 * h);
            assert!(
                (fd - g[i]).abs() < 1e-6,
                "index {i}: fd {fd} vs backward {}",
                g[i]
            );
        }
        Ok(())
    }

    #[test]
    fn forward_matches_definition_and_stock_op() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (2, 4, 8, 8), &dev)?;
        let ours = max_pool2d(&x, 2)?;
        let stock = x.max_pool2d(2)?;
        let diff = ours.sub(&stock)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert_eq!(diff, 0.0);
        assert_eq!(ours.dims(), &[2, 4, 4, 4]);
        assert_eq!(ours.dtype(), DType::F32);
        Ok(())
    }

    #[test]
    fn global_avg_pool_is_the_spatial_mean() -> Result<()> {
        let vals: Vec<f64> = (0..2 * 3 * 2 * 2).map(|i| i as f64).collect();
        let x = Tensor::from_vec(vals, (2, 3, 2, 2), &Device::Cpu)?;
        let y = global_avg_pool(&x)?;
        assert_eq!(y.dims(), &[2, 3]);
        let got: Vec<Vec<f64>> = y.to_vec2()?;
        assert_eq!(got[0], [1.5, 5.5, 9.5]);
        assert_eq!(got[1], [13.5, 17.5, 21.5]);
        Ok(())
    }

    #[test]
    fn rejects_untiled_input() {
        let x = Tensor::zeros((1, 1, 5, 4), DType::F32, &Device::Cpu).unwrap();
        let err = max_pool2d(&x, 2).unwrap_err().to_string();
        assert!(err.contains("5x4"), "{err}");
    }
}
