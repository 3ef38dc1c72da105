//! Checkpoints: safetensors of weights, masks and activation scales, plus JSON metadata.
//!
//! `name.safetensors` holds every tensor of [`Network::state`] and the masks as
//! `mask.<weight>`; `name.json` holds [`CheckpointMeta`]. Both are written to a temporary
//! file and renamed, so an interrupted save never leaves a broken checkpoint.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::activation::ActivationPlan;
use crate::model::Network;
use crate::prune::Masks;
use crate::util::{atomic_write, with_extension};
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
    save_tensors(path, &tensors)?;
    let json = serde_json::to_vec_pretty(meta).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    atomic_write(&meta_path(path), &json)
}

/// Writes `tensors` to the safetensors file `path` through a temporary file and a rename
/// (creating its folder), so a kill never leaves half a file.
pub(crate) fn save_tensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = with_extension(path, "safetensors.tmp");
    candle_core::safetensors::save(tensors, &tmp).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: format!("writing failed: {e}"),
    })?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Reads only the metadata of the checkpoint at `path`.
pub fn read_meta(path: &Path) -> Result<CheckpointMeta> {
    let mp = meta_path(path);
    let bytes = std::fs::read(&mp).map_err(|e| Error::io(&mp, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint {
        path: mp,
        msg: format!("bad metadata: {e}"),
    })
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
    let meta = read_meta(path)?;
    let fail = |msg: String| Error::Checkpoint {
        path: path.to_path_buf(),
        msg,
    };
    if meta.model != model.name() {
        return Err(fail(format!(
            "was written for model '{}', not '{}'",
            meta.model,
            model.name()
        )));
    }
    model.set_plan(&meta.plan)?;
    let mut tensors = candle_core::safetensors::load(path, device)
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
        var.set(&state[&name].to_dtype(var.dtype())?)?;
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
        assert!(err.contains("cannot read tensors"), "{err}");
        let _ = Op::Relu;
        Ok(())
    }
}
