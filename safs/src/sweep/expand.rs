//! A sweep expanded: the Cartesian product of its axes over each experiment file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::SweepSpec;
use crate::experiment::ExperimentConfig;
use crate::{Error, Result};

/// One run of a sweep: its experiment, the axis values it takes, and its run folder's name.
#[derive(Clone, Debug)]
pub struct SweepTask {
    /// Position in the sweep (the Slurm array index).
    pub index: usize,
    /// The experiment file.
    pub experiment: PathBuf,
    /// `(field, value)` per axis, in axis order.
    pub overrides: Vec<(String, toml::Value)>,
    /// The experiment with the overrides applied, validated.
    pub config: ExperimentConfig,
    /// The run folder's name under the sweep folder.
    pub folder: String,
}

/// Axes whose value is already part of [`ExperimentConfig::run_name`].
const IN_RUN_NAME: [&str; 4] = ["name", "seed", "budget", "fidelity"];

/// Every task of `spec`: experiments in file order, then the axes' product (last axis fastest).
pub fn expand(spec: &SweepSpec) -> Result<Vec<SweepTask>> {
    let mut tasks = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for path in spec.experiment_paths() {
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let base: toml::Table =
            toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
        let lens: Vec<usize> = spec.axes.iter().map(|a| a.values.len()).collect();
        let mut at = vec![0usize; lens.len()];
        loop {
            let overrides: Vec<(String, toml::Value)> = spec
                .axes
                .iter()
                .zip(&at)
                .map(|(a, &i)| (a.field.clone(), a.values[i].clone()))
                .collect();
            let config = apply(&path, &base, &overrides)?;
            let folder = folder_name(&config, &overrides, &lens);
            let index = tasks.len();
            if let Some(first) = seen.insert(folder.clone(), index) {
                return Err(Error::Config(format!(
                    "sweep '{}': tasks {first} and {index} would share the run folder '{folder}'",
                    spec.name
                )));
            }
            tasks.push(SweepTask {
                index,
                experiment: path.clone(),
                overrides,
                config,
                folder,
            });
            if !advance(&mut at, &lens) {
                break;
            }
        }
    }
    Ok(tasks)
}

/// Steps an odometer over `lens` (last digit fastest); false once it wraps around.
fn advance(at: &mut [usize], lens: &[usize]) -> bool {
    for d in (0..at.len()).rev() {
        at[d] += 1;
        if at[d] < lens[d] {
            return true;
        }
        at[d] = 0;
    }
    false
}

/// The experiment of `path` with each `field = value` set, parsed and validated.
fn apply(
    path: &Path,
    base: &toml::Table,
    overrides: &[(String, toml::Value)],
) -> Result<ExperimentConfig> {
    let mut table = base.clone();
    for (field, value) in overrides {
        set_path(&mut table, field, value.clone())
            .map_err(|why| Error::Config(format!("{}: axis '{field}': {why}", path.display())))?;
    }
    let with = || {
        let set: Vec<String> = overrides
            .iter()
            .map(|(f, v)| format!("{f} = {v}"))
            .collect();
        format!("{} with {}", path.display(), set.join(", "))
    };
    let config: ExperimentConfig = toml::Value::Table(table)
        .try_into()
        .map_err(|e| Error::Config(format!("{}: {e}", with())))?;
    config
        .validate()
        .map_err(|e| Error::Config(format!("{}: {e}", with())))?;
    Ok(config)
}

/// Sets `a.b.c = value` in `table`, creating missing tables on the way.
fn set_path(
    table: &mut toml::Table,
    field: &str,
    value: toml::Value,
) -> std::result::Result<(), String> {
    let keys: Vec<&str> = field.split('.').collect();
    let (last, parents) = keys.split_last().ok_or("empty field path")?;
    let mut t = table;
    for (depth, k) in parents.iter().enumerate() {
        let entry = t
            .entry(k.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = match entry {
            toml::Value::Table(inner) => inner,
            other => {
                return Err(format!(
                    "'{}' is a {}, not a table",
                    keys[..=depth].join("."),
                    other.type_str()
                ))
            }
        };
    }
    t.insert(last.to_string(), value);
    Ok(())
}

/// The experiment's run name, plus `-<field><value>` for each axis of more than one value
/// that the run name does not already show (a one-value axis is a fixed setting).
fn folder_name(
    config: &ExperimentConfig,
    overrides: &[(String, toml::Value)],
    lens: &[usize],
) -> String {
    let mut name = config.run_name();
    for ((field, value), &len) in overrides.iter().zip(lens) {
        if len < 2 || IN_RUN_NAME.contains(&field.as_str()) {
            continue;
        }
        let shown = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let key = field.rsplit('.').next().unwrap_or(field);
        name.push('-');
        name.push_str(key);
        name.extend(shown.chars().map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        }));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_util::TempDir;

    /// The real LeNet-5 experiment (budget cpu, seed 0, prune.rate 0.99).
    const EXPERIMENT: &str = include_str!("../../../experiments/lenet5_mnist.toml");

    fn spec_in(dir: &Path, axes: &str) -> SweepSpec {
        std::fs::write(dir.join("lenet5.toml"), EXPERIMENT).unwrap();
        let text = format!("name = \"s\"\nexperiments = [\"lenet5.toml\"]\n{axes}");
        std::fs::write(dir.join("sweep.toml"), text).unwrap();
        SweepSpec::from_file(&dir.join("sweep.toml")).unwrap()
    }

    const TWO_BY_TWO: &str = r#"
[[axes]]
field = "seed"
values = [0, 1]

[[axes]]
field = "prune.rate"
values = [0.9, 0.99]
"#;

    #[test]
    fn product_in_axis_order_with_one_folder_each() {
        let dir = TempDir::new("sweep-expand");
        let tasks = expand(&spec_in(dir.path(), TWO_BY_TWO)).unwrap();
        let got: Vec<(u64, f64, &str)> = tasks
            .iter()
            .map(|t| (t.config.seed, t.config.prune.rate, t.folder.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, 0.9, "lenet5_mnist-cpu-seed0-rate0.9"),
                (0, 0.99, "lenet5_mnist-cpu-seed0-rate0.99"),
                (1, 0.9, "lenet5_mnist-cpu-seed1-rate0.9"),
                (1, 0.99, "lenet5_mnist-cpu-seed1-rate0.99"),
            ]
        );
        assert_eq!(
            tasks.iter().map(|t| t.index).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
        assert_eq!(
            tasks[3].overrides[1],
            ("prune.rate".into(), toml::Value::Float(0.99))
        );
    }

    #[test]
    fn one_value_axes_are_settings_not_part_of_the_folder() {
        let dir = TempDir::new("sweep-fixed");
        let axes = "[[axes]]\nfield = \"arms\"\nvalues = [[\"magnitude_pruning\", \"safs\"]]\n\
                    [[axes]]\nfield = \"prune.rate\"\nvalues = [0.5, 0.9]\n";
        let tasks = expand(&spec_in(dir.path(), axes)).unwrap();
        let folders: Vec<&str> = tasks.iter().map(|t| t.folder.as_str()).collect();
        assert_eq!(
            folders,
            [
                "lenet5_mnist-cpu-seed0-rate0.5",
                "lenet5_mnist-cpu-seed0-rate0.9"
            ]
        );
        assert_eq!(tasks[1].config.arms.len(), 2);
    }

    #[test]
    fn no_axes_is_one_task_per_experiment() {
        let dir = TempDir::new("sweep-none");
        let tasks = expand(&spec_in(dir.path(), "")).unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].folder, "lenet5_mnist-cpu-seed0");
    }

    #[test]
    fn new_tables_are_created_and_strings_shown_plainly() {
        let dir = TempDir::new("sweep-new-table");
        let axes = "[[axes]]\nfield = \"budget\"\nvalues = [\"smoke\", \"cpu\"]\n";
        let tasks = expand(&spec_in(dir.path(), axes)).unwrap();
        let folders: Vec<&str> = tasks.iter().map(|t| t.folder.as_str()).collect();
        assert_eq!(
            folders,
            ["lenet5_mnist-smoke-seed0", "lenet5_mnist-cpu-seed0"]
        );
        let mut t = toml::Table::new();
        set_path(&mut t, "a.b.c", toml::Value::Integer(3)).unwrap();
        assert_eq!(t["a"]["b"]["c"].as_integer(), Some(3));
    }

    #[test]
    fn bad_fields_and_values_name_the_field_and_the_file() {
        let dir = TempDir::new("sweep-bad");
        let cases = [
            ("prune.ratee", "0.9", "unknown field `ratee`"),
            (
                "prune.rate.x",
                "0.9",
                "'prune.rate' is a float, not a table",
            ),
            ("prune.rate", "1.5", "prune.rate 1.5 must be in [0, 1)"),
            ("seed", "\"zero\"", "seed"),
        ];
        for (field, value, want) in cases {
            let axes = format!("[[axes]]\nfield = \"{field}\"\nvalues = [{value}]\n");
            let err = expand(&spec_in(dir.path(), &axes)).unwrap_err().to_string();
            assert!(
                err.contains(want) && err.contains("lenet5.toml"),
                "{field}: {err}"
            );
        }
    }

    #[test]
    fn tasks_that_would_share_a_folder_are_refused() {
        let dir = TempDir::new("sweep-clash");
        let axes = "[[axes]]\nfield = \"prune.method\"\nvalues = [\"layerwise\", \"layerwise\"]\n";
        let err = expand(&spec_in(dir.path(), axes)).unwrap_err().to_string();
        assert!(
            err.contains("tasks 0 and 1") && err.contains("share"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_experiment_file_is_named() {
        let dir = TempDir::new("sweep-missing");
        let spec = spec_in(dir.path(), "");
        std::fs::remove_file(dir.path().join("lenet5.toml")).unwrap();
        let err = expand(&spec).unwrap_err().to_string();
        assert!(err.contains("lenet5.toml"), "{err}");
    }
}
