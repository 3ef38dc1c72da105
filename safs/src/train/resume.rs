//! A training run saved between epochs and continued later (multi-fidelity promotion).
//!
//! One safetensors file holds everything, written to a temporary file and renamed, so a
//! kill never leaves half a state: the model's tensors (`model.<name>`), its masks
//! (`mask.<weight>`), the optimiser's buffers (`opt.<i>.buf1|buf2`) and, as a byte tensor
//! `fit_state`, the JSON of the epochs so far and the optimiser's step counts. Continuing
//! replays the schedule over the saved epochs, so a run saved at epoch `r` and continued to
//! `cfg.epochs` trains exactly the epochs an uninterrupted [`super::fit`] trains.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::fit::Trainer;
use super::optim::ParamState;
use super::{FitReport, TrainConfig};
use crate::model::Network;
use crate::prune::Masks;
use crate::{Error, Result};

/// The JSON part of a saved run.
#[derive(Serialize, Deserialize)]
struct SavedState {
    report: FitReport,
    /// Per optimiser parameter: step count and scalar state.
    params: Vec<(u64, Option<f64>)>,
}

/// Saves `model`, `masks` and `trainer`'s state to `path` (one `.safetensors` file).
pub fn save_trainer(
    path: &Path,
    model: &dyn Network,
    masks: Option<&Masks>,
    trainer: &Trainer,
) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, t) in model.state()? {
        tensors.insert(format!("model.{name}"), t);
    }
    if let Some(m) = masks {
        for (name, mask) in m.iter() {
            tensors.insert(format!("mask.{name}"), mask.clone());
        }
    }
    let mut params = Vec::new();
    for (i, st) in trainer.opt.export_state().into_iter().enumerate() {
        params.push((st.step, st.scalar));
        if let Some(b) = st.buf1 {
            tensors.insert(format!("opt.{i}.buf1"), b);
        }
        if let Some(b) = st.buf2 {
            tensors.insert(format!("opt.{i}.buf2"), b);
        }
    }
    let state = SavedState {
        report: trainer.report.clone(),
        params,
    };
    let json = serde_json::to_vec(&state).map_err(|e| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    let n = json.len();
    tensors.insert("fit_state".into(), Tensor::from_vec(json, n, &Device::Cpu)?);
    super::checkpoint::save_tensors(path, &tensors)
}

/// Loads a run saved by [`save_trainer`] into `model` (which must have the plan and
/// trainable slots it had) and returns the trainer positioned after its epochs, with the
/// masks it saved. `cfg` must be the run's configuration.
pub fn load_trainer(
    path: &Path,
    model: &mut dyn Network,
    cfg: &TrainConfig,
    device: &Device,
) -> Result<(Trainer, Option<Masks>)> {
    let fail = |msg: String| Error::Checkpoint {
        path: path.to_path_buf(),
        msg,
    };
    let mut tensors = candle_core::safetensors::load(path, device)
        .map_err(|e| fail(format!("cannot read tensors: {e}")))?;
    let json = tensors
        .remove("fit_state")
        .ok_or_else(|| fail("no 'fit_state' tensor: not a saved training run".into()))?;
    if json.dtype() != DType::U8 {
        return Err(fail("'fit_state' is not a byte tensor".into()));
    }
    let bytes: Vec<u8> = json
        .flatten_all()
        .and_then(|t| t.to_vec1())
        .map_err(|e| fail(format!("'fit_state': {e}")))?;
    let state: SavedState =
        serde_json::from_slice(&bytes).map_err(|e| fail(format!("bad fit_state: {e}")))?;
    let mut values = Vec::new();
    for (name, var) in model.state_vars() {
        let t = tensors
            .remove(&format!("model.{name}"))
            .ok_or_else(|| fail(format!("tensor 'model.{name}' is missing")))?;
        if t.shape() != var.shape() {
            return Err(fail(format!(
                "tensor 'model.{name}' has shape {:?}, the model expects {:?}",
                t.dims(),
                var.dims()
            )));
        }
        values.push((var, t));
    }
    for (var, t) in values {
        t.to_dtype(var.dtype())
            .and_then(|t| var.set(&t))
            .map_err(|e| fail(format!("a model tensor: {e}")))?;
    }
    let mut trainer = Trainer::new(model, cfg)?;
    let mut opt = Vec::new();
    for (i, (step, scalar)) in state.params.into_iter().enumerate() {
        opt.push(ParamState {
            step,
            scalar,
            buf1: tensors.remove(&format!("opt.{i}.buf1")),
            buf2: tensors.remove(&format!("opt.{i}.buf2")),
        });
    }
    trainer
        .opt
        .import_state(opt)
        .map_err(|e| fail(e.to_string()))?;
    trainer
        .replay(state.report)
        .map_err(|e| fail(e.to_string()))?;
    let mut masks = Masks::default();
    for (name, t) in tensors {
        match name.strip_prefix("mask.") {
            Some(w) => masks.insert(w.to_string(), t),
            None => return Err(fail(format!("unexpected tensor '{name}'"))),
        }
    }
    let masks = (!masks.is_empty()).then_some(masks);
    Ok((trainer, masks))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ImageSet, Normalize};
    use crate::model::LeNet5;
    use crate::prune::layerwise_magnitude;
    use crate::train::fit::FitData;
    use crate::train::{fit, DecayScope, OptimizerConfig, ScheduleConfig, ScheduleSpec};
    use rand::{Rng, SeedableRng};

    fn images(n: usize, seed: u64) -> ImageSet {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut data = vec![0u8; n * 784];
        rng.fill(&mut data[..]);
        let labels = (0..n)
            .map(|i| {
                (data[i * 784..i * 784 + 392]
                    .iter()
                    .map(|&b| b as u32)
                    .sum::<u32>()
                    / 392)
                    % 10
            })
            .collect();
        ImageSet::new(data, labels, [1, 28, 28], 10, Normalize::identity(1)).unwrap()
    }

    /// A curve stopped at epoch 2, saved, loaded into a fresh model and continued to 5 is the
    /// curve of one uninterrupted 5-epoch fit, to the bit: weights, Adam moments, the step
    /// counts and a plateau schedule all come back (a restart would repeat epochs 0-1's lr
    /// pattern and differ).
    #[test]
    fn a_saved_run_continues_its_curve_exactly() -> Result<()> {
        let dev = Device::Cpu;
        let (train, valid) = (images(192, 1), images(100, 2));
        let cfg = TrainConfig {
            epochs: 5,
            batch_size: 32,
            eval_batch_size: 100,
            max_batches: None,
            optimizer: OptimizerConfig::adam(3e-3),
            schedule: ScheduleSpec::from(ScheduleConfig::Plateau {
                mode: crate::train::PlateauMode::Min,
                factor: 0.5,
                patience: 0,
                threshold: 0.5,
                threshold_mode: crate::train::ThresholdMode::Rel,
                cooldown: 0,
                min_lr: 0.0,
                eps: 1e-8,
                metric: crate::train::PlateauMetric::TrainLoss,
            }),
            decay: DecayScope::Weights,
            restore_best: false,
        };
        let build = || -> Result<LeNet5> {
            let mut m = LeNet5::new(10, 7, &dev)?;
            m.set_plan(&"swish,relu,gelu,elu".parse()?)?;
            m.set_scales_trainable(true);
            Ok(m)
        };
        let mut whole = build()?;
        let masks = layerwise_magnitude(&whole, 0.9)?;
        let full = fit(
            &mut whole,
            Some(&masks),
            &train,
            Some(&valid),
            &cfg,
            3,
            &dev,
            &mut |_, _| Ok(()),
        )?;

        let path = std::env::temp_dir()
            .join(format!("safs-resume-{}", std::process::id()))
            .join("run.safetensors");
        let data = FitData {
            masks: Some(&masks),
            train: &train,
            valid: Some(&valid),
            seed: 3,
            device: &dev,
        };
        let mut first = build()?;
        let mut t = Trainer::new(&first, &cfg)?;
        t.train_until(&mut first, &data, 2, &mut |_, _| Ok(()))?;
        save_trainer(&path, &first, Some(&masks), &t)?;
        drop((first, t));

        let mut second = build()?;
        let (mut t, loaded) = load_trainer(&path, &mut second, &cfg, &dev)?;
        assert_eq!(t.epochs_done(), 2);
        let loaded = loaded.expect("masks saved");
        let data = FitData {
            masks: Some(&loaded),
            ..data
        };
        t.train_until(&mut second, &data, 5, &mut |_, _| Ok(()))?;
        let resumed = t.finish(&mut second)?;
        let curve = |r: &FitReport| -> Vec<(u64, u64, u64)> {
            r.epochs
                .iter()
                .map(|e| {
                    let v = e.valid.unwrap();
                    (e.train_loss.to_bits(), v.loss.to_bits(), e.lr.to_bits())
                })
                .collect()
        };
        assert_eq!(curve(&resumed), curve(&full));
        assert!(
            full.epochs.iter().any(|e| e.lr != 3e-3),
            "the plateau schedule never cut the lr: the test does not check its replay"
        );
        let w = |m: &LeNet5| -> Result<Vec<f32>> {
            let mut v = Vec::new();
            for (_, t) in m.state()? {
                v.extend(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?);
            }
            Ok(v)
        };
        assert_eq!(w(&second)?, w(&whole)?);
        // A state file is refused for a run whose config keeps the best epoch's weights.
        let mut third = build()?;
        let keep_best = TrainConfig {
            restore_best: true,
            ..cfg.clone()
        };
        let e = load_trainer(&path, &mut third, &keep_best, &dev)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("best epoch"), "{e}");
        // A truncated file names itself.
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
        let e = load_trainer(&path, &mut third, &cfg, &dev)
            .err()
            .expect("refused");
        assert!(e.to_string().contains("run.safetensors"), "{e}");
        Ok(())
    }
}
