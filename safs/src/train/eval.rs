//! Evaluation: loss, top-1 and top-5 accuracy over a whole image set.

use candle_core::{DType, Device, Tensor, D};
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
pub fn correct_counts(logits: &Tensor, labels: &Tensor) -> Result<(usize, usize)> {
    let truth = logits.gather(&labels.unsqueeze(1)?, 1)?;
    // Rank of the true class = number of classes scoring strictly higher.
    let rank = logits
        .broadcast_gt(&truth)?
        .to_dtype(DType::F32)?
        .sum(D::Minus1)?
        .to_vec1::<f32>()?;
    let top1 = rank.iter().filter(|&&r| r < 1.0).count();
    let top5 = rank.iter().filter(|&&r| r < 5.0).count();
    Ok((top1, top5))
}

/// Evaluates `model` in inference mode on every image of `set`.
pub fn evaluate(
    model: &dyn Network,
    set: &ImageSet,
    batch_size: usize,
    device: &Device,
) -> Result<Metrics> {
    let mut loss_sum = 0f64;
    let (mut c1, mut c5, mut n) = (0usize, 0usize, 0usize);
    for batch in set.batches(batch_size, None, device) {
        let (x, y) = batch?;
        let logits = model.forward_t(&x, false)?;
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
        Ok(())
    }
}
