//! Fast CPU kernels as Candle custom ops, used by the models by default on the CPU.
//!
//! Stock Candle 0.11 runs a convolution's input gradient as a plain-loop transposed
//! convolution, a grouped convolution as one convolution per group, and BatchNorm as a chain
//! of element-wise passes. The ops here do the same maths as gemm calls and fused loops,
//! parallel over the batch on rayon's global pool (one sample range per thread):
//!
//! - [`conv2d`], [`conv2d_bias`]: im2col + gemm forward, input gradient (skipped when the
//!   input needs none, e.g. the first layer's images; for "same" convolutions the forward
//!   convolution of dy with the flipped kernel) and weight gradient (from position-major
//!   columns); small feature maps put several samples into one product; few-channel f32
//!   layers (LeNet-5's) run a direct
//!   convolution in AVX2 registers for the forward pass and the weight gradient
//!   (`SAFS_CONV_DIRECT=off` keeps them on im2col, for A/B runs);
//! - [`depthwise_conv2d`]: direct loops, one filter per channel;
//! - [`batch_norm_train`]: fused training-mode BatchNorm forward and backward;
//! - [`batch_norm_act_train`]: the same followed by an activation slot (after a residual
//!   add, for ResNet's blocks), in one op;
//! - [`max_pool2d`]: non-overlapping max pooling whose gradient goes to the window's argmax;
//! - [`relu`], [`silu`]: one-pass gradients;
//! - [`channel_affine`]: BatchNorm in eval mode in one pass;
//! - [`sgd_step`]: one SGD step over a parameter in fused passes;
//! - [`add_channel_bias`]: a per-channel bias added to an (N, C, H, W) batch;
//! - [`tune_allocator`]: keeps freed memory for the next step (glibc);
//! - [`tune_candle_threads`]: stops Candle's own thread pool spinning on the kernels' cores;
//! - [`on_pool`]: runs a training step on the kernels' threads, so that their loops start
//!   without a hand-off.
//!
//! BatchNorm's loops (with the fused activation) and the bias gradient run through
//! `simd::vectorised`, which compiles them for AVX-512 and AVX2 as well and picks one at
//! run time (the crate itself targets baseline x86-64).
//!
//! On other devices, for other dtypes, or when switched off ([`set_enabled`], or the
//! environment variable `SAFS_KERNELS=stock`), each function runs the equivalent stock Candle
//! ops instead, so results can be compared A/B.

mod activation;
mod affine;
mod alloc;
mod batchnorm;
mod bias;
mod bn_act;
mod bn_rows;
mod conv;
mod conv_direct;
mod conv_wgrad;
mod depthwise;
mod gemm;
mod pool;
mod scaled_activation;
mod sgd;
mod simd;
mod storage;
mod threads;

pub use activation::{relu, silu};
pub use affine::channel_affine;
pub use alloc::tune_allocator;
pub use batchnorm::{batch_norm_train, BatchStats};
pub use bias::add_channel_bias;
pub use bn_act::{batch_norm_act_train, SlotArgs};
pub use conv::{conv2d, conv2d_bias};
pub use depthwise::depthwise_conv2d;
pub use pool::max_pool2d;
pub use scaled_activation::scaled_activation;
pub use sgd::{sgd_step, SgdStep};
pub use threads::{on_pool, on_pool_for, tune_candle_threads, CANDLE_SPIN_LIMIT};

use std::sync::atomic::{AtomicU8, Ordering};

use candle_core::{DType, Tensor};

// 0 = not yet read from the environment, 1 = custom ops on, 2 = stock ops.
static MODE: AtomicU8 = AtomicU8::new(0);

/// Switches the custom CPU kernels on or off for the whole process (off = stock Candle ops).
pub fn set_enabled(on: bool) {
    MODE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

/// Whether the custom CPU kernels are in use (default on; `SAFS_KERNELS=stock` turns them off).
pub fn enabled() -> bool {
    switch(&MODE, "SAFS_KERNELS", "stock")
}

// The same for the direct convolution of few-channel layers (`SAFS_CONV_DIRECT=off`).
static DIRECT_CONV: AtomicU8 = AtomicU8::new(0);

/// Whether few-channel f32 convolutions may take the direct path (default on).
pub(crate) fn direct_conv_enabled() -> bool {
    switch(&DIRECT_CONV, "SAFS_CONV_DIRECT", "off")
}

/// A process-wide switch, on unless the environment variable `var` reads `off` (read once,
/// then kept in `cell`: 0 = not yet read, 1 = on, 2 = off).
fn switch(cell: &AtomicU8, var: &str, off: &str) -> bool {
    match cell.load(Ordering::Relaxed) {
        0 => {
            let on = std::env::var(var).map_or(true, |v| v != off);
            cell.store(if on { 1 } else { 2 }, Ordering::Relaxed);
            on
        }
        m => m == 1,
    }
}

/// Whether this CPU runs AVX2 and FMA (the register-blocked kernels' instruction set).
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2_fma() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// Whether this CPU runs AVX2 and FMA (never, off x86-64).
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn avx2_fma() -> bool {
    false
}

/// Whether a custom kernel handles `t`: kernels on, CPU tensor, f32 or f64.
pub(crate) fn use_custom(t: &Tensor) -> bool {
    enabled() && t.device().is_cpu() && matches!(t.dtype(), DType::F32 | DType::F64)
}

/// The number of threads the kernels split work across (rayon's global pool).
pub(crate) fn threads() -> usize {
    rayon::current_num_threads().max(1)
}

/// Planes of `len` values a parallel task takes at least: about 16k values, so that small
/// feature maps (1x1 to 4x4 in EfficientNet-B0 at 16x16) do not make tasks of a few values.
pub(crate) fn planes_per_task(len: usize) -> usize {
    (1usize << 14).div_ceil(len.max(1))
}

/// Splits `0..n` into at most `parts` contiguous ranges of near-equal length.
pub(crate) fn split_ranges(n: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, n.max(1));
    let base = n / parts;
    let extra = n % parts;
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// Cuts `buf` into consecutive pieces of `range.len() * unit` elements, one per range.
pub(crate) fn split_mut<'a, T>(
    mut buf: &'a mut [T],
    ranges: &[std::ops::Range<usize>],
    unit: usize,
) -> Vec<&'a mut [T]> {
    let mut out = Vec::with_capacity(ranges.len());
    for r in ranges {
        let (piece, rest) = std::mem::take(&mut buf).split_at_mut(r.len() * unit);
        out.push(piece);
        buf = rest;
    }
    out
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_ranges_cover_exactly() {
        for n in [0, 1, 2, 7, 128] {
            for parts in [1, 2, 3, 16] {
                let r = split_ranges(n, parts);
                assert!(r.len() <= parts.max(1));
                let mut next = 0;
                for x in &r {
                    assert_eq!(x.start, next);
                    next = x.end;
                }
                assert_eq!(next, n);
                let lens: Vec<usize> = r.iter().map(|x| x.len()).collect();
                let (lo, hi) = (lens.iter().min(), lens.iter().max());
                assert!(hi.unwrap() - lo.unwrap() <= 1, "{n} {parts}: {lens:?}");
            }
        }
    }
}
