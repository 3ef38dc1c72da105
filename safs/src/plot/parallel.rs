//! Parallel coordinates: one vertical axis per variable, one polyline per row.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::{color, finite_runs, plot_err, text, ParallelPanel};
use super::palette::{Rgb, BLACK};
use crate::{Error, Result};

/// The viridis colour map at `t` in 0..=1 (dark purple to yellow), by linear
/// interpolation between five of its stops.
pub(crate) fn viridis(t: f64) -> Rgb {
    const STOPS: [(u8, u8, u8); 5] = [
        (0x44, 0x01, 0x54),
        (0x3b, 0x52, 0x8b),
        (0x21, 0x91, 0x8c),
        (0x5e, 0xc9, 0x62),
        (0xfd, 0xe7, 0x25),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (STOPS.len() - 1) as f64;
    let i = (x.floor() as usize).min(STOPS.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (a as f64 + (b as f64 - a as f64) * f).round() as u8;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    Rgb(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

pub(super) fn draw_parallel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &ParallelPanel,
) -> Result<()> {
    let k = p.axes.len();
    if k < 2 {
        return Err(Error::Config(
            "a parallel-coordinate chart needs at least two axes".into(),
        ));
    }
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let (left, right, top, bottom) = (90, 90, 60, 50);
    let x_of = |a: usize| left + (w - left - right) * a as i32 / (k as i32 - 1);
    let y_of = |v: f64| top + ((1.0 - v) * (h - top - bottom) as f64).round() as i32;
    for line in &p.lines {
        let points: Vec<(f64, f64)> = line
            .values
            .iter()
            .enumerate()
            .map(|(a, &v)| (a as f64, v))
            .collect();
        for run in finite_runs(&points) {
            let pixels: Vec<(i32, i32)> = run
                .iter()
                .map(|&(a, v)| (x_of(a as usize), y_of(v)))
                .collect();
            if pixels.len() == 1 {
                area.draw(&Circle::new(pixels[0], 3, color(line.color).filled()))
                    .map_err(plot_err)?;
            } else {
                area.draw(&PathElement::new(pixels, color(line.color).stroke_width(2)))
                    .map_err(plot_err)?;
            }
        }
    }
    for (a, axis) in p.axes.iter().enumerate() {
        let x = x_of(a);
        area.draw(&PathElement::new(
            vec![(x, y_of(0.0)), (x, y_of(1.0))],
            color(BLACK).stroke_width(1),
        ))
        .map_err(plot_err)?;
        area.draw(&Text::new(
            axis.name.clone(),
            (x, top - 24),
            text(14, BLACK).pos(Pos::new(HPos::Center, VPos::Bottom)),
        ))
        .map_err(plot_err)?;
        for (v, label) in &axis.ticks {
            let y = y_of(*v);
            area.draw(&PathElement::new(
                vec![(x - 4, y), (x, y)],
                color(BLACK).stroke_width(1),
            ))
            .map_err(plot_err)?;
            area.draw(&Text::new(
                label.clone(),
                (x - 6, y),
                text(12, BLACK).pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(plot_err)?;
        }
    }
    area.draw(&Text::new(
        p.caption.clone(),
        (w / 2, h - bottom + 24),
        text(14, Rgb(0x44, 0x44, 0x44)).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(plot_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_ends_and_middle() {
        assert_eq!(viridis(0.0), Rgb(0x44, 0x01, 0x54));
        assert_eq!(viridis(1.0), Rgb(0xfd, 0xe7, 0x25));
        assert_eq!(viridis(0.5), Rgb(0x21, 0x91, 0x8c));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
        assert_eq!(viridis(7.0), viridis(1.0));
    }
}
