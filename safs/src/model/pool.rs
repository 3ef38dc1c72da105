//! Pooling: max pooling (a kernel of [`crate::kernels`]) and global average pooling.

use candle_core::Tensor;

pub use crate::kernels::max_pool2d;
use crate::Result;

/// Global average pooling of an (N, C, H, W) tensor to (N, C): the mean over H and W.
pub fn global_avg_pool(x: &Tensor) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    Ok(x.reshape((n, c, h * w))?.mean(2)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
}
