//! Charts inline: SVG by default, PNG on request.

use base64::Engine;
use safs::plot::Chart;

use crate::{escape, Rendered, Show};

impl Show for Chart {
    /// The chart as inline SVG.
    fn render(&self) -> Rendered {
        Rendered {
            mime: "image/svg+xml",
            body: self.to_svg().to_string(),
        }
    }
}

/// A chart shown as a PNG image (base64), e.g. for a chart with very many points or for
/// notebook viewers that strip SVG.
#[derive(Clone, Copy, Debug)]
pub struct Png<'a>(pub &'a Chart);

impl Png<'_> {
    /// Shows the PNG in evcxr.
    pub fn evcxr_display(&self) {
        Show::evcxr_display(self);
    }
}

impl Show for Png<'_> {
    /// The chart as `image/png`; when it cannot be drawn, the error as HTML.
    fn render(&self) -> Rendered {
        match self.0.to_png() {
            Ok(bytes) => Rendered {
                mime: "image/png",
                body: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
            Err(e) => Rendered::html(format!(
                "<pre style=\"color:#D55E00\">chart '{}': {}</pre>",
                escape(self.0.title()),
                escape(&e.to_string())
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use safs::activation::Op;

    use super::*;

    #[test]
    fn chart_svg_and_png() {
        let chart = safs::plot::operators(&[Op::Relu, Op::Gelu], (-2.0, 2.0)).unwrap();
        let r = chart.render();
        assert_eq!(r.mime, "image/svg+xml");
        assert!(r.body.starts_with("<svg") && r.body.contains("Activation operators"));
        let block = r.block();
        assert!(block.starts_with("EVCXR_BEGIN_CONTENT image/svg+xml\n<svg"));
        assert!(block.ends_with("</svg>\nEVCXR_END_CONTENT\n"));
        let p = Png(&chart).render();
        assert_eq!(p.mime, "image/png");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(p.body.as_bytes())
            .unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert!(!p.block().contains("\n\n"), "base64 on one line");
    }
}
