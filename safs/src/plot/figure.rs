//! The few chart shapes every SAFS chart is made of (line/point panels, bar panels, tile
//! grids), the figure layout (title, panels, legend column) and shared drawing helpers.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::palette::{Rgb, Stroke};
use crate::{Error, Result};

/// The font family every text uses (registered by [`super::register_fonts`]).
pub(crate) const FONT: &str = "sans-serif";

/// A figure: a title (drawn by the caller), panels in a grid, an optional legend column.
#[derive(Clone, Debug)]
pub(crate) struct Figure {
    /// Panels, filled row by row.
    pub panels: Vec<Panel>,
    /// Panels per row.
    pub cols: usize,
}

/// One panel of a figure.
#[derive(Clone, Debug)]
pub(crate) enum Panel {
    /// Lines and points on numeric axes.
    Xy(XyPanel),
    /// Bars over named categories.
    Bars(BarPanel),
    /// Labelled coloured tiles.
    Tiles(TilePanel),
    /// Parallel coordinates.
    Parallel(ParallelPanel),
}

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Mark {
    /// A polyline, broken where a value is not finite.
    Line { width: u32, stroke: Stroke },
    /// One marker per point.
    Points { shape: Shape, size: u32 },
}

/// A point marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A filled disc.
    Dot,
    /// An open circle.
    Ring,
    /// An x.
    Cross,
    /// A filled triangle.
    Triangle,
}

/// A named series of an [`XyPanel`]; an empty name keeps it out of the legend.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    pub name: String,
    pub color: Rgb,
    pub mark: Mark,
    pub points: Vec<(f64, f64)>,
}

/// A dashed reference line across a panel at a value, with its label.
#[derive(Clone, Debug)]
pub(crate) struct RefLine {
    pub value: f64,
    pub label: String,
    pub color: Rgb,
}

/// Lines and points on numeric axes.
#[derive(Clone, Debug, Default)]
pub(crate) struct XyPanel {
    pub subtitle: Option<String>,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// Tick labels only at whole numbers (steps, epochs).
    pub integer_x: bool,
    /// Horizontal reference lines.
    pub h_lines: Vec<RefLine>,
}

/// One coloured group of bars (one bar per category).
#[derive(Clone, Debug)]
pub(crate) struct BarGroup {
    pub name: String,
    pub color: Rgb,
    /// One value per category; a non-finite value draws no bar but an "n/a" mark.
    pub values: Vec<f64>,
    /// Error-bar half-widths, one per category (empty, or NaN for none).
    pub errors: Vec<f64>,
}

/// Grouped bars over named categories.
#[derive(Clone, Debug, Default)]
pub(crate) struct BarPanel {
    pub subtitle: Option<String>,
    pub categories: Vec<String>,
    pub groups: Vec<BarGroup>,
    pub category_label: String,
    pub value_label: String,
    /// Categories on the y axis, top to bottom, bars to the right.
    pub horizontal: bool,
    /// Decimals of the value printed at each bar.
    pub decimals: usize,
    /// Printed after each bar's value (e.g. "%").
    pub value_suffix: String,
    /// Reference lines across the bars at a value.
    pub ref_lines: Vec<RefLine>,
    /// Fixed value axis; otherwise from 0 (or the smallest value) to the largest.
    pub value_range: Option<(f64, f64)>,
}

/// A labelled coloured tile.
#[derive(Clone, Debug)]
pub(crate) struct Tile {
    pub label: String,
    pub sublabel: String,
    pub fill: Rgb,
}

/// Tiles in a grid, read row by row, with a caption below.
#[derive(Clone, Debug, Default)]
pub(crate) struct TilePanel {
    pub tiles: Vec<Tile>,
    pub cols: usize,
    pub caption: String,
    /// A label left of each row (none when empty).
    pub row_labels: Vec<String>,
    /// A label above each column (none when empty).
    pub col_labels: Vec<String>,
}

/// One axis of a [`ParallelPanel`]: its name and tick labels at positions in 0..=1.
#[derive(Clone, Debug)]
pub(crate) struct ParallelAxis {
    pub name: String,
    pub ticks: Vec<(f64, String)>,
}

/// One row of a [`ParallelPanel`]: a value in 0..=1 per axis (NaN breaks the line).
#[derive(Clone, Debug)]
pub(crate) struct ParallelLine {
    pub values: Vec<f64>,
    pub color: Rgb,
}

/// Parallel coordinates: axes left to right, lines drawn in order (last on top), a
/// caption below.
#[derive(Clone, Debug, Default)]
pub(crate) struct ParallelPanel {
    pub axes: Vec<ParallelAxis>,
    pub lines: Vec<ParallelLine>,
    pub caption: String,
}

/// A legend line: a name and how its mark looks.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LegendEntry {
    pub name: String,
    pub color: Rgb,
    pub mark: Mark,
}

/// Maps a plotters drawing error into the crate's.
pub(crate) fn plot_err(e: impl std::fmt::Display) -> Error {
    Error::Plot(e.to_string())
}

pub(super) fn color(c: Rgb) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// Text of `size` pixels in `c`.
pub(super) fn text(size: u32, c: Rgb) -> TextStyle<'static> {
    (FONT, size as f64).into_font().color(&color(c))
}

/// A tick label: integers plainly, small and large numbers in scientific notation, at
/// most four decimals otherwise.
pub(crate) fn tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return if v.is_finite() {
            "0".into()
        } else {
            String::new()
        };
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        let s = format!("{v:.1e}");
        return s.replace(".0e", "e");
    }
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Legend entries of every panel, first occurrence of each name.
pub(crate) fn legend_entries(figure: &Figure) -> Vec<LegendEntry> {
    let mut out: Vec<LegendEntry> = Vec::new();
    let mut push = |e: LegendEntry| {
        if !e.name.is_empty() && !out.iter().any(|o| o.name == e.name) {
            out.push(e);
        }
    };
    for panel in &figure.panels {
        match panel {
            Panel::Xy(p) => p.series.iter().for_each(|s| {
                push(LegendEntry {
                    name: s.name.clone(),
                    color: s.color,
                    mark: s.mark,
                })
            }),
            Panel::Bars(p) if p.groups.len() > 1 => p.groups.iter().for_each(|g| {
                push(LegendEntry {
                    name: g.name.clone(),
                    color: g.color,
                    mark: Mark::Points {
                        shape: Shape::Dot,
                        size: 0,
                    },
                })
            }),
            _ => {}
        }
        let lines = match panel {
            Panel::Xy(p) => &p.h_lines[..],
            Panel::Bars(p) => &p.ref_lines[..],
            Panel::Tiles(_) | Panel::Parallel(_) => &[][..],
        };
        for l in lines {
            push(LegendEntry {
                name: l.label.clone(),
                color: l.color,
                mark: Mark::Line {
                    width: 2,
                    stroke: Stroke::Dashed,
                },
            });
        }
    }
    out
}

/// Width in pixels of the legend column (0 without entries).
fn legend_width(entries: &[LegendEntry]) -> u32 {
    if entries.is_empty() {
        return 0;
    }
    let chars = entries
        .iter()
        .map(|e| e.name.chars().count())
        .max()
        .unwrap_or(0);
    (chars as u32 * 9 + 56).clamp(110, 300)
}

/// `lo..hi` of the finite values, padded by `pad` of the span (a flat range is widened).
pub(super) fn span(values: impl Iterator<Item = f64>, pad: f64) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        return None;
    }
    if hi - lo < 1e-12 * hi.abs().max(lo.abs()).max(1e-300) {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return Some((lo - d, hi + d));
    }
    let d = (hi - lo) * pad;
    Some((lo - d, hi + d))
}

/// Splits a polyline at non-finite points into finite runs.
pub(super) fn finite_runs(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut runs = vec![Vec::new()];
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() {
            runs.last_mut().expect("non-empty").push((x, y));
        } else if !runs.last().expect("non-empty").is_empty() {
            runs.push(Vec::new());
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

/// Draws the whole figure under `title` on `root`.
pub(crate) fn draw_figure<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    figure: &Figure,
) -> Result<()> {
    root.fill(&WHITE).map_err(plot_err)?;
    let body = root
        .titled(title, text(24, Rgb(0, 0, 0)))
        .map_err(plot_err)?;
    let entries = legend_entries(figure);
    let lw = legend_width(&entries);
    let (w, _) = body.dim_in_pixel();
    let main = if lw > 0 && w > lw + 100 {
        let (main, side) = body.split_horizontally(w - lw);
        draw_legend(&side, &entries)?;
        main
    } else {
        body
    };
    let cols = figure.cols.max(1);
    let rows = figure.panels.len().div_ceil(cols);
    let areas = main.split_evenly((rows.max(1), cols));
    for (panel, area) in figure.panels.iter().zip(&areas) {
        match panel {
            Panel::Xy(p) => super::xy::draw_xy(area, p)?,
            Panel::Bars(p) => super::bars::draw_bars(area, p)?,
            Panel::Tiles(p) => super::tiles::draw_tiles(area, p)?,
            Panel::Parallel(p) => super::parallel::draw_parallel(area, p)?,
        }
    }
    root.present().map_err(plot_err)
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> Result<()> {
    let style = text(15, Rgb(0, 0, 0));
    let mut y = 40;
    for e in entries {
        let c = color(e.color);
        let x = 6;
        match e.mark {
            Mark::Line { width, stroke } => match stroke {
                Stroke::Solid => area
                    .draw(&PathElement::new(
                        vec![(x, y), (x + 28, y)],
                        c.stroke_width(width),
                    ))
                    .map_err(plot_err)?,
                Stroke::Dashed | Stroke::Dotted => {
                    let (dash, gap) = if stroke == Stroke::Dashed {
                        (6, 4)
                    } else {
                        (2, 3)
                    };
                    let mut x0 = x;
                    while x0 < x + 28 {
                        let x1 = (x0 + dash).min(x + 28);
                        area.draw(&PathElement::new(
                            vec![(x0, y), (x1, y)],
                            c.stroke_width(width),
                        ))
                        .map_err(plot_err)?;
                        x0 = x1 + gap;
                    }
                }
            },
            Mark::Points { shape, size } if size > 0 => {
                draw_marker(area, (x + 14, y), shape, size, e.color)?;
            }
            Mark::Points { .. } => area
                .draw(&Rectangle::new(
                    [(x + 4, y - 6), (x + 24, y + 6)],
                    c.filled(),
                ))
                .map_err(plot_err)?,
        }
        area.draw(&Text::new(
            e.name.clone(),
            (x + 36, y),
            style.pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(plot_err)?;
        y += 24;
    }
    Ok(())
}

/// One marker at a pixel position of `area`.
pub(super) fn draw_marker<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    shape: Shape,
    size: u32,
    c: Rgb,
) -> Result<()> {
    let c = color(c);
    match shape {
        Shape::Dot => area.draw(&Circle::new(at, size, c.filled())),
        Shape::Ring => area.draw(&Circle::new(at, size, c.stroke_width(2))),
        Shape::Cross => area.draw(&Cross::new(at, size, c.stroke_width(2))),
        Shape::Triangle => area.draw(&TriangleMarker::new(at, size + 2, c.filled())),
    }
    .map_err(plot_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_tick_labels() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(1.0), "1");
        assert_eq!(tick(0.25), "0.25");
        assert_eq!(tick(-2.5), "-2.5");
        assert_eq!(tick(1e-4), "1e-4");
        assert_eq!(tick(2.5e-4), "2.5e-4");
        assert_eq!(tick(123456.0), "1.2e5");
        assert_eq!(tick(f64::NAN), "");
    }

    #[test]
    fn plot_finite_runs_split_at_nan() {
        let pts = [
            (0.0, 1.0),
            (1.0, f64::NAN),
            (2.0, 2.0),
            (3.0, 3.0),
            (f64::INFINITY, 1.0),
        ];
        assert_eq!(
            finite_runs(&pts),
            vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]
        );
        assert_eq!(
            span([1.0, f64::NAN, 3.0].into_iter(), 0.0),
            Some((1.0, 3.0))
        );
        assert_eq!(span([f64::NAN].into_iter(), 0.0), None);
        assert_eq!(span([0.0].into_iter(), 0.0), Some((-1.0, 1.0)));
    }
}
