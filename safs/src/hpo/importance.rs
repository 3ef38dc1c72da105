//! Hyperparameter importance: the fraction of the score's variance that each
//! hyperparameter explains on its own (fANOVA's first-order terms, Hutter, Hoos and
//! Leyton-Brown 2014), computed on a random-forest surrogate of the trials.
//!
//! For a surrogate f over the box X (each parameter uniform over its observed range, or
//! over its categories), the main effect of parameter i is
//!
//!   f_i(x_i) = E_{x_-i}[f(x_i, x_-i)] - E[f]
//!
//! and its importance is V_i / V with V_i = Var_{x_i}[f_i(x_i)] and V = Var_x[f(x)]. The
//! expectations are Monte-Carlo means over a fixed uniform sample of the box (the exact
//! tree traversal of the fANOVA paper gives the same numbers up to sampling error), and
//! f is the mean of a forest of CART regression trees grown on bootstrap samples. The
//! first-order fractions sum to at most 1; the rest is interaction.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::trials::{finite_range, ParamKind, TrialTable};
use crate::{Error, Result};

/// How the forest is grown and the variance estimated.
#[derive(Clone, Debug, PartialEq)]
pub struct ImportanceConfig {
    /// Trees in the forest.
    pub trees: usize,
    /// Smallest number of trials in a leaf.
    pub min_leaf: usize,
    /// Uniform points of the box the expectations average over.
    pub samples: usize,
    /// Values of a numeric parameter its main effect is evaluated at.
    pub grid: usize,
    /// Seed of the bootstrap, the split features and the sample.
    pub seed: u64,
}

impl Default for ImportanceConfig {
    fn default() -> Self {
        ImportanceConfig {
            trees: 64,
            min_leaf: 2,
            samples: 1024,
            grid: 16,
            seed: 0,
        }
    }
}

/// The importance of one hyperparameter.
#[derive(Clone, Debug, PartialEq)]
pub struct Importance {
    /// Dotted name.
    pub name: String,
    /// Fraction of the variance its main effect explains (0..=1).
    pub fraction: f64,
}

/// One node of a regression tree: a split or a leaf value.
#[derive(Clone, Debug)]
enum Node {
    Split {
        feature: usize,
        threshold: f64,
        left: usize,
        right: usize,
    },
    Leaf(f64),
}

/// A CART regression tree, nodes in one vector (root first).
#[derive(Clone, Debug)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, x: &[f64]) -> f64 {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                Node::Leaf(v) => return v,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => i = if x[feature] <= threshold { left } else { right },
            }
        }
    }
}

/// Grows a tree on the rows `idx` of `x`/`y`, trying `mtry` random features per split.
fn grow(
    x: &[Vec<f64>],
    y: &[f64],
    idx: Vec<usize>,
    mtry: usize,
    min_leaf: usize,
    rng: &mut ChaCha8Rng,
) -> Tree {
    let mut tree = Tree { nodes: Vec::new() };
    let mut stack = vec![(0usize, idx)];
    tree.nodes.push(Node::Leaf(0.0));
    let d = x.first().map_or(0, Vec::len);
    while let Some((at, rows)) = stack.pop() {
        let mean = rows.iter().map(|&r| y[r]).sum::<f64>() / rows.len() as f64;
        tree.nodes[at] = Node::Leaf(mean);
        if rows.len() < 2 * min_leaf {
            continue;
        }
        let mut features: Vec<usize> = (0..d).collect();
        features.shuffle(rng);
        let mut best: Option<(f64, usize, f64)> = None;
        for &f in features.iter().take(mtry) {
            if let Some((sse, threshold)) = best_split(x, y, &rows, f, min_leaf) {
                if best.is_none_or(|(b, _, _)| sse < b) {
                    best = Some((sse, f, threshold));
                }
            }
        }
        let Some((_, feature, threshold)) = best else {
            continue;
        };
        let (l, r): (Vec<usize>, Vec<usize>) =
            rows.iter().partition(|&&i| x[i][feature] <= threshold);
        let (left, right) = (tree.nodes.len(), tree.nodes.len() + 1);
        tree.nodes.push(Node::Leaf(0.0));
        tree.nodes.push(Node::Leaf(0.0));
        tree.nodes[at] = Node::Split {
            feature,
            threshold,
            left,
            right,
        };
        stack.push((left, l));
        stack.push((right, r));
    }
    tree
}

/// The split of `rows` on feature `f` with the least summed squared error, as (SSE,
/// threshold halfway between two distinct values); none when no split leaves `min_leaf`
/// rows on each side.
fn best_split(
    x: &[Vec<f64>],
    y: &[f64],
    rows: &[usize],
    f: usize,
    min_leaf: usize,
) -> Option<(f64, f64)> {
    let mut sorted: Vec<(f64, f64)> = rows.iter().map(|&r| (x[r][f], y[r])).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = sorted.len();
    let total: f64 = sorted.iter().map(|p| p.1).sum();
    let total_sq: f64 = sorted.iter().map(|p| p.1 * p.1).sum();
    let (mut sum, mut sq) = (0.0, 0.0);
    let mut best: Option<(f64, f64)> = None;
    for k in 1..n {
        sum += sorted[k - 1].1;
        sq += sorted[k - 1].1 * sorted[k - 1].1;
        if k < min_leaf || n - k < min_leaf || sorted[k - 1].0 == sorted[k].0 {
            continue;
        }
        let (nl, nr) = (k as f64, (n - k) as f64);
        let sse = (sq - sum * sum / nl) + (total_sq - sq - (total - sum).powi(2) / nr);
        if best.is_none_or(|(b, _)| sse < b) {
            best = Some((sse, 0.5 * (sorted[k - 1].0 + sorted[k].0)));
        }
    }
    best
}

/// The first-order importance of every parameter of `table`, largest first.
///
/// Missing values (a conditional parameter a trial does not have) are coded below the
/// parameter's range, so the trees can split them off. Needs at least 4 trials and one
/// varying parameter.
pub fn importance(table: &TrialTable, cfg: &ImportanceConfig) -> Result<Vec<Importance>> {
    let n = table.len();
    let d = table.params.len();
    if n < 4 || d == 0 {
        return Err(Error::Config(format!(
            "parameter importance needs at least 4 trials and a varying hyperparameter; \
             stage {} has {n} trials and {d} varying hyperparameters",
            table.stage.name()
        )));
    }
    if cfg.trees == 0 || cfg.samples < 2 || cfg.grid < 2 || cfg.min_leaf == 0 {
        return Err(Error::Config(format!(
            "importance config needs trees >= 1, samples >= 2, grid >= 2, min_leaf >= 1: {cfg:?}"
        )));
    }
    // Each parameter's box: [lo, hi] of its coded values, and the code of "missing".
    let mut boxes = Vec::with_capacity(d);
    for p in &table.params {
        let (lo, hi) = finite_range(&p.values);
        let missing = p.values.iter().any(|v| !v.is_finite());
        let gap = (hi - lo).abs().max(1.0);
        boxes.push((lo, hi, missing.then_some(lo - gap)));
    }
    let x: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..d)
                .map(|j| {
                    let v = table.params[j].values[i];
                    if v.is_finite() {
                        v
                    } else {
                        boxes[j].2.unwrap_or(boxes[j].0)
                    }
                })
                .collect()
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mtry = d.div_ceil(2).max(1);
    let forest: Vec<Tree> = (0..cfg.trees)
        .map(|_| {
            let boot: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
            grow(&x, &table.scores, boot, mtry, cfg.min_leaf, &mut rng)
        })
        .collect();
    let predict =
        |p: &[f64]| forest.iter().map(|t| t.predict(p)).sum::<f64>() / forest.len() as f64;

    // The values a parameter takes under the uniform measure: a grid over a numeric range,
    // each category once; "missing" as one more value when some trial lacks it.
    let support: Vec<Vec<f64>> = table
        .params
        .iter()
        .zip(&boxes)
        .map(|(p, &(lo, hi, missing))| {
            let mut vals: Vec<f64> = match &p.kind {
                ParamKind::Categorical { labels } => (0..labels.len()).map(|i| i as f64).collect(),
                ParamKind::Numeric { .. } => (0..cfg.grid)
                    .map(|k| lo + (hi - lo) * (k as f64 + 0.5) / cfg.grid as f64)
                    .collect(),
            };
            vals.extend(missing);
            vals
        })
        .collect();
    let sample: Vec<Vec<f64>> = (0..cfg.samples)
        .map(|_| {
            support
                .iter()
                .map(|s| s[rng.gen_range(0..s.len())])
                .collect()
        })
        .collect();
    let preds: Vec<f64> = sample.iter().map(|p| predict(p)).collect();
    let total = variance(&preds);
    let mut out: Vec<Importance> = table
        .params
        .iter()
        .enumerate()
        .map(|(j, p)| {
            let effect: Vec<f64> = support[j]
                .iter()
                .map(|&v| {
                    let mut point = vec![0.0; d];
                    sample
                        .iter()
                        .map(|s| {
                            point.copy_from_slice(s);
                            point[j] = v;
                            predict(&point)
                        })
                        .sum::<f64>()
                        / sample.len() as f64
                })
                .collect();
            let fraction = if total > 0.0 {
                (variance(&effect) / total).clamp(0.0, 1.0)
            } else {
                0.0
            };
            Importance {
                name: p.name.clone(),
                fraction,
            }
        })
        .collect();
    out.sort_by(|a, b| b.fraction.total_cmp(&a.fraction));
    Ok(out)
}

/// Population variance.
fn variance(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{Arm, Stage};
    use crate::hpo::trials::ParamColumn;

    /// A table of `n` uniform random points of [0,1]^3 scored by `f`.
    fn synthetic(n: usize, f: impl Fn(&[f64]) -> f64) -> TrialTable {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let points: Vec<[f64; 3]> = (0..n).map(|_| [rng.gen(), rng.gen(), rng.gen()]).collect();
        TrialTable {
            stage: Stage::Search(Arm::Stage2),
            epochs: 1,
            trials: (0..n).collect(),
            params: (0..3)
                .map(|j| ParamColumn {
                    name: format!("x{j}"),
                    kind: ParamKind::Numeric { log: false },
                    values: points.iter().map(|p| p[j]).collect(),
                })
                .collect(),
            scores: points.iter().map(|p| f(p)).collect(),
        }
    }

    fn fraction(imp: &[Importance], name: &str) -> f64 {
        imp.iter().find(|i| i.name == name).unwrap().fraction
    }

    #[test]
    fn importance_of_an_additive_function_matches_its_variance_shares() {
        // f = 3 x0 + 2 x1 on the unit cube: Var = (9 + 4)/12, so the true first-order
        // shares are 9/13 = 0.692, 4/13 = 0.308 and 0 for x2.
        let t = synthetic(300, |p| 3.0 * p[0] + 2.0 * p[1]);
        let imp = importance(&t, &ImportanceConfig::default()).unwrap();
        assert_eq!(imp[0].name, "x0");
        assert_eq!(imp[1].name, "x1");
        assert!((fraction(&imp, "x0") - 9.0 / 13.0).abs() < 0.08, "{imp:?}");
        assert!((fraction(&imp, "x1") - 4.0 / 13.0).abs() < 0.08, "{imp:?}");
        assert!(fraction(&imp, "x2") < 0.03, "{imp:?}");
    }

    #[test]
    fn importance_of_a_pure_interaction_is_not_first_order() {
        // f = (x0 - 0.5)(x1 - 0.5): no main effect at all, only interaction.
        let t = synthetic(400, |p| (p[0] - 0.5) * (p[1] - 0.5));
        let imp = importance(&t, &ImportanceConfig::default()).unwrap();
        let sum: f64 = imp.iter().map(|i| i.fraction).sum();
        assert!(sum < 0.3, "{imp:?}");
    }

    #[test]
    fn importance_of_a_categorical_parameter() {
        let mut t = synthetic(120, |_| 0.0);
        // x2 becomes a category that alone decides the score.
        t.params[2].kind = ParamKind::Categorical {
            labels: vec!["a".into(), "b".into(), "c".into()],
        };
        for i in 0..t.len() {
            let c = (i % 3) as f64;
            t.params[2].values[i] = c;
            t.scores[i] = 10.0 * c;
        }
        let imp = importance(&t, &ImportanceConfig::default()).unwrap();
        assert_eq!(imp[0].name, "x2");
        assert!(imp[0].fraction > 0.9, "{imp:?}");
    }

    #[test]
    fn importance_refuses_too_few_trials() {
        let t = synthetic(3, |p| p[0]);
        let err = importance(&t, &ImportanceConfig::default()).unwrap_err();
        assert!(err.to_string().contains("3 trials"), "{err}");
    }
}
