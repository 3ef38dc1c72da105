//! Allocator tuning for training loops that free and re-allocate large tensors every step.
//!
//! glibc's malloc serves blocks above its mmap threshold with fresh `mmap`s and hands freed
//! heap tops back to the kernel, so each step's activations and gradients page-fault anew
//! (measured: a LeNet-5 step at batch 128 spent about half its time there). Raising the
//! thresholds keeps freed memory in the process for the next step.

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
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn applies_on_glibc() {
        assert!(super::tune_allocator());
    }
}
