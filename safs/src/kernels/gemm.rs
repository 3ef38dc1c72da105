//! A bounds-checked wrapper over the `gemm` crate (the kernel Candle's matmul uses).

use gemm::Parallelism;

/// A read-only strided matrix view: element (r, c) is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major matrix with `cols` columns.
    pub fn rows(data: &'a [T], cols: usize) -> Self {
        Self {
            data,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [T], cols: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: cols,
        }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `dst (m x n, row-major) = [dst +] lhs (m x k) * rhs (k x n)`.
///
/// Panics if a view is too short for its shape: callers size every buffer from one geometry.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<T: candle_core::WithDType>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    accumulate: bool,
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    threads: usize,
) {
    assert!(
        dst.len() >= m * n,
        "gemm: dst holds {} < {m}x{n}",
        dst.len()
    );
    assert!(lhs.fits(m, k) && rhs.fits(k, n), "gemm: operand too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(T::from_f64(0.0));
        }
        return;
    }
    let par = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the asserts above keep every index the kernel touches inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::from_f64(1.0),
            T::from_f64(1.0),
            false,
            false,
            false,
            par,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_product_with_transposes_and_accumulation() {
        let (m, n, k) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let naive = |i: usize, j: usize| (0..k).map(|t| a[i * k + t] * b[t * n + j]).sum::<f64>();
        let mut d = vec![0.0; m * n];
        matmul(
            m,
            n,
            k,
            &mut d,
            false,
            MatRef::rows(&a, k),
            MatRef::rows(&b, n),
            1,
        );
        for i in 0..m {
            for j in 0..n {
                assert!((d[i * n + j] - naive(i, j)).abs() < 1e-12);
            }
        }
        // b^T stored as (n x k) row-major, read transposed; accumulate onto the first result.
        let bt: Vec<f64> = (0..n * k).map(|idx| b[(idx % k) * n + idx / k]).collect();
        matmul(
            m,
            n,
            k,
            &mut d,
            true,
            MatRef::rows(&a, k),
            MatRef::transposed(&bt, k),
            2,
        );
        for i in 0..m {
            for j in 0..n {
                assert!((d[i * n + j] - 2.0 * naive(i, j)).abs() < 1e-12);
            }
        }
    }

    #[test]
    #[should_panic(expected = "operand too short")]
    fn refuses_short_operands() {
        let a = vec![0f32; 5];
        let mut d = vec![0f32; 4];
        matmul(
            2,
            2,
            3,
            &mut d,
            false,
            MatRef::rows(&a, 3),
            MatRef::rows(&a, 2),
            1,
        );
    }
}
