//! Random search: every step after the start is a uniformly random plan
//! ([`SearchSpace::random_plan`]); a step is "accepted" when it sets a new best.

use rand_chacha::ChaCha8Rng;

use super::{SearchSpace, Tracker};
use crate::activation::ActivationPlan;
use crate::Result;

/// Run random search for `steps` objective calls (step 0 = `start`).
pub(super) fn run(
    steps: usize,
    space: &SearchSpace,
    start: &ActivationPlan,
    rng: &mut ChaCha8Rng,
    tracker: &mut Tracker<'_, '_>,
) -> Result<()> {
    let first = tracker.evaluate(start, |_| true)?;
    let mut best = first.score;
    for _ in 1..steps {
        let plan = space.random_plan(rng);
        let e = tracker.evaluate(&plan, |s| s > best)?;
        best = best.max(e.score);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::activation::{ActivationPlan, Op};
    use crate::search::{run_search, SearchMethod, SearchSpace};

    #[test]
    fn random_plans_cover_the_space_per_slot() {
        let space = SearchSpace::paper(4);
        let start = ActivationPlan::uniform(Op::Relu, 4);
        let mut seen = vec![std::collections::HashSet::new(); 4];
        let r = run_search(
            &SearchMethod::Random { steps: 300 },
            &space,
            &start,
            9,
            &mut |_, p| {
                for (k, op) in p.ops().iter().enumerate() {
                    seen[k].insert(*op);
                }
                Ok(1.0)
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(r.steps.len(), 300);
        assert_eq!(r.steps[0].plan, start);
        for (k, s) in seen.iter().enumerate() {
            // 13 candidates plus the start's ReLU in every slot.
            assert_eq!(s.len(), 14, "slot {k} saw {s:?}");
        }
        // All scores tie, so the best is the start and only step 0 is "accepted".
        assert_eq!(r.best_plan, start);
        assert_eq!(r.steps.iter().filter(|s| s.accepted).count(), 1);
    }
}
