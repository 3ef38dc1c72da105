//! The weight gradient of an ungrouped convolution, with its columns laid out position-major.
//!
//! `dW (C_out x K) = sum over samples of dy (C_out x P) * cols^T`. With the forward pass's
//! columns (K x P, one shifted input plane per row) the product reads `cols` transposed, and
//! the gemm repacks it value by value at a stride of P: a 4 KiB stride at 32x32, which made
//! the weight gradient 3x the cost of the forward pass. Here the columns are gathered
//! transposed, `cols_t (P x K)` with K ordered (kernel row, kernel column, channel), from a
//! channel-last copy of the input: each row is kh * kw runs of C_in contiguous values, and
//! the product reads both operands along their rows. The (C_out, kh, kw, C_in) result is
//! then permuted to PyTorch's (C_out, C_in, kh, kw).

use candle_core::WithDType;
use rayon::prelude::*;

use super::conv::{group_len, grouped_dy, plan_sums, sum_partials, ConvGeom};
use super::gemm::{matmul, MatRef};

/// Whether this path computes `g`'s weight gradient (ungrouped convolutions).
pub(crate) fn applies(g: &ConvGeom) -> bool {
    g.groups == 1
}

/// `dst (cols x rows) = src (rows x cols)^T`, both row-major, in cache-sized tiles.
fn transpose<T: Copy>(src: &[T], rows: usize, cols: usize, dst: &mut [T]) {
    const TILE: usize = 16;
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// Rows `row0..row0 + P` of `cols_t` (row length kh * kw * C_in) for one sample given
/// channel-last as `x_hwc` (H x W x C_in): `cols_t[row0 + oy*wo + ox][(i*kw + j)*C_in + c] =
/// x[c][oy*s + i - pad][ox*s + j - pad]`, 0 outside the image.
fn gather_cols_t<T: WithDType>(g: &ConvGeom, x_hwc: &[T], cols_t: &mut [T], row0: usize) {
    let (c, k, zero) = (g.cin, g.k(), T::from_f64(0.0));
    let spans: Vec<(usize, usize)> = (0..g.kw).map(|j| g.valid_cols(j)).collect();
    for oy in 0..g.ho {
        for ox in 0..g.wo {
            let row = &mut cols_t[(row0 + oy * g.wo + ox) * k..(row0 + oy * g.wo + ox + 1) * k];
            for i in 0..g.kh {
                let iy = g.in_row(oy, i);
                for (j, &(lo, hi)) in spans.iter().enumerate() {
                    let dst = &mut row[(i * g.kw + j) * c..(i * g.kw + j + 1) * c];
                    match iy {
                        Some(iy) if (lo..hi).contains(&ox) => {
                            let ix = ox * g.stride + j - g.padding;
                            let at = (iy * g.w + ix) * c;
                            dst.copy_from_slice(&x_hwc[at..at + c]);
                        }
                        _ => dst.fill(zero),
                    }
                }
            }
        }
    }
}

/// `dW` of `y = conv2d(x, w)` from `x` (N, C_in, H, W) and `dy` (N, C_out, H_out, W_out), as
/// (C_out, C_in, kh, kw). Needs [`applies`].
pub(crate) fn weight_grad<T: WithDType>(g: &ConvGeom, x: &[T], dy: &[T]) -> Vec<T> {
    assert!(applies(g), "conv weight gradient: grouped convolution");
    let (k, p, hw) = (g.k(), g.p(), g.h * g.w);
    let (ranges, inner) = plan_sums(g.n);
    let zero = T::from_f64(0.0);
    let partials: Vec<Vec<T>> = ranges
        .into_par_iter()
        .map(|r| {
            let gs_max = group_len(g);
            let mut dw_t = vec![zero; g.cout * k];
            let mut x_hwc = vec![zero; hw * g.cin];
            let mut cols_t = vec![zero; gs_max * p * k];
            let mut mat = vec![zero; g.cout * gs_max * p];
            let mut s0 = r.start;
            while s0 < r.end {
                let gs = gs_max.min(r.end - s0);
                for j in 0..gs {
                    let xn = &x[(s0 + j) * g.in_len()..(s0 + j + 1) * g.in_len()];
                    transpose(xn, g.cin, hw, &mut x_hwc);
                    gather_cols_t(g, &x_hwc, &mut cols_t, j * p);
                }
                let dyg = grouped_dy(g, dy, s0, gs, &mut mat);
                matmul(
                    g.cout,
                    k,
                    gs * p,
                    &mut dw_t,
                    s0 > r.start,
                    MatRef::rows(dyg, gs * p),
                    MatRef::rows(&cols_t, k),
                    inner,
                );
                s0 += gs;
            }
            dw_t
        })
        .collect();
    let dw_t = sum_partials(partials, g.cout * k);
    // (C_out, kh*kw, C_in) -> (C_out, C_in, kh*kw).
    let taps = g.kh * g.kw;
    let mut dw = vec![zero; g.cout * k];
    for (src, dst) in dw_t.chunks(k).zip(dw.chunks_mut(k)) {
        transpose(src, taps, g.cin, dst);
    }
    dw
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_by_hand() {
        let src: Vec<u32> = (0..6).collect(); // 2 x 3
        let mut dst = vec![0; 6];
        transpose(&src, 2, 3, &mut dst);
        assert_eq!(dst, [0, 3, 1, 4, 2, 5]);
        // Larger than a tile, ragged edges.
        let (rows, cols) = (19, 35);
        let src: Vec<usize> = (0..rows * cols).collect();
        let mut dst = vec![0; rows * cols];
        transpose(&src, rows, cols, &mut dst);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(dst[c * rows + r], src[r * cols + c]);
            }
        }
    }

    /// The weight gradient by its definition, in f64 loops.
    fn reference(g: &ConvGeom, x: &[f64], dy: &[f64]) -> Vec<f64> {
        let mut dw = vec![0.0; g.cout * g.k()];
        for n in 0..g.n {
            for co in 0..g.cout {
                for c in 0..g.cin {
                    for i in 0..g.kh {
                        for j in 0..g.kw {
                            let mut s = 0.0;
                            for oy in 0..g.ho {
                                for ox in 0..g.wo {
                                    let iy = (oy * g.stride + i) as isize - g.padding as isize;
                                    let ix = (ox * g.stride + j) as isize - g.padding as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x
                                        [((n * g.cin + c) * g.h + iy as usize) * g.w + ix as usize];
                                    s += xv * dy[((n * g.cout + co) * g.ho + oy) * g.wo + ox];
                                }
                            }
                            dw[((co * g.cin + c) * g.kh + i) * g.kw + j] += s;
                        }
                    }
                }
            }
        }
        dw
    }

    #[test]
    fn matches_the_definition() {
        // (n, cin, h, w, cout, k, stride, padding): odd sizes, stride 2 with padding, 1x1,
        // a small map that groups samples into one product, a kernel as large as the input.
        let cases = [
            (3, 4, 7, 6, 5, 3, 1, 1),
            (2, 3, 9, 8, 4, 3, 2, 1),
            (2, 5, 6, 6, 3, 1, 1, 0),
            (3, 6, 7, 7, 2, 1, 2, 0),
            (9, 8, 4, 4, 6, 3, 1, 1),
            (2, 2, 5, 5, 3, 5, 1, 0),
        ];
        for (idx, &(n, cin, h, w, cout, k, s, p)) in cases.iter().enumerate() {
            let g = ConvGeom::new(&[n, cin, h, w], &[cout, cin, k, k], s, p, 1).unwrap();
            let x: Vec<f64> = (0..n * g.in_len())
                .map(|i| ((i * 7 + idx) as f64 * 0.37).sin())
                .collect();
            let dy: Vec<f64> = (0..n * g.out_len())
                .map(|i| ((i * 3 + idx) as f64 * 0.21).cos())
                .collect();
            let want = reference(&g, &x, &dy);
            let got = weight_grad(&g, &x, &dy);
            let err = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-10, "case {idx}: max error {err}");
        }
    }
}
