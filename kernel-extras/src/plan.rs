//! Activation plans as coloured chips, one per slot.

use safs::activation::ActivationPlan;
use safs::plot::op_color;

use crate::{escape, Rendered, Show};

/// An activation plan shown as HTML chips (slot number and operator, in the operator's
/// chart colour).
#[derive(Clone, Copy, Debug)]
pub struct PlanView<'a>(pub &'a ActivationPlan);

impl PlanView<'_> {
    /// The HTML chips.
    pub fn to_html(&self) -> String {
        let plan = self.0;
        let mut distinct: Vec<_> = plan.ops().to_vec();
        distinct.sort_by_key(|op| op.name());
        distinct.dedup();
        let mut out = String::from(
            "<div class=\"safs-plan\" style=\"font-family:sans-serif;font-size:13px\">\n\
             <div style=\"display:flex;flex-wrap:wrap;gap:4px\">\n",
        );
        for (i, op) in plan.ops().iter().enumerate() {
            let bg = op_color(*op);
            let fg = bg.text_on();
            out += &format!(
                "<span class=\"safs-chip\" title=\"slot {i}: {name}\" style=\"background:{};\
                 color:{};border:1px solid #999;border-radius:10px;padding:2px 9px\">\
                 <span style=\"opacity:0.7\">{i}</span> {name}</span>\n",
                bg.hex(),
                fg.hex(),
                name = escape(op.name())
            );
        }
        out += &format!(
            "</div>\n<div style=\"color:#666;margin-top:4px\">{} slots, {} distinct operators</div>\n</div>",
            plan.len(),
            distinct.len()
        );
        out
    }

    /// Shows the chips in evcxr.
    pub fn evcxr_display(&self) {
        Show::evcxr_display(self);
    }
}

impl Show for PlanView<'_> {
    fn render(&self) -> Rendered {
        Rendered::html(self.to_html())
    }
}

impl Show for ActivationPlan {
    fn render(&self) -> Rendered {
        PlanView(self).render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_chips() {
        let plan: ActivationPlan = "relu,swish,relu,symexp".parse().unwrap();
        let r = plan.render();
        assert_eq!(r.mime, "text/html");
        assert_eq!(r.body.matches("class=\"safs-chip\"").count(), 4);
        assert!(r.body.contains("title=\"slot 3: symexp\""), "{}", r.body);
        assert!(r.body.contains("4 slots, 3 distinct operators"));
        // ReLU is black with white text.
        assert!(
            r.body.contains("background:#000000;color:#ffffff"),
            "{}",
            r.body
        );
        let empty = PlanView(&ActivationPlan(vec![])).to_html();
        assert!(empty.contains("0 slots, 0 distinct operators"));
    }
}
