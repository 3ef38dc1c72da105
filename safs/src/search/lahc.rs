//! Late Acceptance Hill Climbing (Burke & Bykov, "The late acceptance hill-climbing
//! heuristic", EJOR 258(1), 2017), written for maximisation as SAFS uses it.
//!
//! A history of the last L current scores, initially all the start score. At step i the
//! candidate is a [`SearchSpace::neighbour`] of the current plan; with `v = i mod L` it is
//! accepted when `cand >= current` or `cand >= history[v]`; then `history[v] = current`
//! (the current score after the decision).

use rand_chacha::ChaCha8Rng;

use super::{SearchSpace, Tracker};
use crate::activation::ActivationPlan;
use crate::Result;

/// Run LAHC for up to `steps` objective calls (step 0 = `start`).
pub(super) fn run(
    steps: usize,
    history_len: usize,
    idle_steps: Option<usize>,
    space: &SearchSpace,
    start: &ActivationPlan,
    rng: &mut ChaCha8Rng,
    tracker: &mut Tracker<'_>,
) -> Result<()> {
    let first = tracker.evaluate(start, |_| true)?;
    let mut current = start.clone();
    let mut current_score = first.score;
    let mut history = vec![current_score; history_len];
    let mut idle = 0usize;
    for i in 1..steps {
        if idle_steps.is_some_and(|limit| idle >= limit) {
            break;
        }
        let candidate = space.neighbour(&current, rng);
        let v = i % history_len;
        let late = history[v];
        let cur = current_score;
        let e = tracker.evaluate(&candidate, |s| s >= cur || s >= late)?;
        if e.accepted {
            current = candidate;
            current_score = e.score;
        }
        history[v] = current_score;
        idle = if e.improved { 0 } else { idle + 1 };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::activation::{ActivationPlan, Op};
    use crate::search::{run_search, SearchMethod, SearchMode, SearchSpace, SearchStep};

    /// Run LAHC over a one-slot space of two operators {swish, gelu} from swish: the move
    /// then always yields the other operator, so the candidate sequence is hand-checkable.
    fn scripted(history: usize, scores: &[f64]) -> Vec<SearchStep> {
        let space = SearchSpace::new(vec![Op::Swish, Op::Gelu], 1, SearchMode::PerLayer);
        let method = SearchMethod::Lahc {
            steps: scores.len(),
            history,
            idle_steps: None,
        };
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
        assert_eq!(r.steps.len(), scores.len());
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
    fn acceptance_rule_by_hand_l2() {
        // L = 2, start swish (S), other gelu (G). h = history, v = i mod 2.
        // i  cand  score  v  cur  h[v]  decision                         h after   cur after
        // 0  S     50     -  -    -     start                            [50,50]   S 50
        // 1  G     60     1  50   50    60 >= 50 accept                  [50,60]   G 60
        // 2  S     55     0  60   50    55 < 60 but >= h[0]=50: accept   [55,60]   S 55
        // 3  G     58     1  55   60    58 >= 55 accept                  [55,58]   G 58
        // 4  S     54     0  58   55    54 < 58 and < 55: reject         [58,58]   G 58
        // 5  S     57     1  58   58    57 < 58, < 58: reject            [58,58]   G 58
        // 6  S     58     0  58   58    58 >= 58 accept (ties accept)    [58,58]   S 58
        // 7  G     70     1  58   58    accept                           [58,70]   G 70
        // 8  S     59     0  70   58    59 < 70 but >= 58: accept        [59,70]   S 59
        // 9  G     65     1  59   70    65 >= 59 accept                  [59,65]   G 65
        let steps = scripted(2, &[50., 60., 55., 58., 54., 57., 58., 70., 59., 65.]);
        check(
            &steps,
            "swish gelu swish gelu swish swish swish gelu swish gelu",
            &[true, true, true, true, false, false, true, true, true, true],
        );
        let best: Vec<f64> = steps.iter().map(|s| s.best_score).collect();
        assert_eq!(best, [50., 60., 60., 60., 60., 60., 60., 70., 70., 70.]);
        assert_eq!(steps[9].best_plan, ActivationPlan::uniform(Op::Gelu, 1));
    }

    #[test]
    fn acceptance_rule_by_hand_l3() {
        // L = 3, v = i mod 3. The history lets the current score drift down.
        // i  cand  score  v  cur  h[v]  decision                         h after      cur
        // 0  S     10     -  -    -     start                            [10,10,10]   S 10
        // 1  G     20     1  10   10    accept                           [10,20,10]   G 20
        // 2  S     15     2  20   10    15 >= h[2]=10 accept             [10,20,15]   S 15
        // 3  G     12     0  15   10    12 >= h[0]=10 accept             [12,20,15]   G 12
        // 4  S     11     1  12   20    11 < 12, < 20 reject             [12,12,15]   G 12
        // 5  S     13     2  12   15    13 >= 12 accept                  [12,12,13]   S 13
        // 6  G     12     0  13   12    12 >= h[0]=12 accept             [12,12,13]   G 12
        // 7  S     11     1  12   12    reject                           [12,12,13]   G 12
        let steps = scripted(3, &[10., 20., 15., 12., 11., 13., 12., 11.]);
        check(
            &steps,
            "swish gelu swish gelu swish swish gelu swish",
            &[true, true, true, true, false, true, true, false],
        );
        assert_eq!(steps[7].best_score, 20.0);
        assert_eq!(steps[7].best_plan, ActivationPlan::uniform(Op::Gelu, 1));
    }

    #[test]
    fn rejected_steps_also_write_the_history() {
        // L = 2. A rejection stores the current score in h[v] too, raising that entry.
        // i  cand  score  v  cur  h[v]  decision                 h after   cur
        // 0  S     10     -  -    -     start                    [10,10]   S 10
        // 1  G     20     1  10   10    accept                   [10,20]   G 20
        // 2  S     5      0  20   10    reject; h[0] = 20        [20,20]   G 20
        // 3  S     25     1  20   20    accept                   [20,25]   S 25
        // 4  G     15     0  25   20    15 < 25, < 20: reject    [25,25]   S 25
        // (had the rejection at step 2 left h[0] = 10, step 4 would be accepted.)
        let steps = scripted(2, &[10., 20., 5., 25., 15.]);
        check(
            &steps,
            "swish gelu swish swish gelu",
            &[true, true, false, true, false],
        );
    }

    #[test]
    fn history_one_is_plain_hill_climbing_with_ties() {
        // L = 1: h[0] is always the current score, so only cand >= current is accepted.
        let steps = scripted(1, &[5., 4., 5., 3., 6., 6., 5.]);
        check(
            &steps,
            "swish gelu gelu swish swish gelu swish",
            &[true, false, true, false, true, true, false],
        );
    }

    #[test]
    fn idle_stop_counts_steps_without_improvement() {
        let space = SearchSpace::paper(3);
        let method = SearchMethod::Lahc {
            steps: 20,
            history: 3,
            idle_steps: Some(3),
        };
        let start = ActivationPlan::uniform(Op::Relu, 3);
        // 1 at step 0, improvement at step 2, then flat: steps 3, 4, 5 idle -> stop.
        let scores = [1., 1., 2., 2., 1., 2., 9., 9.];
        let mut calls = 0;
        let r = run_search(
            &method,
            &space,
            &start,
            0,
            &mut |i, _| {
                calls += 1;
                Ok(scores[i])
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(calls, 6);
        assert_eq!(r.steps.len(), 6);
        assert_eq!(r.best_score, 2.0);
        assert_eq!(r.best_plan, r.steps[2].plan);
    }
}
