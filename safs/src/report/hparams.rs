//! Hyperparameters as table columns: nested settings flattened to dotted names
//! (`optimizer.lr`), one typed column per name.

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::Column;
use serde_json::Value;

/// A record's hyperparameters with nested objects flattened into dotted keys
/// (`{"optimizer": {"lr": 0.1}}` becomes `optimizer.lr = 0.1`).
pub fn flat_hparams(hparams: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (key, v) in hparams {
        flatten(key, v, &mut out);
    }
    out
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// Every key of `rows`, sorted; with `only_varying`, just those whose value differs
/// between rows (a key missing from a row counts as a different value).
pub(crate) fn hparam_keys(rows: &[BTreeMap<String, Value>], only_varying: bool) -> Vec<String> {
    let keys: BTreeSet<&String> = rows.iter().flat_map(|m| m.keys()).collect();
    keys.into_iter()
        .filter(|key| {
            !only_varying || {
                let first = rows.first().and_then(|m| m.get(*key));
                rows.iter().any(|m| m.get(*key) != first)
            }
        })
        .cloned()
        .collect()
}

/// One column of a hyperparameter: whole numbers as `i64`, other numbers as `f64`,
/// anything else as text (JSON null and a missing value are both null).
pub(crate) fn hparam_column(name: &str, values: &[Option<&Value>]) -> Column {
    let present = || values.iter().flatten().filter(|v| !v.is_null());
    if present().all(|v| v.is_i64() || v.is_u64() && v.as_i64().is_some()) {
        let ints: Vec<Option<i64>> = values.iter().map(|v| v.and_then(Value::as_i64)).collect();
        Column::new(name.into(), ints)
    } else if present().all(|v| v.is_number()) {
        let floats: Vec<Option<f64>> = values.iter().map(|v| v.and_then(Value::as_f64)).collect();
        Column::new(name.into(), floats)
    } else {
        let text: Vec<Option<String>> = values
            .iter()
            .map(|v| {
                v.and_then(|v| match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.clone()),
                    other => Some(other.to_string()),
                })
            })
            .collect();
        Column::new(name.into(), text)
    }
}

/// The columns of `keys` over `rows`; a key that would clash with one of `taken` is
/// prefixed with `hp.`.
pub(crate) fn hparam_columns(
    rows: &[BTreeMap<String, Value>],
    keys: &[String],
    taken: &[&str],
) -> Vec<Column> {
    keys.iter()
        .map(|key| {
            let values: Vec<Option<&Value>> = rows.iter().map(|m| m.get(key)).collect();
            let name = if taken.contains(&key.as_str()) {
                format!("hp.{key}")
            } else {
                key.clone()
            };
            hparam_column(&name, &values)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use polars::prelude::{AnyValue, DataType};
    use serde_json::json;

    use super::*;

    fn map(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn hparams_flatten_nested_settings() {
        let flat = flat_hparams(&map(json!({
            "epochs": 5,
            "optimizer": {"name": "adam", "lr": 1e-3, "betas": {"b1": 0.9}},
        })));
        let keys: Vec<&str> = flat.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "epochs",
                "optimizer.betas.b1",
                "optimizer.lr",
                "optimizer.name"
            ]
        );
        assert_eq!(flat["optimizer.lr"], json!(1e-3));
    }

    #[test]
    fn hparams_columns_are_typed_and_varying_keys_found() {
        let rows: Vec<_> = [
            json!({"epochs": 5, "lr": 0.1, "opt": "sgd", "fixed": 1}),
            json!({"epochs": 7, "lr": 1, "opt": "adam", "fixed": 1}),
            json!({"lr": null, "fixed": 1, "step": 3}),
        ]
        .into_iter()
        .map(map)
        .collect();
        assert_eq!(
            hparam_keys(&rows, true),
            ["epochs", "lr", "opt", "step"].map(String::from)
        );
        assert_eq!(hparam_keys(&rows, false).len(), 5);
        let cols = hparam_columns(&rows, &hparam_keys(&rows, false), &["step"]);
        let by_name = |n: &str| cols.iter().find(|c| c.name().as_str() == n).unwrap();
        assert_eq!(by_name("epochs").dtype(), &DataType::Int64);
        assert_eq!(by_name("epochs").get(2).unwrap(), AnyValue::Null);
        // 0.1 and 1 mix into floats; null stays null.
        assert_eq!(by_name("lr").dtype(), &DataType::Float64);
        assert_eq!(by_name("lr").get(1).unwrap(), AnyValue::Float64(1.0));
        assert_eq!(by_name("lr").get(2).unwrap(), AnyValue::Null);
        assert_eq!(by_name("opt").dtype(), &DataType::String);
        // A clash with a fixed column gets a prefix.
        assert_eq!(by_name("hp.step").get(2).unwrap(), AnyValue::Int64(3));
    }
}
