//! Seeded parameter initialisation with PyTorch's defaults for conv and linear layers.

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Result;

/// A seeded source of initial parameter values (Candle's own CPU RNG cannot be seeded).
pub struct Init {
    rng: ChaCha8Rng,
    device: Device,
    dtype: DType,
}

impl Init {
    /// A new initialiser of `f32` parameters; the same seed gives the same parameters.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self::with_dtype(seed, device, DType::F32)
    }

    /// A new initialiser of parameters in `dtype` (`F32` or `F64`; `F64` for gradient checks).
    pub fn with_dtype(seed: u64, device: &Device, dtype: DType) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            device: device.clone(),
            dtype,
        }
    }

    /// The dtype of the parameters this initialiser creates.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The device the parameters are created on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// A variable drawn from U(-bound, bound).
    pub fn uniform(&mut self, shape: &[usize], bound: f64) -> Result<Var> {
        let n: usize = shape.iter().product();
        let t = if self.dtype == DType::F64 {
            let data: Vec<f64> = (0..n).map(|_| self.rng.gen_range(-bound..=bound)).collect();
            Tensor::from_vec(data, shape, &self.device)?
        } else {
            // Drawn in f32 (as ever) so f32 models keep their seeded values.
            let bound = bound as f32;
            let data: Vec<f32> = (0..n).map(|_| self.rng.gen_range(-bound..=bound)).collect();
            Tensor::from_vec(data, shape, &self.device)?.to_dtype(self.dtype)?
        };
        Ok(Var::from_tensor(&t)?)
    }

    /// A variable filled with one value.
    pub fn constant(&mut self, shape: &[usize], value: f64) -> Result<Var> {
        let t = Tensor::full(value, shape, &self.device)?.to_dtype(self.dtype)?;
        Ok(Var::from_tensor(&t)?)
    }

    /// PyTorch's default for `nn.Conv2d`/`nn.Linear`: kaiming_uniform(a=sqrt(5)) for the
    /// weight and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias; both reduce to that bound.
    pub fn torch_default(&mut self, shape: &[usize], fan_in: usize) -> Result<Var> {
        self.uniform(shape, 1.0 / (fan_in as f64).sqrt())
    }
}
