//! A run's budget as a two-column table: what each stage gets.

use safs::experiment::Budget;

use crate::html::{TABLE_STYLE, TD_STYLE, TH_STYLE};
use crate::{escape, Rendered, Show};

/// The rows of the table: what the knob means, and its value ("all" where unset).
fn rows(b: &Budget) -> Vec<(&'static str, String)> {
    let all = |v: Option<usize>| v.map_or("all".to_string(), |n| n.to_string());
    vec![
        ("training images", all(b.train_subset)),
        ("validation images (every score)", all(b.valid_subset)),
        ("test images (final reports)", all(b.test_subset)),
        ("dense training epochs", b.dense_epochs.to_string()),
        ("epochs of every fine-tune", b.finetune_epochs.to_string()),
        ("Stage 1 search steps", b.search_steps.to_string()),
        ("Stage 2 trials per arm", b.hpo_trials.to_string()),
        ("batches per epoch", all(b.max_batches)),
        ("model width", format!("{}x", b.model_width)),
    ]
}

impl Show for Budget {
    fn render(&self) -> Rendered {
        let mut out = format!(
            "<table class=\"safs-budget\" style=\"{TABLE_STYLE}\">\n<thead><tr>\
             <th style=\"{TH_STYLE}\">budget</th><th style=\"{TH_STYLE}\">value</th>\
             </tr></thead>\n<tbody>\n"
        );
        for (name, value) in rows(self) {
            out += &format!(
                "<tr><td style=\"{TD_STYLE}\">{}</td>\
                 <td style=\"{TD_STYLE};text-align:right\">{}</td></tr>\n",
                escape(name),
                escape(&value)
            );
        }
        out += "</tbody>\n</table>";
        Rendered::html(out)
    }
}

#[cfg(test)]
mod tests {
    use safs::experiment::BudgetPreset;

    use super::*;

    #[test]
    fn budget_table_names_every_knob() {
        let mut b = Budget::preset(BudgetPreset::Smoke);
        b.max_batches = None;
        b.model_width = 0.5;
        let html = b.render().body;
        assert_eq!(html.matches("<tr>").count(), 1 + 9);
        assert!(html.contains(">training images</td>"), "{html}");
        assert!(html.contains(">2000</td>"), "{html}");
        assert!(html.contains(">batches per epoch</td><td style=\"border-bottom:1px solid #ddd;padding:3px 8px;text-align:right\">all</td>"), "{html}");
        assert!(html.contains(">0.5x</td>"), "{html}");
    }
}
