//! Polars frames as HTML tables.

use polars::prelude::{AnyValue, DataFrame};

use crate::{Rendered, Show};

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Shared table style: compact, right-aligned numbers with aligned digits.
pub(crate) const TABLE_STYLE: &str = "border-collapse:collapse;font-family:sans-serif;\
font-size:13px;font-variant-numeric:tabular-nums";
/// Style of a header cell.
pub(crate) const TH_STYLE: &str =
    "border-bottom:2px solid #444;padding:3px 8px;text-align:left;background:#f4f4f4";
/// Style of a body cell.
pub(crate) const TD_STYLE: &str = "border-bottom:1px solid #ddd;padding:3px 8px";

/// Float columns shown exactly rather than rounded (0.999 must not read 1.00).
const EXACT_COLUMNS: [&str; 1] = ["prune_rate"];

/// A DataFrame as an HTML table: header, floats with 2 decimals (`prune_rate` exact),
/// numbers right-aligned, nulls greyed, and a long frame cut to its first and last rows
/// with a "… N rows" note.
#[derive(Clone, Debug)]
pub struct Html<'a> {
    df: &'a DataFrame,
    max_rows: usize,
    decimals: usize,
}

impl<'a> Html<'a> {
    /// The frame with the defaults: at most 20 rows shown, 2 decimals.
    pub fn new(df: &'a DataFrame) -> Self {
        Html {
            df,
            max_rows: 20,
            decimals: 2,
        }
    }

    /// Shows at most `n` rows (the first half and the last half; at least 2).
    pub fn max_rows(mut self, n: usize) -> Self {
        self.max_rows = n.max(2);
        self
    }

    /// Decimals of float cells.
    pub fn decimals(mut self, d: usize) -> Self {
        self.decimals = d;
        self
    }

    /// The HTML table.
    pub fn to_html(&self) -> String {
        let df = self.df;
        let (height, width) = df.shape();
        let mut out = format!("<table class=\"safs-frame\" style=\"{TABLE_STYLE}\">\n");
        out += &format!(
            "<caption style=\"caption-side:bottom;text-align:left;color:#666;padding-top:4px\">\
             {height} rows × {width} columns</caption>\n<thead><tr>"
        );
        let columns = df.columns();
        for col in columns {
            out += &format!(
                "<th style=\"{TH_STYLE}\" title=\"{}\">{}</th>",
                escape(&col.dtype().to_string()),
                escape(col.name())
            );
        }
        out += "</tr></thead>\n<tbody>\n";
        let shown: Vec<usize> = if height > self.max_rows {
            let head = self.max_rows.div_ceil(2);
            let tail = self.max_rows - head;
            (0..head).chain(height - tail..height).collect()
        } else {
            (0..height).collect()
        };
        let hidden = height - shown.len();
        let head = self.max_rows.div_ceil(2);
        for (k, &i) in shown.iter().enumerate() {
            if hidden > 0 && k == head {
                out += &format!(
                    "<tr class=\"safs-more\"><td colspan=\"{}\" style=\"{TD_STYLE};\
                     text-align:center;color:#666;font-style:italic\">… {hidden} rows …</td></tr>\n",
                    width.max(1)
                );
            }
            out += "<tr>";
            for col in columns {
                let exact = EXACT_COLUMNS.contains(&col.name().as_str());
                let numeric = col.dtype().is_primitive_numeric();
                let cell = match col.get(i) {
                    Ok(AnyValue::Null) => {
                        "<span style=\"color:#999;font-style:italic\">null</span>".to_string()
                    }
                    Ok(v) => escape(&format_value(&v, exact, self.decimals)),
                    Err(_) => "?".to_string(),
                };
                let align = if numeric { ";text-align:right" } else { "" };
                out += &format!("<td style=\"{TD_STYLE}{align}\">{cell}</td>");
            }
            out += "</tr>\n";
        }
        out += "</tbody>\n</table>";
        out
    }
}

/// One cell as text: floats by [`format_float`] (or exact), strings unquoted.
fn format_value(v: &AnyValue<'_>, exact: bool, decimals: usize) -> String {
    match v {
        AnyValue::Float64(x) if !exact => format_float(*x, decimals),
        AnyValue::Float32(x) if !exact => format_float(f64::from(*x), decimals),
        AnyValue::Float64(x) => x.to_string(),
        AnyValue::Float32(x) => x.to_string(),
        AnyValue::String(s) => s.to_string(),
        AnyValue::StringOwned(s) => s.to_string(),
        other => other.to_string(),
    }
}

/// A float for reading: `decimals` places, except where they would mislead. Below 0.1 in
/// magnitude, 3 significant digits (lr 0.0213, not 0.02; trailing zeros cut), below 0.001
/// in scientific notation (eps 1.00e-8, weight decay 5.00e-4); and a short value the
/// rounding would change is shown as it is (beta2 0.999, not 1.00).
pub fn format_float(x: f64, decimals: usize) -> String {
    let fixed = format!("{x:.decimals$}");
    if x == 0.0 || !x.is_finite() {
        return fixed;
    }
    if x.abs() < 1e-3 {
        return format!("{x:.2e}");
    }
    if x.abs() < 0.1 {
        let places = (2 - x.abs().log10().floor() as i32).max(0) as usize;
        let t = format!("{x:.places$}");
        return t.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    let short = x.to_string();
    let digits = short
        .trim_start_matches(['-', '0', '.'])
        .chars()
        .filter(char::is_ascii_digit)
        .count();
    let changed = fixed.parse::<f64>().is_ok_and(|f| f != x);
    if changed && digits <= 6 && !short.contains('e') {
        short
    } else {
        fixed
    }
}

impl Html<'_> {
    /// Shows the table in evcxr.
    pub fn evcxr_display(&self) {
        Show::evcxr_display(self);
    }
}

impl Show for Html<'_> {
    fn render(&self) -> Rendered {
        Rendered::html(self.to_html())
    }
}

impl Show for DataFrame {
    fn render(&self) -> Rendered {
        Html::new(self).render()
    }
}

#[cfg(test)]
mod tests {
    use polars::prelude::Column;

    use super::*;

    fn frame(n: usize) -> DataFrame {
        DataFrame::new(
            n,
            vec![
                Column::new("step".into(), (0..n as u64).collect::<Vec<_>>()),
                Column::new(
                    "valid_acc".into(),
                    (0..n).map(|i| i as f64 / 3.0).collect::<Vec<_>>(),
                ),
                Column::new(
                    "plan".into(),
                    (0..n)
                        .map(|i| {
                            if i == 0 {
                                "<b>relu</b> & co".to_string()
                            } else {
                                format!("p{i}")
                            }
                        })
                        .collect::<Vec<_>>(),
                ),
                Column::new(
                    "prune_rate".into(),
                    (0..n).map(|_| 0.999).collect::<Vec<_>>(),
                ),
                Column::new(
                    "test_acc".into(),
                    (0..n)
                        .map(|i| (i % 2 == 0).then_some(1.5))
                        .collect::<Vec<_>>(),
                ),
            ],
        )
        .unwrap()
    }

    fn body_rows(html: &str) -> usize {
        html.split("<tbody>").nth(1).unwrap().matches("<tr").count()
    }

    #[test]
    fn html_table_rows_numbers_escaping() {
        let df = frame(3);
        let r = df.render();
        assert_eq!(r.mime, "text/html");
        let html = r.body;
        assert_eq!(body_rows(&html), 3);
        assert!(html.contains("3 rows × 5 columns"));
        for name in ["step", "valid_acc", "plan", "prune_rate", "test_acc"] {
            assert!(html.contains(&format!(">{name}</th>")), "{html}");
        }
        assert!(html.contains(">0.33</td>"), "{html}");
        assert!(html.contains(">0.67</td>"), "{html}");
        assert!(html.contains(">0.999</td>"), "exact prune rate: {html}");
        assert!(html.contains("&lt;b&gt;relu&lt;/b&gt; &amp; co"), "{html}");
        assert!(!html.contains("<b>relu"), "{html}");
        assert!(html.contains(">null</span>"), "{html}");
        assert!(!html.contains("… "), "no truncation note for a short frame");
        // The block around it.
        let block = df.render().block();
        assert!(block.starts_with("EVCXR_BEGIN_CONTENT text/html\n<table"));
        assert!(block.ends_with("</table>\nEVCXR_END_CONTENT\n"));
    }

    #[test]
    fn html_long_table_truncated() {
        let df = frame(100);
        let html = Html::new(&df).to_html();
        // 10 first, 10 last, one note row.
        assert_eq!(body_rows(&html), 21);
        assert!(html.contains("… 80 rows …"), "{html}");
        assert!(html.contains("100 rows × 5 columns"));
        assert!(html.contains(">p9</td>") && html.contains(">p90</td>"));
        assert!(!html.contains(">p10</td>") && !html.contains(">p89</td>"));
        let html = Html::new(&df).max_rows(5).decimals(1).to_html();
        assert_eq!(body_rows(&html), 6);
        assert!(html.contains("… 95 rows …"));
        assert!(html.contains(">0.3</td>"), "{html}");
        let exactly = Html::new(&df).max_rows(100).to_html();
        assert_eq!(body_rows(&exactly), 100);
    }

    #[test]
    fn floats_read_as_what_they_are() {
        // (value, as shown with 2 decimals)
        let cases = [
            (47.03, "47.03"),
            (40.836666666666666, "40.84"),
            (0.999, "0.999"),
            (0.9, "0.90"),
            (0.95, "0.95"),
            (0.021347891234, "0.0213"),
            (0.05, "0.05"),
            (-0.01, "-0.01"),
            (1.0 / 3.0, "0.33"),
            (5e-4, "5.00e-4"),
            (1e-8, "1.00e-8"),
            (0.0, "0.00"),
            (1234567.891, "1234567.89"),
            (f64::NAN, "NaN"),
        ];
        for (x, want) in cases {
            assert_eq!(format_float(x, 2), want, "{x}");
        }
    }

    #[test]
    fn html_empty_frame() {
        let html = Html::new(&DataFrame::empty()).to_html();
        assert!(html.contains("0 rows × 0 columns"));
        assert_eq!(body_rows(&html), 0);
        assert_eq!(escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
    }
}
