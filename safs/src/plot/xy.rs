//! Line and point panels on numeric axes.

use plotters::coord::Shift;
use plotters::prelude::*;

use super::figure::{color, finite_runs, plot_err, span, text, tick, Mark, Shape, XyPanel};
use super::palette::{Rgb, Stroke};
use crate::Result;

pub(super) fn draw_xy<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &XyPanel,
) -> Result<()> {
    let xs = p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0));
    let ys = p
        .series
        .iter()
        .flat_map(|s| s.points.iter().filter(|q| q.0.is_finite()).map(|q| q.1))
        .chain(p.h_lines.iter().map(|l| l.value));
    // A panel with nothing finite still draws its (empty) axes.
    let (x0, x1) = span(xs, 0.02).unwrap_or((0.0, 1.0));
    let (y0, y1) = span(ys, 0.06).unwrap_or((0.0, 1.0));
    let mut builder = ChartBuilder::on(area);
    if let Some(sub) = &p.subtitle {
        builder.caption(sub, text(18, Rgb(0, 0, 0)));
    }
    let mut chart = builder
        .margin(10)
        .margin_right(18)
        .x_label_area_size(50)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_err)?;
    let integer_x = p.integer_x;
    let x_fmt = move |v: &f64| {
        if integer_x && (v - v.round()).abs() > 1e-9 {
            String::new()
        } else {
            tick(*v)
        }
    };
    let y_fmt = |v: &f64| tick(*v);
    chart
        .configure_mesh()
        .x_desc(p.x_label.as_str())
        .y_desc(p.y_label.as_str())
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(text(14, Rgb(0x33, 0x33, 0x33)))
        .axis_desc_style(text(16, Rgb(0, 0, 0)))
        .bold_line_style(RGBColor(0xdd, 0xdd, 0xdd))
        .light_line_style(RGBColor(0xf2, 0xf2, 0xf2))
        .draw()
        .map_err(plot_err)?;
    for l in &p.h_lines {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(x0, l.value), (x1, l.value)],
                6,
                4,
                color(l.color).stroke_width(1),
            ))
            .map_err(plot_err)?;
    }
    for s in &p.series {
        let c = color(s.color);
        match s.mark {
            Mark::Line { width, stroke } => {
                for run in finite_runs(&s.points) {
                    let style = c.stroke_width(width);
                    match stroke {
                        Stroke::Solid => chart.draw_series(LineSeries::new(run, style)),
                        Stroke::Dashed => {
                            chart.draw_series(DashedLineSeries::new(run, 8, 5, style))
                        }
                        Stroke::Dotted => {
                            chart.draw_series(DashedLineSeries::new(run, 2, 4, style))
                        }
                    }
                    .map_err(plot_err)?;
                }
            }
            Mark::Points { shape, size } => {
                let pts = s
                    .points
                    .iter()
                    .copied()
                    .filter(|q| q.0.is_finite() && q.1.is_finite());
                match shape {
                    Shape::Dot => chart.draw_series(pts.map(|q| Circle::new(q, size, c.filled()))),
                    Shape::Ring => {
                        chart.draw_series(pts.map(|q| Circle::new(q, size, c.stroke_width(2))))
                    }
                    Shape::Cross => {
                        chart.draw_series(pts.map(|q| Cross::new(q, size, c.stroke_width(2))))
                    }
                    Shape::Triangle => {
                        chart.draw_series(pts.map(|q| TriangleMarker::new(q, size + 2, c.filled())))
                    }
                }
                .map_err(plot_err)?;
            }
        }
    }
    Ok(())
}
