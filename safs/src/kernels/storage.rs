//! Typed slices out of Candle's CPU storage, and the f32/f64 dispatch of the kernels.

use candle_core::{bail, CpuStorage, Layout, Result, WithDType};

/// The contiguous elements `layout` views in `storage`, or an error naming `what`.
pub(crate) fn slice<'a, T: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(storage)?;
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => bail!("{what}: the kernel needs a contiguous tensor, got {layout:?}"),
    }
}

/// Calls `$body` with `$T` bound to f32 or f64 according to the storage's dtype.
macro_rules! dispatch_float {
    ($storage:expr, $name:expr, |$T:ident| $body:expr) => {
        match $storage {
            candle_core::CpuStorage::F32(_) => {
                type $T = f32;
                $body
            }
            candle_core::CpuStorage::F64(_) => {
                type $T = f64;
                $body
            }
            other => candle_core::bail!(
                "{}: unsupported dtype {:?}",
                $name,
                candle_core::backend::BackendStorage::dtype(other)
            ),
        }
    };
}
pub(crate) use dispatch_float;

/// Implements `CustomOp2` for a gradient op (no backward of its own) whose CPU kernel is
/// `$kernel::<T>(&self.0, first input, second input) -> Vec<T>`, with output shape `$shape`
/// (an expression of the op's geometry `$g`).
macro_rules! gradient_op2 {
    ($op:ty, $name:literal, $kernel:ident, ($first:literal, $second:literal), |$g:ident| $shape:expr) => {
        impl candle_core::CustomOp2 for $op {
            fn name(&self) -> &'static str {
                $name
            }

            fn cpu_fwd(
                &self,
                s1: &candle_core::CpuStorage,
                l1: &candle_core::Layout,
                s2: &candle_core::CpuStorage,
                l2: &candle_core::Layout,
            ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
                let $g = &self.0;
                $crate::kernels::storage::dispatch_float!(s1, $name, |T| {
                    let a = $crate::kernels::storage::slice(s1, l1, $first)?;
                    let b = $crate::kernels::storage::slice(s2, l2, $second)?;
                    let out = $kernel::<T>($g, a, b);
                    let storage = <T as candle_core::WithDType>::to_cpu_storage_owned(out);
                    Ok((storage, candle_core::Shape::from($shape)))
                })
            }
        }
    };
}
pub(crate) use gradient_op2;
