//! Tests shared by every search method: the contract in the module docs.

use super::*;
use crate::activation::Op;

/// One setting of each method with a budget of about 60 calls.
fn methods() -> Vec<SearchMethod> {
    vec![
        SearchMethod::Lahc {
            min_steps: 1000,
            history: 3,
            idle_fraction: 0.02,
            max_evaluations: Some(60),
            reference_move: false,
        },
        SearchMethod::Random { steps: 60 },
        SearchMethod::Annealing {
            steps: 60,
            t0: 1.0,
            cooling: 0.95,
        },
        SearchMethod::Genetic {
            population: 10,
            generations: 6,
            mutation_rate: 0.2,
            elite: 2,
            tournament: 2,
        },
    ]
}

fn op_index(op: Op) -> usize {
    Op::ALL.iter().position(|&o| o == op).unwrap()
}

/// Matching slots with `target`, plus deterministic noise in [0, 0.1) from the plan.
fn toy_score(plan: &ActivationPlan, target: &ActivationPlan) -> f64 {
    let hits = plan
        .ops()
        .iter()
        .zip(target.ops())
        .filter(|(a, b)| a == b)
        .count();
    let h = plan
        .ops()
        .iter()
        .fold(17usize, |h, &op| (h * 31 + op_index(op) + 1) % 1009);
    hits as f64 + (h % 100) as f64 / 1000.0
}

fn target4() -> ActivationPlan {
    "gelu,symexp,elu,tanhsoft1".parse().unwrap()
}

/// Run `method` on the 4-slot toy, returning the result and the on_step trace.
fn run_toy(
    method: &SearchMethod,
    space: &SearchSpace,
    seed: u64,
) -> (SearchResult, Vec<SearchStep>, Vec<usize>) {
    let target = target4();
    let start = ActivationPlan::uniform(Op::Relu, space.slots);
    let mut trace = Vec::new();
    let mut calls = Vec::new();
    let r = run_search(
        method,
        space,
        &start,
        seed,
        &mut |i, p| {
            calls.push(i);
            Ok(toy_score(p, &target))
        },
        &mut |s| trace.push(s.clone()),
    )
    .unwrap();
    (r, trace, calls)
}

#[test]
fn every_method_returns_best_evaluated_and_reports_every_call() {
    let space = SearchSpace::paper(4);
    for m in methods() {
        let (r, trace, calls) = run_toy(&m, &space, 1);
        assert_eq!(trace, r.steps, "{m:?}: on_step trace is the result's");
        assert_eq!(calls.len(), m.evaluations(), "{m:?}");
        assert_eq!(calls, (0..calls.len()).collect::<Vec<_>>(), "{m:?}");
        assert_eq!(trace[0].plan, ActivationPlan::uniform(Op::Relu, 4));
        assert!(trace[0].accepted);
        // The best is the first step with the maximum score.
        let max = trace.iter().map(|s| s.score).fold(f64::MIN, f64::max);
        let first = trace.iter().find(|s| s.score == max).unwrap();
        assert_eq!(r.best_score, max, "{m:?}");
        assert_eq!(r.best_plan, first.plan, "{m:?}");
        // Running best fields are consistent.
        let mut best = f64::MIN;
        for s in &trace {
            best = best.max(s.score);
            assert_eq!(s.best_score, best);
        }
        assert!(
            r.best_score > trace[0].score,
            "{m:?} never improved on ReLU"
        );
    }
}

#[test]
fn lahc_gets_near_the_optimum_on_a_four_slot_toy() {
    // From ReLU (0 hits of 4) in 200 steps. The reference move always swaps two slots after
    // the change, so a move usually alters three of the four slots, and a single move can
    // never put an operator that is not yet in the plan into just one slot: LAHC often
    // stops one slot short of the optimum on this toy. It must still get within one slot
    // on most seeds and beat random search with the same budget.
    let space = SearchSpace::paper(4);
    let lahc = SearchMethod::Lahc {
        min_steps: 1000,
        history: 3,
        idle_fraction: 0.02,
        max_evaluations: Some(200),
        reference_move: false,
    };
    let random = SearchMethod::Random { steps: 200 };
    let hits = |r: &SearchResult| r.best_score.floor();
    let (mut lahc_sum, mut random_sum, mut near) = (0.0, 0.0, 0);
    for seed in 0..5 {
        let (r, _, _) = run_toy(&lahc, &space, seed);
        assert!(
            hits(&r) >= 2.0,
            "seed {seed}: {} scored {}",
            r.best_plan,
            r.best_score
        );
        near += usize::from(hits(&r) >= 3.0);
        lahc_sum += hits(&r);
        random_sum += hits(&run_toy(&random, &space, seed).0);
    }
    assert!(near >= 4, "within one slot on only {near} of 5 seeds");
    assert!(
        lahc_sum > random_sum,
        "LAHC {lahc_sum} vs random {random_sum} total hits"
    );
}

#[test]
fn same_seed_same_trajectory_other_seed_differs() {
    let space = SearchSpace::paper(4);
    for m in methods() {
        let (a, _, _) = run_toy(&m, &space, 7);
        let (b, _, _) = run_toy(&m, &space, 7);
        let (c, _, _) = run_toy(&m, &space, 8);
        assert_eq!(a, b, "{m:?}");
        let plans = |r: &SearchResult| r.steps.iter().map(|s| s.plan.clone()).collect::<Vec<_>>();
        assert_ne!(plans(&a), plans(&c), "{m:?}");
    }
}

#[test]
fn failed_candidates_score_zero_and_the_search_goes_on() {
    let space = SearchSpace::paper(4);
    let target = target4();
    for m in methods() {
        let start = ActivationPlan::uniform(Op::Relu, 4);
        // Any plan using symexp "diverges" (score 0).
        let mut zeros = 0;
        let r = run_search(
            &m,
            &space,
            &start,
            3,
            &mut |_, p| {
                if p.ops().contains(&Op::Symexp) {
                    zeros += 1;
                    Ok(0.0)
                } else {
                    Ok(toy_score(p, &target))
                }
            },
            &mut |_| {},
        )
        .unwrap();
        assert!(zeros > 0, "{m:?} never tried symexp");
        assert_eq!(r.steps.len(), m.evaluations(), "{m:?}");
        assert!(!r.best_plan.ops().contains(&Op::Symexp));
        assert!(r.best_score > 0.0);
    }
}

#[test]
fn objective_error_aborts_with_that_error() {
    let space = SearchSpace::paper(4);
    for m in methods() {
        let start = ActivationPlan::uniform(Op::Relu, 4);
        let mut calls = 0;
        let mut reported = 0;
        let err = run_search(
            &m,
            &space,
            &start,
            3,
            &mut |i, _| {
                calls += 1;
                if i == 5 {
                    Err(Error::Fetch("disk on fire at step 5".into()))
                } else {
                    Ok(1.0)
                }
            },
            &mut |_| reported += 1,
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Fetch(msg) if msg == "disk on fire at step 5"),
            "{m:?}: {err}"
        );
        assert_eq!((calls, reported), (6, 5), "{m:?}");
    }
}

#[test]
fn non_finite_score_is_an_error_naming_plan_and_step() {
    let space = SearchSpace::paper(2);
    let start = ActivationPlan::uniform(Op::Relu, 2);
    let err = run_search(
        &SearchMethod::paper(),
        &space,
        &start,
        0,
        &mut |i, _| Ok(if i == 2 { f64::NAN } else { 1.0 }),
        &mut |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("NaN") && err.contains("step 2"), "{err}");
}

#[test]
fn uniform_mode_produces_only_uniform_plans() {
    let space = SearchSpace::paper(5).with_mode(SearchMode::Uniform);
    for m in methods() {
        let (r, _, _) = run_toy(&m, &space, 2);
        for s in &r.steps {
            assert!(
                s.plan.ops().iter().all(|&o| o == s.plan.ops()[0]),
                "{m:?}: {}",
                s.plan
            );
        }
        let distinct: std::collections::HashSet<_> =
            r.steps.iter().map(|s| s.plan.ops()[0]).collect();
        assert!(distinct.len() >= 4, "{m:?} explored {distinct:?}");
    }
}

#[test]
fn per_layer_lahc_stops_by_the_lahc_package_rule() {
    let space = SearchSpace::paper(4);
    for seed in 0..4 {
        let (r, _, calls) = run_toy(&SearchMethod::paper(), &space, seed);
        assert!(calls.len() >= 22, "seed {seed}: {} calls", calls.len());
        assert_eq!(r.steps.len(), calls.len());
        // Recount idle moves from the trace: a move is idle when it does not beat the
        // current plan's score; the search stops at the first step > 20 with idle > 2%.
        let mut current = r.steps[0].score;
        let mut idle = 0usize;
        for (moves, s) in r.steps[1..].iter().enumerate() {
            let moves = moves + 1;
            idle = if s.score <= current { idle + 1 } else { 0 };
            if s.accepted {
                current = s.score;
            }
            let stop = moves > 20 && idle as f64 > 0.02 * moves as f64;
            assert_eq!(stop, moves == r.steps.len() - 1, "seed {seed} move {moves}");
        }
    }
}

#[test]
fn invalid_configs_name_field_and_value() {
    let space = SearchSpace::paper(3);
    let start = ActivationPlan::uniform(Op::Relu, 3);
    let err = |m: SearchMethod, space: &SearchSpace, start: &ActivationPlan| {
        run_search(&m, space, start, 0, &mut |_, _| Ok(1.0), &mut |_| {})
            .unwrap_err()
            .to_string()
    };
    let lahc = |history, idle_fraction, max_evaluations| SearchMethod::Lahc {
        min_steps: 5,
        history,
        idle_fraction,
        max_evaluations,
        reference_move: false,
    };
    let ga = |population, generations, mutation_rate, elite, tournament| SearchMethod::Genetic {
        population,
        generations,
        mutation_rate,
        elite,
        tournament,
    };
    let sa = |steps, t0, cooling| SearchMethod::Annealing { steps, t0, cooling };
    let cases: Vec<(SearchMethod, &str)> = vec![
        (lahc(0, 0.02, None), "history = 0"),
        (lahc(3, -0.1, None), "idle_fraction = -0.1"),
        (lahc(3, f64::NAN, None), "idle_fraction = NaN"),
        (lahc(3, 0.02, Some(0)), "max_evaluations = 0"),
        (SearchMethod::Random { steps: 0 }, "steps = 0"),
        (sa(5, 0.0, 0.9), "t0 = 0"),
        (sa(5, f64::NAN, 0.9), "t0 = NaN"),
        (sa(5, 1.0, 0.0), "cooling = 0"),
        (sa(5, 1.0, 1.5), "cooling = 1.5"),
        (ga(1, 3, 0.1, 0, 2), "population = 1"),
        (ga(4, 0, 0.1, 0, 2), "generations = 0"),
        (ga(4, 3, 1.5, 0, 2), "mutation_rate = 1.5"),
        (ga(4, 3, -0.1, 0, 2), "mutation_rate = -0.1"),
        (ga(4, 3, 0.1, 4, 2), "elite = 4"),
        (ga(4, 3, 0.1, 1, 0), "tournament = 0"),
    ];
    for (m, want) in cases {
        let name = m.name();
        let e = err(m, &space, &start);
        assert!(e.contains(want) && e.contains(name), "{want}: {e}");
    }
    let e = err(
        SearchMethod::paper(),
        &space,
        &ActivationPlan::uniform(Op::Relu, 4),
    );
    assert!(e.contains("start") && e.contains("4 operators"), "{e}");
    let e = err(
        SearchMethod::paper(),
        &SearchSpace::new(vec![], 3, SearchMode::PerLayer),
        &start,
    );
    assert!(e.contains("ops"), "{e}");
    let mixed: ActivationPlan = "relu,gelu,relu".parse().unwrap();
    let e = err(
        SearchMethod::paper(),
        &space.clone().with_mode(SearchMode::Uniform),
        &mixed,
    );
    assert!(e.contains("uniform"), "{e}");
    // Edge values that are valid.
    for m in [
        lahc(1, 0.0, Some(1)),
        sa(1, 1e-9, 1.0),
        ga(2, 1, 0.0, 1, 1),
        ga(2, 2, 1.0, 0, 5),
    ] {
        assert!(m.validate().is_ok(), "{m:?}");
    }
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Config {
    search: SearchMethod,
    space: Option<SearchSpace>,
}

fn parse(s: &str) -> std::result::Result<Config, toml::de::Error> {
    toml::from_str(s)
}

#[test]
fn toml_config_round_trip() {
    let c = parse("[search]\nname = \"lahc\"\nmin_steps = 20\nhistory = 3\n").unwrap();
    assert_eq!(c.search, SearchMethod::paper());
    assert_eq!(c.space, None);
    // history defaults to 3, idle_fraction to the lahc package's 0.02; the cap is optional.
    let c = parse(
        "[search]\nname = \"lahc\"\nmin_steps = 50\nmax_evaluations = 10\nreference_move = true\n",
    )
    .unwrap();
    assert_eq!(
        c.search,
        SearchMethod::Lahc {
            min_steps: 50,
            history: 3,
            idle_fraction: 0.02,
            max_evaluations: Some(10),
            reference_move: true,
        }
    );
    let snippets = [
        "[search]\nname = \"random\"\nsteps = 20\n",
        "[search]\nname = \"annealing\"\nsteps = 20\nt0 = 5.0\ncooling = 0.9\n",
        "[search]\nname = \"genetic\"\npopulation = 8\ngenerations = 5\nmutation_rate = 0.1\n\
         elite = 1\ntournament = 2\n",
        "[search]\nname = \"lahc\"\nmin_steps = 20\nhistory = 5\n\n\
         [space]\nops = [\"gelu\", \"swish\"]\nslots = 4\nmode = \"uniform\"\n",
    ];
    for s in snippets {
        let c = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let back = toml::to_string(&c).unwrap();
        assert_eq!(parse(&back).unwrap(), c, "{back}");
        c.search.validate().unwrap();
    }
    let c = parse(snippets[3]).unwrap();
    assert_eq!(
        c.space,
        Some(SearchSpace::new(
            vec![Op::Gelu, Op::Swish],
            4,
            SearchMode::Uniform
        ))
    );
    // The mode defaults to per layer.
    let c = parse("[search]\nname = \"random\"\nsteps = 2\n[space]\nops = [\"elu\"]\nslots = 2\n")
        .unwrap();
    assert_eq!(c.space.unwrap().mode, SearchMode::PerLayer);
    // Unknown method, misspelt field, missing field, unknown operator.
    for bad in [
        "[search]\nname = \"bayes\"\nsteps = 20\n",
        "[search]\nname = \"lahc\"\nmin_steps = 20\nhistroy = 3\n",
        "[search]\nname = \"lahc\"\nsteps = 20\n",
        "[search]\nname = \"annealing\"\nsteps = 20\nt0 = 5.0\n",
        "[search]\nname = \"random\"\nsteps = 2\n[space]\nops = [\"relu7\"]\nslots = 2\n",
    ] {
        assert!(parse(bad).is_err(), "accepted: {bad}");
    }
}

#[test]
fn results_serialize_to_json() {
    let (r, _, _) = run_toy(&SearchMethod::paper(), &SearchSpace::paper(4), 0);
    let json = serde_json::to_string(&r).unwrap();
    assert!(
        json.contains("\"best_plan\":[\"") && json.contains("\"relu\""),
        "{json}"
    );
    let back: SearchResult = serde_json::from_str(&json).unwrap();
    assert_eq!(back.best_plan, r.best_plan);
    assert_eq!(back.steps.len(), r.steps.len());
    for (a, b) in back.steps.iter().zip(&r.steps) {
        assert_eq!((a.step, &a.plan, a.accepted), (b.step, &b.plan, b.accepted));
        assert!((a.score - b.score).abs() < 1e-12 && (a.best_score - b.best_score).abs() < 1e-12);
    }
}

/// Multi-fidelity LAHC by hand: successive halving with eta 3 over 3-epoch fine-tunes
/// (brackets of 3 moves at 1 epoch, the best continued to 3), history 3, min_steps 2.
///
/// ```text
/// call       steps@epochs  scores       kept
/// start      0@3           50
/// bracket 1  1,2,3@1       20 30 25     2
///            2@3           60
/// bracket 2  4,5,6@1       10 40 40     5 (tie with 6: the earlier)
///            5@3           55
/// ```
/// Moves apply stopped first, then the finished: 1, 3 (rejected, idle 1, 2), 2 (60 >= 50:
/// accepted, a gain, idle 0; h[2] = 60). Step 3 > 2 but idle 0: go on. Then 4, 6
/// (rejected; h[0], h[1] rise to the current 60), 5 (55 < h[2] = 60 and < 60: rejected,
/// idle 3): done.
#[test]
fn multi_fidelity_lahc_by_hand() {
    let space = SearchSpace::new(vec![Op::Swish, Op::Gelu], 1, SearchMode::PerLayer);
    let start = ActivationPlan::uniform(Op::Swish, 1);
    let table = |step: usize, epochs: usize| -> f64 {
        match (step, epochs) {
            (0, 3) => 50.,
            (1, 1) => 20.,
            (2, 1) => 30.,
            (3, 1) => 25.,
            (2, 3) => 60.,
            (4, 1) => 10.,
            (5, 1) | (6, 1) => 40.,
            (5, 3) => 55.,
            other => panic!("unexpected call {other:?}"),
        }
    };
    let mut calls: Vec<(Vec<usize>, usize)> = Vec::new();
    let mut objective = |batch: &[(usize, ActivationPlan)], epochs: usize| -> Result<Vec<f64>> {
        calls.push((batch.iter().map(|b| b.0).collect(), epochs));
        Ok(batch.iter().map(|b| table(b.0, epochs)).collect())
    };
    let method = SearchMethod::Lahc {
        min_steps: 2,
        history: 3,
        idle_fraction: 0.02,
        max_evaluations: None,
        reference_move: false,
    };
    let sh = Fidelity::SuccessiveHalving {
        min_epochs: 1,
        eta: 3,
    };
    let r = run_search_at(
        &method,
        &space,
        &start,
        0,
        sh,
        3,
        &mut objective,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(
        calls,
        vec![
            (vec![0], 3),
            (vec![1, 2, 3], 1),
            (vec![2], 3),
            (vec![4, 5, 6], 1),
            (vec![5], 3)
        ]
    );
    let order: Vec<usize> = r.steps.iter().map(|s| s.step).collect();
    assert_eq!(order, [0, 1, 3, 2, 4, 6, 5]);
    let accepted: Vec<bool> = r.steps.iter().map(|s| s.accepted).collect();
    assert_eq!(accepted, [true, false, false, true, false, false, false]);
    let stopped: Vec<Option<usize>> = r.steps.iter().map(|s| s.stopped_at).collect();
    assert_eq!(
        stopped,
        [None, Some(1), Some(1), None, Some(1), Some(1), None]
    );
    assert_eq!(r.best_score, 60.0);
    assert_eq!(r.best_plan, ActivationPlan::uniform(Op::Gelu, 1));
    // Other methods are refused a multi-fidelity run.
    let e = run_search_at(
        &SearchMethod::Random { steps: 3 },
        &space,
        &start,
        0,
        sh,
        3,
        &mut |b: &[(usize, ActivationPlan)], _| Ok(vec![0.0; b.len()]),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("random"), "{e}");
}
