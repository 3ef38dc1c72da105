//! The threads the kernels run on: rayon's global pool, and Candle's own CPU pool tuned to
//! share the cores with it.
//!
//! A kernel called from a thread outside rayon's pool hands each parallel loop to the
//! pool and sleeps until it is done: a wake-up each way, 20-40 microseconds per loop on
//! the 2-core VM of docs/benchmarks.md, where a BatchNorm over a 64 x 1152 x 1 x 1 batch
//! computes for 40. [`on_pool`] runs a whole training step on a pool thread instead, so
//! the kernels' loops start in place.
//!
//! Candle 0.11 runs its element-wise ops (the gradient adds of every backward pass, the
//! squeeze-and-excitation products) on a pool of its own, whose workers spin 25,000 times
//! after each op before they sleep. The custom kernels run on rayon's pool right after, on
//! the same cores: on 2 cores Candle's spinning worker held 30% of the CPU samples of an
//! EfficientNet-B0 training step (`perf`), and the step took 148 ms instead of 123 ms.

/// The spin limit [`tune_candle_threads`] sets: about 30 microseconds instead of 400.
pub const CANDLE_SPIN_LIMIT: u32 = 2000;

const VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";

/// Shortens the spin of Candle's CPU pool to [`CANDLE_SPIN_LIMIT`] unless the environment
/// already sets `CANDLE_BARRIER_POOL_SPIN_LIMIT`; returns whether it set it. Call it at the
/// start of the process: Candle reads the variable once, when its pool starts.
pub fn tune_candle_threads() -> bool {
    if std::env::var_os(VAR).is_some() {
        return false;
    }
    // Edition 2021: safe, and called before the process starts its worker threads.
    std::env::set_var(VAR, CANDLE_SPIN_LIMIT.to_string());
    true
}

/// Runs `f` on a thread of the kernels' pool (rayon's global pool), or in place when
/// already on one. The training and evaluation loops call it once per batch.
pub fn on_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    rayon::scope(|_| f())
}

/// [`on_pool`] for work on `device`: on the CPU (the kernels' device) on the pool, elsewhere
/// in place, on the calling thread (where a GPU context is bound).
pub fn on_pool_for<R: Send>(device: &candle_core::Device, f: impl FnOnce() -> R + Send) -> R {
    if device.is_cpu() {
        on_pool(f)
    } else {
        f()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sets_the_limit_once() {
        super::tune_candle_threads();
        assert_eq!(
            std::env::var(super::VAR).unwrap(),
            super::CANDLE_SPIN_LIMIT.to_string()
        );
        assert!(
            !super::tune_candle_threads(),
            "a set variable is left alone"
        );
    }

    #[test]
    fn on_pool_runs_on_a_pool_thread() {
        assert_eq!(
            rayon::current_thread_index(),
            None,
            "tests run outside the pool"
        );
        let inside = super::on_pool(|| rayon::current_thread_index().is_some());
        assert!(inside);
        let nested = super::on_pool(|| super::on_pool(|| 7));
        assert_eq!(nested, 7);
        let cpu = candle_core::Device::Cpu;
        assert!(super::on_pool_for(&cpu, || rayon::current_thread_index().is_some()));
    }
}
