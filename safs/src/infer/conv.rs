//! A convolution of the graph: shifted-plane sums over its stored weights, then in one pass
//! over each output row the folded bias, the residual, the activation and the 2x2 max pool.
//!
//! One loop serves sparse layers (only the non-zero weights are taps), depthwise layers
//! (each channel's taps read its own plane) and dense few-channel layers such as the first
//! one, where a direct convolution is cheaper than building im2col columns. Stride 2 runs
//! as stride 1 over the input's four phases ([`super::planes::phases`]).

use std::ops::Range;

use super::act::PointAct;
use super::kernel::{accumulate, Tap, TapList, BLOCK};
use super::planes::{for_chunks, phases, Planes};
use crate::activation::fast::Fast;
use crate::activation::pointwise::{value, with_const_op};
use crate::kernels::threads;

/// Multiply-adds (plus outputs) below which a layer runs on the calling thread alone.
pub(crate) const PAR_MIN_WORK: usize = 1 << 17;

/// Computed floats per row group before it is written out (a few kernel calls).
const ROW_BLOCK: usize = 8 * BLOCK;

/// A convolution with everything that follows it up to the next layer.
#[derive(Clone, Debug)]
pub(crate) struct ConvNode {
    /// Layer name, for errors and summaries.
    pub name: String,
    /// Input and output channels, groups, kernel height and width, stride, padding.
    pub cin: usize,
    pub cout: usize,
    pub groups: usize,
    pub k: (usize, usize),
    pub stride: usize,
    pub pad: usize,
    /// Output size before pooling.
    pub ho: usize,
    pub wo: usize,
    /// Taps by output channel; `off` holds `ky * kw + kx` until [`ConvNode::place`].
    pub taps: TapList,
    /// Folded bias per output channel.
    pub bias: Vec<f32>,
    pub act: PointAct,
    /// Whether a BatchNorm was folded in (for summaries).
    pub bn: bool,
    pub pool: bool,
    pub residual: bool,
    /// Stride 2: the input phases the taps read (set by [`ConvNode::place`]).
    pub phases: Vec<u8>,
}

/// One output channel's row group on its way out: its sums in `scratch` (output row `oy`
/// of all the images at `(oy - rows.start) * row_len`) and where they go.
struct RowGroup<'a> {
    co: usize,
    scratch: &'a mut [f32],
    row_len: usize,
    rows: Range<usize>,
    og: &'a Planes,
    plane: &'a mut [f32],
    residual: Option<(&'a Planes, &'a [f32])>,
}

/// Fills `out` with the runs of the compute grid that output rows `rows` need: row `oy` is
/// the `run` floats at `oy * row_len`. Neighbours merge where computing the gap costs no
/// more kernel calls than it saves (a single image's rows; 4x4 maps of 8 images).
fn spans_into(out: &mut Vec<Range<usize>>, rows: Range<usize>, row_len: usize, run: usize) {
    let blocks = |len: usize| len.div_ceil(BLOCK);
    out.clear();
    for oy in rows {
        let r = oy * row_len..oy * row_len + run;
        match out.last_mut() {
            Some(last) if blocks(r.end - last.start) <= blocks(last.len()) + blocks(run) => {
                last.end = r.end
            }
            _ => out.push(r),
        }
    }
}

impl ConvNode {
    /// Rewrites the taps' offsets for an input of width `in_w` stored with padding `in_pad`.
    pub fn place(&mut self, in_pad: usize, in_w: usize) {
        let (kw, s, p) = (self.k.1, self.stride, self.pad);
        let wp = in_w + 2 * in_pad;
        let wc = if s == 1 { wp } else { wp.div_ceil(2) };
        let shift = |t: &Tap| {
            let (ky, kx) = (t.off as usize / kw, t.off as usize % kw);
            (ky + in_pad - p, kx + in_pad - p)
        };
        if s == 1 {
            self.taps = self.taps.map(|t| {
                let (ty, tx) = shift(&t);
                Tap {
                    off: (ty * wc + tx) as u32,
                    ..t
                }
            });
            return;
        }
        // Stride 2: only the phases some tap reads are split out.
        let phase = |t: &Tap| {
            let (ty, tx) = shift(t);
            (2 * (ty % 2) + tx % 2) as u8
        };
        let mut used: Vec<u8> = (0..self.taps.rows())
            .flat_map(|co| self.taps.row(co).iter().map(phase).collect::<Vec<_>>())
            .collect();
        used.sort_unstable();
        used.dedup();
        let k = used.len() as u32;
        self.taps = self.taps.map(|t| {
            let (ty, tx) = shift(&t);
            let slot = used.iter().position(|&u| u == phase(&t)).unwrap_or(0) as u32;
            Tap {
                plane: t.plane * k + slot,
                off: ((ty / 2) * wc + tx / 2) as u32,
                ..t
            }
        });
        self.phases = used;
    }

    /// Runs the layer on `x` into `out` (zeroed, the output geometry), adding `residual`.
    ///
    /// A stride-1 input needs [`BLOCK`] floats of slack: a valid output reads inside the
    /// padded grid, and the last kernel call of a run computes at most that much past it.
    pub fn run(&self, x: &Planes, residual: Option<&Planes>, out: &mut Planes, par: bool) {
        // Layers too small to share: splitting costs more than it saves (batch 1).
        let n = x.n;
        let work = (self.taps.nnz() + self.cout) * n * self.ho * self.wo;
        let par = par && work >= PAR_MIN_WORK;
        let phased;
        let (data, pstride, wc) = if self.stride == 1 {
            (&x.data[..], x.pstride(), x.wp())
        } else {
            let (buf, wc, hc) = phases(x, &self.phases, BLOCK, par);
            phased = buf;
            (&phased[..], hc * wc * n + BLOCK, wc)
        };
        let (row_len, run) = (wc * n, self.wo * n);
        let mut rb = (ROW_BLOCK / row_len).clamp(1, self.ho.max(1));
        if self.pool {
            rb = (rb + 1) & !1;
        }
        let chunk = if par {
            self.cout.div_ceil(4 * threads()).max(1)
        } else {
            self.cout
        };
        let og = out.clone_geometry();
        let ops = out.pstride();
        for_chunks(par, &mut out.data, ops * chunk, |ci, planes| {
            let mut scratch = vec![0f32; rb * row_len + BLOCK];
            let mut spans = Vec::new();
            for r0 in (0..self.ho).step_by(rb) {
                let rows = r0..(r0 + rb).min(self.ho);
                spans_into(&mut spans, rows.clone(), row_len, run);
                let g0 = r0 * row_len;
                for (j, plane) in planes.chunks_mut(ops).enumerate() {
                    let co = ci * chunk + j;
                    for span in &spans {
                        for b in span.clone().step_by(BLOCK) {
                            let block: &mut [f32; BLOCK] = (&mut scratch[b - g0..b - g0 + BLOCK])
                                .try_into()
                                .expect("BLOCK floats");
                            accumulate(data, (pstride, n), &self.taps, co, b, block);
                        }
                    }
                    self.write_rows(RowGroup {
                        co,
                        scratch: &mut scratch,
                        row_len,
                        rows: rows.clone(),
                        og: &og,
                        plane,
                        residual: residual.map(|r| (r, r.plane(co))),
                    });
                }
            }
        });
    }

    /// The epilogue of one output channel's row group.
    fn write_rows(&self, group: RowGroup) {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA.
            unsafe { self.write_rows_avx2(group) };
            return;
        }
        self.write_rows_op::<false>(group)
    }

    /// [`ConvNode::write_rows`] compiled for AVX2, with the vectorising exp.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn write_rows_avx2(&self, group: RowGroup) {
        self.write_rows_op::<true>(group)
    }

    /// The output loop with the operator as a constant (one copy per operator); `FAST`
    /// evaluates it with [`Fast`]'s polynomial exp.
    #[inline(always)]
    fn write_rows_op<const FAST: bool>(&self, group: RowGroup) {
        let PointAct {
            alpha, beta, theta, ..
        } = self.act;
        let fast_theta = theta.map(Fast);
        with_const_op!(self.act.op, |OP| if FAST {
            self.write_rows_with(
                group,
                #[inline(always)]
                |v| (Fast(beta) * value(OP, Fast(alpha * v), &fast_theta)).0,
            )
        } else {
            self.write_rows_with(
                group,
                #[inline(always)]
                |v| beta * value(OP, alpha * v, &theta),
            )
        })
    }

    /// [`ConvNode::write_rows`] with the activation as a closure: each output row of all
    /// the images is one contiguous run in `scratch`, in the residual and in the output
    /// (so the loops vectorise); it is finished into the output, or in place and pooled.
    #[inline(always)]
    fn write_rows_with(&self, group: RowGroup, act: impl Fn(f32) -> f32) {
        let RowGroup {
            co,
            scratch,
            row_len,
            rows,
            og,
            plane,
            residual,
        } = group;
        let bias = self.bias[co];
        let (n, r0) = (og.n, rows.start);
        let run = self.wo * n;
        if !self.pool && run >= BLOCK {
            // Long rows: finished straight into the output.
            for oy in rows {
                let acc = &scratch[(oy - r0) * row_len..][..run];
                let i = og.at(oy, 0);
                let dst = &mut plane[i..i + run];
                match residual {
                    Some((g, rp)) => {
                        for ((d, &a), &q) in dst.iter_mut().zip(acc).zip(g.row(rp, oy)) {
                            *d = act(a + bias + q);
                        }
                    }
                    None => {
                        for (d, &a) in dst.iter_mut().zip(acc) {
                            *d = act(a + bias);
                        }
                    }
                }
            }
            return;
        }
        // Short rows, or rows to pool: finished in place in one pass over the group, the
        // gaps between rows included (never read), since a loop per short row would spend
        // more on starting than on its values.
        let group = &mut scratch[..(rows.len() - 1) * row_len + run];
        match residual {
            Some((g, rp)) => {
                // `(sum + bias) + residual`, as on the long rows: the same bits either way.
                for oy in rows.clone() {
                    let acc = &mut group[(oy - r0) * row_len..][..run];
                    acc.iter_mut()
                        .zip(g.row(rp, oy))
                        .for_each(|(a, &q)| *a = *a + bias + q);
                }
                group.iter_mut().for_each(|a| *a = act(*a));
            }
            None => group.iter_mut().for_each(|a| *a = act(*a + bias)),
        }
        if !self.pool {
            for oy in rows {
                let i = og.at(oy, 0);
                plane[i..i + run].copy_from_slice(&scratch[(oy - r0) * row_len..][..run]);
            }
            return;
        }
        // Row pairs: groups start on even rows and hold an even number of them.
        for oy in rows.step_by(2) {
            let top = &scratch[(oy - r0) * row_len..][..run];
            let bottom = &scratch[(oy + 1 - r0) * row_len..][..run];
            let i = og.at(oy / 2, 0);
            let dst = &mut plane[i..i + run / 2];
            if n == 1 {
                // One image: the general loop's setup per window would cost more than it.
                let windows = top.chunks_exact(2).zip(bottom.chunks_exact(2));
                for (d, (t, b)) in dst.iter_mut().zip(windows) {
                    *d = max2(max2(t[0], t[1]), max2(b[0], b[1]));
                }
                continue;
            }
            let windows = dst
                .chunks_exact_mut(n)
                .zip(top.chunks_exact(2 * n).zip(bottom.chunks_exact(2 * n)));
            for (d, (t, b)) in windows {
                let ((t0, t1), (b0, b1)) = (t.split_at(n), b.split_at(n));
                let columns = t0.iter().zip(t1).zip(b0.iter().zip(b1));
                for (d, ((&t0, &t1), (&b0, &b1))) in d.iter_mut().zip(columns) {
                    *d = max2(max2(t0, t1), max2(b0, b1));
                }
            }
        }
    }
}

/// The larger of two values, the first on a tie, NaN wins: over a 2x2 window, the rule of
/// the training kernel's max pool.
#[inline(always)]
fn max2(a: f32, b: f32) -> f32 {
    if a.is_nan() || a >= b {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Op;
    use crate::infer::kernel::tests::lcg;

    /// PyTorch's conv2d (cross-correlation, zero padding) + bias, + residual, ReLU, 2x2 max
    /// pool, written as plain loops over NCHW.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[f32],
        [n, cin, h, w]: [usize; 4],
        wt: &[f32],
        bias: &[f32],
        (k, s, p): (usize, usize, usize),
        res: Option<&[f32]>,
        pool: bool,
    ) -> Vec<f32> {
        let cout = bias.len();
        let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
        let mut y = vec![0f32; n * cout * ho * wo];
        for b in 0..n {
            for co in 0..cout {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = 0f64;
                        for ci in 0..cin {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let (iy, ix) = (
                                        (oy * s + ky) as isize - p as isize,
                                        (ox * s + kx) as isize - p as isize,
                                    );
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let xv =
                                        x[((b * cin + ci) * h + iy as usize) * w + ix as usize];
                                    acc += (wt[((co * cin + ci) * k + ky) * k + kx] * xv) as f64;
                                }
                            }
                        }
                        let i = ((b * cout + co) * ho + oy) * wo + ox;
                        let v = acc as f32 + bias[co] + res.map_or(0.0, |r| r[i]);
                        y[i] = v.max(0.0);
                    }
                }
            }
        }
        if !pool {
            return y;
        }
        let (hq, wq) = (ho / 2, wo / 2);
        let mut out = vec![0f32; n * cout * hq * wq];
        for (i, o) in out.iter_mut().enumerate() {
            let (plane, oy, ox) = (i / (hq * wq), i / wq % hq, i % wq);
            let at = |dy: usize, dx: usize| y[(plane * ho + 2 * oy + dy) * wo + 2 * ox + dx];
            *o = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
        }
        out
    }

    /// The node against the loops above over stride 2 with odd sizes, 1x1 and 5x5 kernels,
    /// residuals, pools, short and long rows, 1 image and several, serial and parallel.
    #[test]
    fn a_conv_node_equals_the_loop_definition() {
        let mut seed = 3;
        // (n, cin, h, w, cout, k, stride, pad, in_pad, out_pad, residual, pool)
        let cases = [
            (1, 2, 15, 30, 3, 3, 1, 1, 1, 1, false, false),
            (2, 3, 15, 30, 4, 3, 1, 1, 1, 1, true, false),
            (3, 2, 8, 8, 5, 3, 1, 1, 1, 0, false, true),
            (2, 4, 7, 9, 3, 3, 2, 1, 1, 1, false, false),
            (1, 3, 1, 1, 2, 3, 2, 1, 1, 0, false, false),
            (2, 3, 6, 6, 4, 1, 2, 0, 1, 1, true, false),
            (2, 2, 12, 12, 3, 5, 1, 0, 0, 0, false, true),
            (4, 5, 4, 4, 6, 1, 1, 0, 1, 2, true, false),
            // Rows of 72 and 80 floats (finished straight into the output), 8 images of
            // 4x4 (rows merged into one run), a residual before a pool, stride 2 over 8.
            (3, 2, 5, 24, 3, 3, 1, 1, 1, 1, true, false),
            (2, 3, 6, 40, 2, 3, 1, 1, 2, 0, false, false),
            (8, 4, 4, 4, 5, 3, 1, 1, 1, 1, true, false),
            (2, 3, 6, 6, 3, 3, 1, 1, 1, 1, true, true),
            (8, 3, 8, 8, 4, 3, 2, 1, 1, 1, false, false),
        ];
        for (idx, &(n, cin, h, w, cout, k, s, p, in_pad, out_pad, residual, pool)) in
            cases.iter().enumerate()
        {
            let x: Vec<f32> = (0..n * cin * h * w).map(|_| lcg(&mut seed)).collect();
            let wt: Vec<f32> = (0..cout * cin * k * k)
                .map(|_| lcg(&mut seed))
                .map(|v| if v.abs() < 0.4 { 0.0 } else { v })
                .collect();
            let bias: Vec<f32> = (0..cout).map(|_| lcg(&mut seed)).collect();
            let (ho, wo) = ((h + 2 * p - k) / s + 1, (w + 2 * p - k) / s + 1);
            let res: Vec<f32> = (0..n * cout * ho * wo).map(|_| lcg(&mut seed)).collect();
            let want = reference(
                &x,
                [n, cin, h, w],
                &wt,
                &bias,
                (k, s, p),
                residual.then_some(&res[..]),
                pool,
            );
            let rows = wt
                .chunks(cin * k * k)
                .map(|row| {
                    row.iter()
                        .enumerate()
                        .filter(|(_, &v)| v != 0.0)
                        .map(|(i, &v)| Tap {
                            plane: (i / (k * k)) as u32,
                            off: (i % (k * k)) as u32,
                            w: v,
                        })
                        .collect()
                })
                .collect();
            let mut node = ConvNode {
                name: format!("case {idx}"),
                cin,
                cout,
                groups: 1,
                k: (k, k),
                stride: s,
                pad: p,
                ho,
                wo,
                taps: TapList::new(rows),
                bias: bias.clone(),
                act: PointAct::plain(Op::Relu),
                bn: false,
                pool,
                residual,
                phases: Vec::new(),
            };
            node.place(in_pad, w);
            let slack = if s == 1 { BLOCK } else { 0 };
            for par in [false, true] {
                let input = Planes::from_nchw(&x, [n, cin, h, w], in_pad, slack, par);
                let r = Planes::from_nchw(&res, [n, cout, ho, wo], out_pad, 0, par);
                let (oh, ow) = if pool { (ho / 2, wo / 2) } else { (ho, wo) };
                let mut out = Planes::zeros(cout, n, oh, ow, out_pad, 0);
                node.run(&input, residual.then_some(&r), &mut out, par);
                let got = out.to_nchw(par);
                assert_eq!(got.len(), want.len(), "case {idx}");
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-5,
                        "case {idx} par {par}: element {i}: {a} vs {b}"
                    );
                }
                // The border stays zero: the interior sums to all there is.
                let total: f64 = out.data.iter().map(|&v| v as f64).sum();
                let interior: f64 = got.iter().map(|&v| v as f64).sum();
                assert!(
                    (total - interior).abs() < 1e-3,
                    "case {idx}: border written"
                );
            }
        }
    }

    #[test]
    fn spans_merge_rows_only_where_that_saves_kernel_calls() {
        let mut spans = Vec::new();
        // 8 images at 8x8 (rows of 64 floats, 80 apart): merging two would take 3 calls.
        spans_into(&mut spans, 0..8, 80, 64);
        assert_eq!(spans.len(), 8);
        assert_eq!(spans[1], 80..144);
        // 8 images at 4x4 (rows of 32, 48 apart): one run of 176 floats, 3 calls, not 4.
        spans_into(&mut spans, 0..4, 48, 32);
        assert_eq!(spans, vec![0..176]);
        // One image of 32x32 (rows of 32 in 34): rows 2..6 as one run.
        spans_into(&mut spans, 2..6, 34, 32);
        assert_eq!(spans, vec![68..202]);
    }

    #[test]
    fn max2_takes_nan_and_the_largest() {
        let max4 = |v: [f32; 4]| max2(max2(v[0], v[1]), max2(v[2], v[3]));
        assert_eq!(max4([1.0, 3.0, 2.0, -1.0]), 3.0);
        assert!(max4([1.0, f32::NAN, 2.0, 5.0]).is_nan());
        assert!(max4([f32::NAN, 9.0, 2.0, 5.0]).is_nan());
        assert!(max4([1.0, 2.0, 7.0, f32::NAN]).is_nan());
    }
}
