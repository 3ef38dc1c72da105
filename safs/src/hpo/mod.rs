//! Stage 2 of SAFS: hyperparameter optimisation wrapped around fine-tuning (the paper used
//! SMAC; here TPE or random search over a conditional [`Space`]).
//!
//! [`Optimizer`] is the ask/tell form and [`run_hpo`] the loop built on it; [`run_hpo_at`]
//! is the multi-fidelity loop (BOHB: Hyperband brackets, TPE fitted per rung). Everything is
//! deterministic: the configurations proposed depend only on the seed (one ChaCha8 stream) and
//! the scores told so far, so a killed run resumes by replaying memoised scores by trial index.
//!
//! ```toml
//! [hpo]
//! name = "tpe"
//! startup_trials = 5
//! candidates = 24
//! gamma = 0.25
//! ```

mod bohb;
pub mod importance;
pub mod random;
pub mod safs_space;
pub mod space;
pub mod tpe;
pub mod trials;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

pub use bohb::run_hpo_at;
pub use importance::{importance, Importance, ImportanceConfig};
pub use safs_space::{flatten_config, reference_space, safs_space, train_config_from, HpoSpace};
pub use space::{Condition, Config, Domain, Param, Space, Value};
pub use trials::{ParamColumn, ParamKind, TrialTable};

use crate::{Error, Result};

fn default_startup_trials() -> usize {
    5
}
fn default_candidates() -> usize {
    24
}
fn default_gamma() -> f64 {
    0.25
}

/// The search strategy (the `[hpo]` table of an experiment, tagged by `name`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum HpoMethod {
    /// Tree-structured Parzen Estimator (see [`tpe`]).
    Tpe {
        /// Random trials before the model is used.
        #[serde(default = "default_startup_trials")]
        startup_trials: usize,
        /// Candidates drawn from `l(x)` per proposal.
        #[serde(default = "default_candidates")]
        candidates: usize,
        /// Fraction of trials counted as good, in `(0, 1]`.
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// Independent draws from the prior.
    Random,
}

impl Default for HpoMethod {
    fn default() -> Self {
        HpoMethod::Tpe {
            startup_trials: default_startup_trials(),
            candidates: default_candidates(),
            gamma: default_gamma(),
        }
    }
}

impl HpoMethod {
    /// The method's name as written in TOML.
    pub fn name(&self) -> &'static str {
        match self {
            HpoMethod::Tpe { .. } => "tpe",
            HpoMethod::Random => "random",
        }
    }

    /// An [`Error::Config`] naming the first value out of range.
    pub fn validate(&self) -> Result<()> {
        if let HpoMethod::Tpe {
            candidates, gamma, ..
        } = *self
        {
            if candidates == 0 {
                return Err(Error::Config("hpo tpe: candidates must be >= 1".into()));
            }
            if !(gamma > 0.0 && gamma <= 1.0) {
                return Err(Error::Config(format!(
                    "hpo tpe: gamma = {gamma} must be in (0, 1]"
                )));
            }
        }
        Ok(())
    }
}

/// One evaluated configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Position in the run, from 0.
    pub index: usize,
    /// The hyperparameters tried.
    pub config: Config,
    /// The objective's score (larger is better).
    pub score: f64,
    /// Multi-fidelity: the epochs at which this trial was stopped (its score is from then);
    /// absent when it trained the full fine-tune.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<usize>,
}

/// The outcome of [`run_hpo`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HpoResult {
    /// The first trial with the highest score.
    pub best: Trial,
    /// Every trial in order.
    pub trials: Vec<Trial>,
}

/// Ask/tell optimiser: [`Optimizer::ask`] proposes, [`Optimizer::tell`] records the score.
#[derive(Clone, Debug)]
pub struct Optimizer {
    method: HpoMethod,
    space: Space,
    rng: ChaCha8Rng,
    trials: Vec<Trial>,
}

impl Optimizer {
    /// Validates the method and the space and seeds the generator.
    pub fn new(method: &HpoMethod, space: &Space, seed: u64) -> Result<Self> {
        method.validate()?;
        space.validate()?;
        Ok(Optimizer {
            method: method.clone(),
            space: space.clone(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            trials: Vec::new(),
        })
    }

    /// The next configuration to evaluate (random until TPE's start-up trials are told).
    pub fn ask(&mut self) -> Config {
        match self.method {
            HpoMethod::Tpe {
                startup_trials,
                candidates,
                gamma,
            } if self.trials.len() >= startup_trials.max(1) => {
                tpe::suggest(&self.space, &self.trials, gamma, candidates, &mut self.rng)
            }
            _ => random::suggest(&self.space, &mut self.rng),
        }
    }

    /// Records a score (larger is better; NaN ranks last) and returns the new trial. The
    /// configuration need not come from [`Optimizer::ask`] (e.g. a warm start).
    pub fn tell(&mut self, config: Config, score: f64) -> &Trial {
        let index = self.trials.len();
        self.trials.push(Trial {
            index,
            config,
            score,
            stopped_at: None,
        });
        &self.trials[index]
    }

    /// Every trial told so far.
    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }

    /// The first trial with the highest score (NaN ranks last).
    pub fn best(&self) -> Option<&Trial> {
        self.trials
            .iter()
            .fold(None, |best: Option<&Trial>, t| match best {
                Some(b) if tpe::rank_key(t.score) <= tpe::rank_key(b.score) => Some(b),
                _ => Some(t),
            })
    }
}

/// Runs `trials` trials maximising `objective(index, config)`, calling `on_trial` after each;
/// an objective error aborts the run (a failed trial should return a low score instead).
pub fn run_hpo(
    method: &HpoMethod,
    space: &Space,
    trials: usize,
    seed: u64,
    objective: &mut dyn FnMut(usize, &Config) -> Result<f64>,
    on_trial: &mut dyn FnMut(&Trial),
) -> Result<HpoResult> {
    run_hpo_from(method, space, trials, seed, &[], objective, on_trial)
}

/// [`run_hpo`] whose first trials are `first` (e.g. the default configuration, as SMAC
/// evaluates it first); the method proposes the rest, having been told their scores.
pub fn run_hpo_from(
    method: &HpoMethod,
    space: &Space,
    trials: usize,
    seed: u64,
    first: &[Config],
    objective: &mut dyn FnMut(usize, &Config) -> Result<f64>,
    on_trial: &mut dyn FnMut(&Trial),
) -> Result<HpoResult> {
    if trials == 0 {
        return Err(Error::Config("hpo: trials must be >= 1".into()));
    }
    let mut opt = Optimizer::new(method, space, seed)?;
    for c in first {
        space.check(c)?;
    }
    for index in 0..trials {
        let config = match first.get(index) {
            Some(c) => c.clone(),
            None => opt.ask(),
        };
        let score = objective(index, &config)?;
        on_trial(opt.tell(config, score));
    }
    let best = opt.best().expect("at least one trial").clone();
    Ok(HpoResult {
        best,
        trials: opt.trials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An optimiser-like categorical whose best branch `b` needs a conditional log-scale float
    /// near 1e-3 (`a` and `c` are flat and worse), a float peaked at 0.7 and an int peaked at
    /// 37, plus a small deterministic ripple; the optimum is about 2.0.
    fn synthetic() -> (Space, impl Fn(&Config) -> f64) {
        let space = Space::new()
            .categorical("opt", &["a", "b", "c"])
            .float("x", 1e-5, 1.0, true)
            .when("opt", &["b"])
            .float("y", 0.0, 1.0, false)
            .int("k", 1, 50, false);
        let score = |c: &Config| {
            let bump = |d: f64, w: f64| (-(d / w) * (d / w)).exp();
            let y = c["y"].as_f64().unwrap();
            let k = c["k"].as_f64().unwrap();
            let branch = match c["opt"].as_str().unwrap() {
                "a" => 0.3,
                "b" => 0.2 + 0.8 * bump(c["x"].as_f64().unwrap().log10() + 3.0, 1.0),
                _ => 0.2,
            };
            branch
                + 0.5 * bump(y - 0.7, 0.1)
                + 0.5 * bump(k - 37.0, 5.0)
                + 0.003 * (97.0 * y + 13.0 * k).sin()
        };
        (space, score)
    }

    fn best_of(method: &HpoMethod, seed: u64, trials: usize) -> f64 {
        let (space, f) = synthetic();
        let r = run_hpo(
            method,
            &space,
            trials,
            seed,
            &mut |_, c| Ok(f(c)),
            &mut |_| {},
        )
        .unwrap();
        r.best.score
    }

    #[test]
    fn tpe_beats_random_search() {
        const SEEDS: u64 = 30;
        let tpe: Vec<f64> = (0..SEEDS)
            .map(|s| best_of(&HpoMethod::default(), s, 40))
            .collect();
        let rnd: Vec<f64> = (0..SEEDS)
            .map(|s| best_of(&HpoMethod::Random, s, 40))
            .collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (mt, mr) = (mean(&tpe), mean(&rnd));
        let wins = tpe.iter().zip(&rnd).filter(|(t, r)| t > r).count();
        let msg = format!(
            "40 trials, {SEEDS} seeds: TPE mean best {mt:.4}, random mean best {mr:.4}, \
             TPE wins {wins}/{SEEDS}\nTPE {tpe:.3?}\nrandom {rnd:.3?}"
        );
        eprintln!("{msg}");
        // Random search must stay well short of the optimum (~2.0) for this to mean anything.
        assert!(mr < 1.6, "{msg}");
        assert!(mt > mr + 0.1, "{msg}");
        assert!(3 * wins >= 2 * SEEDS as usize, "{msg}");
    }

    #[test]
    fn same_seed_and_scores_give_same_configs() {
        let (space, f) = synthetic();
        let run = |seed| {
            let mut seen = Vec::new();
            run_hpo(
                &HpoMethod::default(),
                &space,
                15,
                seed,
                &mut |_, c| Ok(f(c)),
                &mut |t| seen.push(t.clone()),
            )
            .unwrap();
            seen
        };
        let a = run(3);
        assert_eq!(a, run(3));
        assert_ne!(a, run(4));
        assert_eq!(
            a.iter().map(|t| t.index).collect::<Vec<_>>(),
            (0..15).collect::<Vec<_>>()
        );
        // Different scores steer TPE elsewhere after the start-up trials, but not before.
        let flipped = run_hpo(
            &HpoMethod::default(),
            &space,
            15,
            3,
            &mut |_, c| Ok(-f(c)),
            &mut |_| {},
        )
        .unwrap();
        let same = |i: usize| flipped.trials[i].config == a[i].config;
        assert!((0..5).all(same));
        assert!(!(5..15).all(same));
    }

    #[test]
    fn ask_tell_matches_run_hpo() {
        let (space, f) = synthetic();
        let method = HpoMethod::Tpe {
            startup_trials: 3,
            candidates: 10,
            gamma: 0.3,
        };
        let r = run_hpo(&method, &space, 12, 9, &mut |_, c| Ok(f(c)), &mut |_| {}).unwrap();
        let mut opt = Optimizer::new(&method, &space, 9).unwrap();
        for _ in 0..12 {
            let c = opt.ask();
            let s = f(&c);
            opt.tell(c, s);
        }
        assert_eq!(opt.trials(), &r.trials[..]);
        assert_eq!(opt.best(), Some(&r.best));
    }

    #[test]
    fn best_is_the_earliest_maximum_and_errors_abort() {
        let space = Space::new().float("x", 0.0, 1.0, false);
        let scores = [0.5, f64::NAN, 0.9, 0.1, 0.9, 0.9];
        let r = run_hpo(
            &HpoMethod::default(),
            &space,
            6,
            1,
            &mut |i, _| Ok(scores[i]),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(r.best.index, 2);
        let mut calls = 0;
        let e = run_hpo(
            &HpoMethod::Random,
            &space,
            6,
            1,
            &mut |i, _| {
                if i == 2 {
                    Err(Error::Diverged("boom".into()))
                } else {
                    Ok(1.0)
                }
            },
            &mut |_| calls += 1,
        );
        assert!(matches!(e, Err(Error::Diverged(_))));
        assert_eq!(calls, 2);
        assert!(run_hpo(
            &HpoMethod::Random,
            &space,
            0,
            1,
            &mut |_, _| Ok(0.0),
            &mut |_| {}
        )
        .is_err());
        let bad = HpoMethod::Tpe {
            startup_trials: 1,
            candidates: 0,
            gamma: 0.25,
        };
        assert!(Optimizer::new(&bad, &space, 0).is_err());
        let bad_space = Space::new().float("x", 1.0, 0.0, false);
        assert!(Optimizer::new(&HpoMethod::Random, &bad_space, 0).is_err());
    }

    #[test]
    fn serde_of_trial_and_method() {
        let (space, f) = synthetic();
        let r = run_hpo(
            &HpoMethod::default(),
            &space,
            8,
            2,
            &mut |_, c| Ok(f(c)),
            &mut |_| {},
        )
        .unwrap();
        let json = serde_json::to_string(&r).unwrap();
        let back: HpoResult = serde_json::from_str(&json).unwrap();
        // serde_json (without its `float_roundtrip` feature) may parse the last digit 1 ulp off.
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-15 * a.abs().max(b.abs());
        let same = |a: &Trial, b: &Trial| {
            a.index == b.index
                && close(a.score, b.score)
                && a.config.keys().eq(b.config.keys())
                && a.config
                    .values()
                    .zip(b.config.values())
                    .all(|(u, v)| match (u, v) {
                        (Value::Float(x), Value::Float(y)) => close(*x, *y),
                        _ => u == v,
                    })
        };
        assert!(same(&back.best, &r.best), "{json}");
        assert_eq!(back.trials.len(), r.trials.len());
        assert!(
            back.trials.iter().zip(&r.trials).all(|(a, b)| same(a, b)),
            "{json}"
        );
        assert!(
            json.contains(r#""opt":"#) && json.contains(r#""k":"#),
            "{json}"
        );
        // A lone trial, written by hand, keeps its value types.
        let t: Trial = serde_json::from_str(
            r#"{"index":3,"config":{"lr":0.001,"n":4,"w":2.0,"o":"sgd"},"score":0.5}"#,
        )
        .unwrap();
        assert_eq!(t.config["lr"], Value::Float(0.001));
        assert_eq!(t.config["n"], Value::Int(4));
        assert_eq!(t.config["w"], Value::Float(2.0));
        assert_eq!(t.config["o"], Value::Cat("sgd".into()));
        assert_eq!(
            serde_json::from_str::<Trial>(&serde_json::to_string(&t).unwrap()).unwrap(),
            t
        );

        #[derive(Debug, Deserialize, Serialize, PartialEq)]
        struct Doc {
            hpo: HpoMethod,
        }
        let doc: Doc = toml::from_str("[hpo]\nname = \"tpe\"\ngamma = 0.5\n").unwrap();
        assert_eq!(
            doc.hpo,
            HpoMethod::Tpe {
                startup_trials: 5,
                candidates: 24,
                gamma: 0.5
            }
        );
        let doc: Doc = toml::from_str("[hpo]\nname = \"random\"\n").unwrap();
        assert_eq!(doc.hpo, HpoMethod::Random);
        let d = Doc {
            hpo: HpoMethod::default(),
        };
        assert_eq!(
            toml::from_str::<Doc>(&toml::to_string(&d).unwrap()).unwrap(),
            d
        );
        assert!(toml::from_str::<Doc>("[hpo]\nname = \"tpe\"\ngama = 0.5\n").is_err());
        assert!(toml::from_str::<Doc>("[hpo]\nname = \"smac\"\n").is_err());
    }

    #[test]
    fn first_configs_run_first_and_inform_the_model() {
        let (space, f) = synthetic();
        let mut start = Config::new();
        start.insert("opt".into(), Value::Cat("b".into()));
        start.insert("x".into(), Value::Float(1e-3));
        start.insert("y".into(), Value::Float(0.7));
        start.insert("k".into(), Value::Int(37));
        let r = run_hpo_from(
            &HpoMethod::default(),
            &space,
            8,
            4,
            std::slice::from_ref(&start),
            &mut |_, c| Ok(f(c)),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(r.trials[0].config, start);
        // The given optimum stays the best, and the proposals after it are the plain run's
        // proposals shifted by one (the start trial consumed no randomness).
        assert_eq!(r.best.index, 0);
        let plain = run_hpo(
            &HpoMethod::default(),
            &space,
            8,
            4,
            &mut |_, c| Ok(f(c)),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(r.trials[1].config, plain.trials[0].config);
        // A start outside the space is refused before any trial runs.
        let mut bad = start.clone();
        bad.insert("x".into(), Value::Float(5.0));
        let mut calls = 0;
        assert!(run_hpo_from(
            &HpoMethod::default(),
            &space,
            3,
            0,
            &[bad],
            &mut |_, _| {
                calls += 1;
                Ok(0.0)
            },
            &mut |_| {}
        )
        .is_err());
        assert_eq!(calls, 0);
    }
}
