//! The sweep file (TOML), read and checked.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One axis of a sweep: an experiment field, by its dotted path, and the values it takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Axis {
    /// The field's path in the experiment file, e.g. `seed` or `prune.rate`.
    pub field: String,
    /// The values, in sweep order.
    pub values: Vec<toml::Value>,
}

/// What one task asks of the machine that runs it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores (also the task's thread count).
    #[serde(default = "one")]
    pub cpus: usize,
    /// Memory, in Slurm's notation (`4G`, `500M`).
    #[serde(default)]
    pub mem: Option<String>,
    /// GPUs (0: a CPU task).
    #[serde(default)]
    pub gpus: usize,
    /// Wall-time limit, in Slurm's notation (`02:00:00`, `1-00:00:00`).
    #[serde(default)]
    pub time: Option<String>,
}

fn one() -> usize {
    1
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpus: 1,
            mem: None,
            gpus: 0,
            time: None,
        }
    }
}

/// How a sweep's job array is submitted to Slurm.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmSettings {
    /// `--partition`.
    #[serde(default)]
    pub partition: Option<String>,
    /// `--account`.
    #[serde(default)]
    pub account: Option<String>,
    /// At most this many array tasks at once (`--array=...%N`).
    #[serde(default)]
    pub max_parallel: Option<usize>,
    /// Further `#SBATCH ...` lines, verbatim (e.g. `#SBATCH --qos=long`).
    #[serde(default)]
    pub extra: Vec<String>,
}

/// A sweep file: experiments, axes and resources.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// The sweep's name (its folder's name by default).
    pub name: String,
    /// Experiment files, relative to the sweep file.
    pub experiments: Vec<PathBuf>,
    /// The axes, expanded as a Cartesian product (the last axis varies fastest).
    #[serde(default)]
    pub axes: Vec<Axis>,
    /// Resources per task.
    #[serde(default)]
    pub resources: Resources,
    /// Slurm settings of the job array.
    #[serde(default)]
    pub slurm: SlurmSettings,
    /// The folder the sweep file was read from (experiment paths are relative to it).
    #[serde(skip)]
    pub base: PathBuf,
}

impl SweepSpec {
    /// Reads and checks a sweep file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut spec = Self::from_toml(&text).map_err(|e| in_file(path, e))?;
        spec.base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok(spec)
    }

    /// Parses and checks a sweep from TOML text (experiment paths relative to `.`).
    pub fn from_toml(text: &str) -> Result<Self> {
        let spec: SweepSpec = toml::from_str(text).map_err(|e| Error::Config(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// The experiment files, resolved against the sweep file's folder.
    pub fn experiment_paths(&self) -> Vec<PathBuf> {
        self.experiments.iter().map(|p| self.base.join(p)).collect()
    }

    fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::Config(why));
        if self.name.trim().is_empty() || self.name.contains(['/', '\\']) {
            return bad(format!(
                "name '{}' must be non-empty and contain no path separator",
                self.name
            ));
        }
        if self.experiments.is_empty() {
            return bad("experiments must name at least one experiment file".into());
        }
        for (i, axis) in self.axes.iter().enumerate() {
            let path_ok = !axis.field.is_empty()
                && axis.field.split('.').all(|k| {
                    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                });
            if !path_ok {
                return bad(format!(
                    "axes[{i}]: field '{}' is not a dotted path of field names (e.g. prune.rate)",
                    axis.field
                ));
            }
            if axis.values.is_empty() {
                return bad(format!("axes[{i}] ('{}'): values is empty", axis.field));
            }
            if self.axes[..i].iter().any(|a| a.field == axis.field) {
                return bad(format!("axes[{i}]: field '{}' is swept twice", axis.field));
            }
        }
        if self.resources.cpus == 0 {
            return bad("resources.cpus must be at least 1".into());
        }
        for (key, v) in [("mem", &self.resources.mem), ("time", &self.resources.time)] {
            if let Some(v) = v {
                let ok = !v.is_empty()
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == ':' || c == '-');
                if !ok {
                    return bad(format!(
                        "resources.{key} '{v}' must be letters, digits, ':' and '-' (e.g. 4G, 02:00:00)"
                    ));
                }
            }
        }
        self.validate_slurm()
    }

    /// Every value that lands on an `#SBATCH` line (which no shell quotes) is a plain word.
    fn validate_slurm(&self) -> Result<()> {
        let s = &self.slurm;
        for (key, v) in [("partition", &s.partition), ("account", &s.account)] {
            if let Some(v) = v {
                let ok = !v.is_empty()
                    && v.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ','));
                if !ok {
                    return Err(Error::Config(format!(
                        "slurm.{key} '{v}' must be letters, digits, '_', '-', '.' and ','"
                    )));
                }
            }
        }
        if s.max_parallel == Some(0) {
            return Err(Error::Config(
                "slurm.max_parallel must be at least 1".into(),
            ));
        }
        for line in &s.extra {
            if !line.starts_with("#SBATCH ") || line.contains(['\n', '\r']) {
                return Err(Error::Config(format!(
                    "slurm.extra line '{line}' must be one line starting with '#SBATCH '"
                )));
            }
        }
        Ok(())
    }
}

/// Prefixes a config error with the file it came from.
fn in_file(path: &Path, e: Error) -> Error {
    match e {
        Error::Config(msg) => Error::Config(format!("{}: {msg}", path.display())),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r#"
name = "rates"
experiments = ["lenet5.toml"]

[[axes]]
field = "seed"
values = [0, 1]

[[axes]]
field = "prune.rate"
values = [0.9, 0.99]

[resources]
cpus = 2
mem = "4G"
time = "02:00:00"
"#;

    #[test]
    fn reads_axes_in_file_order_and_resources() {
        let s = SweepSpec::from_toml(SPEC).unwrap();
        let fields: Vec<&str> = s.axes.iter().map(|a| a.field.as_str()).collect();
        assert_eq!(fields, ["seed", "prune.rate"]);
        assert_eq!(
            s.axes[1].values,
            [toml::Value::Float(0.9), toml::Value::Float(0.99)]
        );
        assert_eq!(s.resources.cpus, 2);
        assert_eq!(s.resources.time.as_deref(), Some("02:00:00"));
        assert_eq!(s.resources.gpus, 0);
    }

    #[test]
    fn bad_specs_name_what_is_wrong() {
        let cases = [
            (
                SPEC.replace("values = [0, 1]", "values = []"),
                "values is empty",
            ),
            (
                SPEC.replace("\"prune.rate\"", "\"prune..rate\""),
                "not a dotted path",
            ),
            (SPEC.replace("\"prune.rate\"", "\"seed\""), "swept twice"),
            (
                SPEC.replace("cpus = 2", "cpus = 0"),
                "cpus must be at least 1",
            ),
            (SPEC.replace("\"4G\"", "\"4G; rm -rf /\""), "resources.mem"),
            (
                SPEC.replace("experiments = [\"lenet5.toml\"]", "experiments = []"),
                "at least one",
            ),
            (SPEC.replace("cpus = 2", "cpu = 2"), "unknown field `cpu`"),
            (
                format!("{SPEC}[slurm]\npartition = \"gpu x\"\n"),
                "slurm.partition",
            ),
            (format!("{SPEC}[slurm]\nmax_parallel = 0\n"), "max_parallel"),
            (
                format!("{SPEC}[slurm]\nextra = [\"--qos=long\"]\n"),
                "'#SBATCH '",
            ),
        ];
        for (text, want) in cases {
            let err = SweepSpec::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn errors_from_a_file_name_the_file() {
        let dir = crate::data::test_util::TempDir::new("sweep-spec");
        let path = dir.path().join("sweep.toml");
        std::fs::write(&path, SPEC.replace("cpus = 2", "cpus = 0")).unwrap();
        let err = SweepSpec::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("sweep.toml") && err.contains("cpus"), "{err}");
        std::fs::write(&path, SPEC).unwrap();
        let s = SweepSpec::from_file(&path).unwrap();
        assert_eq!(s.experiment_paths(), [dir.path().join("lenet5.toml")]);
    }
}
