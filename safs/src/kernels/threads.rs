//! Candle's own CPU thread pool, tuned to share the cores with the kernels' rayon pool.
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
}
