//! Small helpers shared by the stages: file writes that survive kills, and the names of the
//! config enums.

use std::path::{Path, PathBuf};

use strum::VariantArray;

use crate::{Error, Result};

/// The variant of a config enum whose name (strum's `IntoStaticStr`) equals `s` once both
/// pass through `key` (e.g. lower-casing); `None` if none does.
pub fn parse_variant<T>(s: &str, key: fn(&str) -> String) -> Option<T>
where
    T: VariantArray + Copy + Into<&'static str>,
{
    let wanted = key(s);
    T::VARIANTS
        .iter()
        .copied()
        .find(|&v| key(v.into()) == wanted)
}

/// Every name of a config enum, comma-separated, for error messages.
pub fn variant_names<T>() -> String
where
    T: VariantArray + Copy + Into<&'static str>,
{
    let names: Vec<&'static str> = T::VARIANTS.iter().map(|&v| v.into()).collect();
    names.join(", ")
}

/// `path` with its extension replaced (`a/b.safetensors` -> `a/b.json`).
pub fn with_extension(path: &Path, ext: &str) -> PathBuf {
    path.with_extension(ext)
}

/// Writes `bytes` to `path` through a temporary file, synced to disk, and a rename: a
/// reader sees the old file or the new one, never part of one, whenever the writer dies.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = std::fs::write(&tmp, bytes).and_then(|()| {
        // Without the sync a power cut after the rename can leave an empty file (ext4).
        std::fs::File::open(&tmp)?.sync_all()
    });
    if let Err(e) = written {
        // A full disk: do not leave the partial temporary file taking space.
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    sync_parent(path)
}

/// Flushes the folder holding `path` to disk, so that a rename into it survives a power
/// cut (POSIX leaves that to the folder's own sync).
pub fn sync_parent(path: &Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Flushes the file at `path` to disk.
pub fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use std::fmt::{Debug, Display};
    use std::str::FromStr;

    use super::*;
    use crate::activation::Op;
    use crate::data::{DatasetKind, MnistKind};
    use crate::experiment::BudgetPreset;
    use crate::model::ModelKind;
    use crate::prune::PruneMethod;
    use crate::search::ZeroCost;

    /// Every variant's name is the same in serde (configs, logs), `Display` and `FromStr`.
    fn names_agree<T>(expected: &[&str])
    where
        T: VariantArray + Copy + Into<&'static str> + Display + FromStr + PartialEq + Debug,
        T: serde::Serialize + serde::de::DeserializeOwned,
        <T as FromStr>::Err: Debug,
    {
        let names: Vec<&str> = T::VARIANTS.iter().map(|&v| v.into()).collect();
        assert_eq!(names, expected);
        assert_eq!(variant_names::<T>(), expected.join(", "));
        for &v in T::VARIANTS {
            let name: &str = v.into();
            assert_eq!(v.to_string(), name);
            assert_eq!(name.parse::<T>().unwrap(), v);
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{name}\""));
            assert_eq!(
                serde_json::from_str::<T>(&format!("\"{name}\"")).unwrap(),
                v
            );
        }
    }

    #[test]
    fn config_enum_names_agree_everywhere() {
        names_agree::<ModelKind>(&["lenet5", "vgg11", "vgg16", "resnet18", "efficientnet_b0"]);
        names_agree::<DatasetKind>(&[
            "mnist",
            "fashion-mnist",
            "cifar10",
            "imagenet16",
            "imagenet16-120",
        ]);
        names_agree::<MnistKind>(&["mnist", "fashion-mnist"]);
        names_agree::<BudgetPreset>(&["smoke", "cpu", "paper"]);
        names_agree::<PruneMethod>(&["layerwise", "global"]);
        names_agree::<ZeroCost>(&["grad_norm", "zico", "synflow"]);
        names_agree::<Op>(&[
            "relu",
            "relu6",
            "hardswish",
            "swish",
            "tanhsoft1",
            "acon",
            "gelu",
            "srs",
            "elu",
            "selu",
            "tanh",
            "sigmoid",
            "softplus",
            "logsigmoid",
            "symlog",
            "symexp",
            "identity",
        ]);
    }

    #[test]
    fn parse_variant_compares_through_the_key_and_errors_list_the_names() {
        let loose = |s: &str| s.replace(['-', '_'], "").to_lowercase();
        assert_eq!(
            parse_variant::<ModelKind>("VGG-16", loose),
            Some(ModelKind::Vgg16)
        );
        assert_eq!(parse_variant::<ModelKind>("VGG-16", str::to_string), None);
        assert_eq!(
            "lwm".parse::<PruneMethod>().unwrap(),
            PruneMethod::Layerwise
        );
        assert_eq!("SiLU".parse::<Op>().unwrap(), Op::Swish);
        let err = "cpu2".parse::<BudgetPreset>().unwrap_err().to_string();
        assert!(
            err.contains("'cpu2'") && err.contains("smoke, cpu, paper"),
            "{err}"
        );
        let err = "svhn".parse::<DatasetKind>().unwrap_err().to_string();
        assert!(err.contains("imagenet16-120"), "{err}");
    }
}
