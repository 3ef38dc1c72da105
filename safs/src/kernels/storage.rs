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
