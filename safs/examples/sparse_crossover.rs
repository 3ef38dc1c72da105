//! Where sparse inference starts to pay: times one convolution (64 -> 64 channels, 3x3,
//! 32x32, batch 64) and one linear layer (1024 -> 1024, batch 64) dense and through the
//! sparse path at several weight sparsities. `cargo run --release -p safs --example sparse_crossover`

use std::time::Instant;

use anyhow::Result;
use candle_core::{DType, Device, Tensor};
use safs::kernels::sparse::with_sparse_inference;
use safs::model::{Conv2d, Init, Linear};

fn median_ms(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut t: Vec<f64> = (0..7)
        .map(|_| {
            let s = Instant::now();
            f().map(|_| s.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_>>()?;
    t.sort_by(|a, b| a.total_cmp(b));
    Ok(t[3])
}

/// Zeroes all but a `keep` fraction of `w` (chosen at random).
fn prune(w: &candle_core::Var, keep: f64) -> Result<()> {
    let mask = Tensor::rand(0f32, 1.0, w.shape(), w.device())?
        .lt(keep)?
        .to_dtype(DType::F32)?;
    w.set(&w.as_tensor().mul(&mask)?)?;
    Ok(())
}

fn main() -> Result<()> {
    safs::kernels::tune_allocator();
    let dev = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (64, 64, 32, 32), &dev)?;
    let xl = Tensor::randn(0f32, 1.0, (64, 1024), &dev)?;
    println!("sparsity  conv dense  conv sparse  linear dense  linear sparse  (ms, medians of 7)");
    for sparsity in [0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99] {
        let mut init = Init::new(0, &dev);
        let conv = Conv2d::new(&mut init, "c", 64, 64, 3, 1, 1, 1, true)?;
        let lin = Linear::new(&mut init, "l", 1024, 1024)?;
        prune(&conv.params()[0].var, 1.0 - sparsity)?;
        prune(&lin.params()[0].var, 1.0 - sparsity)?;
        let cd = median_ms(|| Ok(conv.forward(&x).map(|_| ())?))?;
        let ld = median_ms(|| Ok(lin.forward(&xl).map(|_| ())?))?;
        let (cs, ls) = with_sparse_inference(0.0, || -> Result<(f64, f64)> {
            Ok((
                median_ms(|| Ok(conv.forward(&x).map(|_| ())?))?,
                median_ms(|| Ok(lin.forward(&xl).map(|_| ())?))?,
            ))
        })?;
        println!("{sparsity:>8.2}  {cd:>10.2}  {cs:>11.2}  {ld:>12.2}  {ls:>13.2}");
    }
    Ok(())
}
