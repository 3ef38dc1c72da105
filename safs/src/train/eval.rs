//! Evaluation: loss, top-1 and top-5 accuracy over a whole image set.

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::data::ImageSet;
use crate::model::Network;
use crate::Result;

/// Mean loss and accuracies over an image set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Top-1 accuracy in percent.
    pub top1: f64,
    /// Top-5 accuracy in percent.
    pub top5: f64,
    /// Number of images evaluated.
    pub n: usize,
}

/// Counts of correct top-1 and top-5 predictions in a batch of logits.
///
/// Ties rank the lower class index first (as `argmax`/`topk` do), so a network with
/// constant outputs is not "correct" everywhere; a row with any NaN logit is wrong.
pub fn correct_counts(logits: &Tensor, labels: &Tensor) -> Result<(usize, usize)> {
    let rows = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let labels = labels.to_dtype(DType::U32)?.to_vec1::<u32>()?;
    let (mut top1, mut top5) = (0, 0);
    for (row, &label) in rows.iter().zip(&labels) {
        let label = label as usize;
        if row.iter().any(|v| v.is_nan()) {
            continue;
        }
        let t = row[label];
        let rank = row
            .iter()
            .enumerate()
            .filter(|&(j, &v)| v > t || (v == t && j < label))
            .count();
        top1 += usize::from(rank < 1);
        top5 += usize::from(rank < 5);
    }
    Ok((top1, top5))
}

/// Evaluates `model` in inference mode on every image of `set`.
pub fn evaluate(
    model: &dyn Network,
    set: &ImageSet,
    batch_size: usize,
    device: &Device,
) -> Result<Metrics> {
    metrics(set, batch_size, device, |x| model.forward_t(x, false))
}

/// [`evaluate`] through the sparse inference graph ([`crate::infer::InferenceGraph`]),
/// built once from the model's current state: same logits within f32 rounding. CPU.
pub fn evaluate_sparse(model: &dyn Network, set: &ImageSet, batch_size: usize) -> Result<Metrics> {
    let graph = crate::infer::InferenceGraph::build(model, set.shape())?;
    metrics(set, batch_size, &Device::Cpu, |x| graph.forward(x))
}

/// Loss and accuracies of the logits `forward` gives for every batch of `set`.
fn metrics(
    set: &ImageSet,
    batch_size: usize,
    device: &Device,
    forward: impl Fn(&Tensor) -> Result<Tensor> + Sync,
) -> Result<Metrics> {
    let mut loss_sum = 0f64;
    let (mut c1, mut c5, mut n) = (0usize, 0usize, 0usize);
    for batch in set.batches(batch_size, None, device) {
        let (x, y) = batch?;
        let logits = crate::kernels::on_pool_for(device, || forward(&x))?;
        let b = y.dims1()?;
        let loss = candle_nn::loss::cross_entropy(&logits, &y)?.to_scalar::<f32>()? as f64;
        loss_sum += loss * b as f64;
        let (a1, a5) = correct_counts(&logits, &y)?;
        c1 += a1;
        c5 += a5;
        n += b;
    }
    let pct = |c: usize| {
        if n == 0 {
            0.0
        } else {
            100.0 * c as f64 / n as f64
        }
    };
    Ok(Metrics {
        loss: if n == 0 { 0.0 } else { loss_sum / n as f64 },
        top1: pct(c1),
        top5: pct(c5),
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1_top5_counts() -> Result<()> {
        let dev = Device::Cpu;
        // 3 rows, 6 classes; true labels at ranks 0, 2 and 5.
        let logits = Tensor::new(
            &[
                [9f32, 1., 2., 3., 4., 5.],
                [1f32, 2., 8., 9., 10., 0.],
                [0f32, 1., 2., 3., 4., 5.],
            ],
            &dev,
        )?;
        let labels = Tensor::new(&[0u32, 2, 0], &dev)?;
        assert_eq!(correct_counts(&logits, &labels)?, (1, 2));
        // Constant logits: only class 0 wins the tie; NaN rows are wrong.
        let flat = Tensor::zeros((3, 6), DType::F32, &dev)?;
        let labels = Tensor::new(&[0u32, 3, 5], &dev)?;
        assert_eq!(correct_counts(&flat, &labels)?, (1, 2));
        let nan = Tensor::new(&[[f32::NAN, 0., 0.]], &dev)?;
        assert_eq!(correct_counts(&nan, &Tensor::new(&[1u32], &dev)?)?, (0, 0));
        Ok(())
    }
}
