//! Simulated annealing with the LAHC move ([`SearchSpace::neighbour`]): at step i a
//! candidate no worse than the current plan is accepted, a worse one with probability
//! `exp((cand - current) / T)`, `T = t0 * cooling^i` (maximisation).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{SearchSpace, Tracker};
use crate::activation::ActivationPlan;
use crate::Result;

/// Run simulated annealing for `steps` objective calls (step 0 = `start`).
pub(super) fn run(
    steps: usize,
    t0: f64,
    cooling: f64,
    space: &SearchSpace,
    start: &ActivationPlan,
    rng: &mut ChaCha8Rng,
    tracker: &mut Tracker<'_, '_>,
) -> Result<()> {
    let first = tracker.evaluate(start, |_| true)?;
    let mut current = start.clone();
    let mut current_score = first.score;
    for i in 1..steps {
        let candidate = space.neighbour(&current, rng);
        let temperature = t0 * cooling.powi(i32::try_from(i).unwrap_or(i32::MAX));
        let cur = current_score;
        // The uniform draw is made only for a worse candidate; the draw sequence still
        // depends only on the seed and the scores.
        let e = tracker.evaluate(&candidate, |s| {
            s >= cur || (temperature > 0.0 && rng.gen::<f64>() < ((s - cur) / temperature).exp())
        })?;
        if e.accepted {
            current = candidate;
            current_score = e.score;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::activation::{ActivationPlan, Op};
    use crate::search::{run_search, SearchMethod, SearchMode, SearchSpace};

    /// Fraction of worse candidates accepted at fixed temperature `t0`. One slot, two
    /// operators: the move always yields the other one. Swish scores 10, gelu `10 - drop`,
    /// so every gelu candidate is tried from swish and is worse by exactly `drop`.
    fn acceptance_rate(t0: f64, drop: f64) -> f64 {
        let space = SearchSpace::new(vec![Op::Swish, Op::Gelu], 1, SearchMode::PerLayer);
        let start = ActivationPlan::uniform(Op::Swish, 1);
        let method = SearchMethod::Annealing {
            steps: 3001,
            t0,
            cooling: 1.0,
        };
        let r = run_search(
            &method,
            &space,
            &start,
            3,
            &mut |_, p| {
                Ok(if p.ops()[0] == Op::Swish {
                    10.0
                } else {
                    10.0 - drop
                })
            },
            &mut |_| {},
        )
        .unwrap();
        let worse: Vec<bool> = r.steps[1..]
            .iter()
            .filter(|s| s.plan.ops()[0] == Op::Gelu)
            .map(|s| s.accepted)
            .collect();
        // Every swish candidate (from gelu) is better and accepted.
        assert!(r.steps[1..]
            .iter()
            .filter(|s| s.plan.ops()[0] == Op::Swish)
            .all(|s| s.accepted));
        worse.iter().filter(|&&a| a).count() as f64 / worse.len() as f64
    }

    #[test]
    fn worse_moves_accepted_with_boltzmann_probability() {
        for (t0, drop) in [(1.0f64, 1.0f64), (2.0, 1.0), (1.0, 0.25)] {
            let p = (-drop / t0).exp();
            let rate = acceptance_rate(t0, drop);
            assert!(
                (rate - p).abs() < 0.05,
                "T {t0}, drop {drop}: {rate} vs {p}"
            );
        }
        assert_eq!(acceptance_rate(0.01, 1.0), 0.0);
    }

    #[test]
    fn cooling_makes_late_worse_moves_rare() {
        let space = SearchSpace::paper(3);
        let start = ActivationPlan::uniform(Op::Relu, 3);
        let method = SearchMethod::Annealing {
            steps: 400,
            t0: 5.0,
            cooling: 0.97,
        };
        // Alternating scores: every other candidate is 1 point worse than a better one.
        let r = run_search(
            &method,
            &space,
            &start,
            11,
            &mut |i, _| Ok(if i % 2 == 0 { 10.0 } else { 9.0 }),
            &mut |_| {},
        )
        .unwrap();
        let worse_accepted = |range: std::ops::Range<usize>| {
            r.steps[range]
                .iter()
                .filter(|s| s.score == 9.0 && s.accepted)
                .count()
        };
        // Early T ~ 5: exp(-1/5) ~ 0.8; late T = 5 * 0.97^300 ~ 5e-4: never.
        assert!(worse_accepted(1..41) >= 10);
        assert_eq!(worse_accepted(300..400), 0);
    }
}
