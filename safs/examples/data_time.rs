//! Times ImageNet-16 loading and batch assembly: `data_time DATA_DIR [BATCH]`.
//!
//! Prints the time to read the training pickles, the memory the images take, and the time to
//! assemble one shuffled, flipped, normalised batch, to set beside a training step's time.

use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Device;
use safs::data::DatasetKind;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let root = args.next().context("usage: data_time DATA_DIR [BATCH]")?;
    let batch: usize = args.next().map(|b| b.parse()).transpose()?.unwrap_or(256);
    let t = Instant::now();
    let splits = DatasetKind::ImageNet16.load(root.as_ref(), None, 0)?;
    let load = t.elapsed().as_secs_f64();
    let train = &splits.train;
    let bytes = train.len() * train.shape().iter().product::<usize>();
    let t = Instant::now();
    let mut n = 0;
    for b in train.batches(batch, Some(1), &Device::Cpu) {
        b?;
        n += 1;
    }
    let per = t.elapsed().as_secs_f64() / n.max(1) as f64;
    println!(
        "imagenet16: {} training images read in {load:.2} s ({:.1} MB of u8 pixels); \
         batch of {batch}: {:.2} ms to assemble ({n} batches)",
        train.len(),
        bytes as f64 / 1e6,
        per * 1e3
    );
    Ok(())
}
