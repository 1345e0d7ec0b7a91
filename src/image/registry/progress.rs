//! Pull progress: indicatif bars on a terminal, docker's plain lines otherwise, or nothing.

use std::cell::Cell;
use std::io::{self, IsTerminal, Write};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Progress;
use crate::image::Digest;

/// Prints a line on standard output; a closed pipe is not worth failing a pull for.
fn print_line(text: &str) {
    let _ = writeln!(io::stdout().lock(), "{text}");
}

/// Progress output: indicatif bars, docker's plain lines, or nothing.
pub(super) struct Reporter {
    bars: Option<MultiProgress>,
    plain: bool,
    /// Whether a bar was drawn: indicatif leaves the cursor at the end of the last one.
    drawn: Cell<bool>,
}

impl Reporter {
    pub(super) fn new(progress: Progress) -> Reporter {
        let tty = io::stdout().is_terminal();
        match progress {
            Progress::Auto if tty => {
                let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
                Reporter { bars: Some(bars), plain: false, drawn: Cell::new(false) }
            }
            Progress::Auto | Progress::Plain => Reporter { bars: None, plain: true, drawn: Cell::new(false) },
            Progress::Quiet => Reporter { bars: None, plain: false, drawn: Cell::new(false) },
        }
    }

    pub(super) fn line(&self, text: &str) {
        match &self.bars {
            Some(bars) => drop(bars.println(text)),
            None if self.plain => print_line(text),
            None => {}
        }
    }

    /// Every bar is finished (they stay on screen): later lines go below them.
    pub(super) fn bars_done(&mut self) {
        if self.bars.take().is_some() {
            self.plain = true;
            if self.drawn.get() {
                print_line("");
            }
        }
    }

    pub(super) fn layer(&self, blob: &Digest) -> LayerProgress {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new(0));
            bar.set_style(style("{prefix}: {msg}"));
            bar.set_prefix(blob.short().to_owned());
            self.drawn.set(true);
            bar
        });
        LayerProgress { id: blob.short().to_owned(), bar, plain: self.plain }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

/// One layer's line.
#[derive(Clone)]
pub(super) struct LayerProgress {
    id: String,
    bar: Option<ProgressBar>,
    plain: bool,
}

impl LayerProgress {
    pub(super) fn hidden() -> LayerProgress {
        LayerProgress { id: String::new(), bar: None, plain: false }
    }

    pub(super) fn say(&self, status: &'static str) {
        if self.plain {
            print_line(&format!("{}: {status}", self.id));
        }
        if let Some(bar) = &self.bar {
            bar.set_message(status);
        }
    }

    /// Bars only: docker's plain output has no line for it.
    pub(super) fn extracting(&self) {
        if let Some(bar) = &self.bar {
            bar.set_message("Extracting");
        }
    }

    pub(super) fn downloading(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_style(style("{prefix}: {msg:<17} [{bar:30}] {bytes:>10}/{total_bytes}"));
            bar.set_message("Downloading");
        }
    }

    pub(super) fn advance(&self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    pub(super) fn finish(&self, status: &'static str) {
        if self.plain {
            print_line(&format!("{}: {status}", self.id));
        }
        if let Some(bar) = &self.bar {
            bar.set_style(style("{prefix}: {msg}"));
            bar.finish_with_message(status);
        }
    }

    pub(super) fn abandon(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }
}
