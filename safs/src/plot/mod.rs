//! Charts of SAFS data, drawn with plotters: the operators, training curves, the Stage 1
//! search, the Stage 2 HPO, pruning, the per-epoch curves of every arm, the learnt scales
//! and the Table 1 results (one run, or means with 95% intervals over seeds).
//!
//! Every function returns a [`Chart`]: the chart as SVG (rendered when it is built, so a
//! bad input is an error there, never a panic) that can be written as SVG or PNG. In the
//! evcxr Jupyter kernel, `kernel-extras` shows a chart that is a cell's last value inline
//! (`use kernel_extras::prelude::*;`): the display protocol lives there only.
//!
//! ```no_run
//! use safs::activation::{Op, SEARCH_SPACE};
//! let chart = safs::plot::operators(&SEARCH_SPACE[..6], (-4.0, 4.0))?;
//! chart.save_svg("operators.svg")?;
//! chart.save_png("operators.png")?;
//! # Ok::<(), safs::Error>(())
//! ```
//!
//! Conventions: a title, axis labels with units, a legend column on the right when there
//! are several series, Okabe–Ito colours ([`palette`]), one fixed colour and stroke per
//! operator and per Table 1 arm. Non-finite values (NaN, ±inf) are skipped: lines break
//! there, bars show "n/a". Empty input is an [`Error::Config`] naming what is missing.
//!
//! Text is laid out (and, for PNG, drawn) with an embedded 28 KB subset of DejaVu Sans
//! (Latin-1, Greek, arrows, math signs; `assets/fonts`, Bitstream Vera licence) through
//! plotters' `ab_glyph` feature: no system font is needed, and SVG viewers draw the text
//! with their own sans-serif font.

mod activation;
mod bars;
mod figure;
pub mod palette;
mod parallel;
mod png;
mod results;
mod search;
mod seeds;
mod tiles;
mod training;
mod trials;
mod xy;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::{BitMapBackend, IntoDrawingArea, SVGBackend};
use plotters::style::FontStyle;

pub use activation::{operator_derivatives, operator_plan, operators, scaled_operator};
pub use palette::{op_color, op_style, Rgb};
pub use results::{accuracy_vs_prune_rate, sparsity_per_layer, table1_comparison};
pub use search::{hpo_history, hpo_top_trials, search_steps_chart, search_trajectory};
pub use seeds::{arm_curves, learnt_scales, seed_summary_chart};
pub use training::training_curves;
pub use trials::{hpo_importance, hpo_parallel_coordinates, operator_choices, MAX_AXES, MAX_BARS};

use figure::{draw_figure, Figure};

use crate::{Error, Result};

/// The embedded font: DejaVu Sans cut down to Latin-1, Greek and a few signs.
static FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-subset.ttf");

/// Registers the embedded font under the generic family names plotters may ask for.
fn register_fonts() -> Result<()> {
    static OK: OnceLock<bool> = OnceLock::new();
    let ok = *OK.get_or_init(|| {
        ["sans-serif", "serif", "monospace", "DejaVu Sans"]
            .iter()
            .all(|name| plotters::style::register_font(name, FontStyle::Normal, FONT_BYTES).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Plot("the embedded font could not be loaded".into()))
    }
}

/// A finished chart: its title, size in pixels, the SVG text and what redraws it as PNG.
#[derive(Clone, Debug)]
pub struct Chart {
    title: String,
    width: u32,
    height: u32,
    figure: Figure,
    svg: String,
}

impl Chart {
    /// Draws `figure` under `title` as SVG (the check that it can be drawn at all).
    pub(crate) fn new(title: impl Into<String>, size: (u32, u32), figure: Figure) -> Result<Self> {
        let mut chart = Chart {
            title: title.into(),
            width: size.0,
            height: size.1,
            figure,
            svg: String::new(),
        };
        chart.svg = chart.render_svg()?;
        Ok(chart)
    }

    fn render_svg(&self) -> Result<String> {
        register_fonts()?;
        if self.width < 100 || self.height < 100 {
            return Err(Error::Config(format!(
                "chart size {}x{} is too small (at least 100x100 pixels)",
                self.width, self.height
            )));
        }
        let mut svg = String::new();
        {
            let root =
                SVGBackend::with_string(&mut svg, (self.width, self.height)).into_drawing_area();
            draw_figure(&root, &self.title, &self.figure)?;
        }
        // An accessible name for screen readers and notebook tooltips.
        if let Some(end) = svg.find('>') {
            let title = xml_escape(&self.title);
            svg.insert_str(end + 1, &format!("\n<title>{title}</title>"));
        }
        Ok(svg)
    }

    /// The same chart redrawn at another size in pixels.
    pub fn with_size(&self, width: u32, height: u32) -> Result<Chart> {
        Chart::new(self.title.clone(), (width, height), self.figure.clone())
    }

    /// The chart's title.
    pub fn title(&self) -> &str {
        &self.title
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// The chart as an SVG document.
    pub fn to_svg(&self) -> &str {
        &self.svg
    }

    /// Writes the SVG document to `path` (whole or not at all, creating its folder).
    pub fn save_svg(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::util::atomic_write(path.as_ref(), self.svg.as_bytes())
    }

    /// The chart drawn on a bitmap, encoded as PNG (`scale` 2 for high-DPI screens).
    pub fn to_png_scaled(&self, scale: u32) -> Result<Vec<u8>> {
        register_fonts()?;
        if !(1..=4).contains(&scale) {
            return Err(Error::Config(format!("png scale {scale} must be 1..=4")));
        }
        if scale > 1 {
            return self
                .with_size(self.width * scale, self.height * scale)?
                .to_png_scaled(1);
        }
        let (w, h) = (self.width, self.height);
        let mut rgb = vec![255u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
            draw_figure(&root, &self.title, &self.figure)?;
        }
        png::encode_rgb(&rgb, w, h)
    }

    /// The chart drawn on a bitmap, encoded as PNG.
    pub fn to_png(&self) -> Result<Vec<u8>> {
        self.to_png_scaled(1)
    }

    /// Writes the chart as a PNG file to `path` (whole or not at all, creating its folder).
    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<()> {
        crate::util::atomic_write(path.as_ref(), &self.to_png()?)
    }
}

/// Escapes `&`, `<`, `>` and quotes for XML text and attributes.
pub(crate) fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An error unless `x_range` is finite and increasing.
pub(crate) fn check_range(x_range: (f64, f64)) -> Result<()> {
    let (lo, hi) = x_range;
    if !(lo.is_finite() && hi.is_finite() && lo < hi) {
        return Err(Error::Config(format!(
            "x range ({lo}, {hi}) must be finite with low < high"
        )));
    }
    Ok(())
}
