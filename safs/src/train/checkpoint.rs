//! Checkpoints: safetensors of weights, masks and activation scales, plus JSON metadata.
//!
//! `name.safetensors` holds every tensor of [`Network::state`] and the masks as
//! `mask.<weight>`; `name.json` holds [`CheckpointMeta`] and the MD5 of the tensor file. Both
//! are written to temporary files and synced before either is renamed into place, so a kill
//! leaves the old checkpoint or the new one: a save killed between the two renames leaves new
//! tensors beside the old metadata, and loading takes the new metadata from its temporary
//! file by the MD5. Tensors whose MD5 matches neither are refused, never loaded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::activation::ActivationPlan;
use crate::model::Network;
use crate::prune::Masks;
use crate::util::with_extension;
use crate::{Error, Result};

/// What a checkpoint is, beside its tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Model name, e.g. `lenet5`.
    pub model: String,
    /// Number of output classes.
    pub num_classes: usize,
    /// Channel width multiplier the model was built with (1.0 = full width).
    #[serde(default = "full_width")]
    pub width: f64,
    /// The operator of every activation slot.
    pub plan: ActivationPlan,
    /// Epochs trained so far in the run that wrote it.
    pub epoch: usize,
    /// Validation top-1 accuracy (percent) when it was written, if known.
    pub valid_acc: Option<f64>,
    /// Free-form description (the stage that wrote it).
    #[serde(default)]
    pub note: String,
    /// Version of `safs` that wrote it.
    pub safs_version: String,
}

fn full_width() -> f64 {
    1.0
}

/// The most classes a checkpoint's metadata may claim (ImageNet-21k has 21,841): a larger
/// count is a corrupt file, not a classifier to allocate.
pub const MAX_CLASSES: usize = 100_000;

/// The widest channel multiplier a checkpoint's metadata may claim (the budgets' limit).
pub const MAX_WIDTH: f64 = 4.0;

/// What a checkpoint is on disk, for errors that meet something else.
const LAYOUT: &str = "a checkpoint is NAME.safetensors (its tensors) with NAME.json (its \
                      metadata) beside it, as `safs train` and `safs run` write them";

/// The key of the metadata JSON that holds the MD5 of the tensor file.
const TENSORS_MD5: &str = "tensors_md5";

/// The metadata file that goes with a checkpoint's tensors.
pub fn meta_path(path: &Path) -> PathBuf {
    with_extension(path, "json")
}

/// Saves `model` (and `masks`) to `path` (a `.safetensors` file) and its metadata beside it.
pub fn save_checkpoint(
    path: &Path,
    model: &dyn Network,
    masks: Option<&Masks>,
    meta: &CheckpointMeta,
) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = model.state()?.into_iter().collect();
    if let Some(m) = masks {
        for (name, mask) in m.iter() {
            tensors.insert(format!("mask.{name}"), mask.clone());
        }
    }
    let fail = |e: serde_json::Error| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: e.to_string(),
    };
    // Both files complete on disk before either replaces the old pair, so a kill leaves the
    // old pair, or new tensors beside the new metadata still in its temporary file, which
    // loading recognises by the MD5 and uses.
    let tensors_tmp = write_tensors_tmp(path, &tensors)?;
    let on_disk = MetaOnDisk {
        meta,
        tensors_md5: crate::data::md5_file(&tensors_tmp)?,
    };
    let json = serde_json::to_vec_pretty(&on_disk).map_err(fail)?;
    let meta_tmp = pending_meta_path(path);
    if let Err(e) = write_synced(&meta_tmp, &json) {
        let _ = std::fs::remove_file(&tensors_tmp);
        return Err(e);
    }
    std::fs::rename(&tensors_tmp, path).map_err(|e| Error::io(path, e))?;
    let mp = meta_path(path);
    std::fs::rename(&meta_tmp, &mp).map_err(|e| Error::io(&mp, e))?;
    crate::util::sync_parent(path)
}

/// The metadata file: the fields of [`CheckpointMeta`] in their order, then the MD5 (its
/// key is [`TENSORS_MD5`]).
#[derive(Serialize)]
struct MetaOnDisk<'a> {
    #[serde(flatten)]
    meta: &'a CheckpointMeta,
    tensors_md5: String,
}

/// Where a save keeps the new metadata until its tensors are in place.
fn pending_meta_path(path: &Path) -> PathBuf {
    with_extension(path, "json.tmp")
}

/// Writes `bytes` to the temporary file `path` and syncs it; on failure (a full disk)
/// removes what it wrote.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let written = std::fs::write(path, bytes).map_err(|e| Error::io(path, e));
    let synced = written.and_then(|()| crate::util::sync_file(path));
    if synced.is_err() {
        let _ = std::fs::remove_file(path);
    }
    synced
}

/// Writes `tensors` to the temporary file beside `path` (creating the folder) and syncs
/// it; returns the temporary's path.
fn write_tensors_tmp(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<PathBuf> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = with_extension(path, "safetensors.tmp");
    let saved = candle_core::safetensors::save(tensors, &tmp)
        .map_err(|e| Error::Checkpoint {
            path: path.to_path_buf(),
            msg: format!("writing {} failed: {e}", tmp.display()),
        })
        .and_then(|()| crate::util::sync_file(&tmp));
    if let Err(e) = saved {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(tmp)
}

/// Writes `tensors` to the safetensors file `path` through a temporary file and a rename
/// (creating its folder), so a kill never leaves half a file.
pub(crate) fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let tmp = write_tensors_tmp(path, tensors)?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    crate::util::sync_parent(path)
}

/// Parses the metadata file `mp` into the metadata and the tensor MD5 it records (absent
/// in checkpoints written before it was recorded).
fn parse_meta_file(mp: &Path, bytes: &[u8]) -> Result<(CheckpointMeta, Option<String>)> {
    let bad = |e: serde_json::Error| Error::Checkpoint {
        path: mp.to_path_buf(),
        msg: format!("not valid checkpoint metadata ({e}); {LAYOUT}"),
    };
    let mut json: serde_json::Value = serde_json::from_slice(bytes).map_err(bad)?;
    let md5 = json
        .as_object_mut()
        .and_then(|m| m.remove(TENSORS_MD5))
        .and_then(|v| v.as_str().map(str::to_string));
    let meta: CheckpointMeta = serde_json::from_value(json).map_err(bad)?;
    check_meta(&meta).map_err(|msg| Error::Checkpoint {
        path: mp.to_path_buf(),
        msg: format!("not valid checkpoint metadata: {msg}"),
    })?;
    Ok((meta, md5))
}

/// Refuses metadata whose class count or width no model should be built with (a corrupt
/// file claiming 10^12 classes must not size a classifier).
fn check_meta(meta: &CheckpointMeta) -> std::result::Result<(), String> {
    if !(1..=MAX_CLASSES).contains(&meta.num_classes) {
        return Err(format!(
            "num_classes {} is not in 1..={MAX_CLASSES}",
            meta.num_classes
        ));
    }
    if !(meta.width > 0.0 && meta.width <= MAX_WIDTH) {
        return Err(format!("width {} is not in (0, {MAX_WIDTH}]", meta.width));
    }
    Ok(())
}

/// The metadata that belongs to the tensors at `path`, with their MD5 when it is recorded:
/// that of `name.json`, or that of a save killed before its metadata's rename.
fn read_meta_and_md5(path: &Path) -> Result<(CheckpointMeta, Option<String>)> {
    let fail = |msg: String| Error::Checkpoint {
        path: path.to_path_buf(),
        msg,
    };
    if !path.is_file() {
        return Err(fail(format!("no such file ({LAYOUT})")));
    }
    let pending = pending_meta_path(path);
    if let Ok(bytes) = std::fs::read(&pending) {
        if let Ok((meta, Some(md5))) = parse_meta_file(&pending, &bytes) {
            if crate::data::md5_file(path)? == md5 {
                return Ok((meta, Some(md5)));
            }
        }
    }
    let mp = meta_path(path);
    match std::fs::read(&mp) {
        Ok(bytes) => parse_meta_file(&mp, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let hint = match path.extension().and_then(|e| e.to_str()) {
                Some("safetensors") => String::new(),
                _ => " and its name does not end in .safetensors".to_string(),
            };
            Err(fail(format!(
                "its metadata file {} does not exist{hint}; {LAYOUT}",
                mp.display()
            )))
        }
        Err(e) => Err(Error::io(&mp, e)),
    }
}

/// Reads only the metadata of the checkpoint at `path`.
pub fn read_meta(path: &Path) -> Result<CheckpointMeta> {
    read_meta_and_md5(path).map(|(meta, _)| meta)
}

/// Loads the checkpoint at `path` into `model`; returns its metadata and masks (if any).
///
/// Every tensor the model has must be present with the same shape, and the file may hold
/// nothing else; otherwise the error names the first tensor at fault.
pub fn load_checkpoint(
    path: &Path,
    model: &mut dyn Network,
    device: &Device,
) -> Result<(CheckpointMeta, Option<Masks>)> {
    let (meta, md5) = read_meta_and_md5(path)?;
    let fail = |msg: String| Error::Checkpoint {
        path: path.to_path_buf(),
        msg,
    };
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if let Some(want) = md5 {
        use md5::Digest;
        let got = crate::data::fetch::hex(&md5::Md5::digest(&bytes));
        if got != want {
            return Err(fail(format!(
                "its tensors (MD5 {got}) are not the ones its metadata {} was written with \
                 (MD5 {want}): the file was changed or cut short after its save",
                meta_path(path).display()
            )));
        }
    }
    if meta.model != model.name() {
        return Err(fail(format!(
            "was written for model '{}', not '{}'",
            meta.model,
            model.name()
        )));
    }
    model
        .set_plan(&meta.plan)
        .map_err(|e| fail(format!("its metadata's plan does not fit: {e}")))?;
    let mut tensors = candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| fail(format!("cannot read tensors: {e}")))?;

    let mut state: HashMap<String, Tensor> = HashMap::new();
    for (name, current) in model.state()? {
        let t = tensors
            .remove(&name)
            .ok_or_else(|| fail(format!("tensor '{name}' is missing")))?;
        if t.shape() != current.shape() {
            return Err(fail(format!(
                "tensor '{name}' has shape {:?}, the model expects {:?}",
                t.dims(),
                current.dims()
            )));
        }
        state.insert(name, t);
    }
    let mut masks = Masks::default();
    for (name, t) in tensors {
        match name.strip_prefix("mask.") {
            Some(w) => masks.insert(w.to_string(), t),
            None => return Err(fail(format!("unexpected tensor '{name}'"))),
        }
    }
    // Shapes all agree: copy the values in.
    for (name, var) in model.state_vars() {
        state[&name]
            .to_dtype(var.dtype())
            .and_then(|t| var.set(&t))
            .map_err(|e| fail(format!("tensor '{name}': {e}")))?;
    }
    let masks = if masks.is_empty() { None } else { Some(masks) };
    if let Some(m) = &masks {
        m.apply(model).map_err(|e| fail(e.to_string()))?;
    }
    Ok((meta, masks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::Op;
    use crate::model::LeNet5;
    use crate::prune::layerwise_magnitude;
    use crate::util::atomic_write;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("safs-ckpt-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d.join("model.safetensors")
    }

    fn meta(m: &dyn Network) -> CheckpointMeta {
        CheckpointMeta {
            model: m.name().into(),
            num_classes: 10,
            width: 1.0,
            plan: m.plan(),
            epoch: 3,
            valid_acc: Some(97.5),
            note: "test".into(),
            safs_version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    #[test]
    fn round_trip_restores_weights_masks_plan_and_scales() -> Result<()> {
        let dev = Device::Cpu;
        let path = tmp("rt");
        let mut a = LeNet5::new(10, 1, &dev)?;
        a.set_plan(&"swish,gelu,elu,tanh".parse()?)?;
        a.activations_mut()[2].set_scales(1.5, 0.25)?;
        let masks = layerwise_magnitude(&a, 0.9)?;
        masks.apply(&a)?;
        save_checkpoint(&path, &a, Some(&masks), &meta(&a))?;

        let mut b = LeNet5::new(10, 2, &dev)?;
        let (m, loaded) = load_checkpoint(&path, &mut b, &dev)?;
        assert_eq!(m, meta(&a));
        assert_eq!(b.plan(), a.plan());
        assert_eq!(b.activations()[2].alpha()?, 1.5);
        assert_eq!(b.activations()[2].beta()?, 0.25);
        assert_eq!(loaded.expect("masks").num_zeros()?, masks.num_zeros()?);
        let x = Tensor::randn(0f32, 1.0, (2, 1, 28, 28), &dev)?;
        let d = a
            .forward_t(&x, false)?
            .sub(&b.forward_t(&x, false)?)?
            .abs()?
            .max_all()?;
        assert_eq!(d.to_scalar::<f32>()?, 0.0);
        Ok(())
    }

    #[test]
    fn mismatches_give_clear_errors() -> Result<()> {
        let dev = Device::Cpu;
        let path = tmp("mm");
        let a = LeNet5::new(10, 1, &dev)?;
        save_checkpoint(&path, &a, None, &meta(&a))?;
        // A model with another class count: fc3 shapes differ.
        let mut b = LeNet5::new(7, 1, &dev)?;
        let err = load_checkpoint(&path, &mut b, &dev)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("fc3.weight") && err.contains("model.safetensors"),
            "{err}"
        );
        // Metadata naming another model.
        let mut other = meta(&a);
        other.model = "vgg16".into();
        atomic_write(&meta_path(&path), &serde_json::to_vec(&other).unwrap())?;
        let err = load_checkpoint(&path, &mut b, &dev)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vgg16"), "{err}");
        // A truncated tensor file.
        save_checkpoint(&path, &a, None, &meta(&a))?;
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let mut c = LeNet5::new(10, 1, &dev)?;
        let err = load_checkpoint(&path, &mut c, &dev)
            .unwrap_err()
            .to_string();
        assert!(err.contains("changed or cut short"), "{err}");
        // The same without the MD5 (a checkpoint older than it): the tensor reader refuses.
        let mut old: serde_json::Value =
            serde_json::from_slice(&std::fs::read(meta_path(&path)).unwrap()).unwrap();
        old.as_object_mut().unwrap().remove(TENSORS_MD5);
        atomic_write(&meta_path(&path), &serde_json::to_vec(&old).unwrap())?;
        let err = load_checkpoint(&path, &mut c, &dev)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read tensors"), "{err}");
        let _ = Op::Relu;
        Ok(())
    }

    #[test]
    fn a_save_killed_between_its_two_renames_reads_back_the_new_checkpoint() -> Result<()> {
        let dev = Device::Cpu;
        let path = tmp("torn");
        let a = LeNet5::new(10, 1, &dev)?;
        let b = LeNet5::new(10, 2, &dev)?;
        save_checkpoint(&path, &a, None, &meta(&a))?;
        let old_meta = std::fs::read(meta_path(&path)).unwrap();
        // B's tensors renamed into place, the process killed before B's metadata's rename.
        let mut b_meta = meta(&b);
        b_meta.note = "B".into();
        save_checkpoint(&path, &b, None, &b_meta)?;
        std::fs::rename(meta_path(&path), pending_meta_path(&path)).unwrap();
        std::fs::write(meta_path(&path), &old_meta).unwrap();
        let mut c = LeNet5::new(10, 3, &dev)?;
        let (got, _) = load_checkpoint(&path, &mut c, &dev)?;
        assert_eq!(got.note, "B");
        assert_eq!(read_meta(&path)?.note, "B");
        let (wb, wc) = (b.state()?, c.state()?);
        for ((name, x), (_, y)) in wb.iter().zip(&wc) {
            let d = x.sub(y)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert_eq!(d, 0.0, "{name}");
        }
        // Without the pending metadata the old one does not match: refused, not loaded.
        std::fs::remove_file(pending_meta_path(&path)).unwrap();
        let err = load_checkpoint(&path, &mut c, &dev)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("changed or cut short") && err.contains("model.json"),
            "{err}"
        );
        // A pending file from an older save (its MD5 not these tensors') is ignored.
        std::fs::write(pending_meta_path(&path), &old_meta).unwrap();
        save_checkpoint(&path, &b, None, &b_meta)?;
        std::fs::write(pending_meta_path(&path), &old_meta).unwrap();
        assert_eq!(load_checkpoint(&path, &mut c, &dev)?.0.note, "B");
        // Old checkpoints without the MD5 still load.
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(meta_path(&path)).unwrap()).unwrap();
        json.as_object_mut().unwrap().remove(TENSORS_MD5);
        atomic_write(&meta_path(&path), &serde_json::to_vec(&json).unwrap())?;
        load_checkpoint(&path, &mut c, &dev)?;
        Ok(())
    }

    #[test]
    fn a_file_that_is_not_a_checkpoint_is_told_what_one_is() {
        let dir = tmp("not-a-checkpoint").parent().unwrap().to_path_buf();
        let passwd = dir.join("passwd");
        std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        let err = read_meta(&passwd).unwrap_err().to_string();
        assert!(
            err.contains("passwd.json does not exist")
                && err.contains("does not end in .safetensors")
                && err.contains("NAME.safetensors (its tensors) with NAME.json"),
            "{err}"
        );
        assert_eq!(err.matches("os error").count(), 0, "{err}");
        let err = read_meta(&dir.join("absent.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absent.safetensors: no such file"), "{err}");
        std::fs::write(dir.join("passwd.json"), "root:x").unwrap();
        let err = read_meta(&passwd).unwrap_err().to_string();
        assert!(
            err.contains("passwd.json: not valid checkpoint metadata"),
            "{err}"
        );
    }

    /// Metadata claiming 10^12 classes (or a width of 2^32) is an error, not a classifier
    /// to build (found by the fuzz tests: `safs eval` sizes its model from these fields);
    /// a plan that does not fit the model names the file (it did not).
    #[test]
    fn metadata_out_of_range_is_refused_and_named() -> Result<()> {
        let dev = Device::Cpu;
        let path = tmp("meta-range");
        let a = LeNet5::new(10, 1, &dev)?;
        let mut m = meta(&a);
        m.num_classes = 1_000_000_000_000;
        save_checkpoint(&path, &a, None, &m)?;
        let err = read_meta(&path).unwrap_err().to_string();
        assert!(
            err.contains("model.json") && err.contains("num_classes"),
            "{err}"
        );
        m.num_classes = 10;
        m.width = 4294967296.0;
        save_checkpoint(&path, &a, None, &m)?;
        let err = read_meta(&path).unwrap_err().to_string();
        assert!(err.contains("model.json") && err.contains("width"), "{err}");
        m.width = 1.0;
        m.plan = "relu,relu,relu".parse()?;
        save_checkpoint(&path, &a, None, &m)?;
        let mut b = LeNet5::new(10, 2, &dev)?;
        let err = load_checkpoint(&path, &mut b, &dev)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("plan"),
            "{err}"
        );
        Ok(())
    }
}
