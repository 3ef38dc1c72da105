//! Successive halving inside one bracket, on any kind of candidate (plans, configurations).

use super::Bracket;
use crate::{Error, Result};

/// Trains `(id, candidate)` pairs to a number of epochs and returns their scores in the same
/// order (larger is better; 0 for a failed candidate). A candidate seen at a lower rung
/// continues from there. The pairs of one call may be trained in parallel.
pub type RungObjective<'a, T> = dyn FnMut(&[(usize, T)], usize) -> Result<Vec<f64>> + 'a;

/// Where one candidate of a bracket stopped.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// Epochs of the last rung it reached.
    pub epochs: usize,
    /// Its score there.
    pub score: f64,
    /// `(epochs, score)` at every rung it reached, in order.
    pub rungs: Vec<(usize, f64)>,
}

impl Outcome {
    /// Whether it reached the bracket's last rung (the full fine-tune).
    pub fn finished(&self, bracket: &Bracket) -> bool {
        bracket.rungs.last() == Some(&self.epochs)
    }
}

/// Runs `candidates` through `bracket`'s rungs: all train to the first rung; after each
/// rung the best [`Bracket::keep`] (ties: the earlier candidate) continue to the next. Each
/// rung is one call of `objective`, its candidates in their original order. Returns one
/// [`Outcome`] per candidate, in order.
pub fn successive_halving<T: Clone>(
    candidates: &[(usize, T)],
    bracket: &Bracket,
    objective: &mut RungObjective<'_, T>,
) -> Result<Vec<Outcome>> {
    let mut out: Vec<Outcome> = candidates
        .iter()
        .map(|_| Outcome {
            epochs: 0,
            score: 0.0,
            rungs: Vec::new(),
        })
        .collect();
    let mut alive: Vec<usize> = (0..candidates.len()).collect();
    for (i, &epochs) in bracket.rungs.iter().enumerate() {
        if alive.is_empty() {
            break;
        }
        let batch: Vec<(usize, T)> = alive.iter().map(|&a| candidates[a].clone()).collect();
        let scores = objective(&batch, epochs)?;
        if scores.len() != batch.len() {
            return Err(Error::Config(format!(
                "a rung objective returned {} scores for {} candidates",
                scores.len(),
                batch.len()
            )));
        }
        for (&a, &s) in alive.iter().zip(&scores) {
            if !s.is_finite() {
                return Err(Error::Diverged(format!(
                    "rung objective returned {s} for candidate {} at {epochs} epochs; return \
                     0.0 for a failed candidate",
                    candidates[a].0
                )));
            }
            out[a].epochs = epochs;
            out[a].score = s;
            out[a].rungs.push((epochs, s));
        }
        if i + 1 == bracket.rungs.len() {
            break;
        }
        let mut ranked = alive.clone();
        // Stable sort: equal scores keep the earlier candidate first.
        ranked.sort_by(|&a, &b| out[b].score.total_cmp(&out[a].score));
        ranked.truncate(bracket.keep(alive.len()));
        ranked.sort_unstable();
        alive = ranked;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-traced bracket: 9 candidates, rungs 1, 3, 10 epochs, eta 3. Scores are a
    /// table by (candidate, epochs); the trace below is worked out by hand.
    ///
    /// ```text
    /// cand   0   1   2   3   4   5   6   7   8
    /// @1    20  50  35  50  10  40  45  30  15   keep 3: 1 (50), 3 (50, tie: later), 6 (45)
    /// @3     -  52   -  70   -   -  60   -   -   keep 1: 3 (70)
    /// @10    -   -   -  71   -   -   -   -   -
    /// ```
    /// Candidate 5 (40) misses the cut at rung 1 by one place; candidate 1 beats 6 at rung 1
    /// but loses to it at rung 3, so the ranking is redone at every rung.
    #[test]
    fn promotion_by_hand() {
        let at1 = [20., 50., 35., 50., 10., 40., 45., 30., 15.];
        let at3 = [0., 52., 0., 70., 0., 0., 60., 0., 0.];
        let at10 = [0., 0., 0., 71., 0., 0., 0., 0., 0.];
        let cands: Vec<(usize, char)> = (0..9)
            .map(|i| (100 + i, (b'a' + i as u8) as char))
            .collect();
        let bracket = Bracket {
            size: 9,
            rungs: vec![1, 3, 10],
            eta: 3,
        };
        let mut calls: Vec<(usize, Vec<usize>)> = Vec::new();
        let mut objective = |batch: &[(usize, char)], epochs: usize| -> Result<Vec<f64>> {
            calls.push((epochs, batch.iter().map(|b| b.0).collect()));
            let table = match epochs {
                1 => &at1,
                3 => &at3,
                _ => &at10,
            };
            Ok(batch.iter().map(|b| table[b.0 - 100]).collect())
        };
        let out = successive_halving(&cands, &bracket, &mut objective).unwrap();
        assert_eq!(
            calls,
            vec![
                (1, (100..109).collect()),
                (3, vec![101, 103, 106]),
                (10, vec![103]),
            ]
        );
        let reached: Vec<usize> = out.iter().map(|o| o.epochs).collect();
        assert_eq!(reached, [1, 3, 1, 10, 1, 1, 3, 1, 1]);
        assert_eq!(out[3].rungs, vec![(1, 50.), (3, 70.), (10, 71.)]);
        assert_eq!((out[6].score, out[5].score), (60., 40.));
        assert!(out[3].finished(&bracket) && !out[1].finished(&bracket));
    }

    /// Ties at the cut go to the earlier candidate; a short bracket (2 candidates, eta 3)
    /// still sends one to the end.
    #[test]
    fn ties_and_short_brackets() {
        let bracket = Bracket {
            size: 9,
            rungs: vec![1, 3, 10],
            eta: 3,
        };
        let cands = vec![(0, ()), (1, ())];
        let out = successive_halving(&cands, &bracket, &mut |b: &[(usize, ())], _| {
            Ok(vec![5.0; b.len()])
        })
        .unwrap();
        assert_eq!((out[0].epochs, out[1].epochs), (10, 1));
        let e = successive_halving(&cands, &bracket, &mut |b: &[(usize, ())], _| {
            Ok(vec![f64::NAN; b.len()])
        })
        .unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
    }
}
