//! BatchNorm over small feature maps (under [`SMALL_MAP`] positions, most of
//! EfficientNet-B0's layers): each sample's `C*H*W` values are one row, and per-channel
//! values are expanded along it.
//!
//! A channel's plane there holds one to a few dozen values, and a loop per plane is all
//! overhead (a 1x1 map: one value per loop). Here every loop runs along a row or a block of
//! one. Sums over the batch are kept per element, added over the samples in order, then
//! folded into channels position by position: the result does not depend on the threads.

use std::ops::Range;

use rayon::prelude::*;

use super::batchnorm::Dims;
use super::planes_per_task;
use super::simd::vectorised;

/// Maps with fewer positions than this take the row path.
pub(super) const SMALL_MAP: usize = 64;

/// Row elements per task of a sum over the batch.
const BLOCK: usize = 512;

/// `v[c]` repeated over channel `c`'s `hw` positions: one row's worth.
pub(super) fn expand<U: Copy>(v: &[U], hw: usize) -> Vec<U> {
    v.iter().flat_map(|&u| std::iter::repeat_n(u, hw)).collect()
}

/// Per channel, `K` sums over the batch of `f(a, b, q)`, with `a` and `b` an element of
/// two batches laid out as `d` and `q` that element's entry of the row-long `per_elem`.
pub(super) fn channel_sums<T, Q, const K: usize>(
    a: &[T],
    b: &[T],
    per_elem: &[Q],
    d: Dims,
    f: impl Fn(T, T, Q) -> [f64; K] + Sync,
) -> Vec<[f64; K]>
where
    T: Copy + Sync,
    Q: Copy + Sync,
{
    let row = d.c * d.hw;
    let cols: Vec<Range<usize>> = (0..row.div_ceil(BLOCK))
        .map(|b| b * BLOCK..((b + 1) * BLOCK).min(row))
        .collect();
    let per_col: Vec<Vec<[f64; K]>> = cols
        .par_iter()
        .map(|cols| {
            vectorised(
                #[inline(always)]
                || {
                    let mut acc = vec![[0.0; K]; cols.len()];
                    let q = &per_elem[cols.clone()];
                    for s in 0..d.n {
                        let at = s * row;
                        let (ra, rb) = (&a[at + cols.start..at + cols.end], &b[at + cols.start..]);
                        for (((o, &va), &vb), &qj) in acc.iter_mut().zip(ra).zip(rb).zip(q) {
                            let v = f(va, vb, qj);
                            for k in 0..K {
                                o[k] += v[k];
                            }
                        }
                    }
                    acc
                },
            )
        })
        .collect();
    let elems: Vec<[f64; K]> = per_col.into_iter().flatten().collect();
    elems
        .chunks(d.hw)
        .map(|plane| {
            let mut s = [0.0; K];
            for v in plane {
                for k in 0..K {
                    s[k] += v[k];
                }
            }
            s
        })
        .collect()
}

/// `f(first, run)` over runs of whole `unit`-long pieces of `buf` (planes, or sample
/// rows), several to a task, compiled by [`vectorised`]; `first` is the run's first piece.
/// Results come in task order, and the tasks depend on `unit` alone, not on the threads.
/// Mark `f` `#[inline(always)]`, or it is not compiled for the wider vectors.
pub(super) fn per_runs<T: Send, R: Send>(
    buf: &mut [T],
    unit: usize,
    f: impl Fn(usize, &mut [T]) -> R + Sync + Send,
) -> Vec<R> {
    let per = planes_per_task(unit);
    buf.par_chunks_mut(per * unit.max(1))
        .enumerate()
        .map(|(t, run)| {
            vectorised(
                #[inline(always)]
                || f(t * per, run),
            )
        })
        .collect()
}

/// [`per_runs`] over whole sample rows: `f(s, rows)` with `s` the first row's sample.
pub(super) fn per_rows<T: Send, R: Send>(
    buf: &mut [T],
    d: Dims,
    f: impl Fn(usize, &mut [T]) -> R + Sync + Send,
) -> Vec<R> {
    per_runs(buf, d.c * d.hw, f)
}

/// `dx = gamma / sqrt(var + eps) / m * (m * gy - sum(gy) - xhat * sum(gy * xhat))` over rows:
/// BatchNorm's input gradient from `gy` (in `dx` itself when `gy` is `None`), with
/// `sums[c] = [sum(gy), sum(gy * xhat)]`.
pub(super) fn input_grad<T: candle_core::WithDType>(
    dx: &mut [T],
    gy: Option<&[T]>,
    x: &[T],
    d: Dims,
    gamma: &[f64],
    (mean, inv_std): (&[f64], &[f64]),
    sums: &[[f64; 2]],
) {
    let m = (d.n * d.hw) as f64;
    // [mean, 1/std, gamma/std/m, sum(gy), sum(gy * xhat)] per element of a row.
    let coef: Vec<[f64; 5]> = expand(
        &(0..d.c)
            .map(|c| {
                let is = inv_std[c];
                [mean[c], is, gamma[c] * is / m, sums[c][0], sums[c][1]]
            })
            .collect::<Vec<_>>(),
        d.hw,
    );
    let row = d.c * d.hw;
    per_rows(
        dx,
        d,
        #[inline(always)]
        |first, rows| {
            for (r, dxr) in rows.chunks_mut(row).enumerate() {
                let at = (first + r) * row;
                let xr = &x[at..at + row];
                match gy {
                    Some(gy) => {
                        let gr = &gy[at..at + row];
                        for (((o, &v), &g), k) in dxr.iter_mut().zip(xr).zip(gr).zip(&coef) {
                            *o = T::from_f64(dx_value(g.to_f64(), v.to_f64(), m, k));
                        }
                    }
                    None => {
                        for ((o, &v), k) in dxr.iter_mut().zip(xr).zip(&coef) {
                            *o = T::from_f64(dx_value(o.to_f64(), v.to_f64(), m, k));
                        }
                    }
                }
            }
        },
    );
}

/// One element of BatchNorm's input gradient, `k = [mean, 1/std, gamma/std/m, sum(gy),
/// sum(gy * xhat)]`.
#[inline(always)]
pub(super) fn dx_value(g: f64, v: f64, m: f64, k: &[f64; 5]) -> f64 {
    let xhat = (v - k[0]) * k[1];
    k[2] * (m * g - k[3] - xhat * k[4])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against per-channel sums in plain loops, with rows of three blocks.
    #[test]
    fn channel_sums_equal_plain_sums() {
        let d = Dims {
            n: 5,
            c: 301,
            hw: 4,
        };
        let len = d.n * d.c * d.hw;
        let a: Vec<f32> = (0..len).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..len).map(|i| (i as f32 * 0.11).cos()).collect();
        let q: Vec<f64> = expand(&(0..d.c).map(|c| c as f64 * 0.5).collect::<Vec<_>>(), d.hw);
        let got = channel_sums(&a, &b, &q, d, |x, y, q| [x as f64, x as f64 * y as f64 + q]);
        for (c, got) in got.iter().enumerate() {
            let (mut s0, mut s1) = (0.0, 0.0);
            for s in 0..d.n {
                for p in 0..d.hw {
                    let i = (s * d.c + c) * d.hw + p;
                    s0 += a[i] as f64;
                    s1 += a[i] as f64 * b[i] as f64 + c as f64 * 0.5;
                }
            }
            assert!((got[0] - s0).abs() < 1e-12, "channel {c}");
            assert!((got[1] - s1).abs() < 1e-12, "channel {c}");
        }
    }

    #[test]
    fn expand_repeats_each_value_over_its_positions() {
        assert_eq!(expand(&[1, 2], 3), vec![1, 1, 1, 2, 2, 2]);
    }
}
