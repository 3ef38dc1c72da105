//! Labelled coloured tiles in a grid (the operator plan).

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::figure::{color, plot_err, text, TilePanel};
use super::palette::{Rgb, GREY};
use crate::{Error, Result};

pub(super) fn draw_tiles<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    p: &TilePanel,
) -> Result<()> {
    let n = p.tiles.len();
    if n == 0 {
        return Err(Error::Config("no tile to draw".into()));
    }
    let cols = p.cols.clamp(1, n);
    let rows = n.div_ceil(cols);
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let margin = 16;
    // Room for the row labels on the left and the column labels on top.
    let left = if p.row_labels.is_empty() {
        margin
    } else {
        margin + 90
    };
    let top = if p.col_labels.is_empty() {
        margin
    } else {
        margin + 24
    };
    let caption_h = 30;
    let gap = 6;
    let tile_w = (w - left - margin - gap * (cols as i32 - 1)) / cols as i32;
    let tile_h = ((h - top - margin - caption_h - gap * (rows as i32 - 1)) / rows as i32).min(64);
    let name_size = if tile_w < 80 { 12 } else { 15 };
    for (c, label) in p.col_labels.iter().enumerate().take(cols) {
        area.draw(&Text::new(
            label.clone(),
            (left + c as i32 * (tile_w + gap) + tile_w / 2, top - 6),
            text(14, Rgb(0, 0, 0)).pos(Pos::new(HPos::Center, VPos::Bottom)),
        ))
        .map_err(plot_err)?;
    }
    for (r, label) in p.row_labels.iter().enumerate().take(rows) {
        area.draw(&Text::new(
            label.clone(),
            (left - 8, top + r as i32 * (tile_h + gap) + tile_h / 2),
            text(14, Rgb(0, 0, 0)).pos(Pos::new(HPos::Right, VPos::Center)),
        ))
        .map_err(plot_err)?;
    }
    for (k, t) in p.tiles.iter().enumerate() {
        let (r, c) = ((k / cols) as i32, (k % cols) as i32);
        let x0 = left + c * (tile_w + gap);
        let y0 = top + r * (tile_h + gap);
        area.draw(&Rectangle::new(
            [(x0, y0), (x0 + tile_w, y0 + tile_h)],
            color(t.fill).filled(),
        ))
        .map_err(plot_err)?;
        area.draw(&Rectangle::new(
            [(x0, y0), (x0 + tile_w, y0 + tile_h)],
            color(GREY).stroke_width(1),
        ))
        .map_err(plot_err)?;
        let ink = t.fill.text_on();
        area.draw(&Text::new(
            t.sublabel.clone(),
            (x0 + tile_w / 2, y0 + tile_h / 4),
            text(13, ink).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(plot_err)?;
        area.draw(&Text::new(
            t.label.clone(),
            (x0 + tile_w / 2, y0 + tile_h * 5 / 8),
            text(name_size, ink).pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(plot_err)?;
    }
    let bottom = top + rows as i32 * (tile_h + gap);
    area.draw(&Text::new(
        p.caption.clone(),
        (w / 2, bottom + 10),
        text(16, Rgb(0, 0, 0)).pos(Pos::new(HPos::Center, VPos::Top)),
    ))
    .map_err(plot_err)?;
    Ok(())
}
