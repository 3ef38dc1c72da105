//! Test helpers of the kernels: finite differences (shared with the models) and diffs.

use candle_core::{DType, Tensor};

pub(crate) use crate::model::testutil::{check_grad, pseudo_random as random};
use crate::Result;

/// The largest absolute element-wise difference of two tensors, in f64.
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    Ok(a.to_dtype(DType::F64)?
        .sub(&b.to_dtype(DType::F64)?)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar()?)
}

/// `max |a - b|` and the scale to judge it by: `max |a|`, at least 1.
pub(crate) fn diff_and_scale(a: &Tensor, b: &Tensor) -> Result<(f64, f64)> {
    let scale = a
        .to_dtype(DType::F64)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()?
        .max(1.0);
    Ok((max_diff(a, b)?, scale))
}
