//! Late Acceptance Hill Climbing (Burke & Bykov, "The late acceptance hill-climbing
//! heuristic", EJOR 258(1), 2017) with the rules of the PyPI `lahc` package (1.0.5) that the
//! SAFS authors run, written for maximisation (their energy is `1 / accuracy`, so a lower
//! energy is a higher score and every comparison below is theirs, mirrored).
//!
//! ```text
//! current = start, history = [score(start); L], idle = 0, step = 0
//! until step > min_steps and idle > idle_fraction * step:
//!     candidate = move(current); s = score(candidate)
//!     idle = idle + 1 if s <= score(current) else 0      (idle: no gain on the current plan)
//!     v = step mod L
//!     accept if s > history[v] or s >= score(current)
//!     if score(current) > history[v]: history[v] = score(current)   (after the decision)
//!     step += 1
//! ```
//! So a history slot only ever rises, and with `min_steps = 20` the search makes at least
//! 21 moves: 22 evaluations with the start plan.

use rand_chacha::ChaCha8Rng;

use super::{SearchSpace, Tracker};
use crate::activation::ActivationPlan;
use crate::fidelity::Fidelity;
use crate::Result;

/// LAHC's settings (see [`super::SearchMethod::Lahc`]).
pub(super) struct Params {
    pub(super) min_steps: usize,
    pub(super) history: usize,
    pub(super) idle_fraction: f64,
    pub(super) max_evaluations: Option<usize>,
    pub(super) reference_move: bool,
}

/// Whether the `lahc` package would stop before making move number `step + 1`.
pub(super) fn done(min_steps: usize, idle_fraction: f64, step: usize, idle: usize) -> bool {
    step > min_steps && idle as f64 > step as f64 * idle_fraction
}

/// Run LAHC from `start` (evaluated first at full fidelity).
///
/// Each iteration proposes a bracket of neighbours of the current plan ([`Fidelity::bracket`];
/// one at full fidelity, which is the sequential LAHC above), never more than the moves the
/// minimum still asks for or the cap allows, and runs successive halving over them. The
/// moves are then applied in step order, first those stopped early (rejected: idle moves
/// that leave the current plan), then those that reached the full fine-tune, each through
/// the acceptance rule; so a bracket whose best candidate improves the current plan keeps
/// the search going, as an improving last move would.
pub(super) fn run(
    p: Params,
    space: &SearchSpace,
    start: &ActivationPlan,
    fidelity: Fidelity,
    rng: &mut ChaCha8Rng,
    tracker: &mut Tracker<'_, '_>,
) -> Result<()> {
    let first = tracker.evaluate(start, |_| true)?;
    let mut current = start.clone();
    let mut current_score = first.score;
    let mut history = vec![current_score; p.history];
    let (mut step, mut idle) = (0usize, 0usize);
    let mut evaluations = 1usize;
    let mut k = 0usize;
    while !done(p.min_steps, p.idle_fraction, step, idle)
        && p.max_evaluations.is_none_or(|m| evaluations < m)
    {
        let bracket = fidelity.bracket(k, tracker.max_epochs);
        k += 1;
        let mut n = bracket.size;
        if let Some(m) = p.max_evaluations {
            n = n.min(m - evaluations);
        }
        if step <= p.min_steps {
            n = n.min(p.min_steps + 1 - step);
        }
        let candidates: Vec<ActivationPlan> = (0..n)
            .map(|_| {
                if p.reference_move {
                    space.reference_neighbour(&current, rng)
                } else {
                    space.neighbour(&current, rng)
                }
            })
            .collect();
        let first_step = evaluations;
        let outcomes = tracker.bracket(&candidates, &bracket)?;
        let (finished, stopped): (Vec<usize>, Vec<usize>) =
            (0..n).partition(|&j| outcomes[j].finished(&bracket));
        for j in stopped.into_iter().chain(finished) {
            let (o, candidate) = (&outcomes[j], &candidates[j]);
            let v = step % p.history;
            let (late, cur) = (history[v], current_score);
            let full = o.finished(&bracket);
            let accepted = full && (o.score > late || o.score >= cur);
            let stopped_at = (!full).then_some(o.epochs);
            tracker.record(first_step + j, candidate, o.score, accepted, stopped_at);
            evaluations += 1;
            idle = if full && o.score > cur { 0 } else { idle + 1 };
            if accepted {
                current = candidate.clone();
                current_score = o.score;
            }
            if current_score > history[v] {
                history[v] = current_score;
            }
            step += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::done;
    use crate::activation::{ActivationPlan, Op};
    use crate::search::{run_search, SearchMethod, SearchMode, SearchSpace, SearchStep};

    fn lahc(min_steps: usize, history: usize, max: Option<usize>) -> SearchMethod {
        SearchMethod::Lahc {
            min_steps,
            history,
            idle_fraction: 0.02,
            max_evaluations: max,
            reference_move: false,
        }
    }

    /// LAHC over a one-slot space of two operators {swish, gelu} from swish: the move then
    /// always yields the other operator, so the candidate sequence is hand-checkable.
    fn scripted(method: SearchMethod, scores: &[f64]) -> Vec<SearchStep> {
        let space = SearchSpace::new(vec![Op::Swish, Op::Gelu], 1, SearchMode::PerLayer);
        let start = ActivationPlan::uniform(Op::Swish, 1);
        let r = run_search(
            &method,
            &space,
            &start,
            42,
            &mut |i, _| Ok(scores[i]),
            &mut |_| {},
        )
        .unwrap();
        r.steps
    }

    fn check(steps: &[SearchStep], plans: &str, accepted: &[bool]) {
        let got: Vec<&str> = steps.iter().map(|s| s.plan.ops()[0].name()).collect();
        let want: Vec<&str> = plans.split(' ').collect();
        assert_eq!(got, want, "candidate sequence");
        let got: Vec<bool> = steps.iter().map(|s| s.accepted).collect();
        assert_eq!(got, accepted, "acceptances");
    }

    #[test]
    fn acceptance_and_history_by_hand_l2() {
        // L = 2, start swish (S), other gelu (G); v = step mod 2 with step counting moves
        // from 0 (the start is not a move). h = history after the step.
        // call cand score step v  cur  h[v] decision                       h after   cur
        // 0    S    50    -    -  -    -    start                          [50,50]   S 50
        // 1    G    60    0    0  50   50   60 >= 50 accept; 60 > h0       [60,50]   G 60
        // 2    S    55    1    1  60   50   55 > h1 = 50 accept; 55 > h1   [60,55]   S 55
        // 3    G    58    2    0  55   60   58 >= 55 accept; 58 < 60 keep  [60,55]   G 58
        // 4    S    54    3    1  58   55   54 < 58, < 55: reject; 58 > 55 [60,58]   G 58
        // 5    S    58    4    0  58   60   58 >= 58 accept (ties accept)  [60,58]   S 58
        // 6    G    57    5    1  58   58   57 < 58, not > 58: reject      [60,58]   S 58
        // 7    G    59    6    0  58   60   59 >= 58 accept                [60,58]   G 59
        let steps = scripted(
            lahc(100, 2, Some(8)),
            &[50., 60., 55., 58., 54., 58., 57., 59.],
        );
        check(
            &steps,
            "swish gelu swish gelu swish swish gelu gelu",
            &[true, true, true, true, false, true, false, true],
        );
        let best: Vec<f64> = steps.iter().map(|s| s.best_score).collect();
        assert_eq!(best, [50., 60., 60., 60., 60., 60., 60., 60.]);
    }

    #[test]
    fn history_only_rises_so_a_drop_is_refused_later() {
        // L = 1 is not plain hill climbing here: h[0] keeps the best current score seen.
        // call cand score step cur h0  decision              h0 after cur
        // 0    S    10    -    -   -   start                 10       10
        // 1    G    20    0    10  10  accept                20       20
        // 2    S    15    1    20  20  15 < 20: reject       20       20
        // 3    S    20    2    20  20  20 >= 20 accept       20       20
        // 4    G    19    3    20  20  reject                20       20
        let steps = scripted(lahc(100, 1, Some(5)), &[10., 20., 15., 20., 19.]);
        check(
            &steps,
            "swish gelu swish swish gelu",
            &[true, true, false, true, false],
        );
        // With L = 3 a worse candidate passes while its history slot still holds the start.
        // call cand score step v cur h[v] decision                 h after
        // 0    S    10    -    - -   -    start                    [10,10,10]
        // 1    G    20    0    0 10  10   accept                   [20,10,10]
        // 2    S    15    1    1 20  10   15 > 10 accept           [20,15,10]
        // 3    G    12    2    2 15  10   12 > 10 accept           [20,15,12]
        // 4    S    11    3    0 12  20   reject; 12 < 20 keep     [20,15,12]
        // 5    S    14    4    1 12  15   14 >= 12 accept          [20,15,12]
        let steps = scripted(lahc(100, 3, Some(6)), &[10., 20., 15., 12., 11., 14.]);
        check(
            &steps,
            "swish gelu swish gelu swish swish",
            &[true, true, true, true, false, true],
        );
        assert_eq!(steps[5].best_score, 20.0);
    }

    #[test]
    fn stops_as_the_lahc_package_does() {
        // The package's test: step > steps_minimum and step_idle > step * 0.02.
        assert!(!done(20, 0.02, 20, 5));
        assert!(!done(20, 0.02, 21, 0));
        assert!(done(20, 0.02, 21, 1));
        assert!(!done(20, 0.02, 60, 1)); // 1 > 1.2 is false
        assert!(done(20, 0.02, 60, 2));
        // Flat scores: every move is idle, so 21 moves after the start: 22 evaluations.
        let steps = scripted(lahc(20, 3, None), &[50.0; 40]);
        assert_eq!(steps.len(), 22);
        // A rising score resets idle on every move until the scores run flat.
        let mut scores: Vec<f64> = (0..30).map(|i| i as f64).collect();
        scores.extend([0.0; 20]);
        let steps = scripted(lahc(20, 3, None), &scores);
        // Moves 0..28 improve (scores 1..29), the 30th move (call 30) is idle at step 30.
        assert_eq!(steps.len(), 31);
        // Idle counts moves without a gain on the current plan, not on the best:
        // accepted-but-lower candidates are idle too.
        let steps = scripted(lahc(2, 3, None), &[10., 9., 11., 10.5]);
        assert_eq!(
            steps.len(),
            4,
            "{:?}",
            steps.iter().map(|s| s.score).collect::<Vec<_>>()
        );
        // The cap wins over the rule.
        assert_eq!(scripted(lahc(20, 3, Some(5)), &[50.0; 40]).len(), 5);
    }
}
