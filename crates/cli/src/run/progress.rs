//! Progress on stderr while a run is going: for the person watching, not part of the summary.

use std::io::IsTerminal as _;

/// Progress on stderr: a bar on a terminal, a line every 10% otherwise.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    next_line: u64,
}

impl Progress {
    pub(super) fn new(total: u64, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} eta {eta} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            total,
            done: 0,
            next_line: total.div_ceil(10).max(1),
        }
    }

    pub(super) fn inc(&mut self, failed: u64) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if failed > 0 {
                bar.set_message(format!("{failed} failed"));
            }
        } else if self.done >= self.next_line || self.done == self.total {
            // Not a log record: progress is what a user watching a piped run wants to see.
            eprintln!(
                "progress: {}/{} done, {failed} failed",
                self.done, self.total
            );
            self.next_line = self.done + self.total.div_ceil(10).max(1);
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
