//! Grouped bars over named categories, vertical or horizontal.

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::{color, plot_err, span, text, tick, BarPanel};
use super::palette::Rgb;
use crate::{Error, Result};

/// A category axis: categories at 0, 1, ..., n-1, each a unit wide.
#[derive(Clone, Copy, Debug)]
struct CatAxis {
    n: usize,
}

impl Ranged for CatAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value + 0.5) / self.n as f64;
        limit.0 + ((limit.1 - limit.0) as f64 * t).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.max_num_points() == 0 {
            return Vec::new();
        }
        (0..self.n).map(|i| i as f64).collect()
    }

    fn range(&self) -> std::ops::Range<f64> {
        -0.5..self.n as f64 - 0.5
    }
}

impl ValueFormatter<f64> for CatAxis {
    fn format_ext(&self, value: &f64) -> String {
        value.to_string()
    }
}

pub(super) fn draw_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &BarPanel,
) -> Result<()> {
    let n = p.categories.len();
    if n == 0 || p.groups.is_empty() {
        return Err(Error::Config(
            "a bar chart needs a category and a group".into(),
        ));
    }
    let err = |g: &super::figure::BarGroup, i: usize| {
        g.errors
            .get(i)
            .copied()
            .filter(|e| e.is_finite() && *e > 0.0)
    };
    let values = p.groups.iter().flat_map(|g| {
        g.values.iter().enumerate().flat_map(move |(i, &v)| {
            let e = err(g, i).unwrap_or(0.0);
            [v - e, v + e]
        })
    });
    let (lo, hi) = match p.value_range {
        Some(r) => r,
        None => {
            let (lo, hi) =
                span(values.chain(p.ref_lines.iter().map(|l| l.value)), 0.0).unwrap_or((0.0, 1.0));
            let lo = lo.min(0.0);
            let hi = hi.max(0.0);
            let d = (hi - lo).max(1e-9);
            (
                if lo < 0.0 { lo - 0.08 * d } else { 0.0 },
                if hi > 0.0 { hi + 0.14 * d } else { 0.0 },
            )
        }
    };
    let names = p.categories.clone();
    let cat_fmt = move |v: &f64, horizontal: bool| {
        let i = v.round();
        if (v - i).abs() > 1e-9 || i < 0.0 || i as usize >= n {
            return String::new();
        }
        let i = if horizontal {
            n - 1 - i as usize
        } else {
            i as usize
        };
        names[i].clone()
    };
    let longest = p
        .categories
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(1) as u32;
    let mut builder = ChartBuilder::on(area);
    if let Some(sub) = &p.subtitle {
        builder.caption(sub, text(18, Rgb(0, 0, 0)));
    }
    builder.margin(10).margin_right(24);
    let label_style = text(14, Rgb(0x33, 0x33, 0x33));
    let desc_style = text(16, Rgb(0, 0, 0));
    let groups = p.groups.len();
    let bar_w = 0.8 / groups as f64;
    let value_text = |v: f64| {
        if v.is_finite() {
            format!("{v:.*}{}", p.decimals, p.value_suffix)
        } else {
            "n/a".to_string()
        }
    };
    let val_fmt = |v: &f64| tick(*v);
    if p.horizontal {
        let mut chart = builder
            .x_label_area_size(50)
            .y_label_area_size((longest * 8 + 44).clamp(60, 280))
            .build_cartesian_2d(lo..hi, CatAxis { n })
            .map_err(plot_err)?;
        let y_fmt = |v: &f64| cat_fmt(v, true);
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(p.value_label.as_str())
            .y_desc(p.category_label.as_str())
            .x_label_formatter(&val_fmt)
            .y_label_formatter(&y_fmt)
            .y_labels(n)
            .label_style(label_style.clone())
            .axis_desc_style(desc_style)
            .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
            .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
            .draw()
            .map_err(plot_err)?;
        for (g, group) in p.groups.iter().enumerate() {
            let c = color(group.color);
            for (i, &v) in group.values.iter().enumerate().take(n) {
                let y_mid = (n - 1 - i) as f64;
                let y_a = y_mid + 0.4 - g as f64 * bar_w;
                let y_b = y_a - bar_w * 0.9;
                if v.is_finite() {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(0f64.max(lo), y_a), (v, y_b)],
                            c.filled(),
                        )))
                        .map_err(plot_err)?;
                }
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((if v.is_finite() { v } else { 0.0 }, (y_a + y_b) / 2.0))
                            + Text::new(
                                value_text(v),
                                (4, 0),
                                label_style.pos(Pos::new(HPos::Left, VPos::Center)),
                            ),
                    ))
                    .map_err(plot_err)?;
            }
        }
        for l in &p.ref_lines {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(l.value, -0.5), (l.value, n as f64 - 0.5)],
                    6,
                    4,
                    color(l.color).stroke_width(2),
                ))
                .map_err(plot_err)?;
        }
    } else {
        let mut chart = builder
            .x_label_area_size(52)
            .y_label_area_size(72)
            .build_cartesian_2d(CatAxis { n }, lo..hi)
            .map_err(plot_err)?;
        let x_fmt = |v: &f64| cat_fmt(v, false);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(p.category_label.as_str())
            .y_desc(p.value_label.as_str())
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&val_fmt)
            .x_labels(n)
            .label_style(label_style.clone())
            .axis_desc_style(desc_style)
            .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
            .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
            .draw()
            .map_err(plot_err)?;
        for (g, group) in p.groups.iter().enumerate() {
            let c = color(group.color);
            for (i, &v) in group.values.iter().enumerate().take(n) {
                let x_a = i as f64 - 0.4 + g as f64 * bar_w;
                let x_b = x_a + bar_w * 0.9;
                if v.is_finite() {
                    chart
                        .draw_series(std::iter::once(Rectangle::new(
                            [(x_a, 0f64.max(lo)), (x_b, v)],
                            c.filled(),
                        )))
                        .map_err(plot_err)?;
                }
                let at = (x_a + x_b) / 2.0;
                let whisker = err(group, i).filter(|_| v.is_finite());
                if let Some(e) = whisker {
                    let w = bar_w * 0.2;
                    let style = color(Rgb(0, 0, 0)).stroke_width(2);
                    for seg in [
                        vec![(at, v - e), (at, v + e)],
                        vec![(at - w, v - e), (at + w, v - e)],
                        vec![(at - w, v + e), (at + w, v + e)],
                    ] {
                        chart
                            .draw_series(LineSeries::new(seg, style))
                            .map_err(plot_err)?;
                    }
                }
                let below = v.is_finite() && v < 0.0;
                let tip = v + whisker.map_or(0.0, |e| if below { -e } else { e });
                let (pos, dy) = if below {
                    (Pos::new(HPos::Center, VPos::Top), 3)
                } else {
                    (Pos::new(HPos::Center, VPos::Bottom), -3)
                };
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((at, if v.is_finite() { tip } else { 0.0 }))
                            + Text::new(value_text(v), (0, dy), label_style.pos(pos)),
                    ))
                    .map_err(plot_err)?;
            }
        }
        for l in &p.ref_lines {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(-0.5, l.value), (n as f64 - 0.5, l.value)],
                    6,
                    4,
                    color(l.color).stroke_width(2),
                ))
                .map_err(plot_err)?;
        }
    }
    Ok(())
}
