//! The inner loop of every convolution in the graph: one output channel over a block of
//! `BLOCK` consecutive positions of the flat plane layout, summed over the channel's taps.
//!
//! With the planes stored row after row (padding included, the images side by side at each
//! position), the input a tap reads for a block of outputs is one contiguous run shifted by
//! a fixed offset, so each stored weight
//! costs `BLOCK / 8` vector multiply-adds on data read straight from the planes, with the
//! accumulators in registers (XNNPACK's sparse kernels vectorise along the same axis).

/// One stored weight of a convolution: which input plane, the shift into it, the value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Tap {
    /// Input plane (channel, or channel x phase for a stride-2 layer).
    pub plane: u32,
    /// Offset of the tap inside the plane, in positions (each holds one value per image).
    pub off: u32,
    /// The weight (BatchNorm folded in).
    pub w: f32,
}

/// Output positions per call: 8 vectors of 8 lanes, the accumulators AVX2 holds in registers.
pub(crate) const BLOCK: usize = 64;

/// The taps of every output channel of a layer, in compressed rows, with the furthest
/// plane and offset any of them reads (kept private so that the bound is always true).
#[derive(Clone, Debug, Default)]
pub(crate) struct TapList {
    start: Vec<usize>,
    taps: Vec<Tap>,
    max_plane: usize,
    max_off: usize,
}

impl TapList {
    /// The list from one `Vec<Tap>` per output channel.
    pub(crate) fn new(rows: Vec<Vec<Tap>>) -> Self {
        let mut start = vec![0];
        let mut taps = Vec::new();
        for row in rows {
            taps.extend(row);
            start.push(taps.len());
        }
        let max_plane = taps.iter().map(|t| t.plane as usize).max().unwrap_or(0);
        let max_off = taps.iter().map(|t| t.off as usize).max().unwrap_or(0);
        Self {
            start,
            taps,
            max_plane,
            max_off,
        }
    }

    /// The taps of output channel `co`.
    pub(crate) fn row(&self, co: usize) -> &[Tap] {
        &self.taps[self.start[co]..self.start[co + 1]]
    }

    /// Number of output channels.
    pub(crate) fn rows(&self) -> usize {
        self.start.len() - 1
    }

    /// Number of stored weights.
    pub(crate) fn nnz(&self) -> usize {
        self.taps.len()
    }

    /// Every tap, rewritten by `f` (the bound is recomputed).
    pub(crate) fn map(&self, f: impl Fn(Tap) -> Tap) -> Self {
        let rows = (0..self.rows())
            .map(|co| self.row(co).iter().map(|&t| f(t)).collect())
            .collect();
        Self::new(rows)
    }
}

/// `out[j] = sum over the taps of channel co of tap.w * x[tap.plane * pstride + tap.off * n
/// + base + j]` for `j < BLOCK`, with `n` values per position.
///
/// Panics if a read could leave `x`, so callers size the planes with slack once.
pub(crate) fn accumulate(
    x: &[f32],
    (pstride, n): (usize, usize),
    list: &TapList,
    co: usize,
    base: usize,
    out: &mut [f32; BLOCK],
) {
    let taps = list.row(co);
    assert!(
        taps.is_empty() || list.max_plane * pstride + list.max_off * n + base + BLOCK <= x.len(),
        "accumulate: block at {base} reads past the planes ({} floats)",
        x.len()
    );
    #[cfg(target_arch = "x86_64")]
    if crate::kernels::avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, and every read is inside `x`: the assert bounds
        // the furthest plane and offset of the whole list.
        unsafe { avx2::accumulate(x, (pstride, n), taps, base, out) };
        return;
    }
    portable(x, (pstride, n), taps, base, out);
}

/// The same sum in plain Rust (other CPUs, and the reference of the AVX2 version).
fn portable(
    x: &[f32],
    (pstride, n): (usize, usize),
    taps: &[Tap],
    base: usize,
    out: &mut [f32; BLOCK],
) {
    let mut acc = [0f32; BLOCK];
    for t in taps {
        let start = t.plane as usize * pstride + t.off as usize * n + base;
        let src = &x[start..start + BLOCK];
        for (a, &v) in acc.iter_mut().zip(src) {
            *a += t.w * v;
        }
    }
    *out = acc;
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{Tap, BLOCK};

    /// [`super::accumulate`] with the 64 sums in 8 AVX registers.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA, and `tap.plane * pstride + tap.off * n + base +
    /// BLOCK` must not exceed `x.len()` for any tap.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn accumulate(
        x: &[f32],
        (pstride, n): (usize, usize),
        taps: &[Tap],
        base: usize,
        out: &mut [f32; BLOCK],
    ) {
        // The common image counts as constants: no multiply per tap.
        match n {
            1 => sum::<1>(x, (pstride, n), taps, base, out),
            8 => sum::<8>(x, (pstride, n), taps, base, out),
            _ => sum::<0>(x, (pstride, n), taps, base, out),
        }
    }

    /// The loop of [`accumulate`], with `N` images per position (0: `n`).
    ///
    /// # Safety
    /// As [`accumulate`].
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sum<const N: usize>(
        x: &[f32],
        (pstride, n): (usize, usize),
        taps: &[Tap],
        base: usize,
        out: &mut [f32; BLOCK],
    ) {
        let n = if N == 0 { n } else { N };
        let mut a = [_mm256_setzero_ps(); BLOCK / 8];
        let x0 = x.as_ptr().add(base);
        for t in taps {
            let p = x0.add(t.plane as usize * pstride + t.off as usize * n);
            let w = _mm256_set1_ps(t.w);
            for (v, acc) in a.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(w, _mm256_loadu_ps(p.add(8 * v)), *acc);
            }
        }
        for (v, acc) in a.iter().enumerate() {
            _mm256_storeu_ps(out.as_mut_ptr().add(8 * v), *acc);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small seeded generator of values in [-1, 1) for the graph's tests.
    pub(crate) fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// The dispatched kernel equals a plain double-precision sum written out here.
    #[test]
    fn accumulate_is_the_shifted_weighted_sum() {
        let mut seed = 7;
        let pstride = 600;
        let x: Vec<f32> = (0..3 * pstride + 8 * 90 + 2 * BLOCK)
            .map(|_| lcg(&mut seed))
            .collect();
        let taps: Vec<Tap> = (0..11)
            .map(|i| Tap {
                plane: (i % 3) as u32,
                off: (i * 17 % 90) as u32,
                w: lcg(&mut seed),
            })
            .collect();
        let list = TapList::new(vec![Vec::new(), taps.clone()]);
        for (n, base) in [(1, 0), (1, 5), (1, 131), (4, 3), (8, 64)] {
            let mut out = [0f32; BLOCK];
            accumulate(&x, (pstride, n), &list, 1, base, &mut out);
            let mut plain = [0f32; BLOCK];
            portable(&x, (pstride, n), &taps, base, &mut plain);
            for (j, &o) in out.iter().enumerate() {
                let want: f64 = taps
                    .iter()
                    .map(|t| {
                        let i = t.plane as usize * pstride + t.off as usize * n + base + j;
                        t.w as f64 * x[i] as f64
                    })
                    .sum();
                assert!(
                    (o as f64 - want).abs() < 1e-5,
                    "n {n} base {base} j {j}: {o} vs {want}"
                );
                assert!(
                    (plain[j] as f64 - want).abs() < 1e-5,
                    "portable, n {n} base {base} j {j}"
                );
            }
        }
        let mut out = [1f32; BLOCK];
        accumulate(&x, (pstride, 1), &list, 0, 0, &mut out);
        assert_eq!(out, [0f32; BLOCK], "no taps: zeros");
    }

    #[test]
    #[should_panic(expected = "reads past the planes")]
    fn a_read_past_the_planes_is_refused() {
        let x = vec![0f32; 100];
        let list = TapList::new(vec![vec![Tap {
            plane: 0,
            off: 40,
            w: 1.0,
        }]]);
        accumulate(&x, (100, 1), &list, 0, 0, &mut [0f32; BLOCK]);
    }
}
