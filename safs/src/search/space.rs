//! The Stage 1 search space (candidate operators, slots, per-layer or uniform) and the
//! moves the searches make in it.
//!
//! Every function here draws from the caller's RNG in a fixed order, so a search's
//! sequence of plans depends only on its seed and the scores it saw.

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::activation::{ActivationPlan, Op};
use crate::{Error, Result};

/// Per layer (default) or one operator for the whole network.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// One operator per activation slot (the paper's Stage 1).
    #[default]
    PerLayer,
    /// The same operator in every slot; a plan is one operator.
    Uniform,
}

/// The candidate operators, the number of activation slots and the mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// Candidate operators (the start plan may use others, e.g. ReLU).
    pub ops: Vec<Op>,
    /// Number of activation slots of the network.
    pub slots: usize,
    /// Per layer or uniform.
    #[serde(default)]
    pub mode: SearchMode,
}

impl SearchSpace {
    /// The paper's space: the 13 [`Op::SEARCH_SPACE`] candidates per layer (ReLU is only the start).
    pub fn paper(slots: usize) -> Self {
        Self::new(Op::SEARCH_SPACE.to_vec(), slots, SearchMode::PerLayer)
    }

    /// A space over `ops` for a network with `slots` activation slots.
    pub fn new(ops: Vec<Op>, slots: usize, mode: SearchMode) -> Self {
        Self { ops, slots, mode }
    }

    /// The same space with another mode.
    pub fn with_mode(mut self, mode: SearchMode) -> Self {
        self.mode = mode;
        self
    }

    /// An error unless the space has operators (no duplicates) and at least one slot.
    pub fn validate(&self) -> Result<()> {
        if self.ops.is_empty() {
            return Err(Error::Config(
                "search space: ops is empty; give at least one operator".into(),
            ));
        }
        for (i, op) in self.ops.iter().enumerate() {
            if self.ops[..i].contains(op) {
                return Err(Error::Config(format!(
                    "search space: ops lists '{op}' twice"
                )));
            }
        }
        if self.slots == 0 {
            return Err(Error::Config(
                "search space: slots = 0; need at least 1".into(),
            ));
        }
        Ok(())
    }

    /// An error unless `plan` fits the space: `slots` entries, and uniform in uniform mode.
    pub fn check_plan(&self, plan: &ActivationPlan, what: &str) -> Result<()> {
        if plan.len() != self.slots {
            return Err(Error::Config(format!(
                "{what} plan '{plan}' has {} operators but the search space has {} slots",
                plan.len(),
                self.slots
            )));
        }
        if self.mode == SearchMode::Uniform && plan.ops().iter().any(|&op| op != plan.ops()[0]) {
            return Err(Error::Config(format!(
                "{what} plan '{plan}' is not uniform but the search mode is uniform"
            )));
        }
        Ok(())
    }

    /// A uniformly random candidate operator.
    pub fn random_op<R: Rng>(&self, rng: &mut R) -> Op {
        self.ops[rng.gen_range(0..self.ops.len())]
    }

    /// A uniformly random candidate different from `op`; `op` itself when it is the only one.
    pub fn other_op<R: Rng>(&self, op: Op, rng: &mut R) -> Op {
        let others: Vec<Op> = self.ops.iter().copied().filter(|&o| o != op).collect();
        if others.is_empty() {
            op
        } else {
            others[rng.gen_range(0..others.len())]
        }
    }

    /// A uniformly random plan: each slot independently, or one operator everywhere.
    pub fn random_plan<R: Rng>(&self, rng: &mut R) -> ActivationPlan {
        match self.mode {
            SearchMode::PerLayer => {
                ActivationPlan((0..self.slots).map(|_| self.random_op(rng)).collect())
            }
            SearchMode::Uniform => ActivationPlan::uniform(self.random_op(rng), self.slots),
        }
    }

    /// The SAFS reference's LAHC move: set one random slot to a different candidate, then
    /// swap the operators of two random distinct slots (when there are two). Changes at most
    /// three slots, and at least one whenever a different candidate exists. In uniform mode
    /// it changes the one operator.
    pub fn neighbour<R: Rng>(&self, plan: &ActivationPlan, rng: &mut R) -> ActivationPlan {
        match self.mode {
            SearchMode::PerLayer => {
                let mut ops = plan.0.clone();
                let n = ops.len();
                let i = rng.gen_range(0..n);
                ops[i] = self.other_op(ops[i], rng);
                if n >= 2 {
                    let a = rng.gen_range(0..n);
                    let b = (a + 1 + rng.gen_range(0..n - 1)) % n;
                    ops.swap(a, b);
                }
                ActivationPlan(ops)
            }
            SearchMode::Uniform => {
                ActivationPlan::uniform(self.other_op(plan.ops()[0], rng), plan.len())
            }
        }
    }

    /// The SAFS authors' move, verbatim in its randomness: one random slot gets a random
    /// candidate (possibly its own operator), then two random slots (possibly the same one)
    /// swap. In uniform mode the one operator becomes a random candidate.
    pub fn reference_neighbour<R: Rng>(
        &self,
        plan: &ActivationPlan,
        rng: &mut R,
    ) -> ActivationPlan {
        match self.mode {
            SearchMode::PerLayer => {
                let mut ops = plan.0.clone();
                let n = ops.len();
                let i = rng.gen_range(0..n);
                ops[i] = self.random_op(rng);
                let (a, b) = (rng.gen_range(0..n), rng.gen_range(0..n));
                ops.swap(a, b);
                ActivationPlan(ops)
            }
            SearchMode::Uniform => ActivationPlan::uniform(self.random_op(rng), plan.len()),
        }
    }

    /// Uniform crossover: each slot from either parent with probability 1/2 (uniform mode:
    /// the one operator from either parent).
    pub fn crossover<R: Rng>(
        &self,
        a: &ActivationPlan,
        b: &ActivationPlan,
        rng: &mut R,
    ) -> ActivationPlan {
        match self.mode {
            SearchMode::PerLayer => ActivationPlan(
                a.ops()
                    .iter()
                    .zip(b.ops())
                    .map(|(&x, &y)| if rng.gen::<bool>() { x } else { y })
                    .collect(),
            ),
            SearchMode::Uniform => {
                if rng.gen::<bool>() {
                    a.clone()
                } else {
                    b.clone()
                }
            }
        }
    }

    /// Per-slot mutation: with probability `rate` a slot becomes a different candidate
    /// (uniform mode: the one operator, with probability `rate`).
    pub fn mutate<R: Rng>(&self, plan: &ActivationPlan, rate: f64, rng: &mut R) -> ActivationPlan {
        match self.mode {
            SearchMode::PerLayer => ActivationPlan(
                plan.ops()
                    .iter()
                    .map(|&op| {
                        if rng.gen::<f64>() < rate {
                            self.other_op(op, rng)
                        } else {
                            op
                        }
                    })
                    .collect(),
            ),
            SearchMode::Uniform => {
                if rng.gen::<f64>() < rate {
                    ActivationPlan::uniform(self.other_op(plan.ops()[0], rng), plan.len())
                } else {
                    plan.clone()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn changed(a: &ActivationPlan, b: &ActivationPlan) -> usize {
        a.ops().iter().zip(b.ops()).filter(|(x, y)| x != y).count()
    }

    fn is_uniform(p: &ActivationPlan) -> bool {
        p.ops().iter().all(|&op| op == p.ops()[0])
    }

    #[test]
    fn move_changes_one_to_three_slots_within_space() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for slots in 1..=6 {
            for nops in [2usize, 3, 13] {
                let space = SearchSpace::new(
                    Op::SEARCH_SPACE[..nops].to_vec(),
                    slots,
                    SearchMode::PerLayer,
                );
                // Start from ReLU (not a candidate), then walk.
                let mut plan = ActivationPlan::uniform(Op::Relu, slots);
                let mut max_changed = 0;
                for _ in 0..500 {
                    let next = space.neighbour(&plan, &mut rng);
                    let c = changed(&plan, &next);
                    assert!(
                        (1..=3).contains(&c),
                        "slots {slots}, ops {nops}: {plan} -> {next} changes {c}"
                    );
                    max_changed = max_changed.max(c);
                    // A move only brings in candidates; anything else was already there
                    // (the swap moves existing operators, e.g. the starting ReLU).
                    for new in next.ops() {
                        assert!(
                            space.ops.contains(new) || plan.ops().contains(new),
                            "{plan} -> {next}: {new} came from outside the space"
                        );
                    }
                    plan = next;
                }
                if slots >= 3 && nops >= 3 {
                    assert_eq!(max_changed, 3, "three-slot changes should occur");
                }
            }
        }
    }

    #[test]
    fn move_from_candidates_stays_in_space() {
        let space = SearchSpace::paper(5);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut plan = space.random_plan(&mut rng);
        for _ in 0..1000 {
            plan = space.neighbour(&plan, &mut rng);
            assert!(plan.ops().iter().all(|o| space.ops.contains(o)), "{plan}");
            assert_eq!(plan.len(), 5);
        }
    }

    #[test]
    fn single_candidate_equal_to_slot_is_left_alone() {
        let space = SearchSpace::new(vec![Op::Gelu], 1, SearchMode::PerLayer);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let p = ActivationPlan::uniform(Op::Gelu, 1);
        assert_eq!(space.neighbour(&p, &mut rng), p);
        let r = ActivationPlan::uniform(Op::Relu, 1);
        assert_eq!(space.neighbour(&r, &mut rng), p);
    }

    #[test]
    fn uniform_mode_moves_stay_uniform() {
        let space = SearchSpace::paper(4).with_mode(SearchMode::Uniform);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut plan = ActivationPlan::uniform(Op::Relu, 4);
        for _ in 0..200 {
            let next = space.neighbour(&plan, &mut rng);
            assert!(is_uniform(&next) && next != plan, "{plan} -> {next}");
            let r = space.random_plan(&mut rng);
            let c = space.crossover(&next, &r, &mut rng);
            let m = space.mutate(&c, 0.5, &mut rng);
            assert!(is_uniform(&r) && is_uniform(&c) && is_uniform(&m));
            plan = next;
        }
    }

    #[test]
    fn mutation_rates_zero_and_one() {
        let space = SearchSpace::paper(6);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let p = space.random_plan(&mut rng);
        assert_eq!(space.mutate(&p, 0.0, &mut rng), p);
        assert_eq!(changed(&p, &space.mutate(&p, 1.0, &mut rng)), 6);
    }

    #[test]
    fn crossover_takes_each_slot_from_a_parent() {
        let space = SearchSpace::paper(8);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let a = ActivationPlan::uniform(Op::Gelu, 8);
        let b = ActivationPlan::uniform(Op::Elu, 8);
        let mut from_a = 0;
        for _ in 0..50 {
            let c = space.crossover(&a, &b, &mut rng);
            assert!(c.ops().iter().all(|&o| o == Op::Gelu || o == Op::Elu));
            from_a += c.ops().iter().filter(|&&o| o == Op::Gelu).count();
        }
        assert!((120..280).contains(&from_a), "{from_a} of 400 from a");
    }

    #[test]
    fn validation_names_the_field() {
        let e = |s: SearchSpace| s.validate().unwrap_err().to_string();
        assert!(e(SearchSpace::new(vec![], 3, SearchMode::PerLayer)).contains("ops"));
        assert!(e(SearchSpace::new(vec![Op::Gelu], 0, SearchMode::PerLayer)).contains("slots"));
        assert!(e(SearchSpace::new(
            vec![Op::Gelu, Op::Gelu],
            2,
            SearchMode::PerLayer
        ))
        .contains("gelu"));
        let space = SearchSpace::paper(3);
        assert!(space.validate().is_ok());
        let err = space
            .check_plan(&ActivationPlan::uniform(Op::Relu, 2), "start")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("start") && err.contains('2') && err.contains('3'),
            "{err}"
        );
        let mixed: ActivationPlan = "relu,gelu,relu".parse().unwrap();
        assert!(space.check_plan(&mixed, "start").is_ok());
        let err = space
            .with_mode(SearchMode::Uniform)
            .check_plan(&mixed, "start")
            .unwrap_err()
            .to_string();
        assert!(err.contains("uniform"), "{err}");
    }
}
