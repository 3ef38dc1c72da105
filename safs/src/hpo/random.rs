//! Random search: every configuration is drawn independently from the prior (uniform, or
//! log-uniform on `log` domains), ignoring all scores. The baseline TPE has to beat.

use rand::Rng;

use super::space::{Config, Space};

/// The next configuration: a fresh draw from the space's prior.
pub fn suggest<R: Rng + ?Sized>(space: &Space, rng: &mut R) -> Config {
    space.sample(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn draws_differ_and_repeat_with_the_seed() {
        let space = Space::new()
            .float("x", 0.0, 1.0, false)
            .int("k", 1, 100, false);
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..20)
                .map(|_| suggest(&space, &mut rng))
                .collect::<Vec<_>>()
        };
        let a = draw(7);
        assert_eq!(a, draw(7));
        assert_ne!(a, draw(8));
        assert!(a.windows(2).all(|w| w[0] != w[1]));
    }
}
