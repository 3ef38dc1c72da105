//! Direct convolution for layers with few input channels and narrow outputs (LeNet-5's two
//! convolutions): f32, stride 1, one group, kernel width 3 or 5, on x86-64 CPUs with AVX2
//! and FMA. Everything else takes the im2col + gemm path of [`super::conv`].
//!
//! im2col copies every input value kh*kw times (25 for a 5x5 kernel) to feed a product whose
//! inner dimension is small (25 for LeNet-5's conv1), so the copies cost more than the
//! arithmetic. Here an output row stays in registers instead:
//!
//! - forward, `y[c][oy][ox] = b[c] + sum_{ci,i,j} w[c][ci][i][j] * x[ci][oy+i][ox+j]`: for a
//!   block of CB output channels and the row's NV 8-wide vectors, each tap (ci, i, j) loads
//!   the shifted input row once and adds `w * x` into CB x NV accumulators;
//! - weight gradient, `dw[c][ci][i][j] = sum_{n,oy,ox} dy[n][c][oy][ox] * x[n][ci][oy+i][ox+j]`:
//!   for one kernel row (ci, i) and a block of channels, one 8-lane accumulator per
//!   (channel, kernel column) runs over a sample's rows. Samples are summed in chunks of
//!   [`CHUNK`], and the chunks in order, so the result does not depend on the thread count.
//!
//! Each sample is first copied into a zero-padded plane whose rows are wide enough for whole
//! vectors: the convolution's padding, plus zero lanes past the output's width.

use rayon::prelude::*;

use super::conv::ConvGeom;
use super::{split_mut, split_ranges, threads};

/// f32 lanes of one AVX register.
const LANES: usize = 8;
/// Samples whose weight-gradient terms are added up together before the chunks are summed.
const CHUNK: usize = 8;
/// The largest `C_in * kh * kw` this path takes (LeNet-5's conv2 has 150).
const MAX_TAPS: usize = 160;
/// The widest output row, in vectors.
const MAX_VECTORS: usize = 4;

/// Whether the direct path computes this convolution (in f32) on this CPU.
pub(crate) fn applies(g: &ConvGeom) -> bool {
    g.stride == 1
        && g.groups == 1
        && matches!(g.kw, 3 | 5)
        && g.wo.div_ceil(LANES) <= MAX_VECTORS
        && g.k() <= MAX_TAPS
        && super::direct_conv_enabled()
        && cpu_supported()
}

use super::avx2_fma as cpu_supported;

/// The zero-padded copy of one sample: `C_in` planes of `ph` rows of `pw` values.
struct Padded {
    /// Output row width rounded up to whole vectors.
    vw: usize,
    pw: usize,
    ph: usize,
}

impl Padded {
    fn new(g: &ConvGeom) -> Self {
        let vw = g.wo.div_ceil(LANES) * LANES;
        // vw + kw - 1 >= wo + kw - 1 = w + 2 * padding: every padded input column fits.
        Self {
            vw,
            pw: vw + g.kw - 1,
            ph: g.h + 2 * g.padding,
        }
    }

    fn plane(&self) -> usize {
        self.ph * self.pw
    }

    /// Copies sample `xn` (C_in x h x w) into `xp`, zero around it.
    fn fill(&self, g: &ConvGeom, xn: &[f32], xp: &mut [f32]) {
        xp.fill(0.0);
        for ci in 0..g.cin {
            for r in 0..g.h {
                let src = &xn[(ci * g.h + r) * g.w..(ci * g.h + r + 1) * g.w];
                let at = ci * self.plane() + (r + g.padding) * self.pw + g.padding;
                xp[at..at + g.w].copy_from_slice(src);
            }
        }
    }

    /// Offset of tap (ci, i, j) from an output row's start, in the order of the weight's
    /// (ci, i, j) layout.
    fn taps(&self, g: &ConvGeom) -> Vec<usize> {
        let mut out = Vec::with_capacity(g.k());
        for ci in 0..g.cin {
            for i in 0..g.kh {
                for j in 0..g.kw {
                    out.push(ci * self.plane() + i * self.pw + j);
                }
            }
        }
        out
    }
}

/// The direct path for the element types that have one (f32); the im2col path asks first.
pub(crate) trait DirectConv: Sized {
    /// `conv2d(x, w) + bias`, or `None` where the direct path does not apply.
    fn direct_forward(
        g: &ConvGeom,
        x: &[Self],
        w: &[Self],
        b: Option<&[Self]>,
    ) -> Option<Vec<Self>>;
    /// The weight gradient, or `None` where the direct path does not apply.
    fn direct_weight_grad(g: &ConvGeom, x: &[Self], dy: &[Self]) -> Option<Vec<Self>>;
}

impl DirectConv for f32 {
    fn direct_forward(g: &ConvGeom, x: &[f32], w: &[f32], b: Option<&[f32]>) -> Option<Vec<f32>> {
        applies(g).then(|| forward(g, x, w, b))
    }

    fn direct_weight_grad(g: &ConvGeom, x: &[f32], dy: &[f32]) -> Option<Vec<f32>> {
        applies(g).then(|| weight_grad(g, x, dy))
    }
}

impl DirectConv for f64 {
    fn direct_forward(_: &ConvGeom, _: &[f64], _: &[f64], _: Option<&[f64]>) -> Option<Vec<f64>> {
        None
    }

    fn direct_weight_grad(_: &ConvGeom, _: &[f64], _: &[f64]) -> Option<Vec<f64>> {
        None
    }
}

/// `y = conv2d(x, w) + bias` for (N, C_in, H, W) `x` and (C_out, C_in, kh, kw) `w`.
pub(crate) fn forward(g: &ConvGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    match g.wo.div_ceil(LANES) {
        1 => forward_blocked::<1, 8>(g, x, w, bias),
        2 => forward_blocked::<2, 6>(g, x, w, bias),
        3 => forward_blocked::<3, 3>(g, x, w, bias),
        _ => forward_blocked::<4, 3>(g, x, w, bias),
    }
}

/// The forward pass with NV vectors a row and CB channels a block (CB * NV <= 12
/// accumulators, so they and the row's input vectors fit AVX2's 16 registers).
fn forward_blocked<const NV: usize, const CB: usize>(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    let pad = Padded::new(g);
    let taps = pad.taps(g);
    let k = g.k();
    let blocks = g.cout.div_ceil(CB);
    // Weights as [block][tap][channel of the block], zero for the channels past C_out.
    let mut wt = vec![0f32; blocks * k * CB];
    let mut bt = vec![0f32; blocks * CB];
    for co in 0..g.cout {
        let (b, c) = (co / CB, co % CB);
        for t in 0..k {
            wt[(b * k + t) * CB + c] = w[co * k + t];
        }
        bt[co] = bias.map_or(0.0, |b| b[co]);
    }
    let mut y = vec![0f32; g.n * g.out_len()];
    let ranges = split_ranges(g.n, threads());
    split_mut(&mut y, &ranges, g.out_len())
        .into_par_iter()
        .zip(ranges)
        .for_each(|(ys, r)| {
            let mut xp = vec![0f32; g.cin * pad.plane()];
            let mut row = vec![0f32; CB * NV * LANES];
            for (s, yn) in r.zip(ys.chunks_mut(g.out_len())) {
                pad.fill(g, &x[s * g.in_len()..(s + 1) * g.in_len()], &mut xp);
                for b in 0..blocks {
                    let wb = &wt[b * k * CB..(b + 1) * k * CB];
                    let bb = &bt[b * CB..(b + 1) * CB];
                    for oy in 0..g.ho {
                        // SAFETY: `applies` checked AVX2 and FMA before this path was taken.
                        unsafe {
                            avx::forward_row::<NV, CB>(&xp, oy * pad.pw, &taps, wb, bb, &mut row)
                        };
                        for c in 0..CB.min(g.cout - b * CB) {
                            let at = ((b * CB + c) * g.ho + oy) * g.wo;
                            yn[at..at + g.wo]
                                .copy_from_slice(&row[c * NV * LANES..c * NV * LANES + g.wo]);
                        }
                    }
                }
            }
        });
    y
}

/// `dw` of the convolution from its input `x` and output gradient `dy`.
pub(crate) fn weight_grad(g: &ConvGeom, x: &[f32], dy: &[f32]) -> Vec<f32> {
    match g.kw {
        3 => weight_grad_blocked::<3, 4>(g, x, dy),
        _ => weight_grad_blocked::<5, 2>(g, x, dy),
    }
}

/// The weight gradient with KW kernel columns and CB channels a block (CB * KW <= 12
/// accumulators beside KW input vectors and one gradient vector).
fn weight_grad_blocked<const KW: usize, const CB: usize>(
    g: &ConvGeom,
    x: &[f32],
    dy: &[f32],
) -> Vec<f32> {
    assert_eq!(g.kw, KW, "weight_grad_blocked: kernel width");
    let pad = Padded::new(g);
    let (p, vw) = (g.p(), pad.vw);
    let blocks = g.cout.div_ceil(CB);
    let rows = g.cin * g.kh;
    // Per chunk: 8-lane sums for [block][kernel row (ci, i)][channel][kernel column].
    let part_len = blocks * rows * CB * KW * LANES;
    let chunks: Vec<Vec<f32>> = (0..g.n.div_ceil(CHUNK))
        .into_par_iter()
        .map(|chunk| {
            let mut part = vec![0f32; part_len];
            let mut xp = vec![0f32; g.cin * pad.plane()];
            // dy of one sample, channels padded to whole blocks and rows to whole vectors.
            let mut dyp = vec![0f32; blocks * CB * g.ho * vw];
            for s in chunk * CHUNK..((chunk + 1) * CHUNK).min(g.n) {
                pad.fill(g, &x[s * g.in_len()..(s + 1) * g.in_len()], &mut xp);
                for co in 0..g.cout {
                    for oy in 0..g.ho {
                        let src = &dy[(s * g.cout + co) * p + oy * g.wo..][..g.wo];
                        dyp[(co * g.ho + oy) * vw..][..g.wo].copy_from_slice(src);
                    }
                }
                for b in 0..blocks {
                    let db = &dyp[b * CB * g.ho * vw..(b + 1) * CB * g.ho * vw];
                    for ci in 0..g.cin {
                        for i in 0..g.kh {
                            let row0 = ci * pad.plane() + i * pad.pw;
                            let at = (b * rows + ci * g.kh + i) * CB * KW * LANES;
                            let acc = &mut part[at..at + CB * KW * LANES];
                            // SAFETY: `applies` checked AVX2 and FMA before this path was taken.
                            unsafe {
                                avx::weight_grad_row::<KW, CB>(&xp, row0, pad.pw, db, g.ho, vw, acc)
                            };
                        }
                    }
                }
            }
            part
        })
        .collect();
    // Chunks in order, then the 8 lanes in order: the same sums whatever the thread count.
    let mut total = vec![0f32; part_len];
    for part in &chunks {
        for (t, v) in total.iter_mut().zip(part) {
            *t += v;
        }
    }
    let mut dw = vec![0f32; g.cout * g.k()];
    for co in 0..g.cout {
        let (b, c) = (co / CB, co % CB);
        for ci in 0..g.cin {
            for i in 0..g.kh {
                for j in 0..KW {
                    let at = (((b * rows + ci * g.kh + i) * CB + c) * KW + j) * LANES;
                    dw[((co * g.cin + ci) * g.kh + i) * KW + j] =
                        total[at..at + LANES].iter().sum();
                }
            }
        }
    }
    dw
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use std::arch::x86_64::*;

    use super::LANES;

    /// One output row of CB channels: `out[c][v*8..] = bias[c] + sum_t w[t][c] * xp[base +
    /// taps[t] + v*8..]`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_row<const NV: usize, const CB: usize>(
        xp: &[f32],
        base: usize,
        taps: &[usize],
        w: &[f32],
        bias: &[f32],
        out: &mut [f32],
    ) {
        let last = taps.iter().max().map_or(0, |&t| base + t + NV * LANES);
        assert!(last <= xp.len(), "forward_row: input row out of bounds");
        assert!(w.len() >= taps.len() * CB && bias.len() >= CB && out.len() >= CB * NV * LANES);
        let mut acc = [[_mm256_setzero_ps(); NV]; CB];
        for (c, a) in acc.iter_mut().enumerate() {
            *a = [_mm256_set1_ps(bias[c]); NV];
        }
        let x0 = xp.as_ptr().add(base);
        for (t, &off) in taps.iter().enumerate() {
            let mut xv = [_mm256_setzero_ps(); NV];
            for (v, r) in xv.iter_mut().enumerate() {
                // SAFETY: base + off + NV * LANES <= xp.len() (asserted above).
                *r = _mm256_loadu_ps(x0.add(off + v * LANES));
            }
            let wt = w.as_ptr().add(t * CB);
            for (c, a) in acc.iter_mut().enumerate() {
                let wb = _mm256_set1_ps(*wt.add(c));
                for v in 0..NV {
                    a[v] = _mm256_fmadd_ps(wb, xv[v], a[v]);
                }
            }
        }
        for (c, a) in acc.iter().enumerate() {
            for (v, r) in a.iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add((c * NV + v) * LANES), *r);
            }
        }
    }

    /// Adds one sample's terms of kernel row (ci, i) to `acc[c][j][lane]`:
    /// `sum_{oy, v} dy[c][oy][v*8 + lane] * xp[row0 + oy*pw + v*8 + lane + j]`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn weight_grad_row<const KW: usize, const CB: usize>(
        xp: &[f32],
        row0: usize,
        pw: usize,
        dy: &[f32],
        ho: usize,
        vw: usize,
        acc: &mut [f32],
    ) {
        assert!(ho == 0 || row0 + (ho - 1) * pw + vw + KW - 1 <= xp.len());
        assert!(dy.len() >= CB * ho * vw && acc.len() >= CB * KW * LANES);
        let mut a = [[_mm256_setzero_ps(); KW]; CB];
        for (c, ac) in a.iter_mut().enumerate() {
            for (j, r) in ac.iter_mut().enumerate() {
                *r = _mm256_loadu_ps(acc.as_ptr().add((c * KW + j) * LANES));
            }
        }
        for oy in 0..ho {
            for v in (0..vw).step_by(LANES) {
                let xr = xp.as_ptr().add(row0 + oy * pw + v);
                let mut xv = [_mm256_setzero_ps(); KW];
                for (j, r) in xv.iter_mut().enumerate() {
                    // SAFETY: row0 + oy*pw + v + j + 8 <= row0 + (ho-1)*pw + vw + KW - 1.
                    *r = _mm256_loadu_ps(xr.add(j));
                }
                for (c, ac) in a.iter_mut().enumerate() {
                    let d = _mm256_loadu_ps(dy.as_ptr().add((c * ho + oy) * vw + v));
                    for j in 0..KW {
                        ac[j] = _mm256_fmadd_ps(d, xv[j], ac[j]);
                    }
                }
            }
        }
        for (c, ac) in a.iter().enumerate() {
            for (j, r) in ac.iter().enumerate() {
                _mm256_storeu_ps(acc.as_mut_ptr().add((c * KW + j) * LANES), *r);
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod avx {
    pub(super) unsafe fn forward_row<const NV: usize, const CB: usize>(
        _: &[f32],
        _: usize,
        _: &[usize],
        _: &[f32],
        _: &[f32],
        _: &mut [f32],
    ) {
        unreachable!("the direct convolution runs only on x86-64")
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn weight_grad_row<const KW: usize, const CB: usize>(
        _: &[f32],
        _: usize,
        _: usize,
        _: &[f32],
        _: usize,
        _: usize,
        _: &mut [f32],
    ) {
        unreachable!("the direct convolution runs only on x86-64")
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Tensor, Var};

    use super::*;
    use crate::kernels::testutil::random;
    use crate::Result;

    /// (n, cin, h, w, cout, k, padding): LeNet-5's two layers at a small batch, and shapes
    /// with ragged rows (wo not a multiple of 8), padding, every row width in vectors, and
    /// channel counts that leave a partial block.
    const CASES: &[(usize, usize, usize, usize, usize, usize, usize)] = &[
        (3, 1, 28, 28, 6, 5, 0),
        (3, 6, 12, 12, 16, 5, 0),
        (2, 2, 9, 7, 5, 3, 1),
        (CHUNK + 3, 3, 13, 13, 7, 5, 2),
        (2, 4, 20, 21, 3, 3, 0),
        (1, 1, 34, 34, 4, 3, 0),
    ];

    fn to_f32(t: &Tensor) -> Result<Vec<f32>> {
        Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
    }

    /// Relative error against an f64 reference: the largest difference over the largest size.
    fn rel_err(ours: &[f32], reference: &Tensor) -> Result<f64> {
        let r: Vec<f64> = reference.flatten_all()?.to_vec1()?;
        assert_eq!(ours.len(), r.len());
        let scale = r.iter().fold(1e-12f64, |m, v| m.max(v.abs()));
        let diff = ours
            .iter()
            .zip(&r)
            .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
        Ok(diff / scale)
    }

    #[test]
    fn forward_and_weight_gradient_match_stock_candle_in_f64() -> Result<()> {
        if !cpu_supported() {
            eprintln!("skipped: this CPU has no AVX2 + FMA, the direct path never runs here");
            return Ok(());
        }
        for (idx, &(n, cin, h, w, cout, k, pad)) in CASES.iter().enumerate() {
            let salt = 100 * idx as u64;
            // The reference sees the f32-rounded values, so only the arithmetic differs.
            let x = random(&[n, cin, h, w], salt)?
                .to_dtype(DType::F32)?
                .to_dtype(DType::F64)?;
            let wt = Var::from_tensor(
                &random(&[cout, cin, k, k], salt + 1)?
                    .to_dtype(DType::F32)?
                    .to_dtype(DType::F64)?,
            )?;
            let b = random(&[cout], salt + 2)?
                .to_dtype(DType::F32)?
                .to_dtype(DType::F64)?;
            let g = ConvGeom::new(x.dims(), wt.dims(), 1, pad, 1)?;
            assert!(applies(&g), "case {idx} should take the direct path");

            let stock = x.conv2d(wt.as_tensor(), pad, 1, 1, 1)?;
            let with_bias = stock.broadcast_add(&b.reshape((1, cout, 1, 1))?)?;
            let ours = forward(
                &g,
                &to_f32(&x)?,
                &to_f32(wt.as_tensor())?,
                Some(&to_f32(&b)?),
            );
            let e = rel_err(&ours, &with_bias)?;
            assert!(e < 1e-5, "case {idx}: forward relative error {e}");

            let dy = random(stock.dims(), salt + 3)?
                .to_dtype(DType::F32)?
                .to_dtype(DType::F64)?;
            let grads = stock.mul(&dy)?.sum_all()?.backward()?;
            let dw_ref = grads.get(wt.as_tensor()).expect("stock weight gradient");
            let dw = weight_grad(&g, &to_f32(&x)?, &to_f32(&dy)?);
            let e = rel_err(&dw, dw_ref)?;
            assert!(e < 1e-5, "case {idx}: weight gradient relative error {e}");
        }
        Ok(())
    }

    #[test]
    fn weight_gradient_is_the_same_for_any_thread_count() -> Result<()> {
        if !cpu_supported() {
            return Ok(());
        }
        let (n, cin, h, w, cout, k) = (3 * CHUNK + 5, 6, 12, 12, 16, 5);
        let x = to_f32(&random(&[n, cin, h, w], 7)?)?;
        let g = ConvGeom::new(&[n, cin, h, w], &[cout, cin, k, k], 1, 0, 1)?;
        let dy = to_f32(&random(&[n, cout, g.ho, g.wo], 8)?)?;
        let run = |t: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .build()
                .expect("thread pool")
                .install(|| weight_grad(&g, &x, &dy))
        };
        let one = run(1);
        for t in [2, 3, 5] {
            assert!(run(t) == one, "{t} threads changed the weight gradient");
        }
        Ok(())
    }

    #[test]
    fn other_shapes_keep_the_im2col_path() -> Result<()> {
        let geom = |x: &[usize], w: &[usize], s, p, gr| ConvGeom::new(x, w, s, p, gr);
        // Strided, grouped, 1x1, too wide, too many taps.
        assert!(!applies(&geom(&[1, 4, 9, 9], &[4, 4, 3, 3], 2, 1, 1)?));
        assert!(!applies(&geom(&[1, 4, 9, 9], &[4, 2, 3, 3], 1, 1, 2)?));
        assert!(!applies(&geom(&[1, 4, 9, 9], &[4, 4, 1, 1], 1, 0, 1)?));
        assert!(!applies(&geom(&[1, 1, 40, 40], &[4, 1, 3, 3], 1, 1, 1)?));
        assert!(!applies(&geom(&[1, 64, 8, 8], &[4, 64, 3, 3], 1, 1, 1)?));
        Ok(())
    }
}
