//! Rich display of SAFS results in the evcxr Jupyter kernel: charts inline as SVG (or PNG),
//! Polars frames, Table 1 and its summary over seeds ([`SeedTable`]) as HTML tables, activation plans as coloured chips, and plain
//! text progress lines while an experiment runs.
//!
//! evcxr shows a value richly when the value of a cell's last expression has a method
//! `evcxr_display(&self)`; that method prints `EVCXR_BEGIN_CONTENT <mime>`, the content and
//! `EVCXR_END_CONTENT` (here always as one write under one stdout lock). This crate gives
//! that method to everything through the [`Show`] trait, so one import covers foreign types
//! such as Polars' `DataFrame` and safs' `ActivationPlan` without wrappers:
//!
//! ```no_run
//! // in evcxr.toml's prelude, or in the first cell:
//! use kernel_extras::{NotebookProgress, Show, Table1};
//! # fn cell() -> safs::Result<()> {
//! # let mut exp: safs::experiment::Experiment = unimplemented!();
//! // a cell that runs the experiment; one progress line per evaluation goes to stdout
//! let mut progress = NotebookProgress::new();
//! let row = exp.run(&mut progress.observer())?;
//! // a cell ending in any of these shows it richly:
//! Table1::new(vec![row.clone()]).with_paper();           // Table 1, ours beside the paper's
//! safs::plot::search_trajectory(progress.records(),       // a chart (inline SVG; a
//!     safs::experiment::Stage::Search(safs::experiment::Arm::Stage1))?; // a Chart
//! safs::report::evals_frame(progress.records())?;         // a DataFrame as an HTML table
//! kernel_extras::Html::new(&safs::report::evals_frame(progress.records())?).max_rows(40);
//! # Ok(()) }
//! ```
//!
//! Where the trait is not in scope, the wrappers with their own `evcxr_display` work alone:
//! [`Html`] (a DataFrame, with options), [`PlanView`] (an activation plan), [`Png`] (a chart
//! as PNG), [`Table1`], [`NotebookProgress`]; and [`show`] displays any [`Show`] value from
//! the middle of a cell. evcxr keeps one result per MIME type per cell (a second HTML block
//! replaces the first), so show one table and one chart per cell.
//!
//! Every renderer is a pure function returning a [`Rendered`] (MIME type and body), which
//! is what the tests check.

mod budget;
mod chart;
mod html;
mod notebook;
mod plan;
mod progress;
mod seeds;
mod table1;

pub use chart::Png;
pub use html::{escape, Html};
pub use notebook::{prelude, Notebook};
pub use plan::PlanView;
pub use progress::NotebookProgress;
pub use seeds::SeedTable;
pub use table1::Table1;

use std::io::Write;

/// A piece of rich output: its MIME type and content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// The MIME type, e.g. `text/html`.
    pub mime: &'static str,
    /// The content (base64 for binary types such as `image/png`).
    pub body: String,
}

impl Rendered {
    /// HTML content.
    pub fn html(body: String) -> Self {
        Rendered {
            mime: "text/html",
            body,
        }
    }

    /// The evcxr block: `EVCXR_BEGIN_CONTENT <mime>`, the body, `EVCXR_END_CONTENT`.
    pub fn block(&self) -> String {
        format!(
            "EVCXR_BEGIN_CONTENT {}\n{}\nEVCXR_END_CONTENT\n",
            self.mime,
            self.body.trim_end_matches('\n')
        )
    }

    /// Prints the block to stdout in one write under one lock.
    pub fn emit(&self) {
        let mut out = std::io::stdout().lock();
        // A closed stdout inside a notebook cell leaves nothing useful to do.
        let _ = out.write_all(self.block().as_bytes());
        let _ = out.flush();
    }
}

/// A value with a rich notebook display.
pub trait Show {
    /// The display as a MIME type and content.
    fn render(&self) -> Rendered;

    /// Prints the display for evcxr (called on a cell's last value when this trait is in
    /// scope).
    fn evcxr_display(&self) {
        self.render().emit();
    }
}

impl<T: Show + ?Sized> Show for &T {
    fn render(&self) -> Rendered {
        (**self).render()
    }
}

impl<T: Show + ?Sized> Show for Box<T> {
    fn render(&self) -> Rendered {
        (**self).render()
    }
}

/// Displays `value` now (for the middle of a cell; a cell's last value displays itself).
pub fn show<T: Show + ?Sized>(value: &T) {
    value.evcxr_display();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_block_and_boxed_show() {
        let r = Rendered::html("<p>x</p>\n\n".into());
        assert_eq!(
            r.block(),
            "EVCXR_BEGIN_CONTENT text/html\n<p>x</p>\nEVCXR_END_CONTENT\n"
        );
        let t: Box<dyn Show> = Box::new(Table1::new(Vec::new()));
        assert!(t.render().body.contains("safs-table1"));
    }

    /// Writes sample HTML displays to `$SAFS_PLOT_EXAMPLES` when it is set.
    #[test]
    fn html_gallery() {
        let Some(dir) = std::env::var_os("SAFS_PLOT_EXAMPLES") else {
            return;
        };
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut ours = safs::report::paper_table1()[0].clone();
        (ours.budget, ours.stage1, ours.stage2, ours.safs) =
            ("cpu".into(), Some(44.3), None, Some(60.1));
        let rows = vec![ours];
        let frame = safs::report::table1_frame(&safs::report::paper_table1()).unwrap();
        let plan: safs::activation::ActivationPlan =
            "relu,swish,gelu,symexp,tanh,elu".parse().unwrap();
        let page = format!(
            "<!doctype html><meta charset=\"utf-8\"><body>\n{}\n<hr>\n{}\n<hr>\n{}\n</body>",
            Table1::new(rows).with_paper().to_html(),
            Html::new(&frame).to_html(),
            PlanView(&plan).to_html()
        );
        std::fs::write(dir.join("notebook_display.html"), page).unwrap();
    }
}
