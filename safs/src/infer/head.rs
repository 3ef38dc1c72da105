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
    let mut out = vec![0f32; x.n * x.c];
    let area = (x.h * x.w) as f32;
    for c in 0..x.c {
        let plane = x.plane(c);
        for s in 0..x.n {
            let sum: f32 = (0..x.h)
                .map(|y| x.row(plane, s, y).iter().sum::<f32>())
                .sum();
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
        let og = out.clone_geometry();
        let ops = og.pstride();
        for_chunks(par, &mut out.data, ops, |c, plane| {
            let src = x.plane(c);
            let sp = short.map(|s| (s, s.plane(c)));
            for s in 0..x.n {
                let g = gate[s * x.c + c];
                for y in 0..x.h {
                    let xr = x.row(src, s, y);
                    let i = og.at(s, y, 0);
                    let dst = &mut plane[i..i + x.w];
                    match sp {
                        Some((sg, splane)) => {
                            let sr = sg.row(splane, s, y);
                            for ((d, &v), &r) in dst.iter_mut().zip(xr).zip(sr) {
                                *d = v * g + r;
                            }
                        }
                        None => {
                            for (d, &v) in dst.iter_mut().zip(xr) {
                                *d = v * g;
                            }
                        }
                    }
                }
            }
        });
    }
}
