//! Sparse inference: convolutions and linear layers that skip a pruned weight's zeros.
//!
//! Inside [`with_sparse_inference`], every [`crate::model::Conv2d`] and
//! [`crate::model::Linear`] whose weight has at least the given fraction of zeros runs a
//! compressed (CSR) kernel: a convolution builds the im2col columns of a group of samples
//! and sums, per output channel, the column rows of its non-zero weights; a linear layer is a
//! CSR times dense product. The multiply-adds fall with the number of non-zero weights; the
//! im2col copy does not. Depthwise convolutions stay dense (their direct kernel is cheaper).
//! The compressed weights are built once per scope and layer; outputs carry no gradient, so
//! the scope is for evaluation only.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, TensorId};
use rayon::prelude::*;

use super::conv::{gather_cols, group_len, scatter, ConvGeom};
use super::storage::slice;
use super::{split_mut, split_ranges, threads};
use crate::{Error, Result};

/// The sparsity from which `safs eval --sparse` compresses a layer: where the sparse path
/// overtook the dense one for a 3x3 convolution (between 80% and 90% zeros; a linear layer
/// between 90% and 95%) in `examples/sparse_crossover.rs`.
pub const DEFAULT_MIN_SPARSITY: f64 = 0.9;

/// A weight in compressed sparse rows: one row per output unit.
#[derive(Clone, Debug)]
pub struct CsrWeight {
    rows: usize,
    cols: usize,
    row_start: Vec<usize>,
    col: Vec<u32>,
    val: Vec<f32>,
}

impl CsrWeight {
    /// Compresses a dense row-major (rows x cols) weight, keeping its non-zero entries.
    pub fn from_dense(w: &[f32], rows: usize, cols: usize) -> Result<Self> {
        if w.len() != rows * cols || cols > u32::MAX as usize {
            return Err(Error::Config(format!(
                "CsrWeight: {} values for a {rows}x{cols} weight",
                w.len()
            )));
        }
        let mut row_start = Vec::with_capacity(rows + 1);
        let (mut col, mut val) = (Vec::new(), Vec::new());
        row_start.push(0);
        for r in 0..rows {
            for (c, &v) in w[r * cols..(r + 1) * cols].iter().enumerate() {
                if v != 0.0 {
                    col.push(c as u32);
                    val.push(v);
                }
            }
            row_start.push(col.len());
        }
        Ok(Self {
            rows,
            cols,
            row_start,
            col,
            val,
        })
    }

    /// Number of stored (non-zero) weights.
    pub fn nnz(&self) -> usize {
        self.val.len()
    }

    /// Fraction of zeros.
    pub fn sparsity(&self) -> f64 {
        1.0 - self.nnz() as f64 / (self.rows * self.cols).max(1) as f64
    }

    fn row(&self, r: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let span = self.row_start[r]..self.row_start[r + 1];
        self.col[span.clone()]
            .iter()
            .zip(&self.val[span])
            .map(|(&c, &v)| (c as usize, v))
    }
}

/// Sparse convolution of an (N, C, H, W) f32 batch: per group of samples, im2col into
/// (K x samples*P) columns, then each output row is the sum of its non-zero weights' column
/// rows (long contiguous multiply-adds however small the feature map).
fn sparse_conv(g: &ConvGeom, csr: &CsrWeight, x: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let (k, p, cog) = (g.k(), g.p(), g.cout / g.groups);
    let mut y = vec![0f32; g.n * g.out_len()];
    let ranges = split_ranges(g.n, threads());
    split_mut(&mut y, &ranges, g.out_len())
        .into_par_iter()
        .zip(ranges)
        .for_each(|(ys, r)| {
            let cap = group_len(g) * p;
            let mut cols = vec![0f32; g.groups * k * cap];
            let mut mat = vec![0f32; g.cout * cap];
            let mut s0 = r.start;
            while s0 < r.end {
                let gs = group_len(g).min(r.end - s0);
                let ld = gs * p;
                gather_cols(g, x, s0, gs, &mut cols);
                for co in 0..g.cout {
                    let row = &mut mat[co * ld..(co + 1) * ld];
                    row.fill(bias.map_or(0.0, |b| b[co]));
                    let first = co / cog * k;
                    for (c, v) in csr.row(co) {
                        let src = &cols[(first + c) * ld..(first + c + 1) * ld];
                        for (d, &xv) in row.iter_mut().zip(src) {
                            *d += v * xv;
                        }
                    }
                }
                let out = &mut ys[(s0 - r.start) * g.out_len()..(s0 - r.start + gs) * g.out_len()];
                scatter(&mat[..g.cout * ld], out, g.cout, p, gs);
                s0 += gs;
            }
        });
    y
}

/// Sparse linear layer: y (N x out) = x (N x in) * W^T + b, W in CSR.
fn sparse_linear(csr: &CsrWeight, x: &[f32], n: usize, bias: &[f32]) -> Vec<f32> {
    let mut y = vec![0f32; n * csr.rows];
    y.par_chunks_mut(csr.rows).enumerate().for_each(|(s, yr)| {
        let xr = &x[s * csr.cols..(s + 1) * csr.cols];
        for (o, out) in yr.iter_mut().enumerate() {
            *out = bias[o] + csr.row(o).map(|(c, v)| v * xr[c]).sum::<f32>();
        }
    });
    y
}

struct Scope {
    min_sparsity: f64,
    /// Weight tensor id -> its compressed form, or None when too dense to pay.
    cache: HashMap<TensorId, Option<Arc<CsrWeight>>>,
}

thread_local! {
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// Runs `f` with sparse inference for layers whose weights are at least `min_sparsity` zeros.
///
/// Applies to f32 CPU tensors on the calling thread; everything else runs as usual.
pub fn with_sparse_inference<R>(min_sparsity: f64, f: impl FnOnce() -> R) -> R {
    let previous = SCOPE.with(|s| {
        s.borrow_mut().replace(Scope {
            min_sparsity,
            cache: HashMap::new(),
        })
    });
    struct Restore(Option<Option<Scope>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take().flatten();
            SCOPE.with(|s| *s.borrow_mut() = prev);
        }
    }
    let _restore = Restore(Some(previous));
    f()
}

/// Whether a sparse-inference scope is active on this thread.
pub fn active() -> bool {
    SCOPE.with(|s| s.borrow().is_some())
}

/// How many layers the active scope has compressed so far (0 outside a scope).
pub fn compressed_layers() -> usize {
    SCOPE.with(|s| {
        s.borrow()
            .as_ref()
            .map_or(0, |s| s.cache.values().filter(|c| c.is_some()).count())
    })
}

/// The compressed form of `w` (rows = first dim) if a scope is active and `w` is sparse enough.
fn compressed(w: &Tensor) -> Result<Option<Arc<CsrWeight>>> {
    let Some(min) = SCOPE.with(|s| s.borrow().as_ref().map(|s| s.min_sparsity)) else {
        return Ok(None);
    };
    if !w.device().is_cpu() || w.dtype() != DType::F32 {
        return Ok(None);
    }
    if let Some(hit) = SCOPE.with(|s| {
        s.borrow()
            .as_ref()
            .and_then(|s| s.cache.get(&w.id()).cloned())
    }) {
        return Ok(hit);
    }
    let rows = w.dim(0)?;
    let cols = w.elem_count() / rows.max(1);
    let dense: Vec<f32> = w.flatten_all()?.to_vec1()?;
    let csr = CsrWeight::from_dense(&dense, rows, cols)?;
    let entry = (csr.sparsity() >= min).then(|| Arc::new(csr));
    SCOPE.with(|s| {
        if let Some(scope) = s.borrow_mut().as_mut() {
            scope.cache.insert(w.id(), entry.clone());
        }
    });
    Ok(entry)
}

/// Sparse convolution as an op on the input's storage (no gradient).
struct SparseConvOp {
    geom: ConvGeom,
    csr: Arc<CsrWeight>,
    bias: Option<Vec<f32>>,
}

impl CustomOp1 for SparseConvOp {
    fn name(&self) -> &'static str {
        "safs-sparse-conv2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = &self.geom;
        let x: &[f32] = slice(s, l, "sparse conv2d input")?;
        let y = sparse_conv(g, &self.csr, x, self.bias.as_deref());
        Ok((CpuStorage::F32(y), Shape::from((g.n, g.cout, g.ho, g.wo))))
    }
}

/// Sparse linear layer as an op on the input's storage (no gradient).
struct SparseLinearOp {
    n: usize,
    csr: Arc<CsrWeight>,
    bias: Vec<f32>,
}

impl CustomOp1 for SparseLinearOp {
    fn name(&self) -> &'static str {
        "safs-sparse-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x: &[f32] = slice(s, l, "sparse linear input")?;
        let y = sparse_linear(&self.csr, x, self.n, &self.bias);
        Ok((CpuStorage::F32(y), Shape::from((self.n, self.csr.rows))))
    }
}

/// In a sparse scope and for a sparse enough weight: the convolution (plus bias) of `x`.
pub(crate) fn try_conv2d(
    x: &Tensor,
    w: &Tensor,
    bias: Option<&Tensor>,
    stride: usize,
    padding: usize,
    groups: usize,
) -> Result<Option<Tensor>> {
    // Depthwise convolutions stay dense: their direct kernel does only k*k multiply-adds per
    // output, less than the im2col copy the sparse path starts with.
    let depthwise = groups > 1 && w.dim(1)? == 1;
    if x.dtype() != DType::F32 || !x.device().is_cpu() || depthwise {
        return Ok(None);
    }
    let Some(csr) = compressed(w)? else {
        return Ok(None);
    };
    let geom = ConvGeom::new(x.dims(), w.dims(), stride, padding, groups)?;
    let bias = bias.map(|b| b.to_vec1()).transpose()?;
    let op = SparseConvOp { geom, csr, bias };
    Ok(Some(x.contiguous()?.apply_op1_no_bwd(&op)?))
}

/// In a sparse scope and for a sparse enough weight: `x W^T + b` for an (N, in) batch.
pub(crate) fn try_linear(x: &Tensor, w: &Tensor, bias: &Tensor) -> Result<Option<Tensor>> {
    if x.dtype() != DType::F32 || !x.device().is_cpu() || x.rank() != 2 {
        return Ok(None);
    }
    let Some(csr) = compressed(w)? else {
        return Ok(None);
    };
    let n = x.dim(0)?;
    if x.dim(1)? != csr.cols {
        return Err(Error::Config(format!(
            "sparse linear: input {:?} for a weight {:?}",
            x.dims(),
            w.dims()
        )));
    }
    let op = SparseLinearOp {
        n,
        csr,
        bias: bias.to_vec1()?,
    };
    Ok(Some(x.contiguous()?.apply_op1_no_bwd(&op)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testutil::{max_diff, random};

    /// A weight with about `keep` of its entries non-zero.
    fn pruned(shape: &[usize], keep: f64, salt: u64) -> Result<Tensor> {
        let w = random(shape, salt)?;
        let m = random(shape, salt + 1000)?
            .affine(0.5, 0.5)?
            .lt(keep)?
            .to_dtype(DType::F64)?;
        Ok(w.mul(&m)?.to_dtype(DType::F32)?)
    }

    #[test]
    fn sparse_conv_equals_dense_conv() -> Result<()> {
        for (idx, &(n, cin, h, w, cout, k, s, p, gr)) in [
            (2, 3, 7, 6, 4, 3, 1, 1, 1),
            (1, 4, 8, 8, 6, 3, 2, 1, 2),
            (3, 2, 5, 5, 5, 1, 1, 0, 1),
            (2, 4, 6, 6, 6, 3, 2, 1, 2),
            (1, 1, 3, 3, 2, 5, 1, 2, 1),
        ]
        .iter()
        .enumerate()
        {
            let x = random(&[n, cin, h, w], 200 + idx as u64)?.to_dtype(DType::F32)?;
            let wt = pruned(&[cout, cin / gr, k, k], 0.2, 210 + idx as u64)?;
            let b = random(&[cout], 220 + idx as u64)?.to_dtype(DType::F32)?;
            let dense = x
                .conv2d(&wt, p, s, 1, gr)?
                .broadcast_add(&b.reshape((1, cout, 1, 1))?)?;
            let sparse = with_sparse_inference(0.5, || try_conv2d(&x, &wt, Some(&b), s, p, gr))?
                .expect("sparse path taken");
            assert!(max_diff(&sparse, &dense)? < 1e-5, "case {idx}");
        }
        Ok(())
    }

    #[test]
    fn sparse_linear_equals_dense_and_scope_rules_hold() -> Result<()> {
        let x = random(&[5, 30], 1)?.to_dtype(DType::F32)?;
        let w = pruned(&[7, 30], 0.1, 2)?;
        let b = random(&[7], 3)?.to_dtype(DType::F32)?;
        let dense = x.matmul(&w.t()?)?.broadcast_add(&b)?;
        assert!(
            try_linear(&x, &w, &b)?.is_none(),
            "no scope, no sparse path"
        );
        let y = with_sparse_inference(0.5, || try_linear(&x, &w, &b))?.expect("sparse");
        assert!(max_diff(&y, &dense)? < 1e-5);
        // Too dense for the threshold: the dense path runs.
        let full = random(&[7, 30], 4)?.to_dtype(DType::F32)?;
        assert!(with_sparse_inference(0.5, || try_linear(&x, &full, &b))?.is_none());
        assert!(!active());
        Ok(())
    }

    #[test]
    fn pruned_models_give_the_dense_logits() -> Result<()> {
        use crate::model::ModelKind;
        use crate::prune::layerwise_magnitude;
        let dev = candle_core::Device::Cpu;
        for (kind, input, classes) in [
            (ModelKind::Lenet5, [3, 1, 28, 28], 10),
            (ModelKind::Vgg11, [2, 3, 32, 32], 10),
            (ModelKind::Resnet18, [2, 3, 32, 32], 10),
            (ModelKind::EfficientnetB0, [2, 3, 16, 16], 100),
        ] {
            let width = if kind == ModelKind::Lenet5 { 1.0 } else { 0.25 };
            let model = kind.build_scaled(classes, width, 5, &dev)?;
            layerwise_magnitude(model.as_ref(), 0.99)?.apply(model.as_ref())?;
            let x = random(&input, 7)?.to_dtype(DType::F32)?;
            let dense = model.forward_t(&x, false)?;
            let (sparse, layers) = with_sparse_inference(0.5, || {
                let y = model.forward_t(&x, false);
                (y, compressed_layers())
            });
            let sparse = sparse?;
            let depthwise = model
                .prunable()
                .iter()
                // EfficientNet-B0's MBConv `conv2` is the depthwise convolution.
                .filter(|p| kind == ModelKind::EfficientnetB0 && p.name.ends_with(".conv2.weight"))
                .count();
            assert_eq!(
                layers,
                model.prunable().len() - depthwise,
                "{kind:?}: every layer but the depthwise ones compressed"
            );
            let scale = dense.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? as f64;
            let d = max_diff(&sparse, &dense)?;
            assert!(
                d <= 1e-4 * scale.max(1.0),
                "{kind:?}: {d} (logits up to {scale})"
            );
        }
        Ok(())
    }

    #[test]
    fn csr_counts_and_rejects_bad_sizes() -> Result<()> {
        let c = CsrWeight::from_dense(&[0., 1., 0., 0., 2., 3.], 2, 3)?;
        assert_eq!(c.nnz(), 3);
        assert!((c.sparsity() - 0.5).abs() < 1e-12);
        assert_eq!(c.row(1).collect::<Vec<_>>(), [(1, 2.0), (2, 3.0)]);
        assert!(CsrWeight::from_dense(&[0.; 5], 2, 3).is_err());
        Ok(())
    }
}
