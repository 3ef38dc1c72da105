//! Table 1 over seeds as HTML: `mean ± 95% CI` per arm, the paired per-seed differences
//! with their intervals, and the paper's numbers beside them.

use safs::experiment::ResultRow;
use safs::report::{summarize_seeds, SeedSummary, Summary};

use crate::html::{TABLE_STYLE, TD_STYLE, TH_STYLE};
use crate::table1::pct;
use crate::{escape, Rendered, Show};

/// Okabe–Ito bluish green / vermillion for intervals wholly above / below zero.
const ABOVE: &str = "#009E73";
const BELOW: &str = "#D55E00";

/// The runs of one or more experiments summarised over seeds (one table per group).
#[derive(Clone, Debug)]
pub struct SeedTable {
    groups: Vec<SeedSummary>,
}

impl SeedTable {
    /// Groups `rows` by model, data set, pruning rate and budget (an error when a seed of a
    /// group appears twice).
    pub fn new(rows: &[ResultRow]) -> safs::Result<Self> {
        Ok(SeedTable {
            groups: summarize_seeds(rows)?,
        })
    }

    /// The summaries.
    pub fn groups(&self) -> &[SeedSummary] {
        &self.groups
    }

    /// The HTML tables.
    pub fn to_html(&self) -> String {
        self.groups
            .iter()
            .map(group_html)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Shows the tables in evcxr.
    pub fn evcxr_display(&self) {
        Show::evcxr_display(self);
    }
}

fn mean_ci(s: Option<&Summary>) -> String {
    match s {
        Some(s) => match s.ci95 {
            Some(h) => format!("{:.2} <span style=\"color:#666\">± {h:.2}</span>", s.mean),
            None => format!("{:.2}", s.mean),
        },
        None => "<span style=\"color:#999\">–</span>".into(),
    }
}

fn diff_ci(s: Option<&Summary>) -> String {
    let Some(s) = s else {
        return "<span style=\"color:#999\">–</span>".into();
    };
    match s.interval() {
        Some((lo, hi)) => {
            let color = if lo > 0.0 {
                ABOVE
            } else if hi < 0.0 {
                BELOW
            } else {
                "#333"
            };
            format!(
                "<span style=\"color:{color}\">{:+.2}</span> \
                 <span style=\"color:#666\">[{lo:+.2}, {hi:+.2}]</span>",
                s.mean
            )
        }
        None => format!("{:+.2}", s.mean),
    }
}

fn opt(v: Option<f64>, signed: bool) -> String {
    match v {
        Some(x) if signed => format!("{x:+.2}"),
        Some(x) => format!("{x:.2}"),
        None => "–".into(),
    }
}

fn group_html(g: &SeedSummary) -> String {
    let paper = g.paper_row();
    let td = |c: &str, extra: &str| format!("<td style=\"{TD_STYLE}{extra}\">{c}</td>");
    let right = ";text-align:right";
    let grey = ";text-align:right;color:#666";
    let seeds: Vec<String> = g.seeds.iter().map(u64::to_string).collect();
    let mut out = format!(
        "<table class=\"safs-seeds\" style=\"{TABLE_STYLE}\">\n<caption style=\"caption-side:top;\
         text-align:left;font-weight:600;padding-bottom:4px\">{} / {}, {} pruned, {} budget: \
         top-1 test accuracy (%) over seeds {} — mean ± 95% Student-t interval</caption>\n\
         <thead><tr>",
        escape(&g.model),
        escape(&g.dataset),
        pct(g.prune_rate),
        escape(&g.budget),
        seeds.join(", ")
    );
    for h in ["", "ours", "std", "n", "paper"] {
        out += &format!("<th style=\"{TH_STYLE};text-align:right\">{h}</th>");
    }
    out += "</tr></thead>\n<tbody>\n";
    let std = |s: Option<&Summary>| opt(s.and_then(|s| s.std), false);
    let n = |s: Option<&Summary>| s.map_or(0, |s| s.n).to_string();
    let dense = g.dense.as_ref();
    out += &format!(
        "<tr>{}{}{}{}{}</tr>\n",
        td("dense", ""),
        td(&mean_ci(dense), right),
        td(&std(dense), right),
        td(&n(dense), right),
        td(&opt(paper.as_ref().and_then(|r| r.dense), false), grey)
    );
    for (arm, s) in &g.arms {
        out += &format!(
            "<tr>{}{}{}{}{}</tr>\n",
            td(arm.title(), ""),
            td(&mean_ci(s.as_ref()), right),
            td(&std(s.as_ref()), right),
            td(&n(s.as_ref()), right),
            td(&opt(paper.as_ref().and_then(|r| r.arm(*arm)), false), grey)
        );
    }
    for d in &g.paired {
        let s = d.summary.as_ref();
        let theirs = paper
            .as_ref()
            .and_then(|r| Some(r.arm(d.arm)? - r.arm(d.minus)?));
        out += &format!(
            "<tr>{}{}{}{}{}</tr>\n",
            td(
                &format!(
                    "{} − {} <small>(paired)</small>",
                    d.arm.title(),
                    d.minus.title()
                ),
                ""
            ),
            td(&diff_ci(s), right),
            td(&std(s), right),
            td(&n(s), right),
            td(&opt(theirs, true), grey)
        );
    }
    out += "</tbody>\n</table>";
    out
}

impl Show for SeedTable {
    fn render(&self) -> Rendered {
        Rendered::html(self.to_html())
    }
}

impl Show for SeedSummary {
    fn render(&self) -> Rendered {
        Rendered::html(group_html(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_table_html() {
        let rows: Vec<ResultRow> = [(0, 40.0, 50.0), (1, 44.0, 52.0), (2, 48.0, 60.0)]
            .iter()
            .map(|&(seed, mp, safs)| ResultRow {
                model: "lenet5".into(),
                dataset: "mnist".into(),
                prune_rate: 0.99,
                seed,
                budget: "cpu".into(),
                dense: Some(99.0),
                magnitude_pruning: Some(mp),
                stage1: None,
                stage2: Some(mp - 1.0),
                safs: Some(safs),
            })
            .collect();
        let html = SeedTable::new(&rows).unwrap().to_html();
        // SAFS 50, 52, 60: mean 54, s = 5.2915, half-width 4.3027 * 5.2915 / sqrt(3) = 13.14.
        assert!(
            html.contains("54.00 <span style=\"color:#666\">± 13.14</span>"),
            "{html}"
        );
        // SAFS - MP = 10, 8, 12: +10.00 [+5.03, +14.97], wholly above zero: green.
        assert!(html.contains("color:#009E73\">+10.00</span>"), "{html}");
        assert!(html.contains("[+5.03, +14.97]"), "{html}");
        // Stage 2 - MP = -1 on every seed: an interval of zero width below zero.
        assert!(html.contains("color:#D55E00\">-1.00</span>"), "{html}");
        // No Stage 1: dashes; the paper's row beside ours.
        assert!(html.contains("<td style=") && html.contains("62.22") && html.contains("+15.53"));
        assert!(html.contains("over seeds 0, 1, 2"));
        assert!(SeedTable::new(&[rows[0].clone(), rows[0].clone()]).is_err());
    }
}
