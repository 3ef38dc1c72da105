//! Stage 1 of SAFS: search one unary operator per activation layer.
//!
//! The searches optimise a black-box objective over [`ActivationPlan`]s (they maximise a
//! score; in SAFS the score is validation accuracy in percent after a short masked
//! fine-tune, 0 for a failed candidate). The paper's method is Late Acceptance Hill
//! Climbing ([`SearchMethod::Lahc`], Burke & Bykov 2017); random search, simulated
//! annealing and a genetic algorithm are baselines.
//!
//! Contract shared by every method:
//! - step 0 evaluates the start plan (usually ReLU everywhere), so every result includes
//!   the baseline;
//! - `objective` is called once per evaluated plan with a running step index 0, 1, 2, ...,
//!   and the sequence of plans depends only on the seed and the scores returned (one
//!   `ChaCha8Rng` seeded from `seed`), so a caller may memoise scores by step index to
//!   resume a killed run;
//! - a score must be finite (return 0.0 for a failed candidate); an `Err` from the
//!   objective aborts the search with that error;
//! - the result is the best plan evaluated at full fidelity (highest score; on ties the
//!   earliest).
//!
//! [`run_search_at`] adds multi-fidelity LAHC ([`crate::fidelity`]): the objective then
//! trains batches of plans to a number of epochs, and a batch may run in parallel.

mod annealing;
mod genetic;
mod lahc;
mod random;
mod space;
mod zero_cost;

pub use space::{SearchMode, SearchSpace};
pub use zero_cost::{zero_cost_score, ZeroCost};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::ActivationPlan;
use crate::fidelity::{successive_halving, Bracket, Fidelity, Outcome, RungObjective};
use crate::{Error, Result};

/// A Stage 1 search method and its budget (serde: `name = "lahc"` plus the fields).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum SearchMethod {
    /// Late Acceptance Hill Climbing (Burke & Bykov 2017), the SAFS method, with the stopping
    /// rule of the `lahc` package: at least `min_steps` moves after the start plan, then stop
    /// once the moves without a gain on the current plan exceed `idle_fraction` of the moves.
    Lahc {
        /// Minimum number of moves (the `lahc` package's `steps_minimum`; 20 gives at least
        /// 22 evaluations with the start plan). Experiment files leave it to the budget.
        #[serde(default)]
        min_steps: usize,
        /// Length L of the late-acceptance history.
        #[serde(default = "default_history")]
        history: usize,
        /// Stop once idle moves exceed this fraction of the moves made (`lahc`: 0.02).
        #[serde(default = "default_idle_fraction")]
        idle_fraction: f64,
        /// A hard cap on objective calls, start plan included.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_evaluations: Option<usize>,
        /// The SAFS authors' move: the changed slot may keep its operator and the two
        /// swapped slots may coincide, so a candidate can equal the current plan. Off: every
        /// move changes the plan ([`SearchSpace::neighbour`]).
        #[serde(default)]
        reference_move: bool,
    },
    /// Uniformly random plans.
    Random {
        /// Objective calls, counting the start plan.
        #[serde(default)]
        steps: usize,
    },
    /// Simulated annealing with the LAHC move and geometric cooling `T = t0 * cooling^i`.
    Annealing {
        /// Objective calls, counting the start plan.
        #[serde(default)]
        steps: usize,
        /// Initial temperature in score units (e.g. 5.0 accuracy points).
        t0: f64,
        /// Geometric cooling factor per step, in (0, 1].
        cooling: f64,
    },
    /// A generational genetic algorithm: `population + (generations - 1) * (population -
    /// elite)` objective calls.
    Genetic {
        /// Individuals per generation (generation 0 includes the start plan).
        population: usize,
        /// Number of generations, counting generation 0.
        #[serde(default)]
        generations: usize,
        /// Per-slot mutation probability.
        mutation_rate: f64,
        /// Best individuals carried unchanged (and not re-evaluated) to the next generation.
        elite: usize,
        /// Tournament size for parent selection.
        tournament: usize,
    },
}

fn default_history() -> usize {
    3
}

fn default_idle_fraction() -> f64 {
    0.02
}

impl Default for SearchMethod {
    fn default() -> Self {
        Self::paper()
    }
}

impl SearchMethod {
    /// The SAFS reference's setting: LAHC, history 3, at least 20 moves, idle stop at 2%.
    pub fn paper() -> Self {
        Self::Lahc {
            min_steps: 20,
            history: 3,
            idle_fraction: 0.02,
            max_evaluations: None,
            reference_move: false,
        }
    }

    /// The method's name as in configs ("lahc", "random", "annealing", "genetic").
    pub fn name(&self) -> &'static str {
        match self {
            Self::Lahc { .. } => "lahc",
            Self::Random { .. } => "random",
            Self::Annealing { .. } => "annealing",
            Self::Genetic { .. } => "genetic",
        }
    }

    /// The objective calls a run makes: exact for every method but LAHC, whose count depends
    /// on the scores; for LAHC its minimum (`min_steps + 2`, or the cap if lower).
    pub fn evaluations(&self) -> usize {
        match *self {
            Self::Lahc {
                min_steps,
                max_evaluations,
                ..
            } => max_evaluations.map_or(min_steps + 2, |m| m.min(min_steps + 2)),
            Self::Random { steps } | Self::Annealing { steps, .. } => steps,
            Self::Genetic {
                population,
                generations,
                elite,
                ..
            } => population + generations.saturating_sub(1) * population.saturating_sub(elite),
        }
    }

    /// The method with a run length of `steps`: LAHC's minimum moves, the evaluations of
    /// random search and annealing, and for the genetic algorithm as many generations as
    /// it takes to spend about `steps` evaluations.
    pub fn with_steps(&self, steps: usize) -> Self {
        let mut m = self.clone();
        match &mut m {
            Self::Lahc { min_steps: s, .. }
            | Self::Random { steps: s }
            | Self::Annealing { steps: s, .. } => *s = steps,
            Self::Genetic {
                population,
                generations,
                elite,
                ..
            } => {
                let per = population.saturating_sub(*elite).max(1);
                *generations = 1 + steps.saturating_sub(*population).div_ceil(per);
            }
        }
        m
    }

    /// [`SearchMethod::validate`] of every setting but the run length.
    pub fn validate_shape(&self) -> Result<()> {
        self.with_steps(3).validate()
    }

    /// An error naming the field and value unless every setting is in range.
    pub fn validate(&self) -> Result<()> {
        let name = self.name();
        let bad = |field: &str, value: String, need: &str| {
            Err(Error::Config(format!(
                "search method {name}: {field} = {value}; need {need}"
            )))
        };
        match *self {
            Self::Lahc {
                history,
                idle_fraction,
                max_evaluations,
                ..
            } => {
                if history < 1 {
                    return bad("history", history.to_string(), ">= 1");
                }
                if !(idle_fraction.is_finite() && idle_fraction >= 0.0) {
                    return bad(
                        "idle_fraction",
                        idle_fraction.to_string(),
                        "finite and >= 0",
                    );
                }
                if max_evaluations == Some(0) {
                    return bad("max_evaluations", "0".into(), ">= 1 (or leave it out)");
                }
            }
            Self::Random { steps } => {
                if steps < 1 {
                    return bad("steps", steps.to_string(), ">= 1");
                }
            }
            Self::Annealing { steps, t0, cooling } => {
                if steps < 1 {
                    return bad("steps", steps.to_string(), ">= 1");
                }
                if !(t0.is_finite() && t0 > 0.0) {
                    return bad("t0", t0.to_string(), "a finite value > 0");
                }
                if !(cooling > 0.0 && cooling <= 1.0) {
                    return bad("cooling", cooling.to_string(), "a value in (0, 1]");
                }
            }
            Self::Genetic {
                population,
                generations,
                mutation_rate,
                elite,
                tournament,
            } => {
                if population < 2 {
                    return bad("population", population.to_string(), ">= 2");
                }
                if generations < 1 {
                    return bad("generations", generations.to_string(), ">= 1");
                }
                if !(0.0..=1.0).contains(&mutation_rate) {
                    return bad(
                        "mutation_rate",
                        mutation_rate.to_string(),
                        "a value in [0, 1]",
                    );
                }
                if elite >= population {
                    return bad(
                        "elite",
                        elite.to_string(),
                        &format!("< population ({population})"),
                    );
                }
                if tournament < 1 {
                    return bad("tournament", tournament.to_string(), ">= 1");
                }
            }
        }
        Ok(())
    }
}

/// One evaluated plan of a search, as reported to `on_step` and kept in the result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchStep {
    /// Running index of the objective call, from 0 (the start plan).
    pub step: usize,
    /// The plan evaluated.
    pub plan: ActivationPlan,
    /// Its score.
    pub score: f64,
    /// LAHC/annealing: became the current plan; random: new best; genetic: always true
    /// (every evaluated child joins its generation). Step 0 is always accepted.
    pub accepted: bool,
    /// Best score so far, this step included.
    pub best_score: f64,
    /// Plan of the best score so far (the earliest on ties).
    pub best_plan: ActivationPlan,
    /// Multi-fidelity: the epochs at which this candidate was stopped (its score is from
    /// then); absent when it trained the full fine-tune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<usize>,
}

/// The outcome of a search: its best plan and every step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// Highest-scoring plan evaluated (the earliest on ties).
    pub best_plan: ActivationPlan,
    /// Its score.
    pub best_score: f64,
    /// Every evaluated plan in call order.
    pub steps: Vec<SearchStep>,
}

/// Run `method` over `space` from `start` (evaluated at step 0); see the module docs for
/// the determinism and error contract.
pub fn run_search(
    method: &SearchMethod,
    space: &SearchSpace,
    start: &ActivationPlan,
    seed: u64,
    objective: &mut dyn FnMut(usize, &ActivationPlan) -> Result<f64>,
    on_step: &mut dyn FnMut(&SearchStep),
) -> Result<SearchResult> {
    let mut batch = |plans: &[(usize, ActivationPlan)], _epochs: usize| -> Result<Vec<f64>> {
        plans.iter().map(|(i, p)| objective(*i, p)).collect()
    };
    run_search_at(
        method,
        space,
        start,
        seed,
        Fidelity::Full,
        1,
        &mut batch,
        on_step,
    )
}

/// [`run_search`] at a [`Fidelity`] over fine-tunes of `max_epochs` epochs: `objective`
/// trains a batch of `(step, plan)` pairs to a number of epochs. LAHC proposes a bracket of
/// neighbours of the current plan at a time and applies its acceptance rule to those that
/// reach `max_epochs`; the others are rejected moves, known to be bad cheaply. The other
/// methods need `Fidelity::Full`.
#[allow(clippy::too_many_arguments)]
pub fn run_search_at(
    method: &SearchMethod,
    space: &SearchSpace,
    start: &ActivationPlan,
    seed: u64,
    fidelity: Fidelity,
    max_epochs: usize,
    objective: &mut RungObjective<'_, ActivationPlan>,
    on_step: &mut dyn FnMut(&SearchStep),
) -> Result<SearchResult> {
    method.validate()?;
    space.validate()?;
    space.check_plan(start, "start")?;
    fidelity.validate(max_epochs)?;
    if !fidelity.is_full() && !matches!(method, SearchMethod::Lahc { .. }) {
        return Err(Error::Config(format!(
            "fidelity {} is for the lahc search; {} evaluates at full fidelity",
            fidelity.name(),
            method.name()
        )));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tracker = Tracker {
        objective,
        max_epochs,
        on_step,
        steps: Vec::new(),
    };
    match *method {
        SearchMethod::Lahc {
            min_steps,
            history,
            idle_fraction,
            max_evaluations,
            reference_move,
        } => lahc::run(
            lahc::Params {
                min_steps,
                history,
                idle_fraction,
                max_evaluations,
                reference_move,
            },
            space,
            start,
            fidelity,
            &mut rng,
            &mut tracker,
        )?,
        SearchMethod::Random { steps } => random::run(steps, space, start, &mut rng, &mut tracker)?,
        SearchMethod::Annealing { steps, t0, cooling } => {
            annealing::run(steps, t0, cooling, space, start, &mut rng, &mut tracker)?
        }
        SearchMethod::Genetic {
            population,
            generations,
            mutation_rate,
            elite,
            tournament,
        } => genetic::run(
            genetic::Params {
                population,
                generations,
                mutation_rate,
                elite,
                tournament,
            },
            space,
            start,
            &mut rng,
            &mut tracker,
        )?,
    }
    Ok(tracker.finish())
}

/// What [`Tracker::evaluate`] learnt about one plan.
#[derive(Clone, Copy, Debug)]
struct Evaluated {
    score: f64,
    accepted: bool,
}

/// Calls the objective with running step indices, keeps the best and the trace.
struct Tracker<'a, 'o> {
    objective: &'a mut RungObjective<'o, ActivationPlan>,
    max_epochs: usize,
    on_step: &'a mut dyn FnMut(&SearchStep),
    steps: Vec<SearchStep>,
}

impl Tracker<'_, '_> {
    /// Score `plan` at full fidelity at the next step index, let `accept` decide from its
    /// score, record it.
    fn evaluate(
        &mut self,
        plan: &ActivationPlan,
        accept: impl FnOnce(f64) -> bool,
    ) -> Result<Evaluated> {
        let step = self.steps.len();
        let scores = (self.objective)(&[(step, plan.clone())], self.max_epochs)?;
        let score = match scores[..] {
            [s] => s,
            _ => {
                return Err(Error::Config(format!(
                    "search objective returned {} scores for one plan",
                    scores.len()
                )))
            }
        };
        if !score.is_finite() {
            return Err(Error::Diverged(format!(
                "search objective returned {score} for plan '{plan}' at step {step}; \
                 return 0.0 for a failed candidate"
            )));
        }
        let accepted = accept(score);
        self.record(step, plan, score, accepted, None);
        Ok(Evaluated { score, accepted })
    }

    /// Runs `plans` (the next step indices, in order) through `bracket`.
    fn bracket(&mut self, plans: &[ActivationPlan], bracket: &Bracket) -> Result<Vec<Outcome>> {
        let first = self.steps.len();
        let cands: Vec<(usize, ActivationPlan)> = plans
            .iter()
            .enumerate()
            .map(|(j, p)| (first + j, p.clone()))
            .collect();
        let objective = &mut *self.objective;
        let mut checked = |batch: &[(usize, ActivationPlan)], epochs: usize| -> Result<Vec<f64>> {
            let scores = objective(batch, epochs)?;
            for ((step, plan), s) in batch.iter().zip(&scores) {
                if !s.is_finite() {
                    return Err(Error::Diverged(format!(
                        "search objective returned {s} for plan '{plan}' at step {step}                          ({epochs} epochs); return 0.0 for a failed candidate"
                    )));
                }
            }
            Ok(scores)
        };
        successive_halving(&cands, bracket, &mut checked)
    }

    /// Adds one step to the trace; `stopped_at` is the epochs of a candidate halted before
    /// full fidelity (never the best, never accepted).
    fn record(
        &mut self,
        step: usize,
        plan: &ActivationPlan,
        score: f64,
        accepted: bool,
        stopped_at: Option<usize>,
    ) {
        let improved =
            stopped_at.is_none() && self.steps.last().is_none_or(|last| score > last.best_score);
        let (best_score, best_plan) = match self.steps.last() {
            Some(last) if !improved => (last.best_score, last.best_plan.clone()),
            _ => (score, plan.clone()),
        };
        let rec = SearchStep {
            step,
            plan: plan.clone(),
            score,
            accepted,
            best_score,
            best_plan,
            stopped_at,
        };
        (self.on_step)(&rec);
        self.steps.push(rec);
    }

    fn finish(self) -> SearchResult {
        let last = self
            .steps
            .last()
            .expect("every search evaluates the start plan");
        SearchResult {
            best_plan: last.best_plan.clone(),
            best_score: last.best_score,
            steps: self.steps,
        }
    }
}

#[cfg(test)]
mod tests;
