//! The layers of a sparse inference graph as a DataFrame.

use polars::prelude::{Column, DataFrame};

use crate::infer::LayerSummary;
use crate::Result;

/// One row per layer: layer, kind, weights, stored (non-zero weights kept), density
/// (stored / weights) and fused (what the output loop applies).
pub fn graph_frame(layers: &[LayerSummary]) -> Result<DataFrame> {
    let col = |name: &str, f: &dyn Fn(&LayerSummary) -> String| {
        Column::new(name.into(), layers.iter().map(f).collect::<Vec<_>>())
    };
    let num = |name: &str, f: &dyn Fn(&LayerSummary) -> u64| {
        Column::new(name.into(), layers.iter().map(f).collect::<Vec<_>>())
    };
    let density: Vec<f64> = layers
        .iter()
        .map(|l| l.stored as f64 / l.weights.max(1) as f64)
        .collect();
    Ok(DataFrame::new(
        layers.len(),
        vec![
            col("layer", &|l| l.name.clone()),
            col("kind", &|l| l.kind.to_string()),
            num("weights", &|l| l.weights as u64),
            num("stored", &|l| l.stored as u64),
            Column::new("density".into(), density),
            col("fused", &|l| l.fused.clone()),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_layer_with_its_density() -> Result<()> {
        let layers = vec![
            LayerSummary {
                name: "conv1".into(),
                kind: "conv",
                weights: 200,
                stored: 50,
                fused: "bn+relu".into(),
            },
            LayerSummary {
                name: "fc".into(),
                kind: "linear",
                weights: 10,
                stored: 10,
                fused: String::new(),
            },
        ];
        let df = graph_frame(&layers)?;
        assert_eq!(df.shape(), (2, 6));
        let density = df.column("density")?.f64()?;
        assert_eq!((density.get(0), density.get(1)), (Some(0.25), Some(1.0)));
        assert_eq!(df.column("stored")?.u64()?.get(0), Some(50));
        Ok(())
    }
}
