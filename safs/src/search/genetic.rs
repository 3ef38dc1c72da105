//! A generational genetic algorithm over plans.
//!
//! Generation 0 is the start plan plus `population - 1` random plans, all evaluated.
//! Each later generation keeps the `elite` best individuals unchanged (with their scores,
//! not re-evaluated) and fills the rest with children: two parents by tournament
//! selection (`tournament` draws with replacement, the best wins, the earlier on ties),
//! uniform crossover per slot, then per-slot mutation with `mutation_rate`. Every child is
//! evaluated, even one identical to a plan seen before, so the objective is called
//! `population + (generations - 1) * (population - elite)` times.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::{SearchSpace, Tracker};
use crate::activation::ActivationPlan;
use crate::Result;

/// The genetic algorithm's settings (validated by [`super::SearchMethod::validate`]).
pub(super) struct Params {
    pub population: usize,
    pub generations: usize,
    pub mutation_rate: f64,
    pub elite: usize,
    pub tournament: usize,
}

/// Index of the tournament winner among `k` uniform draws from `scored`.
fn tournament(scored: &[(ActivationPlan, f64)], k: usize, rng: &mut ChaCha8Rng) -> usize {
    let mut winner = rng.gen_range(0..scored.len());
    for _ in 1..k {
        let c = rng.gen_range(0..scored.len());
        if scored[c].1 > scored[winner].1 || (scored[c].1 == scored[winner].1 && c < winner) {
            winner = c;
        }
    }
    winner
}

/// Run the genetic algorithm (step 0 = `start`).
pub(super) fn run(
    p: Params,
    space: &SearchSpace,
    start: &ActivationPlan,
    rng: &mut ChaCha8Rng,
    tracker: &mut Tracker<'_, '_>,
) -> Result<()> {
    let mut pop: Vec<(ActivationPlan, f64)> = Vec::with_capacity(p.population);
    for k in 0..p.population {
        let plan = if k == 0 {
            start.clone()
        } else {
            space.random_plan(rng)
        };
        let e = tracker.evaluate(&plan, |_| true)?;
        pop.push((plan, e.score));
    }
    for _ in 1..p.generations {
        // Stable sort: best first, earlier individuals first on ties.
        pop.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut next: Vec<(ActivationPlan, f64)> = pop[..p.elite].to_vec();
        while next.len() < p.population {
            let a = tournament(&pop, p.tournament, rng);
            let b = tournament(&pop, p.tournament, rng);
            let child = space.crossover(&pop[a].0, &pop[b].0, rng);
            let child = space.mutate(&child, p.mutation_rate, rng);
            let e = tracker.evaluate(&child, |_| true)?;
            next.push((child, e.score));
        }
        pop = next;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::activation::{ActivationPlan, Op};
    use crate::search::{run_search, SearchMethod, SearchSpace};

    #[test]
    fn call_count_and_generation_zero() {
        let space = SearchSpace::paper(3);
        let start = ActivationPlan::uniform(Op::Relu, 3);
        let method = SearchMethod::Genetic {
            population: 6,
            generations: 4,
            mutation_rate: 0.2,
            elite: 2,
            tournament: 2,
        };
        assert_eq!(method.evaluations(), 6 + 3 * 4);
        let mut calls = Vec::new();
        let r = run_search(
            &method,
            &space,
            &start,
            5,
            &mut |i, _| {
                calls.push(i);
                Ok(i as f64 % 7.0)
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(calls, (0..18).collect::<Vec<_>>());
        assert_eq!(r.steps[0].plan, start);
        assert!(r.steps.iter().all(|s| s.accepted));
        // Generation 0's random plans use candidates only.
        for s in &r.steps[1..6] {
            assert!(s.plan.ops().iter().all(|o| space.ops.contains(o)));
        }
    }

    #[test]
    fn selection_pressure_finds_target() {
        // Score = matching slots with a target; with elitism the best never gets worse
        // and the GA reaches the optimum on a 6-slot, 4-operator toy.
        let ops = vec![Op::Gelu, Op::Elu, Op::Tanh, Op::Swish];
        let space = SearchSpace::new(ops, 6, crate::search::SearchMode::PerLayer);
        let target: ActivationPlan = "elu,tanh,swish,gelu,elu,tanh".parse().unwrap();
        let method = SearchMethod::Genetic {
            population: 12,
            generations: 15,
            mutation_rate: 0.1,
            elite: 2,
            tournament: 3,
        };
        let r = run_search(
            &method,
            &space,
            &ActivationPlan::uniform(Op::Relu, 6),
            1,
            &mut |_, p| {
                Ok(p.ops()
                    .iter()
                    .zip(target.ops())
                    .filter(|(a, b)| a == b)
                    .count() as f64)
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(r.best_score, 6.0, "best {}", r.best_plan);
        assert_eq!(r.best_plan, target);
    }
}
