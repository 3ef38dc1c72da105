//! The kernels' loops compiled for the widest vector unit the CPU has.
//!
//! The crate is built for baseline x86-64, so that its binaries and the notebook kernel's
//! builds run on any x86-64 machine, and the autovectoriser then uses SSE2 only: 4 f32
//! lanes where AVX-512 has 16. [`vectorised`] compiles its closure once more with AVX-512
//! and once with AVX2 + FMA enabled, and picks one at run time. The numbers do not change:
//! Rust neither reassociates float sums nor contracts `a * b + c` into an FMA, whatever the
//! instruction set.

/// Runs `f`, compiled for AVX-512 or AVX2 + FMA when this CPU has them. Mark the closure
/// `#[inline(always)]`: only code inlined into the wrapper is compiled with its features
/// (`perf annotate` showed a plain closure left in SSE2).
#[inline(always)]
pub(crate) fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if avx512() {
            // SAFETY: this CPU has the features `with_avx512` is compiled for.
            return unsafe { with_avx512(f) };
        }
        if super::avx2_fma() {
            // SAFETY: this CPU has AVX2 and FMA.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

/// Whether this CPU runs the AVX-512 subsets of x86-64-v4 (and AVX2 + FMA).
#[cfg(target_arch = "x86_64")]
fn avx512() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx512vl")
        && super::avx2_fma()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
