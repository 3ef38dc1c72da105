//! The Tree-structured Parzen Estimator (Bergstra et al., NeurIPS 2011), in the independent
//! form used by hyperopt and Optuna.
//!
//! Given the observed trials:
//!
//! 1. Rank them by score (best first; NaN counts as the worst, ties keep trial order) and split
//!    them into *good* (the top `ceil(gamma * n)`, at least 1) and *bad* (the rest).
//! 2. For every parameter, independently, build two densities from the trials in which that
//!    parameter is active: `l(x)` from the good ones and `g(x)` from the bad ones. A parameter
//!    without observations on one side gets the prior there, so it is drawn from the prior.
//!    * Float / Int: a Parzen estimator on the internal scale (log when `log`; see
//!      [`super::space`]): one Gaussian kernel per observation, truncated to the range, plus
//!      one uniform prior component over the range, all of weight 1. The bandwidth of a kernel
//!      is the larger of the gaps to its sorted neighbours (hyperopt's `adaptive_parzen_normal`);
//!      the outermost kernels use their inner gap only (Optuna's `consider_endpoints = False`),
//!      a lone kernel the distance to the farther range end; all are clipped to
//!      `[range / min(100, n + 1), range]` (the "magic clip").
//!      An Int is modelled as continuous over `[low - 0.5, high + 0.5]` and rounded.
//!    * Categorical: smoothed counts, `p(c) = (count(c) + 1) / (n + K)`.
//! 3. Draw `candidates` configurations from `l`, walking the parameters in declaration
//!    (= dependency) order so a child is drawn only when the drawn parent activates it, and
//!    return the first one with the largest `sum(log l(x_i) - log g(x_i))` over its active
//!    parameters.

use std::f64::consts::PI;

use rand::Rng;

use super::space::{Config, Domain, Space, Value};
use super::Trial;

/// The next configuration to try, given the trials so far (`gamma` in `(0, 1]`,
/// `candidates >= 1`); a prior draw when there are no trials yet.
pub fn suggest<R: Rng + ?Sized>(
    space: &Space,
    trials: &[Trial],
    gamma: f64,
    candidates: usize,
    rng: &mut R,
) -> Config {
    if trials.is_empty() {
        return space.sample(rng);
    }
    let mut order: Vec<usize> = (0..trials.len()).collect();
    order.sort_by(|&a, &b| rank_key(trials[b].score).total_cmp(&rank_key(trials[a].score)));
    let n_good = ((gamma * trials.len() as f64).ceil() as usize).clamp(1, trials.len());
    let (good, bad) = order.split_at(n_good);
    let pick = |idx: &[usize]| -> Vec<&Config> { idx.iter().map(|&i| &trials[i].config).collect() };
    let (good, bad) = (pick(good), pick(bad));

    let models: Vec<(Density, Density)> = space
        .params()
        .iter()
        .map(|p| {
            (
                Density::fit(&p.domain, &p.name, &good),
                Density::fit(&p.domain, &p.name, &bad),
            )
        })
        .collect();

    let mut best: Option<(f64, Config)> = None;
    for _ in 0..candidates.max(1) {
        let mut config = Config::new();
        let mut ratio = 0.0;
        for (i, (p, (l, g))) in space.params().iter().zip(&models).enumerate() {
            if !space.active_at(i, &config) {
                continue;
            }
            let value = l.sample(&p.domain, rng);
            ratio += l.log_density(&p.domain, &value) - g.log_density(&p.domain, &value);
            config.insert(p.name.clone(), value);
        }
        if best.as_ref().is_none_or(|(r, _)| ratio > *r) {
            best = Some((ratio, config));
        }
    }
    best.expect("at least one candidate").1
}

/// The score used for ranking: NaN is the worst.
pub(crate) fn rank_key(score: f64) -> f64 {
    if score.is_nan() {
        f64::NEG_INFINITY
    } else {
        score
    }
}

/// One side (`l` or `g`) of one parameter's model.
enum Density {
    /// Parzen estimator on the internal scale `[lo, hi]`: kernels `(mu, sigma)` + uniform prior.
    Parzen {
        lo: f64,
        hi: f64,
        kernels: Vec<(f64, f64)>,
    },
    /// Smoothed category probabilities, in the domain's choice order.
    Cat(Vec<f64>),
}

impl Density {
    /// Fits the density of parameter `name` to the configurations in which it is set.
    fn fit(domain: &Domain, name: &str, configs: &[&Config]) -> Self {
        let values = configs.iter().filter_map(|c| c.get(name));
        match domain {
            Domain::Categorical(choices) => {
                let mut counts = vec![1.0; choices.len()];
                for v in values {
                    if let Some(k) = v.as_str().and_then(|s| choices.iter().position(|c| c == s)) {
                        counts[k] += 1.0;
                    }
                }
                let total: f64 = counts.iter().sum();
                Density::Cat(counts.into_iter().map(|c| c / total).collect())
            }
            _ => {
                let (lo, hi) = domain.internal_bounds().expect("numeric domain");
                let mut xs: Vec<f64> = values
                    .filter_map(|v| domain.internal(v))
                    .map(|x| x.clamp(lo, hi))
                    .collect();
                xs.sort_by(f64::total_cmp);
                let range = hi - lo;
                let min_sigma = range / (xs.len() as f64 + 1.0).min(100.0);
                let kernels = (0..xs.len())
                    .map(|i| {
                        let left = i.checked_sub(1).map(|j| xs[i] - xs[j]);
                        let right = xs.get(i + 1).map(|x| x - xs[i]);
                        let sigma = match (left, right) {
                            (Some(l), Some(r)) => l.max(r),
                            (Some(gap), None) | (None, Some(gap)) => gap,
                            (None, None) => (xs[i] - lo).max(hi - xs[i]),
                        };
                        (xs[i], sigma.clamp(min_sigma, range))
                    })
                    .collect();
                Density::Parzen { lo, hi, kernels }
            }
        }
    }

    /// Draws a value: pick a mixture component by weight, then sample it.
    fn sample<R: Rng + ?Sized>(&self, domain: &Domain, rng: &mut R) -> Value {
        match (self, domain) {
            (Density::Cat(p), Domain::Categorical(choices)) => {
                let mut u = rng.gen::<f64>();
                let k = p
                    .iter()
                    .position(|&pk| {
                        u -= pk;
                        u < 0.0
                    })
                    .unwrap_or(p.len() - 1);
                Value::Cat(choices[k].clone())
            }
            (Density::Parzen { lo, hi, kernels }, _) => {
                let k = rng.gen_range(0..=kernels.len());
                let u = match kernels.get(k) {
                    None => rng.gen_range(*lo..*hi),
                    Some(&(mu, sigma)) => truncated_normal(mu, sigma, *lo, *hi, rng),
                };
                domain.value_at(u)
            }
            _ => unreachable!("density built for another domain"),
        }
    }

    /// `ln` of the (mixture) density at `value` (for an Int, at its rounded coordinate).
    fn log_density(&self, domain: &Domain, value: &Value) -> f64 {
        match (self, domain) {
            (Density::Cat(p), Domain::Categorical(choices)) => {
                let s = value.as_str().unwrap_or_default();
                choices
                    .iter()
                    .position(|c| c == s)
                    .map_or(f64::NEG_INFINITY, |k| p[k].ln())
            }
            (Density::Parzen { lo, hi, kernels }, _) => {
                let x = domain.internal(value).expect("numeric value");
                let prior = 1.0 / (hi - lo);
                let sum: f64 = kernels
                    .iter()
                    .map(|&(mu, s)| {
                        let z = (x - mu) / s;
                        let mass = normal_cdf((hi - mu) / s) - normal_cdf((lo - mu) / s);
                        (-0.5 * z * z).exp() / (s * (2.0 * PI).sqrt() * mass)
                    })
                    .sum();
                ((prior + sum) / (kernels.len() as f64 + 1.0)).ln()
            }
            _ => unreachable!("density built for another domain"),
        }
    }
}

/// A normal draw truncated to `[lo, hi]` by rejection (Box-Muller); the kernel centre lies in
/// the range and its bandwidth is at most the range, so acceptance is at least ~34%; after 100
/// rejections the last draw is clamped.
fn truncated_normal<R: Rng + ?Sized>(mu: f64, sigma: f64, lo: f64, hi: f64, rng: &mut R) -> f64 {
    let mut x = mu;
    for _ in 0..100 {
        let u1 = 1.0 - rng.gen::<f64>(); // (0, 1]
        let u2 = rng.gen::<f64>();
        x = mu + sigma * (-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos();
        if (lo..=hi).contains(&x) {
            return x;
        }
    }
    x.clamp(lo, hi)
}

/// The standard normal CDF via `erfc` (Numerical Recipes' Chebyshev fit, relative error
/// below 1.2e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = -z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let erfc_abs = t * poly.exp();
    0.5 * if x >= 0.0 { erfc_abs } else { 2.0 - erfc_abs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn normal_cdf_matches_known_values() {
        for (z, p) in [
            (0.0, 0.5),
            (1.0, 0.841_344_746),
            (-1.96, 0.024_997_895),
            (3.0, 0.998_650_102),
        ] {
            assert!((normal_cdf(z) - p).abs() < 1e-6, "{z}: {}", normal_cdf(z));
        }
    }

    #[test]
    fn parzen_density_integrates_to_one_and_peaks_at_data() {
        let domain = Domain::Float {
            low: 0.0,
            high: 10.0,
            log: false,
        };
        let obs: Vec<Config> = (0..10)
            .map(|i| 1.8 + 0.1 * i as f64)
            .chain([8.0])
            .map(|x| Config::from([("x".to_string(), Value::Float(x))]))
            .collect();
        let d = Density::fit(&domain, "x", &obs.iter().collect::<Vec<_>>());
        let n = 10_000;
        let h = 10.0 / n as f64;
        let integral: f64 = (0..n)
            .map(|i| {
                d.log_density(&domain, &Value::Float((i as f64 + 0.5) * h))
                    .exp()
                    * h
            })
            .sum();
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
        let at = |x: f64| d.log_density(&domain, &Value::Float(x));
        assert!(at(2.2) > at(5.0) + 1.0, "{} {}", at(2.2), at(5.0));
        // Samples stay in range and concentrate near the data.
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let near = (0..2000)
            .map(|_| d.sample(&domain, &mut rng).as_f64().unwrap())
            .inspect(|x| assert!((0.0..=10.0).contains(x)))
            .filter(|x| (1.0..3.5).contains(x))
            .count();
        assert!(near > 1000, "{near}");
    }

    #[test]
    fn categorical_counts_are_smoothed() {
        let domain = Domain::Categorical(vec!["a".into(), "b".into(), "c".into()]);
        let obs: Vec<Config> = ["a", "a", "b"]
            .iter()
            .map(|&s| Config::from([("o".to_string(), Value::Cat(s.into()))]))
            .collect();
        let d = Density::fit(&domain, "o", &obs.iter().collect::<Vec<_>>());
        let p = |s: &str| d.log_density(&domain, &Value::Cat(s.into())).exp();
        assert!((p("a") - 3.0 / 6.0).abs() < 1e-12);
        assert!((p("b") - 2.0 / 6.0).abs() < 1e-12);
        assert!((p("c") - 1.0 / 6.0).abs() < 1e-12);
    }
}
