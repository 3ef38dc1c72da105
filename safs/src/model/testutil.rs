//! Test helpers: finite-difference gradient checks (f64) and whole-model checks.

use candle_core::{DType, Tensor, Var};

use crate::Result;

/// Checks d loss / d var at up to `max_checks` evenly spread entries of `var` (f64).
///
/// `loss` must recompute the scalar loss from the current values of every variable.
pub(crate) fn check_grad(
    what: &str,
    loss: &dyn Fn() -> Result<Tensor>,
    var: &Var,
    max_checks: usize,
) -> Result<()> {
    assert_eq!(
        var.dtype(),
        DType::F64,
        "{what}: gradient checks run in f64"
    );
    let grads = loss()?.backward()?;
    let g = grads
        .get(var.as_tensor())
        .unwrap_or_else(|| panic!("{what}: no gradient"))
        .flatten_all()?
        .to_vec1::<f64>()?;
    let shape = var.shape().clone();
    let vals: Vec<f64> = var.as_tensor().flatten_all()?.to_vec1()?;
    let n = vals.len();
    let step = n.div_ceil(max_checks.max(1)).max(1);
    let h = 1e-5;
    let eval_at = |i: usize, delta: f64| -> Result<f64> {
        let mut p = vals.clone();
        p[i] += delta;
        var.set(&Tensor::from_vec(p, &shape, var.device())?)?;
        Ok(loss()?.to_scalar::<f64>()?)
    };
    let mut checked = 0;
    for i in (0..n).step_by(step) {
        let fd = (eval_at(i, h)? - eval_at(i, -h)?) / (2.0 * h);
        let tol = 1e-6 * (1.0 + fd.abs().max(g[i].abs()));
        assert!(
            (fd - g[i]).abs() < tol,
            "{what}[{i}]: finite difference {fd} vs backward {}",
            g[i]
        );
        checked += 1;
    }
    var.set(&Tensor::from_vec(vals, &shape, var.device())?)?;
    assert!(checked > 0);
    Ok(())
}

/// A deterministic f64 tensor of `shape` with values in about [-1, 1].
pub(crate) fn pseudo_random(shape: &[usize], salt: u64) -> Result<Tensor> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(salt);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
    Ok(Tensor::from_vec(v, shape, &candle_core::Device::Cpu)?)
}

/// Every `(name, elements)` of a model's parameters, for readable count failures.
pub(crate) fn param_table(m: &dyn super::Network) -> Vec<(String, usize)> {
    m.parameters()
        .into_iter()
        .map(|p| (p.name, p.var.elem_count()))
        .collect()
}

/// Checks a width-scaled model end to end on a batch of 2: shapes in train and eval mode,
/// seeded determinism, train != eval, gradients reaching every parameter, naming rules.
pub(crate) fn check_full_model(
    build: &dyn Fn(u64) -> Result<Box<dyn super::Network>>,
    input: &[usize],
    classes: usize,
) -> Result<()> {
    use super::ParamKind;
    let x = pseudo_random(input, 11)?.to_dtype(DType::F32)?;
    let a = build(3)?;
    let b = build(3)?;
    let c = build(4)?;
    let ya = a.forward_t(&x, true)?;
    let yb = b.forward_t(&x, true)?;
    let yc = c.forward_t(&x, true)?;
    assert_eq!(ya.dims(), &[input[0], classes]);
    let max_abs = |t: &Tensor| -> f32 { t.abs().unwrap().max_all().unwrap().to_scalar().unwrap() };
    assert!(max_abs(&ya).is_finite());
    assert_eq!(max_abs(&ya.sub(&yb)?), 0.0, "same seed, same output");
    assert!(max_abs(&ya.sub(&yc)?) > 0.0, "other seed, other output");
    let ea = a.forward_t(&x, false)?;
    let eb = b.forward_t(&x, false)?;
    assert_eq!(ea.dims(), &[input[0], classes]);
    assert_eq!(max_abs(&ea.sub(&eb)?), 0.0);
    assert!(
        max_abs(&ea.sub(&ya)?) > 1e-6,
        "train and eval must differ (BatchNorm)"
    );
    // Eval is a pure function of the input: a second call gives the same numbers.
    assert_eq!(max_abs(&a.forward_t(&x, false)?.sub(&ea)?), 0.0);

    // Every parameter and no buffer gets a gradient.
    let r = pseudo_random(&[input[0], classes], 12)?.to_dtype(DType::F32)?;
    let grads = a.forward_t(&x, true)?.mul(&r)?.sum_all()?.backward()?;
    for p in a.parameters() {
        assert!(
            grads.get(p.var.as_tensor()).is_some(),
            "no gradient for {}",
            p.name
        );
    }
    for (name, v) in a.buffers() {
        assert!(
            grads.get(v.as_tensor()).is_none(),
            "buffer {name} got a gradient"
        );
    }

    // Names are unique; prunable = the conv and linear weights (rank >= 2) and nothing else.
    let mut names: Vec<String> = a.parameters().into_iter().map(|p| p.name).collect();
    names.extend(a.buffers().into_iter().map(|(n, _)| n));
    let total = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), total, "duplicate parameter or buffer names");
    for p in a.parameters() {
        let rank = p.var.rank();
        match p.kind {
            ParamKind::Weight => assert!(rank >= 2 && p.name.ends_with(".weight"), "{}", p.name),
            ParamKind::Bias => assert!(rank == 1 && p.name.ends_with(".bias"), "{}", p.name),
            ParamKind::Norm => assert!(rank == 1, "{}", p.name),
        }
    }
    let prunable: Vec<String> = a.prunable().into_iter().map(|p| p.name).collect();
    let big: Vec<String> = a
        .parameters()
        .into_iter()
        .filter(|p| p.var.rank() >= 2)
        .map(|p| p.name)
        .collect();
    assert_eq!(prunable, big);
    // Two buffers per BatchNorm, one BatchNorm per Norm pair.
    let norms = a
        .parameters()
        .iter()
        .filter(|p| p.kind == ParamKind::Norm)
        .count();
    assert_eq!(a.buffers().len(), norms);
    Ok(())
}
