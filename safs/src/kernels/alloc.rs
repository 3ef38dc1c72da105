//! Allocator tuning for training loops that free and re-allocate large tensors every step.
//!
//! glibc's malloc serves blocks above its mmap threshold with fresh `mmap`s and hands freed
//! heap tops back to the kernel, so each step's activations and gradients page-fault anew
//! (measured: a LeNet-5 step at batch 128 spent about half its time there). Raising the
//! thresholds keeps freed memory in the process for the next step.

/// `n` zeros, written by all threads when `n` is large: the kernels allocate their outputs
/// on the calling thread, where `calloc` would zero reused heap memory on one core while
/// the others wait.
pub(crate) fn zeros<T: candle_core::WithDType>(n: usize) -> Vec<T> {
    use rayon::prelude::*;
    if n < 1 << 16 || super::threads() == 1 {
        return vec![T::from_f64(0.0); n];
    }
    let mut v = Vec::with_capacity(n);
    v.par_extend(rayon::iter::repeat_n(T::from_f64(0.0), n));
    v
}

/// Keeps freed memory for reuse (glibc only; elsewhere a no-op). Returns whether it applied.
///
/// Process-wide: the CLI and the benchmarks call it at start; call it once in a notebook.
pub fn tune_allocator() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // 32 MiB is glibc's largest mmap threshold on 64-bit; larger values are refused.
        const MMAP_THRESHOLD: i32 = 32 << 20;
        const KEEP: i32 = 1 << 30;
        // SAFETY: mallopt only changes malloc's parameters; any value is checked by glibc.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, KEEP) == 1
                && libc::mallopt(libc::M_TOP_PAD, 64 << 20) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn zeros_are_zeros_at_any_size() {
        for n in [0, 5, (1 << 16) + 3] {
            let v: Vec<f32> = super::zeros(n);
            assert_eq!(v.len(), n);
            assert!(v.iter().all(|&x| x == 0.0));
        }
    }

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn applies_on_glibc() {
        assert!(super::tune_allocator());
    }
}
