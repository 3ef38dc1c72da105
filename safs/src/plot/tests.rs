//! Every chart renders, names its title and axes, refuses empty input, and skips NaN.

use std::collections::BTreeMap;

use super::figure::{Figure, Mark, Panel, Series, Shape, XyPanel};
use super::palette::{Stroke, BLUE};
use super::*;
use crate::activation::{ActivationPlan, Op, ALL, SEARCH_SPACE};
use crate::experiment::{Arm, EvalRecord, EvalStatus, ResultRow, Stage};
use crate::prune::LayerSparsity;
use crate::report::paper_table1;
use crate::search::SearchStep;
use crate::train::{EpochSummary, Metrics};

fn assert_svg(chart: &Chart, texts: &[&str]) {
    let svg = chart.to_svg();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    assert!(
        svg.contains(&format!("<title>{}</title>", xml_escape(chart.title()))),
        "no <title> for {}",
        chart.title()
    );
    // The title is also drawn as text.
    assert!(svg.contains(&xml_escape(chart.title())));
    for t in texts {
        assert!(
            svg.contains(&xml_escape(t)),
            "'{t}' missing from the chart '{}'",
            chart.title()
        );
    }
    assert!(
        !svg.contains("NaN") && !svg.contains("inf"),
        "{}",
        chart.title()
    );
}

fn assert_config_err<T: std::fmt::Debug>(r: Result<T>, needle: &str) {
    match r {
        Err(Error::Config(msg)) => assert!(msg.contains(needle), "{msg}"),
        other => panic!("expected a Config error about '{needle}', got {other:?}"),
    }
}

fn count(svg: &str, tag: &str) -> usize {
    svg.matches(tag).count()
}

fn epochs(losses: &[f64]) -> Vec<EpochSummary> {
    losses
        .iter()
        .enumerate()
        .map(|(i, &l)| EpochSummary {
            epoch: i,
            train_loss: l,
            train_acc: 50.0 + 10.0 * i as f64,
            valid: None,
            lr: 0.1 / (i + 1) as f64,
            seconds: 1.0,
        })
        .collect()
}

fn record(stage: Stage, step: usize, acc: f64, lr: f64, opt: &str) -> EvalRecord {
    let mut hparams = BTreeMap::new();
    hparams.insert("epochs".to_string(), serde_json::json!(3));
    hparams.insert(
        "optimizer".to_string(),
        serde_json::json!({ "name": opt, "lr": lr }),
    );
    EvalRecord {
        stage,
        step,
        plan: ActivationPlan(vec![Op::Relu, Op::Swish]),
        hparams,
        alphas: vec![1.0, 1.0],
        betas: vec![1.0, 1.0],
        op_params: vec![vec![], vec![]],
        valid_acc: acc,
        test_acc: None,
        best_epoch: None,
        epochs: Vec::new(),
        train_images: 0,
        status: EvalStatus::Ok,
        seconds: 1.0,
    }
}

fn records() -> Vec<EvalRecord> {
    let mut v = vec![
        record(Stage::Search(Arm::Stage1), 0, 50.0, 0.1, "sgd"),
        record(Stage::Search(Arm::Stage1), 1, 55.0, 0.1, "sgd"),
        record(Stage::Search(Arm::Stage1), 2, 52.0, 0.1, "sgd"),
        record(Stage::Search(Arm::Stage1), 3, 61.0, 0.1, "sgd"),
        record(Stage::Search(Arm::Stage2), 0, 40.0, 0.1, "sgd"),
        record(Stage::Search(Arm::Stage2), 1, 63.0, 0.01, "adam"),
        record(Stage::Search(Arm::Stage2), 2, 0.0, 0.5, "sgd"),
        record(Stage::Search(Arm::Stage2), 3, 58.5, 0.003, "adam"),
    ];
    v[6].status = EvalStatus::Failed("loss is NaN".into());
    v
}

#[test]
fn plot_operators_curves() {
    let chart = operators(&SEARCH_SPACE, (-4.0, 4.0)).unwrap();
    let mut texts = vec!["pre-activation x (unitless)", "activation op(x) (unitless)"];
    texts.extend(SEARCH_SPACE.iter().map(|op| op.name()));
    assert_svg(&chart, &texts);
    assert_eq!((chart.width(), chart.height()), (860, 520));
    let d = operator_derivatives(ALL, (-3.0, 3.0)).unwrap();
    assert_svg(&d, &["derivative d op/dx (central difference)", "symexp"]);
    let s = scaled_operator(
        Op::Swish,
        &[(1.0, 1.0), (2.0, 0.5), (0.5, 1.5)],
        (-5.0, 5.0),
    )
    .unwrap();
    assert_svg(
        &s,
        &["α = 2, β = 0.5", "β · swish(α · x) (unitless)", "swish(x)"],
    );
    assert_config_err(operators(&[], (-1.0, 1.0)), "no operator");
    assert_config_err(operator_derivatives(&[], (-1.0, 1.0)), "no operator");
    assert_config_err(scaled_operator(Op::Relu, &[], (-1.0, 1.0)), "(alpha, beta)");
    assert_config_err(operators(&[Op::Relu], (1.0, 1.0)), "x range");
    assert_config_err(operators(&[Op::Relu], (f64::NAN, 1.0)), "x range");
}

#[test]
fn plot_scaled_operator_skips_nan_scales() {
    let good = scaled_operator(Op::Tanh, &[(2.0, 1.0)], (-2.0, 2.0)).unwrap();
    let bad = scaled_operator(Op::Tanh, &[(2.0, 1.0), (f64::NAN, 1.0)], (-2.0, 2.0)).unwrap();
    assert_eq!(good.to_svg(), bad.to_svg());
    assert_config_err(
        scaled_operator(Op::Tanh, &[(1.0, f64::INFINITY)], (-2.0, 2.0)),
        "no finite (alpha, beta)",
    );
}

#[test]
fn plot_nan_points_are_skipped_and_lines_break() {
    let fig = |points: Vec<(f64, f64)>, mark: Mark| Figure {
        panels: vec![Panel::Xy(XyPanel {
            x_label: "x".into(),
            y_label: "y".into(),
            series: vec![Series {
                name: "s".into(),
                color: BLUE,
                mark,
                points,
            }],
            ..Default::default()
        })],
        cols: 1,
    };
    let dots = Mark::Points {
        shape: Shape::Dot,
        size: 3,
    };
    let with = Chart::new(
        "t",
        (400, 300),
        fig(vec![(0.0, 0.0), (1.0, f64::NAN), (2.0, 1.0)], dots),
    )
    .unwrap();
    let without = Chart::new("t", (400, 300), fig(vec![(0.0, 0.0), (2.0, 1.0)], dots)).unwrap();
    assert_eq!(with.to_svg(), without.to_svg());
    // Two points and the legend sample.
    assert_eq!(count(with.to_svg(), "<circle"), 3);
    let line = Mark::Line {
        width: 2,
        stroke: Stroke::Solid,
    };
    let broken = Chart::new(
        "t",
        (400, 300),
        fig(
            vec![
                (0.0, 0.0),
                (1.0, 0.5),
                (2.0, f64::INFINITY),
                (3.0, 1.0),
                (4.0, 0.0),
            ],
            line,
        ),
    )
    .unwrap();
    let whole = Chart::new(
        "t",
        (400, 300),
        fig(vec![(0.0, 0.0), (1.0, 0.5), (3.0, 1.0), (4.0, 0.0)], line),
    )
    .unwrap();
    assert_eq!(
        count(broken.to_svg(), "<polyline"),
        count(whole.to_svg(), "<polyline") + 1
    );
    assert!(!broken.to_svg().contains("NaN"));
}

#[test]
fn plot_training_curves() {
    let mut e = epochs(&[2.0, 1.5, 1.2]);
    let chart = training_curves(&e).unwrap();
    assert_svg(
        &chart,
        &[
            "epoch",
            "cross-entropy loss (nats)",
            "top-1 accuracy (%)",
            "learning rate (unitless)",
            "train",
            "learning rate",
        ],
    );
    assert!(!chart.to_svg().contains("validation"));
    // One dot per epoch in each of the three panels.
    assert_eq!(count(chart.to_svg(), "<circle"), 9);
    e[1].train_loss = f64::NAN;
    for (i, x) in e.iter_mut().enumerate() {
        x.valid = Some(Metrics {
            loss: 1.0 + i as f64,
            top1: 60.0,
            top5: 90.0,
            n: 10,
        });
    }
    let chart = training_curves(&e).unwrap();
    assert_svg(&chart, &["validation"]);
    // The NaN loss is skipped: 2 + 3 train, 3 + 3 validation, 3 lr.
    assert_eq!(count(chart.to_svg(), "<circle"), 14);
    assert_config_err(training_curves(&[]), "no epoch");
}

#[test]
fn plot_search_trajectory_and_steps() {
    let recs = records();
    let chart = search_trajectory(&recs, Stage::Search(Arm::Stage1)).unwrap();
    assert_svg(
        &chart,
        &[
            "Stage 1 operator search",
            "search step (evaluation index)",
            "validation top-1 accuracy (%)",
            "best so far",
            "new best",
            "evaluation",
        ],
    );
    // Improvements at steps 0, 1, 3: three triangles (polygons) plus the legend's.
    assert_eq!(count(chart.to_svg(), "<polygon"), 4);
    assert_config_err(
        search_trajectory(&recs, Stage::Search(Arm::Safs)),
        "safs_search",
    );
    assert_config_err(
        search_trajectory(&[], Stage::Search(Arm::Stage1)),
        "no evaluation",
    );

    let steps: Vec<SearchStep> = [50.0, 45.0, f64::NAN, 60.0]
        .iter()
        .enumerate()
        .map(|(i, &s)| SearchStep {
            step: i,
            plan: ActivationPlan(vec![Op::Relu]),
            score: s,
            accepted: i != 1,
            best_score: 0.0,
            best_plan: ActivationPlan(vec![Op::Relu]),
            stopped_at: None,
        })
        .collect();
    let chart = search_steps_chart(&steps).unwrap();
    assert_svg(
        &chart,
        &["accepted", "rejected", "search step (evaluation index)"],
    );
    // 2 accepted dots + 1 rejected ring + 2 legend markers; the NaN step draws nothing.
    assert_eq!(count(chart.to_svg(), "<circle"), 5);
    assert_config_err(search_steps_chart(&[]), "no search step");
}

#[test]
fn plot_hpo_history_and_top_trials() {
    let recs = records();
    let chart = hpo_history(&recs, Stage::Search(Arm::Stage2)).unwrap();
    assert_svg(
        &chart,
        &[
            "Stage 2 HPO (ReLU plan)",
            "trial",
            "validation top-1 accuracy (%)",
            "failed (scored 0)",
        ],
    );
    assert_config_err(
        hpo_history(&recs, Stage::Search(Arm::Safs)),
        "no evaluation",
    );

    let df = hpo_top_trials(&recs, Stage::Search(Arm::Stage2), 2).unwrap();
    let names: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
    // epochs is the same in every trial and is left out.
    assert_eq!(
        names,
        [
            "rank",
            "trial",
            "valid_acc",
            "optimizer.lr",
            "optimizer.name"
        ]
    );
    assert_eq!(df.height(), 2);
    let trial = df.column("trial").unwrap().u64().unwrap();
    assert_eq!((trial.get(0), trial.get(1)), (Some(1), Some(3)));
    assert_eq!(
        df.column("optimizer.lr").unwrap().f64().unwrap().get(1),
        Some(0.003)
    );
    assert_eq!(
        df.column("optimizer.name").unwrap().str().unwrap().get(0),
        Some("adam")
    );
    // The failed trial never ranks, even when k asks for everything.
    assert_eq!(
        hpo_top_trials(&recs, Stage::Search(Arm::Stage2), 10)
            .unwrap()
            .height(),
        3
    );
    assert_config_err(
        hpo_top_trials(&recs, Stage::Final(Arm::Safs), 3),
        "no evaluation",
    );
}

#[test]
fn plot_operator_plan_tiles() {
    let plan: ActivationPlan = "relu,swish,gelu,symexp,tanh".parse().unwrap();
    let chart = operator_plan(&plan).unwrap();
    assert_svg(
        &chart,
        &[
            "Operator plan (5 slots)",
            "slot 0",
            "slot 4",
            "symexp",
            "activation slot (forward order)",
        ],
    );
    // A tile (filled rect and outline) per slot, plus the background.
    assert_eq!(count(chart.to_svg(), "<rect"), 1 + 2 * 5);
    let long = operator_plan(&ActivationPlan::uniform(Op::Elu, 23)).unwrap();
    assert_svg(&long, &["slot 22"]);
    assert_config_err(operator_plan(&ActivationPlan(vec![])), "no slot");
}

#[test]
fn plot_accuracy_vs_prune_rate() {
    let mut rows = Vec::new();
    for (rate, seed, safs) in [
        (0.9, 0, 70.0),
        (0.9, 1, 72.0),
        (0.99, 0, 62.0),
        (0.99, 1, f64::NAN),
    ] {
        let mut r = paper_table1()[0].clone();
        r.prune_rate = rate;
        r.seed = seed;
        r.safs = Some(safs);
        r.stage2 = None;
        rows.push(r);
    }
    let chart = accuracy_vs_prune_rate(&rows).unwrap();
    assert_svg(
        &chart,
        &[
            "Test accuracy vs pruning rate: lenet5 / mnist",
            "pruning rate (% of prunable weights zeroed)",
            "top-1 test accuracy (%)",
            "SAFS",
            "magnitude pruning",
            "dense",
            "Stage 1",
        ],
    );
    // No arm without values in the legend.
    assert!(!chart.to_svg().contains("Stage 2"));
    // Dots: 4 rows x 3 arms (dense, magnitude pruning, stage 1) + 3 finite SAFS.
    assert_eq!(count(chart.to_svg(), "<circle"), 15);
    // SAFS's interval bar at 90%: seeds 70 and 72, mean 71, s = sqrt(2), t(0.975, 1) =
    // 12.7062, so 71 -/+ 12.7062; at 99% one finite seed gives no bar.
    let Panel::Xy(p) = &chart.figure.panels[0] else {
        panic!("not an xy panel");
    };
    let safs_color = super::palette::arm_color("safs");
    let bars: Vec<&Series> = p
        .series
        .iter()
        .filter(|s| s.color == safs_color && matches!(s.mark, Mark::Line { width: 1, .. }))
        .collect();
    assert_eq!(bars.len(), 1);
    let pts = &bars[0].points;
    assert_eq!(pts.len(), 3);
    // SAFS is the fifth arm: its bars sit 2 dodges right of the rate.
    assert!(
        (pts[0].0 - 90.7).abs() < 1e-9 && pts[1].0 == pts[0].0,
        "{pts:?}"
    );
    assert!((pts[0].1 - (71.0 - 12.7062)).abs() < 1e-3, "{pts:?}");
    assert!((pts[1].1 - (71.0 + 12.7062)).abs() < 1e-3, "{pts:?}");
    assert!(pts[2].0.is_nan());
    assert_config_err(accuracy_vs_prune_rate(&[]), "no result row");
    let mut empty = rows[0].clone();
    (
        empty.dense,
        empty.magnitude_pruning,
        empty.stage1,
        empty.stage2,
        empty.safs,
    ) = (None, None, None, None, None);
    assert_config_err(accuracy_vs_prune_rate(&[empty]), "finite accuracy");
}

#[test]
fn plot_sparsity_per_layer() {
    let layers = vec![
        LayerSparsity {
            name: "conv1.weight".into(),
            total: 150,
            zeros: 148,
        },
        LayerSparsity {
            name: "fc1.weight".into(),
            total: 48000,
            zeros: 47520,
        },
        LayerSparsity {
            name: "empty.weight".into(),
            total: 0,
            zeros: 0,
        },
    ];
    let chart = sparsity_per_layer(&layers).unwrap();
    assert_svg(
        &chart,
        &[
            "sparsity (% of entries exactly zero)",
            "prunable weight",
            "conv1.weight",
            "fc1.weight",
            "99.0%",
            "98.7%",
            "n/a",
            "overall 99.00%",
        ],
    );
    assert_config_err(sparsity_per_layer(&[]), "no layer");
}

#[test]
fn plot_table1_comparison() {
    let paper = paper_table1()[0].clone();
    let mut ours = paper.clone();
    ours.budget = "cpu".into();
    ours.seed = 3;
    ours.safs = Some(55.0);
    ours.stage2 = None;
    let chart = table1_comparison(&ours, &paper).unwrap();
    assert_svg(
        &chart,
        &[
            "Table 1: ours vs paper, lenet5 / mnist at 99% pruning",
            "top-1 test accuracy (%)",
            "arm",
            "magnitude pruning",
            "ours (seed 3, cpu budget)",
            "paper (Loni et al. 2023)",
            "62.22",
            "55.00",
            "n/a",
            "ours +8.31, paper +15.53",
        ],
    );
    let blank = ResultRow {
        dense: None,
        magnitude_pruning: None,
        stage1: None,
        stage2: None,
        safs: None,
        ..paper.clone()
    };
    assert_config_err(table1_comparison(&blank, &blank), "accuracy");
}

#[test]
fn plot_png_and_files() {
    let chart = operators(&[Op::Relu, Op::Swish, Op::Symlog], (-3.0, 3.0)).unwrap();
    let png = chart.to_png().unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 860);
    assert_eq!(u32::from_be_bytes(png[20..24].try_into().unwrap()), 520);
    let big = chart.to_png_scaled(2).unwrap();
    assert_eq!(u32::from_be_bytes(big[16..20].try_into().unwrap()), 1720);
    assert_config_err(chart.to_png_scaled(9), "scale");
    assert_config_err(chart.with_size(50, 50), "too small");
    let dir = std::env::temp_dir().join(format!("safs-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    chart.save_svg(dir.join("c.svg")).unwrap();
    chart.save_png(dir.join("c.png")).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("c.svg")).unwrap(),
        chart.to_svg()
    );
    assert_eq!(std::fs::read(dir.join("c.png")).unwrap(), png);
    // A folder that cannot exist: its parent is a file.
    let err = chart.save_svg(dir.join("c.png/c.svg")).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Writes every chart as SVG and PNG to `$SAFS_PLOT_EXAMPLES` when it is set (a gallery to
/// look at); does nothing otherwise.
#[test]
fn plot_gallery() {
    let Some(dir) = std::env::var_os("SAFS_PLOT_EXAMPLES") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let recs = records();
    let mut e = epochs(&[2.3, 1.1, 0.8, 0.65, 0.6, 0.58]);
    for (i, x) in e.iter_mut().enumerate() {
        x.valid = Some(Metrics {
            loss: 2.0 / (i + 1) as f64 + 0.4,
            top1: 40.0 + 8.0 * i as f64,
            top5: 90.0,
            n: 10,
        });
    }
    let mut rows = Vec::new();
    for (rate, mp, s1, s2, safs) in [
        (0.5, 98.4, 98.4, 98.5, 98.5),
        (0.9, 95.1, 96.0, 96.3, 96.9),
        (0.95, 80.2, 86.0, 85.1, 88.0),
        (0.99, 46.69, 61.63, 60.20, 62.22),
    ] {
        let mut r = paper_table1()[0].clone();
        r.prune_rate = rate;
        (r.magnitude_pruning, r.stage1, r.stage2, r.safs) =
            (Some(mp), Some(s1), Some(s2), Some(safs));
        rows.push(r);
    }
    let mut ours = paper_table1()[0].clone();
    (ours.budget, ours.stage1, ours.stage2, ours.safs) =
        ("cpu".into(), Some(58.3), None, Some(60.1));
    let layers: Vec<LayerSparsity> = [
        ("conv1.weight", 150),
        ("conv2.weight", 2400),
        ("fc1.weight", 48000),
        ("fc2.weight", 10080),
        ("fc3.weight", 840),
    ]
    .iter()
    .map(|&(n, t)| LayerSparsity {
        name: n.into(),
        total: t,
        zeros: t * 99 / 100,
    })
    .collect();
    let charts = [
        ("operators", operators(&SEARCH_SPACE, (-4.0, 4.0)).unwrap()),
        ("operators_small", operators(&[Op::Relu, Op::Swish, Op::Gelu, Op::Elu, Op::Tanh, Op::Symlog], (-4.0, 4.0)).unwrap()),
        ("operator_derivatives", operator_derivatives(&[Op::Relu, Op::Swish, Op::Gelu, Op::Srs, Op::Tanh], (-4.0, 4.0)).unwrap()),
        ("scaled_operator", scaled_operator(Op::Swish, &[(1.0, 1.0), (2.0, 0.5), (0.5, 1.5), (3.0, 1.0)], (-5.0, 5.0)).unwrap()),
        ("training_curves", training_curves(&e).unwrap()),
        ("search_trajectory", search_trajectory(&recs, Stage::Search(Arm::Stage1)).unwrap()),
        ("hpo_history", hpo_history(&recs, Stage::Search(Arm::Stage2)).unwrap()),
        ("operator_plan", operator_plan(&"relu6,swish,gelu,symexp,tanh,elu,acon,srs,softplus,logsigmoid,symlog,hardswish,tanhsoft1".parse().unwrap()).unwrap()),
        ("accuracy_vs_prune_rate", accuracy_vs_prune_rate(&rows).unwrap()),
        ("sparsity_per_layer", sparsity_per_layer(&layers).unwrap()),
        ("table1_comparison", table1_comparison(&ours, &paper_table1()[0]).unwrap()),
        ("hpo_parallel_coordinates", hpo_parallel_coordinates(&paper_run(3), Stage::Search(Arm::Stage2)).unwrap()),
        ("hpo_importance", hpo_importance(&paper_run(3), Stage::Search(Arm::Stage2)).unwrap()),
        ("operator_choices", operator_choices(&(0..4).map(|s| (format!("seed {s}"), paper_run(s).iter().find(|r| r.stage == Stage::Final(Arm::Safs)).unwrap().plan.clone())).collect::<Vec<_>>()).unwrap()),
    ];
    for (name, chart) in charts {
        chart.save_svg(dir.join(format!("{name}.svg"))).unwrap();
        chart.save_png(dir.join(format!("{name}.png"))).unwrap();
    }
}

fn seed_rows() -> Vec<ResultRow> {
    (0..3)
        .map(|s| ResultRow {
            model: "lenet5".into(),
            dataset: "mnist".into(),
            prune_rate: 0.99,
            seed: s,
            budget: "cpu".into(),
            dense: Some(99.0 + 0.1 * s as f64),
            magnitude_pruning: Some(40.0 + 4.0 * s as f64),
            stage1: Some(45.0 + 2.0 * s as f64),
            stage2: Some(41.0 + s as f64),
            safs: Some(50.0 + 5.0 * s as f64),
        })
        .collect()
}

#[test]
fn plot_seed_summary_with_intervals() {
    let g = crate::report::summarize_seeds(&seed_rows())
        .unwrap()
        .remove(0);
    let chart = seed_summary_chart(&g).unwrap();
    assert_svg(
        &chart,
        &[
            "ours: mean ± 95% CI, 3 seeds",
            "paper (Loni et al. 2023, one seed)",
            "Paired per-seed differences",
            "SAFS − MP",
            "SAFS − Stage 1",
            "accuracy points",
        ],
    );
    // Whiskers: three segments per bar with an interval (5 arms + 4 differences).
    let one = crate::report::summarize_seeds(&seed_rows()[..1])
        .unwrap()
        .remove(0);
    let chart_one = seed_summary_chart(&one).unwrap();
    let (svg, svg_one) = (chart.to_svg(), chart_one.to_svg());
    let whiskers = |svg: &str| {
        svg.lines()
            .filter(|l| {
                l.contains("<polyline") && l.contains("stroke=\"#000000\" stroke-width=\"2\"")
            })
            .count()
    };
    assert_eq!(whiskers(svg) - whiskers(svg_one), 27, "{svg}");
    let mut empty = one.clone();
    empty.dense = None;
    for a in &mut empty.arms {
        a.1 = None;
    }
    assert_config_err(seed_summary_chart(&empty), "no accuracy");
}

#[test]
fn plot_arm_curves_and_learnt_scales() {
    let point = |acc: f64, loss: f64| crate::experiment::EpochPoint {
        train_loss: loss,
        train_acc: acc,
        valid_acc: Some(acc),
        valid_loss: Some(loss),
        lr: 1e-3,
        seconds: 1.0,
    };
    let mut recs = records();
    for (stage, accs) in [
        (Stage::Dense, [90.0, 97.0, 98.0]),
        (Stage::Final(Arm::MagnitudePruning), [20.0, 35.0, 30.0]),
        (Stage::Final(Arm::Safs), [30.0, 45.0, 50.0]),
    ] {
        let mut r = record(stage, 0, accs[2], 1e-3, "adam");
        r.epochs = accs.iter().map(|&a| point(a, 2.0 - a / 100.0)).collect();
        r.best_epoch = Some(if stage == Stage::Final(Arm::MagnitudePruning) {
            1
        } else {
            2
        });
        recs.push(r);
    }
    let chart = arm_curves(&recs).unwrap();
    assert_svg(
        &chart,
        &[
            "dense",
            "magnitude pruning",
            "SAFS",
            "Validation accuracy",
            "epoch",
        ],
    );
    assert_config_err(arm_curves(&records()), "per-epoch log");

    let mut r = record(Stage::Final(Arm::Safs), 0, 50.0, 1e-3, "adam");
    r.plan = ActivationPlan(vec![Op::Srs, Op::Relu]);
    r.alphas = vec![1.25, 0.75];
    r.betas = vec![0.5, 1.5];
    r.op_params = vec![vec![1.1, 0.9], vec![]];
    let chart = learnt_scales(&r).unwrap();
    assert_svg(
        &chart,
        &[
            "0: srs (a=1.10, b=0.90)",
            "1: relu",
            "alpha (inside)",
            "beta (outside)",
            "1.250",
        ],
    );
    r.alphas.pop();
    assert_config_err(learnt_scales(&r), "no scales");
}

/// The evaluation log of a committed real-MNIST run (paper budget, successive halving).
fn paper_run(seed: u32) -> Vec<EvalRecord> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../docs/runs/lenet5_mnist-paper-sh-seed{seed}/evals.jsonl"
    ));
    crate::report::read_evals_jsonl(&path).unwrap()
}

#[test]
fn plot_parallel_coordinates_of_a_real_stage2() {
    let recs = paper_run(3);
    let stage = Stage::Search(Arm::Stage2);
    let chart = hpo_parallel_coordinates(&recs, stage).unwrap();
    // 20 trials ran 2 epochs (the first rung); the 9 that went on are not counted twice.
    assert_svg(
        &chart,
        &[
            "Stage 2 HPO (ReLU plan): 20 trials in parallel coordinates",
            "optimizer.lr (log)",
            "optimizer.name",
            "schedule.name",
            "valid acc (%)",
            "2 epochs each",
        ],
    );
    let Panel::Parallel(p) = &chart.figure.panels[0] else {
        panic!("not a parallel-coordinate panel");
    };
    assert_eq!(p.lines.len(), 20);
    assert!(p.axes.len() <= MAX_AXES + 1);
    assert_eq!(p.axes.last().unwrap().name, "valid acc (%)");
    // Every line ends on the score axis at its score's place, the best (drawn last) at 1.
    assert_eq!(p.lines.last().unwrap().values.last(), Some(&1.0));
    assert!(p.lines.iter().all(|l| l.values.len() == p.axes.len()));
    // The categorical axis names every optimizer the trials used.
    let opt = p.axes.iter().find(|a| a.name == "optimizer.name").unwrap();
    let used: std::collections::BTreeSet<String> = recs
        .iter()
        .filter(|r| r.stage == stage)
        .filter_map(|r| r.hparams["optimizer"]["name"].as_str().map(String::from))
        .collect();
    let ticks: std::collections::BTreeSet<String> = opt.ticks.iter().map(|t| t.1.clone()).collect();
    assert_eq!(ticks, used);
    assert_config_err(
        hpo_parallel_coordinates(&recs, Stage::Dense),
        "no hyperparameter",
    );
}

#[test]
fn plot_importance_of_a_real_stage2() {
    let recs = paper_run(3);
    let chart = hpo_importance(&recs, Stage::Search(Arm::Safs)).unwrap();
    assert_svg(
        &chart,
        &[
            "SAFS HPO (Stage 1 plan): hyperparameter importance",
            "random forest on 20 trials",
            "optimizer.lr",
            "share of the variance",
        ],
    );
    let Panel::Bars(p) = &chart.figure.panels[0] else {
        panic!("not a bar panel");
    };
    assert_eq!(p.groups.len(), 1);
    assert_eq!(p.categories.len(), MAX_BARS);
    let values = &p.groups[0].values;
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
    assert!(values.iter().all(|v| (0.0..=100.0).contains(v)));
    assert!(values.iter().sum::<f64>() <= 100.0 + 1e-9);
}

#[test]
fn plot_operator_choices_across_real_seeds() {
    let runs: Vec<(String, ActivationPlan)> = (0..4)
        .map(|seed| {
            let recs = paper_run(seed);
            let safs = recs
                .iter()
                .find(|r| r.stage == Stage::Final(Arm::Safs))
                .unwrap();
            (format!("seed {seed}"), safs.plan.clone())
        })
        .collect();
    let chart = operator_choices(&runs).unwrap();
    let mut texts = vec![
        "Operators chosen across 4 runs",
        "seed 0",
        "seed 3",
        "slot 3",
    ];
    let names: Vec<String> = runs
        .iter()
        .flat_map(|(_, p)| p.ops().iter().map(|o| o.name().to_string()))
        .collect();
    texts.extend(names.iter().map(String::as_str));
    assert_svg(&chart, &texts);
    let Panel::Tiles(p) = &chart.figure.panels[0] else {
        panic!("not a tile panel");
    };
    assert_eq!((p.tiles.len(), p.cols, p.row_labels.len()), (16, 4, 4));
    // Tiles read row by row: seed 1's third slot is the 7th tile.
    assert_eq!(p.tiles[6].label, runs[1].1.ops()[2].name());

    let mut uneven = runs.clone();
    uneven[2].1 = ActivationPlan(vec![Op::Relu]);
    assert_config_err(
        operator_choices(&uneven),
        "run seed 2 has 1 activation slots",
    );
    assert_config_err(operator_choices(&[]), "no run");
}
