//! The graph's small layers: squeeze-and-excitation, global average pooling, flattening and
//! linear layers (vectors are `n x len`, row-major).

use super::act::PointAct;
use super::conv::PAR_MIN_WORK;
use super::kernel::TapList;
use super::planes::{for_chunks, Planes};

/// A fully connected layer over the non-zero weights (`tap.plane` is the input index).
#[derive(Clone, Debug)]
pub(crate) struct LinearNode {
    pub name: String,
    pub fin: usize,
    pub weights: TapList,
    pub bias: Vec<f32>,
    pub act: PointAct,
}

impl LinearNode {
    /// `act(W x + b)` for every row of `x` (`n x fin`).
    pub fn run(&self, x: &[f32], n: usize, par: bool) -> Vec<f32> {
        let fout = self.bias.len();
        let par = par && (self.weights.nnz() + fout) * n >= PAR_MIN_WORK;
        let mut y = vec![0f32; n * fout];
        for_chunks(par, &mut y, fout, |s, ys| {
            let xs = &x[s * self.fin..(s + 1) * self.fin];
            for (o, out) in ys.iter_mut().enumerate() {
                let sum: f32 = self
                    .weights
                    .row(o)
                    .iter()
                    .map(|t| t.w * xs[t.plane as usize])
                    .sum();
                *out = self.act.eval(self.bias[o] + sum);
            }
        });
        y
    }
}

/// Per-channel means of the interior: `n x c`.
pub(crate) fn global_avg_pool(x: &Planes) -> Vec<f32> {
    let n = x.n;
    let mut out = vec![0f32; n * x.c];
    let area = (x.h * x.w) as f32;
    if n == 1 {
        // One image: its rows are plain runs (the loops below cost more than the sums).
        for (c, o) in out.iter_mut().enumerate() {
            let plane = x.plane(c);
            let sum: f32 = (0..x.h).map(|y| x.row(plane, y).iter().sum::<f32>()).sum();
            *o = sum / area;
        }
        return out;
    }
    let mut sums = vec![0f32; n];
    let mut row_sums = vec![0f32; n];
    for c in 0..x.c {
        let plane = x.plane(c);
        sums.fill(0.0);
        for y in 0..x.h {
            row_sums.fill(0.0);
            for pos in x.row(plane, y).chunks_exact(n) {
                row_sums.iter_mut().zip(pos).for_each(|(r, &v)| *r += v);
            }
            sums.iter_mut().zip(&row_sums).for_each(|(s, &r)| *s += r);
        }
        for (s, &sum) in sums.iter().enumerate() {
            out[s * x.c + c] = sum / area;
        }
    }
    out
}

/// The interior in (C, H, W) order per sample: `n x (c h w)`.
pub(crate) fn flatten(x: &Planes, par: bool) -> Vec<f32> {
    x.to_nchw(par)
}

/// Squeeze-and-excitation with its shortcut: `y = x * sigmoid(fc2(act(fc1(mean(x))))) + s`.
#[derive(Clone, Debug)]
pub(crate) struct SeNode {
    pub name: String,
    pub fc1: LinearNode,
    pub fc2: LinearNode,
}

impl SeNode {
    /// Writes `y` into `out` (zeroed, same channels and size as `x`); `short` is added when
    /// given (it may be `x` itself).
    pub fn run(&self, x: &Planes, short: Option<&Planes>, out: &mut Planes, par: bool) {
        let par = par && x.c * x.n * x.h * x.w >= PAR_MIN_WORK;
        let hidden = self.fc1.run(&global_avg_pool(x), x.n, par);
        let gate = self.fc2.run(&hidden, x.n, par);
        // By channel, then image, as the planes hold them.
        let gate: Vec<f32> = (0..x.c * x.n)
            .map(|i| gate[i % x.n * x.c + i / x.n])
            .collect();
        let og = out.clone_geometry();
        let ops = og.pstride();
        for_chunks(par, &mut out.data, ops, |c, plane| {
            let src = x.plane(c);
            let gate = &gate[c * x.n..(c + 1) * x.n];
            for y in 0..x.h {
                let xr = x.row(src, y);
                let i = og.at(y, 0);
                let dst = &mut plane[i..i + xr.len()];
                let positions = dst.chunks_exact_mut(x.n).zip(xr.chunks_exact(x.n));
                match short {
                    Some(sg) => {
                        let sr = sg.row(sg.plane(c), y);
                        for ((d, v), r) in positions.zip(sr.chunks_exact(x.n)) {
                            for (((d, &v), &r), &g) in d.iter_mut().zip(v).zip(r).zip(gate) {
                                *d = v * g + r;
                            }
                        }
                    }
                    None => {
                        for (d, v) in positions {
                            for ((d, &v), &g) in d.iter_mut().zip(v).zip(gate) {
                                *d = v * g;
                            }
                        }
                    }
                }
            }
        });
    }
}
