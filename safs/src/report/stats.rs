//! Summary statistics over seeds: mean, sample standard deviation and a Student-t
//! confidence interval for the mean.
//!
//! For `n` values with mean `m` and sample standard deviation `s` (ddof 1), the two-sided
//! `1 - a` interval is `m -/+ t(1 - a/2, n - 1) * s / sqrt(n)`. The t quantile is found by
//! bisection on the t distribution's CDF, written with the regularised incomplete beta
//! function (Numerical Recipes' continued fraction, eq. 6.4.9).

use serde::{Deserialize, Serialize};

/// Mean, spread and confidence interval of a handful of values (one per seed).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (ddof 1); `None` below two values.
    pub std: Option<f64>,
    /// Half-width of the 95% Student-t interval of the mean; `None` below two values.
    pub ci95: Option<f64>,
}

impl Summary {
    /// The summary of `values` (`None` when empty).
    pub fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| {
            let ss: f64 = values.iter().map(|x| (x - mean).powi(2)).sum();
            (ss / (n - 1) as f64).sqrt()
        });
        let ci95 = std.map(|s| t_quantile(0.975, (n - 1) as f64) * s / (n as f64).sqrt());
        Some(Summary { n, mean, std, ci95 })
    }

    /// The interval's ends, `(mean - ci95, mean + ci95)`.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.ci95.map(|h| (self.mean - h, self.mean + h))
    }

    /// `mean ± half-width` with `digits` decimals (just the mean for one value).
    pub fn display(&self, digits: usize) -> String {
        match self.ci95 {
            Some(h) => format!("{:.digits$} ± {:.digits$}", self.mean, h),
            None => format!("{:.digits$}", self.mean),
        }
    }
}

/// `ln Gamma(x)` for `x > 0` (Lanczos, g = 7, n = 9; about 15 digits).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Continued fraction of the incomplete beta function (modified Lentz).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..=300 {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        d = if d.abs() < TINY { TINY } else { d };
        c = 1.0 + aa / c;
        c = if c.abs() < TINY { TINY } else { c };
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-15 {
            break;
        }
    }
    h
}

/// The regularised incomplete beta function `I_x(a, b)`.
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
}

/// The CDF of Student's t distribution with `df` degrees of freedom.
pub fn t_cdf(t: f64, df: f64) -> f64 {
    let tail = 0.5 * inc_beta(df / 2.0, 0.5, df / (df + t * t));
    if t >= 0.0 {
        1.0 - tail
    } else {
        tail
    }
}

/// The `p` quantile of Student's t distribution with `df` degrees of freedom (`p` in (0, 1)).
pub fn t_quantile(p: f64, df: f64) -> f64 {
    let (mut lo, mut hi) = (-1e6, 1e6);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

/// Spearman's rank correlation of paired values (ties get their average rank, as
/// `scipy.stats.spearmanr`); `None` below two pairs, on unequal lengths, on a NaN, or when
/// either side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 || a.iter().chain(b).any(|v| v.is_nan()) {
        return None;
    }
    pearson(&ranks(a), &ranks(b))
}

/// Ranks 1..n, tied values sharing the mean of their positions.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut r = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        let mean_rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            r[i] = mean_rank;
        }
        start = end;
    }
    r
}

fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    (va > 0.0 && vb > 0.0).then(|| cov / (va * vb).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_published_tables() {
        // Two-sided 95% critical values (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
        for (df, want) in [
            (1.0, 12.706),
            (2.0, 4.303),
            (4.0, 2.776),
            (9.0, 2.262),
            (19.0, 2.093),
            (30.0, 2.042),
            (100.0, 1.984),
        ] {
            let got = t_quantile(0.975, df);
            assert!((got - want).abs() < 5e-4, "df {df}: {got} vs {want}");
        }
        // More digits for df 4: 2.7764451051977987 (scipy.stats.t.ppf(0.975, 4)).
        assert!((t_quantile(0.975, 4.0) - 2.776_445_105_197_799).abs() < 1e-9);
        assert!((t_cdf(0.0, 3.0) - 0.5).abs() < 1e-15);
        // df 1 is the Cauchy distribution: CDF(1) = 3/4.
        assert!((t_cdf(1.0, 1.0) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn summary_by_hand() {
        // 60, 62, 64: mean 62, s = 2, half-width 4.303 * 2 / sqrt(3) = 4.9687.
        let s = Summary::of(&[60.0, 62.0, 64.0]).unwrap();
        assert_eq!((s.n, s.mean), (3, 62.0));
        assert!((s.std.unwrap() - 2.0).abs() < 1e-12);
        assert!((s.ci95.unwrap() - 4.302_652_729_911_275 * 2.0 / 3f64.sqrt()).abs() < 1e-9);
        let (lo, hi) = s.interval().unwrap();
        assert!((lo - 57.0313).abs() < 1e-3 && (hi - 66.9687).abs() < 1e-3);
        assert_eq!(s.display(2), "62.00 ± 4.97");
        let one = Summary::of(&[41.5]).unwrap();
        assert_eq!(
            (one.std, one.ci95, one.display(1)),
            (None, None, "41.5".to_string())
        );
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn spearman_by_hand_with_ties() {
        // Ranks a = [1, 2.5, 2.5, 4], b = [2, 1, 4, 3]; Pearson of the ranks:
        // deviations [-1.5, 0, 0, 1.5] and [-0.5, -1.5, 1.5, 0.5]: cov 0.75 + 0.75 = 1.5,
        // var 4.5 and 5, rho = 1.5 / sqrt(22.5) = 0.316228 (scipy.stats.spearmanr agrees).
        let rho = spearman(&[1.0, 5.0, 5.0, 9.0], &[20.0, 10.0, 40.0, 30.0]).unwrap();
        assert!((rho - 1.5 / 22.5f64.sqrt()).abs() < 1e-12, "{rho}");
        let up = spearman(&[1.0, 2.0, 3.0], &[10.0, 100.0, 1000.0]).unwrap();
        let down = spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]).unwrap();
        assert_eq!((up, down), (1.0, -1.0));
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
        assert_eq!(spearman(&[1.0], &[1.0]), None);
        assert_eq!(spearman(&[1.0, f64::NAN], &[1.0, 2.0]), None);
    }
}
