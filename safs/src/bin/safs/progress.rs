//! Terminal progress bars drawn from training events.

use indicatif::{ProgressBar, ProgressStyle};

use safs::train::TrainEvent;

/// Draws one bar per epoch and prints a line when each epoch ends.
pub struct Bars {
    label: String,
    bar: Option<ProgressBar>,
    epoch_lines: bool,
}

impl Bars {
    /// Bars labelled with a stage name.
    pub fn new(label: &str) -> Self {
        Self {
            label: label.to_string(),
            bar: None,
            epoch_lines: true,
        }
    }

    /// No summary line per epoch (the caller prints its own).
    pub fn quiet_epochs(mut self) -> Self {
        self.epoch_lines = false;
        self
    }

    /// Updates the display for one event.
    pub fn on_event(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::Started { .. } => {}
            TrainEvent::Batch {
                epoch,
                batch,
                batches,
                loss,
                lr,
            } => {
                let bar = self.bar.get_or_insert_with(|| {
                    let b = ProgressBar::new(*batches as u64);
                    b.set_style(
                        ProgressStyle::with_template(
                            "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed}<{eta})",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    b.set_prefix(format!("{} epoch {}", self.label, epoch + 1));
                    b
                });
                bar.set_position(*batch as u64 + 1);
                bar.set_message(format!("loss {loss:.4} lr {lr:.2e}"));
            }
            TrainEvent::Epoch(s) => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                if !self.epoch_lines {
                    return;
                }
                let valid = s
                    .valid
                    .map(|v| format!(" valid top1 {:.2}% loss {:.4}", v.top1, v.loss))
                    .unwrap_or_default();
                eprintln!(
                    "{} epoch {}: train loss {:.4} acc {:.2}%{valid} lr {:.2e} ({:.1}s)",
                    self.label,
                    s.epoch + 1,
                    s.train_loss,
                    s.train_acc,
                    s.lr,
                    s.seconds
                );
            }
        }
    }
}
