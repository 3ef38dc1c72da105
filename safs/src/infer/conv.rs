//! A convolution of the graph: shifted-plane sums over its stored weights, then in one pass
//! over each output row the folded bias, the residual, the activation and the 2x2 max pool.
//!
//! One loop serves sparse layers (only the non-zero weights are taps), depthwise layers
//! (each channel's taps read its own plane) and dense few-channel layers such as the first
//! one, where a direct convolution is cheaper than building im2col columns. Stride 2 runs
//! as stride 1 over the input's four phases ([`super::planes::phases`]).

use super::act::PointAct;
use super::kernel::{accumulate, Tap, TapList, BLOCK};
use super::planes::{for_chunks, phases, Planes};
use crate::activation::fast::Fast;
use crate::activation::pointwise::{value, with_const_op};
use crate::kernels::threads;

/// Multiply-adds (plus outputs) below which a layer runs on the calling thread alone.
pub(crate) const PAR_MIN_WORK: usize = 1 << 17;

/// Compute positions per row block before it is written out (a few kernel calls).
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

/// One output channel's row block on its way out: its sums in `scratch`, the compute grid
/// they are on, and where they go.
struct RowBlock<'a> {
    co: usize,
    scratch: &'a mut [f32],
    src: &'a Source<'a>,
    rows: std::ops::Range<usize>,
    og: &'a Planes,
    plane: &'a mut [f32],
    residual: Option<(&'a Planes, &'a [f32])>,
}

/// Where the kernel reads: the planes, their stride, and the compute grid's row length and
/// rows per image.
struct Source<'a> {
    data: &'a [f32],
    pstride: usize,
    wc: usize,
    hc: usize,
}

impl ConvNode {
    /// Rewrites the taps' offsets for an input stored with padding `in_pad` and rows of
    /// `wp` floats; returns the furthest offset (the slack a stride-1 input needs past it).
    pub fn place(&mut self, in_pad: usize, in_w: usize) -> usize {
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
            return self.taps.max_off();
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
        self.taps.max_off()
    }

    /// Runs the layer on `x` into `out` (zeroed, the output geometry), adding `residual`.
    pub fn run(&self, x: &Planes, residual: Option<&Planes>, out: &mut Planes, par: bool) {
        // Layers too small to share: splitting costs more than it saves (batch 1).
        let work = (self.taps.nnz() + self.cout) * x.n * self.ho * self.wo;
        let par = par && work >= PAR_MIN_WORK;
        let phased;
        let src = if self.stride == 1 {
            Source {
                data: &x.data,
                pstride: x.pstride(),
                wc: x.wp(),
                hc: x.hp(),
            }
        } else {
            let (buf, wc, hc) = phases(x, &self.phases, self.taps.max_off() + BLOCK, par);
            phased = buf;
            Source {
                pstride: x.n * wc * hc + self.taps.max_off() + BLOCK,
                data: &phased,
                wc,
                hc,
            }
        };
        let rows = x.n * src.hc;
        let mut rb = (ROW_BLOCK / src.wc).clamp(1, rows.max(1));
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
            let mut scratch = vec![0f32; (rb * src.wc).div_ceil(BLOCK) * BLOCK];
            let mut r0 = 0;
            while r0 < rows {
                let r1 = (r0 + rb).min(rows);
                let len = (r1 - r0) * src.wc;
                for (j, plane) in planes.chunks_mut(ops).enumerate() {
                    let co = ci * chunk + j;
                    for b in (0..len).step_by(BLOCK) {
                        let block: &mut [f32; BLOCK] = (&mut scratch[b..b + BLOCK])
                            .try_into()
                            .expect("BLOCK floats");
                        accumulate(
                            src.data,
                            src.pstride,
                            &self.taps,
                            co,
                            r0 * src.wc + b,
                            block,
                        );
                    }
                    let res = residual.map(|r| (r, r.plane(co)));
                    self.write_rows(RowBlock {
                        co,
                        scratch: &mut scratch,
                        src: &src,
                        rows: r0..r1,
                        og: &og,
                        plane,
                        residual: res,
                    });
                }
                r0 = r1;
            }
        });
    }

    /// The epilogue of one output channel's row block.
    fn write_rows(&self, block: RowBlock) {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA.
            unsafe { self.write_rows_avx2(block) };
            return;
        }
        self.write_rows_op::<false>(block)
    }

    /// [`ConvNode::write_rows`] compiled for AVX2, with the vectorising exp.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn write_rows_avx2(&self, block: RowBlock) {
        self.write_rows_op::<true>(block)
    }

    /// The output loop with the operator as a constant (one copy per operator); `FAST`
    /// evaluates it with [`Fast`]'s polynomial exp.
    #[inline(always)]
    fn write_rows_op<const FAST: bool>(&self, block: RowBlock) {
        let PointAct {
            alpha, beta, theta, ..
        } = self.act;
        let fast_theta = theta.map(Fast);
        with_const_op!(self.act.op, |OP| if FAST {
            self.write_rows_with(
                block,
                #[inline(always)]
                |v| (Fast(beta) * value(OP, Fast(alpha * v), &fast_theta)).0,
            )
        } else {
            self.write_rows_with(
                block,
                #[inline(always)]
                |v| beta * value(OP, alpha * v, &theta),
            )
        })
    }

    /// [`ConvNode::write_rows`] with the activation as a closure.
    /// The block is finished in place in `scratch` (one contiguous run, so the loops
    /// vectorise), then stored or pooled.
    #[inline(always)]
    fn write_rows_with(&self, block: RowBlock, act: impl Fn(f32) -> f32) {
        let RowBlock {
            co,
            scratch,
            src,
            rows,
            og,
            plane,
            residual,
        } = block;
        let bias = self.bias[co];
        let (wo, wc, r0) = (self.wo, src.wc, rows.start);
        let len = rows.len() * wc;
        // Stride 1 and borders that line up: the compute grid is the input's and the
        // output's own layout shifted by a constant, so whole blocks are added, finished
        // and stored as one run each (the junk columns between rows land on the output's
        // border, so they are zeroed first).
        let aligned = |g: &Planes| g.wp() == wc && g.hp() == src.hc && self.stride == 1;
        let shift = |g: &Planes| g.pad * g.wp() + g.pad;
        let block = &mut scratch[..len];
        match residual {
            Some((g, rp)) if aligned(g) => {
                // The last image's bottom border rows may map past the plane: junk anyway.
                let res = rp.get(r0 * wc + shift(g)..).unwrap_or(&[]);
                let m = res.len().min(len);
                let (with, without) = block.split_at_mut(m);
                for (a, &q) in with.iter_mut().zip(res) {
                    *a = act(*a + bias + q);
                }
                without.iter_mut().for_each(|a| *a = act(*a + bias));
            }
            Some((g, rp)) => {
                for r in rows.clone() {
                    let (n, oy) = (r / src.hc, r % src.hc);
                    if oy < self.ho {
                        let acc = &mut block[(r - r0) * wc..][..wo];
                        for (a, &q) in acc.iter_mut().zip(g.row(rp, n, oy)) {
                            *a += q;
                        }
                    }
                }
                block.iter_mut().for_each(|a| *a = act(*a + bias));
            }
            None => block.iter_mut().for_each(|a| *a = act(*a + bias)),
        }
        if !self.pool {
            if aligned(og) {
                for r in rows.clone() {
                    let row = &mut block[(r - r0) * wc..][..wc];
                    let junk = if r % src.hc >= self.ho { 0 } else { wo };
                    row[junk..].fill(0.0);
                }
                // A block of the last image's bottom border rows alone maps past its end.
                let start = r0 * wc + shift(og);
                let end = (start + len).min(og.n * og.image_len());
                if start < end {
                    plane[start..end].copy_from_slice(&block[..end - start]);
                }
                return;
            }
            for r in rows {
                let (n, oy) = (r / src.hc, r % src.hc);
                if oy < self.ho {
                    let base = og.at(n, oy, 0);
                    plane[base..base + wo].copy_from_slice(&block[(r - r0) * wc..][..wo]);
                }
            }
            return;
        }
        // Row pairs: blocks start on even rows and images have an even row count.
        for r in rows.step_by(2) {
            let (n, oy) = (r / src.hc, r % src.hc);
            if oy >= self.ho {
                continue;
            }
            let top = &scratch[(r - r0) * wc..][..wo];
            let bottom = &scratch[(r + 1 - r0) * wc..][..wo];
            let base = og.at(n, oy / 2, 0);
            let dst = &mut plane[base..base + wo / 2];
            for ((d, t), b) in dst
                .iter_mut()
                .zip(top.chunks_exact(2))
                .zip(bottom.chunks_exact(2))
            {
                *d = max2(max2(t[0], t[1]), max2(b[0], b[1]));
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

    /// The node against the loops above over shapes that put a row block on the last
    /// image's border alone (17 rows of 32 with 16-row blocks), stride 2 with odd sizes,
    /// 1x1 and 5x5 kernels, residuals, pools, 1 image and several, serial and parallel.
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
            let reach = node.place(in_pad, w);
            let slack = if s == 1 { reach + BLOCK } else { 0 };
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
    fn max2_takes_nan_and_the_largest() {
        let max4 = |v: [f32; 4]| max2(max2(v[0], v[1]), max2(v[2], v[3]));
        assert_eq!(max4([1.0, 3.0, 2.0, -1.0]), 3.0);
        assert!(max4([1.0, f32::NAN, 2.0, 5.0]).is_nan());
        assert!(max4([f32::NAN, 9.0, 2.0, 5.0]).is_nan());
        assert!(max4([1.0, 2.0, 7.0, f32::NAN]).is_nan());
    }
}
