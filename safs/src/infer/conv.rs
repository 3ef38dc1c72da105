//! A convolution of the graph: shifted-plane sums over its stored weights, then in one pass
//! over each output row the folded bias, the residual, the activation and the 2x2 max pool.
//!
//! One loop serves sparse layers (only the non-zero weights are taps), depthwise layers
//! (each channel's taps read its own plane) and dense few-channel layers such as the first
//! one, where a direct convolution is cheaper than building im2col columns. Stride 2 runs
//! as stride 1 over the input's four phases ([`super::planes::phases`]).

use rayon::prelude::*;

use super::act::PointAct;
use super::kernel::{accumulate, TapList, BLOCK};
use super::planes::{phases, Planes};
use crate::activation::pointwise::{value, with_const_op};
use crate::kernels::threads;

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
    pub pool: bool,
    pub residual: bool,
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
        self.taps = self.taps.map(|t| {
            let (ky, kx) = (t.off as usize / kw, t.off as usize % kw);
            let (ty, tx) = (ky + in_pad - p, kx + in_pad - p);
            if s == 1 {
                super::kernel::Tap {
                    off: (ty * wc + tx) as u32,
                    ..t
                }
            } else {
                super::kernel::Tap {
                    plane: t.plane * 4 + (2 * (ty % 2) + tx % 2) as u32,
                    off: ((ty / 2) * wc + tx / 2) as u32,
                    ..t
                }
            }
        });
        self.taps.max_off()
    }

    /// Runs the layer on `x` into `out` (zeroed, the output geometry), adding `residual`.
    pub fn run(&self, x: &Planes, residual: Option<&Planes>, out: &mut Planes) {
        let phased;
        let src = if self.stride == 1 {
            Source {
                data: &x.data,
                pstride: x.pstride(),
                wc: x.wp(),
                hc: x.hp(),
            }
        } else {
            let (buf, wc, hc) = phases(x, self.taps.max_off() + BLOCK);
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
        let chunk = self.cout.div_ceil(4 * threads()).max(1);
        let og = out.clone_geometry();
        let ops = out.pstride();
        out.data
            .par_chunks_mut(ops * chunk)
            .enumerate()
            .for_each(|(ci, planes)| {
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
                        self.write_rows(co, &scratch, &src, r0..r1, &og, plane, res);
                    }
                    r0 = r1;
                }
            });
    }

    /// The epilogue of output channel `co` for compute rows `rows`.
    #[allow(clippy::too_many_arguments)]
    fn write_rows(
        &self,
        co: usize,
        scratch: &[f32],
        src: &Source,
        rows: std::ops::Range<usize>,
        og: &Planes,
        plane: &mut [f32],
        residual: Option<(&Planes, &[f32])>,
    ) {
        let PointAct {
            alpha, beta, theta, ..
        } = self.act;
        with_const_op!(self.act.op, |OP| self.write_rows_with(
            co,
            scratch,
            src,
            rows,
            og,
            plane,
            residual,
            |v| beta * value(OP, alpha * v, &theta)
        ))
    }

    /// [`ConvNode::write_rows`] with the activation as a closure (one copy per operator).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn write_rows_with(
        &self,
        co: usize,
        scratch: &[f32],
        src: &Source,
        rows: std::ops::Range<usize>,
        og: &Planes,
        plane: &mut [f32],
        residual: Option<(&Planes, &[f32])>,
        act: impl Fn(f32) -> f32,
    ) {
        let bias = self.bias[co];
        let (wo, wc, r0) = (self.wo, src.wc, rows.start);
        let finish = |v: f32, n: usize, oy: usize, ox: usize| -> f32 {
            match residual {
                Some((g, rp)) => act(v + bias + rp[g.at(n, oy, ox)]),
                None => act(v + bias),
            }
        };
        if !self.pool {
            for r in rows {
                let (n, oy) = (r / src.hc, r % src.hc);
                if oy >= self.ho {
                    continue;
                }
                let acc = &scratch[(r - r0) * wc..][..wo];
                let base = og.at(n, oy, 0);
                let dst = &mut plane[base..base + wo];
                match residual {
                    None => {
                        for (d, &a) in dst.iter_mut().zip(acc) {
                            *d = act(a + bias);
                        }
                    }
                    Some(_) => {
                        for (ox, (d, &a)) in dst.iter_mut().zip(acc).enumerate() {
                            *d = finish(a, n, oy, ox);
                        }
                    }
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
            for (px, d) in plane[base..base + wo / 2].iter_mut().enumerate() {
                let ox = 2 * px;
                *d = max4([
                    finish(top[ox], n, oy, ox),
                    finish(top[ox + 1], n, oy, ox + 1),
                    finish(bottom[ox], n, oy + 1, ox),
                    finish(bottom[ox + 1], n, oy + 1, ox + 1),
                ]);
            }
        }
    }
}

/// The largest of a 2x2 window: the first maximum, NaN wins (the rule of the training
/// kernel's max pool).
fn max4(v: [f32; 4]) -> f32 {
    let mut m = v[0];
    for &e in &v[1..] {
        if m.is_nan() {
            return m;
        }
        if e > m || e.is_nan() {
            m = e;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max4_takes_nan_and_the_largest() {
        assert_eq!(max4([1.0, 3.0, 2.0, -1.0]), 3.0);
        assert!(max4([1.0, f32::NAN, 2.0, 5.0]).is_nan());
        assert!(max4([f32::NAN, 9.0, 2.0, 5.0]).is_nan());
    }
}
