//! Table 1 as HTML: our runs, the paper's numbers beside them, gains coloured.

use safs::experiment::ResultRow;
use safs::report::{paper_table1, ARMS};

use crate::html::{TABLE_STYLE, TD_STYLE, TH_STYLE};
use crate::{escape, Rendered, Show};

/// Okabe–Ito bluish green, for a gain.
const GAIN: &str = "#009E73";
/// Okabe–Ito vermillion, for a loss.
const LOSS: &str = "#D55E00";

/// The Table 1 layout of our runs (one row each), optionally with the paper's row for the
/// same model and data set beside ours.
#[derive(Clone, Debug, Default)]
pub struct Table1 {
    rows: Vec<ResultRow>,
    paper: Vec<ResultRow>,
}

/// An arm's display name.
fn arm_name(arm: &str) -> &str {
    match arm {
        "magnitude_pruning" => "magnitude pruning",
        "stage1" => "Stage 1",
        "stage2" => "Stage 2",
        "safs" => "SAFS",
        other => other,
    }
}

fn arm_values(r: &ResultRow) -> [Option<f64>; 5] {
    [r.dense, r.magnitude_pruning, r.stage1, r.stage2, r.safs]
}

/// A fraction as a percentage with at most 4 decimals (0.99 -> "99%").
pub(crate) fn pct(rate: f64) -> String {
    let s = format!("{:.4}", rate * 100.0);
    format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
}

/// A number with 2 decimals, or a grey dash.
fn num(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.2}"),
        _ => "<span style=\"color:#999\">–</span>".into(),
    }
}

/// A signed difference in the gain colours (sign and colour both carry the meaning).
fn signed(v: Option<f64>) -> String {
    match v {
        Some(d) if d.is_finite() => {
            let (color, sign) = if d > 0.0 {
                (GAIN, "+")
            } else if d < 0.0 {
                (LOSS, "−")
            } else {
                ("#666", "±")
            };
            format!(
                "<span class=\"safs-{}\" style=\"color:{color};font-weight:600\">{sign}{:.2}</span>",
                if d > 0.0 {
                    "gain"
                } else if d < 0.0 {
                    "loss"
                } else {
                    "even"
                },
                d.abs()
            )
        }
        _ => "<span style=\"color:#999\">–</span>".into(),
    }
}

impl Table1 {
    /// Our rows, without the paper's.
    pub fn new(rows: impl Into<Vec<ResultRow>>) -> Self {
        Table1 {
            rows: rows.into(),
            paper: Vec::new(),
        }
    }

    /// Adds the paper's Table 1 ([`paper_table1`]): each of our rows is matched by model
    /// and data set.
    pub fn with_paper(mut self) -> Self {
        self.paper = paper_table1();
        self
    }

    /// Adds one reference row (matched to ours by model and data set).
    pub fn with_paper_row(mut self, row: ResultRow) -> Self {
        self.paper.push(row);
        self
    }

    /// Our rows.
    pub fn rows(&self) -> &[ResultRow] {
        &self.rows
    }

    fn paper_for(&self, r: &ResultRow) -> Option<&ResultRow> {
        self.paper
            .iter()
            .find(|p| p.model == r.model && p.dataset == r.dataset)
    }

    /// The HTML table: model, data, pruning, seed, budget, each arm (ours, and the
    /// paper's beside it when added) with each searched arm's change over magnitude
    /// pruning, and the gain (SAFS − magnitude pruning) in green when positive, red when
    /// negative.
    pub fn to_html(&self) -> String {
        let with_paper = !self.paper.is_empty();
        let span = if with_paper { " colspan=\"2\"" } else { "" };
        let rowspan = if with_paper { " rowspan=\"2\"" } else { "" };
        let mut out = format!("<table class=\"safs-table1\" style=\"{TABLE_STYLE}\">\n");
        out += "<caption style=\"caption-side:top;text-align:left;font-weight:600;padding-bottom:4px\">\
                Table 1: top-1 test accuracy (%)";
        if with_paper {
            out += " — ours beside Loni et al. (2023)";
        }
        out += "</caption>\n<thead>\n<tr>";
        for h in ["model", "data", "pruned", "seed", "budget"] {
            out += &format!("<th{rowspan} style=\"{TH_STYLE}\">{h}</th>");
        }
        for arm in ARMS {
            out += &format!(
                "<th{span} style=\"{TH_STYLE};text-align:center\">{}</th>",
                arm_name(arm)
            );
        }
        out += &format!(
            "<th{span} style=\"{TH_STYLE};text-align:center\">gain (SAFS − MP)</th></tr>\n"
        );
        if with_paper {
            out += "<tr>";
            for _ in 0..ARMS.len() + 1 {
                out += &format!(
                    "<th style=\"{TH_STYLE};text-align:right\">ours</th>\
                     <th style=\"{TH_STYLE};text-align:right;color:#666\">paper</th>"
                );
            }
            out += "</tr>\n";
        }
        out += "</thead>\n<tbody>\n";
        let td =
            |content: &str, extra: &str| format!("<td style=\"{TD_STYLE}{extra}\">{content}</td>");
        let right = ";text-align:right";
        let grey = ";text-align:right;color:#666";
        for r in &self.rows {
            let paper = self.paper_for(r);
            out += "<tr>";
            out += &td(&escape(&r.model), "");
            out += &td(&escape(&r.dataset), "");
            out += &td(&pct(r.prune_rate), right);
            out += &td(&r.seed.to_string(), right);
            out += &td(&escape(&r.budget), "");
            let ours = arm_values(r);
            let theirs = paper.map(arm_values);
            for (k, arm) in ARMS.iter().enumerate() {
                let mut cell = num(ours[k]);
                if matches!(*arm, "stage1" | "stage2" | "safs") {
                    if let (Some(v), Some(mp)) = (ours[k], r.magnitude_pruning) {
                        cell += &format!(
                            "<br><small title=\"over magnitude pruning\">{}</small>",
                            signed(Some(v - mp))
                        );
                    }
                }
                out += &td(&cell, right);
                if with_paper {
                    out += &td(&num(theirs.and_then(|t| t[k])), grey);
                }
            }
            out += &td(&signed(r.gain()), right);
            if with_paper {
                out += &td(&signed(paper.and_then(ResultRow::gain)), grey);
            }
            out += "</tr>\n";
        }
        out += "</tbody>\n</table>";
        out
    }

    /// Shows the table in evcxr.
    pub fn evcxr_display(&self) {
        Show::evcxr_display(self);
    }
}

impl Show for Table1 {
    fn render(&self) -> Rendered {
        Rendered::html(self.to_html())
    }
}

impl Show for ResultRow {
    /// One run as Table 1 with the paper's row beside it.
    fn render(&self) -> Rendered {
        Table1::new(vec![self.clone()]).with_paper().render()
    }
}

impl Show for [ResultRow] {
    /// Runs as Table 1 with the paper's rows beside them.
    fn render(&self) -> Rendered {
        Table1::new(self.to_vec()).with_paper().render()
    }
}

impl Show for Vec<ResultRow> {
    /// Runs as Table 1 with the paper's rows beside them.
    fn render(&self) -> Rendered {
        self.as_slice().render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours() -> ResultRow {
        let mut r = paper_table1()[0].clone();
        r.budget = "cpu".into();
        r.seed = 7;
        r.magnitude_pruning = Some(50.0);
        r.stage1 = Some(48.5);
        r.stage2 = None;
        r.safs = Some(55.25);
        r
    }

    fn body_rows(html: &str) -> usize {
        html.split("<tbody>")
            .nth(1)
            .unwrap()
            .matches("<tr>")
            .count()
    }

    #[test]
    fn table1_with_paper() {
        let mut other = ours();
        other.model = "mystery<net>".into();
        other.safs = Some(40.0);
        let t = Table1::new(vec![ours(), other]).with_paper();
        let r = t.render();
        assert_eq!(r.mime, "text/html");
        let html = r.body;
        assert_eq!(body_rows(&html), 2);
        assert!(html.contains("ours beside Loni et al. (2023)"));
        assert!(html.contains(">paper</th>"));
        // Ours and the paper's SAFS beside each other.
        assert!(html.contains(">55.25<br>"), "{html}");
        assert!(html.contains("color:#666\">62.22</td>"), "{html}");
        // Gains: ours +5.25 green, Stage 1 −1.50 red, the paper's +15.53.
        assert!(
            html.contains("color:#009E73;font-weight:600\">+5.25</span>"),
            "{html}"
        );
        assert!(
            html.contains("color:#D55E00;font-weight:600\">−1.50</span>"),
            "{html}"
        );
        assert!(html.contains(">+15.53</span>"), "{html}");
        // A model the paper lacks gets dashes; its name is escaped.
        assert!(html.contains("mystery&lt;net&gt;"));
        assert!(!html.contains("mystery<net>"));
        assert!(html.contains(">−10.00</span>"), "{html}");
        assert!(html.contains(">99%</td>"), "{html}");
    }

    #[test]
    fn table1_ours_only_and_row_show() {
        let html = Table1::new(vec![ours()]).to_html();
        assert!(!html.contains(">paper</th>"));
        assert!(!html.contains("rowspan"));
        assert_eq!(body_rows(&html), 1);
        assert!(html.contains("gain (SAFS − MP)"));
        // A missing arm is a dash, not 0.
        assert!(html.contains("<span style=\"color:#999\">–</span>"));
        let single = ours().render().body;
        assert!(single.contains(">paper</th>"));
        assert_eq!(
            vec![ours(), ours()].render().body.matches("<tr>").count(),
            2 + 2
        );
    }
}
