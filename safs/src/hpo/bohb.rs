//! Stage 2 at a [`Fidelity`]: BOHB (Falkner, Klein & Hutter, ICML 2018) with this crate's
//! TPE. Hyperband's brackets decide how many configurations start and at which epochs;
//! each bracket's configurations are proposed together (batch-synchronous, so they can train
//! in parallel) by TPE fitted on the highest rung that has at least `startup_trials`
//! observations (random before that), and successive halving runs them.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{random, run_hpo_from, tpe, Config, HpoMethod, HpoResult, Space, Trial};
use crate::fidelity::{successive_halving, Fidelity, RungObjective};
use crate::{Error, Result};

/// Runs `trials` configurations (the first ones `first`) at `fidelity` over fine-tunes of
/// `max_epochs` epochs; `objective` trains a batch of `(trial, config)` pairs to a number of
/// epochs. The best trial is the first with the highest score among those that trained the
/// full fine-tune. `Fidelity::Full` is exactly [`run_hpo_from`].
#[allow(clippy::too_many_arguments)]
pub fn run_hpo_at(
    method: &HpoMethod,
    space: &Space,
    trials: usize,
    seed: u64,
    first: &[Config],
    fidelity: Fidelity,
    max_epochs: usize,
    objective: &mut RungObjective<'_, Config>,
    on_trial: &mut dyn FnMut(&Trial),
) -> Result<HpoResult> {
    if fidelity.is_full() {
        let mut one = |i: usize, c: &Config| -> Result<f64> {
            let s = objective(&[(i, c.clone())], max_epochs)?;
            s.first()
                .copied()
                .ok_or_else(|| Error::Config("hpo objective returned no score for a trial".into()))
        };
        return run_hpo_from(method, space, trials, seed, first, &mut one, on_trial);
    }
    if trials == 0 {
        return Err(Error::Config("hpo: trials must be >= 1".into()));
    }
    method.validate()?;
    space.validate()?;
    fidelity.validate(max_epochs)?;
    for c in first {
        space.check(c)?;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Every (epochs, score) a trial reached, by trial index.
    let mut seen: Vec<(Config, Vec<(usize, f64)>)> = Vec::new();
    let mut done: Vec<Trial> = Vec::new();
    let mut k = 0usize;
    while done.len() < trials {
        let bracket = fidelity.bracket(k, max_epochs);
        k += 1;
        let n = bracket.size.min(trials - done.len());
        let mut batch = Vec::with_capacity(n);
        for j in 0..n {
            let index = done.len() + j;
            let config = match first.get(index) {
                Some(c) => c.clone(),
                None => propose(method, space, &seen, &mut rng),
            };
            batch.push((index, config));
        }
        let outcomes = successive_halving(&batch, &bracket, objective)?;
        for ((index, config), o) in batch.into_iter().zip(outcomes) {
            let trial = Trial {
                index,
                config: config.clone(),
                score: o.score,
                stopped_at: (!o.finished(&bracket)).then_some(o.epochs),
            };
            on_trial(&trial);
            seen.push((config, o.rungs));
            done.push(trial);
        }
    }
    let best = done
        .iter()
        .filter(|t| t.stopped_at.is_none())
        .fold(None, |best: Option<&Trial>, t| match best {
            Some(b) if tpe::rank_key(t.score) <= tpe::rank_key(b.score) => Some(b),
            _ => Some(t),
        })
        .expect("every bracket sends one configuration to the full fine-tune")
        .clone();
    Ok(HpoResult { best, trials: done })
}

/// The next configuration: TPE on the highest rung with enough observations, else a draw
/// from the prior.
fn propose(
    method: &HpoMethod,
    space: &Space,
    seen: &[(Config, Vec<(usize, f64)>)],
    rng: &mut ChaCha8Rng,
) -> Config {
    let HpoMethod::Tpe {
        startup_trials,
        candidates,
        gamma,
    } = *method
    else {
        return random::suggest(space, rng);
    };
    let mut rungs: Vec<usize> = seen
        .iter()
        .flat_map(|(_, r)| r.iter().map(|&(e, _)| e))
        .collect();
    rungs.sort_unstable();
    rungs.dedup();
    for &epochs in rungs.iter().rev() {
        let at: Vec<Trial> = seen
            .iter()
            .enumerate()
            .filter_map(|(index, (config, r))| {
                r.iter()
                    .find(|&&(e, _)| e == epochs)
                    .map(|&(_, score)| Trial {
                        index,
                        config: config.clone(),
                        score,
                        stopped_at: None,
                    })
            })
            .collect();
        if at.len() >= startup_trials.max(1) {
            return tpe::suggest(space, &at, gamma, candidates, rng);
        }
    }
    random::suggest(space, rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One float; the score rises with `x` and with epochs, so at every rung the largest
    /// `x` leads and the bracket's winner is the largest `x` drawn.
    fn toy() -> Space {
        Space::new().float("x", 0.0, 1.0, false)
    }

    #[test]
    fn bohb_spends_brackets_and_keeps_the_best_full_trial() {
        let space = toy();
        let sh = Fidelity::SuccessiveHalving {
            min_epochs: 1,
            eta: 3,
        };
        let mut spent = 0usize;
        let mut last_epochs: Vec<usize> = Vec::new();
        let mut objective = |batch: &[(usize, Config)], epochs: usize| -> Result<Vec<f64>> {
            spent += batch.len() * epochs;
            last_epochs = vec![epochs; batch.len()];
            Ok(batch
                .iter()
                .map(|(_, c)| c["x"].as_f64().unwrap() * 10.0 + epochs as f64)
                .collect())
        };
        let r = run_hpo_at(
            &HpoMethod::default(),
            &space,
            10,
            3,
            &[],
            sh,
            10,
            &mut objective,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(r.trials.len(), 10);
        // Bracket 1: 9 trials (1, 3 of them to 3, 1 to 10); bracket 2: trial 9 alone.
        let full: Vec<usize> = r
            .trials
            .iter()
            .filter(|t| t.stopped_at.is_none())
            .map(|t| t.index)
            .collect();
        assert_eq!(full.len(), 2);
        assert_eq!(full[1], 9);
        let first9 = &r.trials[..9];
        let top = first9
            .iter()
            .max_by(|a, b| {
                a.config["x"]
                    .as_f64()
                    .unwrap()
                    .total_cmp(&b.config["x"].as_f64().unwrap())
            })
            .unwrap();
        assert_eq!(full[0], top.index, "the bracket's winner is its largest x");
        assert!(r.best.stopped_at.is_none());
        // Training from scratch at each call here (the toy does not continue): 9*1 + 3*3 +
        // 1*10 for the first bracket, 1 + 3 + 10 for the second.
        assert_eq!(spent, 9 + 9 + 10 + 1 + 3 + 10);
        // Full fidelity is the sequential loop.
        let a = run_hpo_at(
            &HpoMethod::default(),
            &space,
            6,
            3,
            &[],
            Fidelity::Full,
            10,
            &mut |b: &[(usize, Config)], _| Ok(vec![b[0].1["x"].as_f64().unwrap()]),
            &mut |_| {},
        )
        .unwrap();
        let b = super::super::run_hpo(
            &HpoMethod::default(),
            &space,
            6,
            3,
            &mut |_, c| Ok(c["x"].as_f64().unwrap()),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(a, b);
    }
}
