//! Multi-fidelity evaluation over epochs, shared by Stage 1 and Stage 2: Hyperband's
//! brackets (Li et al., "Hyperband", JMLR 18(185), 2018) and successive halving inside each
//! (Jamieson & Talwalkar, AISTATS 2016).
//!
//! With `R` the fine-tune's epochs, `r` the minimum and `eta` the halving rate, Hyperband has
//! `s_max + 1` brackets, `s_max` the largest `s` with `r * eta^s <= R`. Bracket `s` starts
//! ```text
//! n_s = ceil((s_max + 1) / (s + 1) * eta^s)   candidates at  R * eta^-s  epochs,
//! ```
//! and each rung keeps the best `max(1, floor(n / eta))` for `eta` times more epochs, up to
//! `R`. Brackets cycle `s = s_max, s_max - 1, ..., 0, s_max, ...`; successive halving uses
//! only the most aggressive (`s = s_max`); `full` is the bracket `s = 0` of one candidate.
//!
//! ```toml
//! [fidelity]
//! name = "hyperband"      # "full" (default) | "hyperband" | "successive_halving"
//! min_epochs = 1
//! eta = 3
//! ```
//! A candidate promoted to the next rung continues its own training (the pipeline saves it
//! between rungs), so its score at `R` epochs is the one a full-fidelity evaluation gives.

mod halving;

pub use halving::{successive_halving, Outcome, RungObjective};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

fn default_min_epochs() -> usize {
    1
}
fn default_eta() -> usize {
    3
}

/// How candidates of a search are evaluated: all at full fidelity, or in brackets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fidelity {
    /// Every candidate trains the fine-tune's full epochs (the paper).
    #[default]
    Full,
    /// Hyperband: cycles through every bracket, from the most aggressive to full fidelity.
    Hyperband {
        /// Epochs of the lowest rung of the most aggressive bracket.
        #[serde(default = "default_min_epochs")]
        min_epochs: usize,
        /// Halving rate: each rung keeps 1 in `eta` for `eta` times the epochs.
        #[serde(default = "default_eta")]
        eta: usize,
    },
    /// Successive halving: every bracket is Hyperband's most aggressive one.
    SuccessiveHalving {
        /// Epochs of the lowest rung.
        #[serde(default = "default_min_epochs")]
        min_epochs: usize,
        /// Halving rate: each rung keeps 1 in `eta` for `eta` times the epochs.
        #[serde(default = "default_eta")]
        eta: usize,
    },
}

/// Reads `fidelity = "hyperband"` (the defaults) or a `[fidelity]` table.
pub fn name_or_table<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Fidelity, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Name(String),
        Table(Fidelity),
    }
    match Either::deserialize(d)? {
        Either::Table(f) => Ok(f),
        Either::Name(n) => Fidelity::from_name(&n).map_err(serde::de::Error::custom),
    }
}

/// One bracket: how many candidates start, and the epochs of each rung (the last is `R`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bracket {
    /// Candidates at the first rung.
    pub size: usize,
    /// Epochs at each rung, increasing, ending with the fine-tune's epochs.
    pub rungs: Vec<usize>,
    /// Halving rate of the promotions.
    pub eta: usize,
}

impl Bracket {
    /// How many of `n` candidates at a rung go on to the next: `max(1, floor(n / eta))`.
    pub fn keep(&self, n: usize) -> usize {
        (n / self.eta.max(1)).max(1).min(n)
    }

    /// Epochs this bracket trains for `n` first-rung candidates, each promoted candidate
    /// continuing from its previous rung.
    pub fn epochs(&self, n: usize) -> usize {
        let (mut total, mut alive, mut done) = (0, n, 0);
        for (i, &r) in self.rungs.iter().enumerate() {
            total += alive * (r - done);
            done = r;
            if i + 1 < self.rungs.len() {
                alive = self.keep(alive);
            }
        }
        total
    }
}

impl Fidelity {
    /// The fidelity of a name with the default knobs (`min_epochs = 1`, `eta = 3`).
    pub fn from_name(name: &str) -> Result<Self> {
        let (min_epochs, eta) = (default_min_epochs(), default_eta());
        match name {
            "full" => Ok(Fidelity::Full),
            "hyperband" => Ok(Fidelity::Hyperband { min_epochs, eta }),
            "successive_halving" => Ok(Fidelity::SuccessiveHalving { min_epochs, eta }),
            other => Err(Error::Config(format!(
                "fidelity '{other}'; valid: full, hyperband, successive_halving"
            ))),
        }
    }

    /// The config name ("full", "hyperband", "successive_halving").
    pub fn name(&self) -> &'static str {
        match self {
            Fidelity::Full => "full",
            Fidelity::Hyperband { .. } => "hyperband",
            Fidelity::SuccessiveHalving { .. } => "successive_halving",
        }
    }

    /// A short tag for run-folder names: `sh`, `hb` (with `-m{min_epochs}e{eta}` when
    /// those are not 1 and 3); none for `full`.
    pub fn tag(&self) -> Option<String> {
        let (name, min, eta) = match *self {
            Fidelity::Full => return None,
            Fidelity::Hyperband { min_epochs, eta } => ("hb", min_epochs, eta),
            Fidelity::SuccessiveHalving { min_epochs, eta } => ("sh", min_epochs, eta),
        };
        Some(if (min, eta) == (default_min_epochs(), default_eta()) {
            name.to_string()
        } else {
            format!("{name}-m{min}e{eta}")
        })
    }

    /// Whether every candidate trains the full epochs.
    pub fn is_full(&self) -> bool {
        matches!(self, Fidelity::Full)
    }

    /// An error naming the field unless the settings make sense for `max_epochs`-epoch
    /// fine-tunes.
    pub fn validate(&self, max_epochs: usize) -> Result<()> {
        if let Fidelity::Hyperband { min_epochs, eta }
        | Fidelity::SuccessiveHalving { min_epochs, eta } = *self
        {
            let name = self.name();
            if eta < 2 {
                return Err(Error::Config(format!(
                    "fidelity {name}: eta = {eta}; need >= 2"
                )));
            }
            if min_epochs < 1 || min_epochs > max_epochs {
                return Err(Error::Config(format!(
                    "fidelity {name}: min_epochs = {min_epochs}; need 1..={max_epochs} (the \
                     fine-tune's epochs)"
                )));
            }
        }
        Ok(())
    }

    /// `s_max`: the largest `s` with `min_epochs * eta^s <= max_epochs` (0 for `full`).
    pub fn s_max(&self, max_epochs: usize) -> usize {
        match *self {
            Fidelity::Full => 0,
            Fidelity::Hyperband { min_epochs, eta }
            | Fidelity::SuccessiveHalving { min_epochs, eta } => {
                let (mut s, mut r) = (0, min_epochs.max(1));
                while r.saturating_mul(eta.max(2)) <= max_epochs {
                    r *= eta.max(2);
                    s += 1;
                }
                s
            }
        }
    }

    /// The `k`-th bracket (from 0) of a search whose fine-tunes train `max_epochs` epochs.
    pub fn bracket(&self, k: usize, max_epochs: usize) -> Bracket {
        let s_max = self.s_max(max_epochs);
        let (s, eta) = match *self {
            Fidelity::Full => {
                return Bracket {
                    size: 1,
                    rungs: vec![max_epochs],
                    eta: 1,
                }
            }
            Fidelity::Hyperband { eta, .. } => (s_max - k % (s_max + 1), eta),
            Fidelity::SuccessiveHalving { eta, .. } => (s_max, eta),
        };
        let min = match *self {
            Fidelity::Hyperband { min_epochs, .. }
            | Fidelity::SuccessiveHalving { min_epochs, .. } => min_epochs,
            Fidelity::Full => max_epochs,
        };
        let eta_s = eta.pow(s as u32);
        let size = ((s_max + 1) * eta_s).div_ceil(s + 1);
        let mut rungs: Vec<usize> = Vec::with_capacity(s + 1);
        for i in 0..=s {
            let r = if i == s {
                max_epochs
            } else {
                let scale = eta.pow((s - i) as u32) as f64;
                ((max_epochs as f64 / scale).round() as usize).max(min)
            };
            if rungs.last().is_none_or(|&last| r > last) {
                rungs.push(r);
            }
        }
        Bracket { size, rungs, eta }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hb(min_epochs: usize, eta: usize) -> Fidelity {
        Fidelity::Hyperband { min_epochs, eta }
    }

    /// Li et al. (2018), Table 1: R = 81, eta = 3 gives brackets of 81, 34, 15, 8, 5
    /// candidates starting at 1, 3, 9, 27, 81 epochs.
    #[test]
    fn hyperband_brackets_match_the_papers_table() {
        let f = hb(1, 3);
        assert_eq!(f.s_max(81), 4);
        let got: Vec<(usize, Vec<usize>)> = (0..5)
            .map(|k| {
                let b = f.bracket(k, 81);
                (b.size, b.rungs)
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (81, vec![1, 3, 9, 27, 81]),
                (34, vec![3, 9, 27, 81]),
                (15, vec![9, 27, 81]),
                (8, vec![27, 81]),
                (5, vec![81]),
            ]
        );
        // The cycle starts over, and each rung keeps floor(n / 3): 81 -> 27 -> 9 -> 3 -> 1.
        assert_eq!(f.bracket(5, 81), f.bracket(0, 81));
        let b = f.bracket(0, 81);
        assert_eq!(
            (b.keep(81), b.keep(27), b.keep(3), b.keep(2)),
            (27, 9, 1, 1)
        );
        // Epochs with continuation: 81*1 + 27*2 + 9*6 + 3*18 + 1*54.
        assert_eq!(b.epochs(81), 81 + 54 + 54 + 54 + 54);
    }

    /// The cpu budget's 10-epoch fine-tunes: rungs round R / eta^i to whole epochs.
    #[test]
    fn rungs_round_and_successive_halving_repeats_the_first_bracket() {
        let sh = Fidelity::SuccessiveHalving {
            min_epochs: 1,
            eta: 3,
        };
        let b = sh.bracket(7, 10);
        assert_eq!((b.size, b.rungs.clone()), (9, vec![1, 3, 10]));
        assert_eq!(b.epochs(9), 9 + 3 * 2 + 7);
        assert_eq!(b.epochs(2), 2 + 2 + 7);
        assert_eq!(hb(1, 3).bracket(1, 10).rungs, vec![3, 10]);
        assert_eq!(hb(1, 3).bracket(1, 10).size, 5);
        // 50 epochs (the paper budget): 27 at 2, 9 at 6, 3 at 17, 1 at 50.
        assert_eq!(hb(1, 3).bracket(0, 50).rungs, vec![2, 6, 17, 50]);
        assert_eq!(hb(3, 3).bracket(0, 10).rungs, vec![3, 10]);
        assert_eq!(hb(3, 3).bracket(0, 10).size, 3);
        assert_eq!(Fidelity::Full.bracket(3, 10).rungs, vec![10]);
        assert_eq!(Fidelity::Full.bracket(3, 10).size, 1);
        assert_eq!(Fidelity::Full.tag(), None);
        assert_eq!(sh.tag().as_deref(), Some("sh"));
        assert_eq!(hb(2, 4).tag().as_deref(), Some("hb-m2e4"));
    }

    #[test]
    fn bad_settings_name_the_field() {
        let e = hb(1, 1).validate(10).unwrap_err().to_string();
        assert!(e.contains("eta"), "{e}");
        let e = hb(11, 3).validate(10).unwrap_err().to_string();
        assert!(e.contains("min_epochs") && e.contains("1..=10"), "{e}");
        let f: Fidelity = toml::from_str("name = \"hyperband\"").unwrap();
        assert_eq!(f, hb(1, 3));
        assert!(toml::from_str::<Fidelity>("name = \"hyperband\"\nrate = 2").is_err());
        #[derive(Deserialize)]
        struct File {
            #[serde(deserialize_with = "name_or_table")]
            fidelity: Fidelity,
        }
        let f: File = toml::from_str("fidelity = \"successive_halving\"").unwrap();
        assert_eq!(f.fidelity.name(), "successive_halving");
        let f: File = toml::from_str("[fidelity]\nname = \"hyperband\"\neta = 4").unwrap();
        assert_eq!(f.fidelity, hb(1, 4));
        let e = toml::from_str::<File>("fidelity = \"bohb\"")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("bohb"), "{e}");
    }
}
