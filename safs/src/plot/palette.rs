//! Colours: the Okabe–Ito palette (distinguishable with the common colour-vision
//! deficiencies) and a fixed colour and line style per operator and per Table 1 arm.

use crate::activation::Op;

/// An sRGB colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl Rgb {
    /// `#rrggbb`, for HTML and CSS.
    pub fn hex(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }

    /// This colour mixed with white: `t` = 0 keeps it, 1 gives white.
    pub fn tint(self, t: f64) -> Rgb {
        let mix = |c: u8| (c as f64 + (255.0 - c as f64) * t.clamp(0.0, 1.0)).round() as u8;
        Rgb(mix(self.0), mix(self.1), mix(self.2))
    }

    /// Relative luminance (WCAG), 0 for black to 1 for white.
    pub fn luminance(self) -> f64 {
        let lin = |c: u8| {
            let c = c as f64 / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(self.0) + 0.7152 * lin(self.1) + 0.0722 * lin(self.2)
    }

    /// Black or white, whichever reads better on this colour as a background.
    pub fn text_on(self) -> Rgb {
        // Contrast against black is (L + 0.05) / 0.05, against white 1.05 / (L + 0.05).
        let l = self.luminance();
        if (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) {
            BLACK
        } else {
            WHITE
        }
    }
}

/// Okabe–Ito black.
pub const BLACK: Rgb = Rgb(0, 0, 0);
/// White.
pub const WHITE: Rgb = Rgb(255, 255, 255);
/// Okabe–Ito orange.
pub const ORANGE: Rgb = Rgb(0xE6, 0x9F, 0x00);
/// Okabe–Ito sky blue.
pub const SKY_BLUE: Rgb = Rgb(0x56, 0xB4, 0xE9);
/// Okabe–Ito bluish green.
pub const BLUISH_GREEN: Rgb = Rgb(0x00, 0x9E, 0x73);
/// Okabe–Ito yellow.
pub const YELLOW: Rgb = Rgb(0xF0, 0xE4, 0x42);
/// Okabe–Ito blue.
pub const BLUE: Rgb = Rgb(0x00, 0x72, 0xB2);
/// Okabe–Ito vermillion.
pub const VERMILLION: Rgb = Rgb(0xD5, 0x5E, 0x00);
/// Okabe–Ito reddish purple.
pub const REDDISH_PURPLE: Rgb = Rgb(0xCC, 0x79, 0xA7);
/// Neutral grey for grid-like or secondary marks.
pub const GREY: Rgb = Rgb(0x99, 0x99, 0x99);

/// The Okabe–Ito colours in the order series use them (yellow, weak on white, last; black
/// is kept for baselines).
pub const OKABE_ITO: [Rgb; 7] = [
    BLUE,
    ORANGE,
    BLUISH_GREEN,
    VERMILLION,
    REDDISH_PURPLE,
    SKY_BLUE,
    YELLOW,
];

/// The colour of the `i`-th series (cycling through [`OKABE_ITO`]).
pub fn okabe_ito(i: usize) -> Rgb {
    OKABE_ITO[i % OKABE_ITO.len()]
}

/// How an operator's curve is stroked, so 17 operators stay apart with 7 colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stroke {
    /// A solid line.
    Solid,
    /// A dashed line.
    Dashed,
    /// A dotted line.
    Dotted,
}

/// Operators in the order they take colours: ReLU (the baseline, black) then the paper's
/// search space, then the extras.
const OP_ORDER: [Op; 16] = [
    Op::Relu6,
    Op::Hardswish,
    Op::Swish,
    Op::Tanhsoft1,
    Op::Acon,
    Op::Gelu,
    Op::Srs,
    Op::Elu,
    Op::Tanh,
    Op::Softplus,
    Op::Logsigmoid,
    Op::Symlog,
    Op::Symexp,
    Op::Selu,
    Op::Sigmoid,
    Op::Identity,
];

/// The fixed colour and stroke of an operator in every chart (ReLU is solid black).
pub fn op_style(op: Op) -> (Rgb, Stroke) {
    match OP_ORDER.iter().position(|&o| o == op) {
        None => (BLACK, Stroke::Solid),
        Some(i) => {
            let stroke = match i / OKABE_ITO.len() {
                0 => Stroke::Solid,
                1 => Stroke::Dashed,
                _ => Stroke::Dotted,
            };
            (okabe_ito(i), stroke)
        }
    }
}

/// The fill colour of an operator's tile or chip: its curve colour, tinted for dashed and
/// dotted operators so tiles of the same hue differ too.
pub fn op_color(op: Op) -> Rgb {
    match op_style(op) {
        (c, Stroke::Solid) => c,
        (c, Stroke::Dashed) => c.tint(0.45),
        (c, Stroke::Dotted) => c.tint(0.7),
    }
}

/// The colour of a Table 1 arm ("dense", "magnitude_pruning", "stage1", "stage2", "safs").
pub fn arm_color(arm: &str) -> Rgb {
    match arm {
        "dense" => BLACK,
        "magnitude_pruning" => VERMILLION,
        "stage1" => SKY_BLUE,
        "stage2" => BLUISH_GREEN,
        "safs" => BLUE,
        _ => GREY,
    }
}

/// The display name of a Table 1 arm.
pub fn arm_label(arm: &str) -> &str {
    match arm {
        "dense" => "dense",
        "magnitude_pruning" => "magnitude pruning",
        "stage1" => "Stage 1",
        "stage2" => "Stage 2",
        "safs" => "SAFS",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activation::ALL;

    #[test]
    fn plot_palette_op_styles_distinct() {
        let mut seen = std::collections::HashSet::new();
        for &op in ALL {
            let (c, s) = op_style(op);
            assert!(seen.insert((c, s as u8)), "{op} shares its style");
        }
        assert_eq!(op_style(Op::Relu), (BLACK, Stroke::Solid));
        assert_eq!(BLACK.text_on(), WHITE);
        assert_eq!(YELLOW.text_on(), BLACK);
        assert_eq!(BLUE.text_on(), WHITE);
        assert_eq!(BLUE.hex(), "#0072b2");
        assert_eq!(BLUE.tint(1.0), WHITE);
    }
}
