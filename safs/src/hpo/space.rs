//! The search space: named parameters with a domain, an optional condition on a categorical
//! parent, validation, and sampling from the prior (uniform, or log-uniform when `log`).
//!
//! Parameters are kept in declaration order and a condition's parent must be declared before
//! the child, so declaration order is a dependency order: walking the parameters front to back
//! always decides a parent before its children (sampling and TPE rely on this).
//!
//! Numeric domains share an *internal scale* used by sampling and by TPE's Parzen estimators:
//! the value itself, or its natural log when `log`; an `Int` domain covers
//! `[low - 0.5, high + 0.5]` on that scale and is rounded back, so every integer gets an equal
//! share of the (log-)uniform prior mass around it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One parameter value.
///
/// Untagged, and deserialisation tries the variants in declaration order: a JSON/TOML integer
/// becomes `Int`, any other number `Float`, a string `Cat`. `serde_json` writes `Float(3.0)` as
/// `3.0`, so floats round-trip as floats and integers as integers. (Without its
/// `float_roundtrip` feature `serde_json` may read a float back 1 ulp off; TOML is exact.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A value of an `Int` domain.
    Int(i64),
    /// A value of a `Float` domain.
    Float(f64),
    /// A choice of a `Categorical` domain.
    Cat(String),
}

impl Value {
    /// The number as `f64` (`Int` or `Float`), `None` for a category.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            Value::Cat(_) => None,
        }
    }

    /// The integer of an `Int` value.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The choice of a `Cat` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Cat(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Cat(s) => write!(f, "{s}"),
        }
    }
}

/// A configuration: the value of every *active* parameter, by name (inactive ones are absent).
pub type Config = BTreeMap<String, Value>;

/// The values a parameter can take.
#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    /// One of a list of names.
    Categorical(Vec<String>),
    /// A real in `[low, high]`, log-uniform when `log`.
    Float {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
        /// Sample (and model) on a log scale; needs `low > 0`.
        log: bool,
    },
    /// An integer in `low..=high`, log-uniform when `log`.
    Int {
        /// Lower bound (inclusive).
        low: i64,
        /// Upper bound (inclusive).
        high: i64,
        /// Sample (and model) on a log scale; needs `low > 0`.
        log: bool,
    },
}

impl Domain {
    /// The bounds of a numeric domain on the internal scale (see the module docs).
    pub(crate) fn internal_bounds(&self) -> Option<(f64, f64)> {
        match *self {
            Domain::Categorical(_) => None,
            Domain::Float { low, high, log } => Some(scale(low, high, log)),
            Domain::Int { low, high, log } => Some(scale(low as f64 - 0.5, high as f64 + 0.5, log)),
        }
    }

    /// A numeric value on the internal scale.
    pub(crate) fn internal(&self, value: &Value) -> Option<f64> {
        let x = value.as_f64()?;
        match *self {
            Domain::Float { log, .. } | Domain::Int { log, .. } => {
                Some(if log { x.ln() } else { x })
            }
            Domain::Categorical(_) => None,
        }
    }

    /// The value at internal coordinate `u`, rounded (`Int`) and clamped into the domain.
    pub(crate) fn value_at(&self, u: f64) -> Value {
        match *self {
            Domain::Float { low, high, log } => {
                Value::Float((if log { u.exp() } else { u }).clamp(low, high))
            }
            Domain::Int { low, high, log } => {
                let x = (if log { u.exp() } else { u }).round();
                Value::Int((x as i64).clamp(low, high))
            }
            Domain::Categorical(_) => panic!("value_at on a categorical domain"),
        }
    }

    /// Draws a value from the prior: uniform choice, or uniform on the internal scale.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Value {
        match self {
            Domain::Categorical(choices) => {
                Value::Cat(choices[rng.gen_range(0..choices.len())].clone())
            }
            _ => {
                let (lo, hi) = self.internal_bounds().expect("numeric domain");
                self.value_at(rng.gen_range(lo..hi))
            }
        }
    }

    /// Whether `value` has the domain's kind and lies inside it.
    pub fn contains(&self, value: &Value) -> bool {
        match (self, value) {
            (Domain::Categorical(c), Value::Cat(s)) => c.contains(s),
            (Domain::Float { low, high, .. }, Value::Float(x)) => (*low..=*high).contains(x),
            (Domain::Int { low, high, .. }, Value::Int(i)) => (*low..=*high).contains(i),
            _ => false,
        }
    }
}

fn scale(low: f64, high: f64, log: bool) -> (f64, f64) {
    if log {
        (low.ln(), high.ln())
    } else {
        (low, high)
    }
}

/// A parameter is active only when its parent is active and takes one of `values`.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    /// The name of a categorical parameter declared earlier.
    pub parent: String,
    /// The parent's choices that activate the child.
    pub values: Vec<String>,
}

/// One named parameter of the space.
#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    /// Unique name (the key in a [`Config`]).
    pub name: String,
    /// The values it can take.
    pub domain: Domain,
    /// When it is active; always when `None`.
    pub condition: Option<Condition>,
}

/// An ordered list of parameters (parents before children); build it with the chained methods.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Space {
    params: Vec<Param>,
}

impl Space {
    /// An empty space.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a parameter.
    pub fn with(mut self, param: Param) -> Self {
        self.params.push(param);
        self
    }

    /// Appends an unconditional categorical parameter.
    pub fn categorical(self, name: &str, choices: &[&str]) -> Self {
        let choices = choices.iter().map(|c| c.to_string()).collect();
        self.push(name, Domain::Categorical(choices))
    }

    /// Appends an unconditional float parameter in `[low, high]`.
    pub fn float(self, name: &str, low: f64, high: f64, log: bool) -> Self {
        self.push(name, Domain::Float { low, high, log })
    }

    /// Appends an unconditional integer parameter in `low..=high`.
    pub fn int(self, name: &str, low: i64, high: i64, log: bool) -> Self {
        self.push(name, Domain::Int { low, high, log })
    }

    /// Makes the last parameter active only when `parent` takes one of `values`.
    pub fn when(mut self, parent: &str, values: &[&str]) -> Self {
        let last = self
            .params
            .last_mut()
            .expect("when() needs a parameter before it");
        last.condition = Some(Condition {
            parent: parent.to_string(),
            values: values.iter().map(|v| v.to_string()).collect(),
        });
        self
    }

    fn push(self, name: &str, domain: Domain) -> Self {
        self.with(Param {
            name: name.to_string(),
            domain,
            condition: None,
        })
    }

    /// The parameters in declaration (= dependency) order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The parameter called `name`.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.params.iter().position(|p| p.name == name)
    }

    /// An [`Error::Config`] naming the first ill-formed parameter.
    pub fn validate(&self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for (i, p) in self.params.iter().enumerate() {
            let bad = |msg: String| Err(Error::Config(format!("parameter '{}': {msg}", p.name)));
            if p.name.is_empty() || !seen.insert(p.name.as_str()) {
                return bad("the name is empty or used twice".into());
            }
            match &p.domain {
                Domain::Categorical(c) => {
                    let distinct: BTreeSet<_> = c.iter().collect();
                    if c.is_empty() || distinct.len() != c.len() {
                        return bad(format!("choices {c:?} must be non-empty and distinct"));
                    }
                }
                Domain::Float { low, high, log } => {
                    if !(low.is_finite() && high.is_finite() && low < high) {
                        return bad(format!("low = {low} must be finite and < high = {high}"));
                    }
                    if *log && *low <= 0.0 {
                        return bad(format!("log scale needs low > 0 (low = {low})"));
                    }
                }
                Domain::Int { low, high, log } => {
                    if low >= high {
                        return bad(format!("low = {low} must be < high = {high}"));
                    }
                    if *log && *low <= 0 {
                        return bad(format!("log scale needs low > 0 (low = {low})"));
                    }
                }
            }
            if let Some(c) = &p.condition {
                let parent = match self.index(&c.parent) {
                    None => return bad(format!("condition parent '{}' is unknown", c.parent)),
                    Some(j) if j >= i => {
                        return bad(format!(
                            "condition parent '{}' must be declared first",
                            c.parent
                        ))
                    }
                    Some(j) => &self.params[j],
                };
                let Domain::Categorical(choices) = &parent.domain else {
                    return bad(format!(
                        "condition parent '{}' is not categorical",
                        c.parent
                    ));
                };
                if c.values.is_empty() || c.values.iter().any(|v| !choices.contains(v)) {
                    return bad(format!(
                        "condition values {:?} must be non-empty choices of '{}' {choices:?}",
                        c.values, c.parent
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether parameter `name` is active in `config` (its parent chain is set and matches);
    /// `false` for an unknown name.
    pub fn is_active(&self, name: &str, config: &Config) -> bool {
        self.index(name).is_some_and(|i| self.active_at(i, config))
    }

    /// [`Space::is_active`] by index; parents must come first (cycles are never followed).
    pub(crate) fn active_at(&self, i: usize, config: &Config) -> bool {
        let Some(c) = &self.params[i].condition else {
            return true;
        };
        match self.index(&c.parent) {
            Some(j) if j < i => {
                self.active_at(j, config)
                    && config
                        .get(&c.parent)
                        .and_then(Value::as_str)
                        .is_some_and(|v| c.values.iter().any(|w| w == v))
            }
            _ => false,
        }
    }

    /// Draws a configuration from the prior; inactive parameters are absent.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Config {
        let mut config = Config::new();
        for (i, p) in self.params.iter().enumerate() {
            if self.active_at(i, &config) {
                config.insert(p.name.clone(), p.domain.sample(rng));
            }
        }
        config
    }

    /// An [`Error::Config`] unless `config` sets every active parameter (all missing ones are
    /// named) with a value inside its domain and has no unknown keys; inactive keys are ignored.
    pub fn check(&self, config: &Config) -> Result<()> {
        if let Some(k) = config.keys().find(|k| self.get(k).is_none()) {
            return Err(Error::Config(format!("unknown hyperparameter '{k}'")));
        }
        let mut missing = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            if !self.active_at(i, config) {
                continue;
            }
            match config.get(&p.name) {
                None => missing.push(p.name.as_str()),
                Some(v) if !p.domain.contains(v) => {
                    return Err(Error::Config(format!(
                        "hyperparameter '{}' = {v} is outside {:?}",
                        p.name, p.domain
                    )))
                }
                Some(_) => {}
            }
        }
        if !missing.is_empty() {
            return Err(Error::Config(format!(
                "missing hyperparameters: {}",
                missing.join(", ")
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn tree() -> Space {
        Space::new()
            .categorical("opt", &["a", "b", "c"])
            .float("x", 1e-4, 1.0, true)
            .when("opt", &["b"])
            .categorical("mode", &["p", "q"])
            .when("opt", &["b", "c"])
            .int("k", 1, 5, false)
            .when("mode", &["q"])
    }

    fn err(space: Space) -> String {
        match space.validate() {
            Err(Error::Config(m)) => m,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn validation_names_the_parameter() {
        tree().validate().unwrap();
        let m = err(Space::new().float("lr", 1.0, 1.0, false));
        assert!(m.contains("'lr'") && m.contains("< high"), "{m}");
        let m = err(Space::new().int("n", 5, 2, false));
        assert!(m.contains("'n'"), "{m}");
        let m = err(Space::new().float("lr", 0.0, 1.0, true));
        assert!(m.contains("'lr'") && m.contains("log"), "{m}");
        let m = err(Space::new().int("n", 0, 3, true));
        assert!(m.contains("'n'") && m.contains("log"), "{m}");
        let m = err(Space::new()
            .float("m", 0.0, 1.0, false)
            .when("opt", &["sgd"]));
        assert!(m.contains("'m'") && m.contains("unknown"), "{m}");
        let m = err(Space::new()
            .float("p", 0.0, 1.0, false)
            .float("m", 0.0, 1.0, false)
            .when("p", &["x"]));
        assert!(m.contains("'m'") && m.contains("not categorical"), "{m}");
        let m = err(Space::new()
            .categorical("o", &["a"])
            .float("m", 0.0, 1.0, false)
            .when("o", &["z"]));
        assert!(m.contains("'m'"), "{m}");
        let m = err(Space::new()
            .float("m", 0.0, 1.0, false)
            .when("o", &["a"])
            .categorical("o", &["a"]));
        assert!(m.contains("declared first"), "{m}");
        let m = err(Space::new().categorical("o", &[]));
        assert!(m.contains("'o'"), "{m}");
        let m = err(Space::new().categorical("o", &["a"]).int("o", 1, 2, false));
        assert!(m.contains("twice"), "{m}");
    }

    #[test]
    fn conditional_params_present_exactly_when_active() {
        let space = tree();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut seen_k = 0;
        let mut seen_x = 0;
        for _ in 0..2000 {
            let c = space.sample(&mut rng);
            let opt = c["opt"].as_str().unwrap();
            assert_eq!(c.contains_key("x"), opt == "b", "{c:?}");
            assert_eq!(c.contains_key("mode"), opt != "a", "{c:?}");
            let k_active = c.get("mode").and_then(Value::as_str) == Some("q");
            assert_eq!(c.contains_key("k"), k_active, "{c:?}");
            for name in ["opt", "x", "mode", "k"] {
                assert_eq!(
                    space.is_active(name, &c),
                    c.contains_key(name),
                    "{name} {c:?}"
                );
            }
            space.check(&c).unwrap();
            seen_k += k_active as usize;
            seen_x += c.contains_key("x") as usize;
        }
        // P(k active) = 2/3 * 1/2, P(x active) = 1/3.
        assert!((550..800).contains(&seen_k), "{seen_k}");
        assert!((550..800).contains(&seen_x), "{seen_x}");
        assert!(!space.is_active("nope", &Config::new()));
    }

    #[test]
    fn log_float_in_range_and_covers_decades() {
        let d = Domain::Float {
            low: 1e-5,
            high: 1.0,
            log: true,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut per_decade = [0usize; 5];
        for _ in 0..5000 {
            let x = d.sample(&mut rng).as_f64().unwrap();
            assert!((1e-5..=1.0).contains(&x), "{x}");
            per_decade[((-x.log10()).floor() as usize).min(4)] += 1;
        }
        // Log-uniform: about 1000 per decade; uniform would put ~90% in the top decade.
        for n in per_decade {
            assert!((850..1150).contains(&n), "{per_decade:?}");
        }
    }

    #[test]
    fn int_bounds_inclusive() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for log in [false, true] {
            let d = Domain::Int {
                low: 1,
                high: 4,
                log,
            };
            let mut counts = [0usize; 4];
            for _ in 0..4000 {
                let i = d.sample(&mut rng).as_i64().unwrap();
                assert!((1..=4).contains(&i), "{i}");
                counts[(i - 1) as usize] += 1;
            }
            assert!(counts.iter().all(|&n| n > 200), "log={log} {counts:?}");
            if !log {
                assert!(
                    counts.iter().all(|&n| (850..1150).contains(&n)),
                    "{counts:?}"
                );
            }
        }
    }

    #[test]
    fn check_names_missing_and_bad_values() {
        let space = tree();
        let mut c = Config::new();
        c.insert("opt".into(), Value::Cat("b".into()));
        let m = space.check(&c).unwrap_err().to_string();
        assert!(m.contains("x") && m.contains("mode"), "{m}");
        c.insert("x".into(), Value::Float(2.0));
        c.insert("mode".into(), Value::Cat("p".into()));
        let m = space.check(&c).unwrap_err().to_string();
        assert!(m.contains("'x'"), "{m}");
        c.insert("x".into(), Value::Float(0.5));
        space.check(&c).unwrap();
        c.insert("zzz".into(), Value::Int(1));
        assert!(space.check(&c).unwrap_err().to_string().contains("zzz"));
    }

    #[test]
    fn value_json_round_trip() {
        let mut c = Config::new();
        c.insert("f".into(), Value::Float(3.0));
        c.insert("g".into(), Value::Float(1e-4));
        c.insert("i".into(), Value::Int(3));
        c.insert("s".into(), Value::Cat("adam".into()));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, r#"{"f":3.0,"g":0.0001,"i":3,"s":"adam"}"#);
        let back: Config = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
