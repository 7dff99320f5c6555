//! Progress on stderr while a run is going: for the person watching, not part of the summary.
//!
//! On a terminal, a bar; otherwise a line at a steady interval (`--progress-every`, 10 s by
//! default) with done/total, the rate over the last interval, the ETA at that rate, failures and
//! 429s: a five-hour run must not stay silent for half an hour, and a line that only said
//! "10% done" gave nobody a time to plan with. With `--log-format json` each line is a JSON
//! event with the same numbers as fields.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::exit::{json, CONSOLE};

/// What the ticker reads: updated as outcomes come in.
#[derive(Default)]
struct Counts {
    done: AtomicU64,
    failed: AtomicU64,
    rate_limited: AtomicU64,
}

/// Progress on stderr: a bar on a terminal, a line every `--progress-every` otherwise.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    counts: Arc<Counts>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    total: u64,
    started: Instant,
}

impl Progress {
    /// Starts the bar or the line ticker; `quiet` shows neither.
    pub(super) fn new(total: u64, quiet: bool, every: Duration) -> Self {
        let counts = Arc::new(Counts::default());
        let bar = (!quiet && !json() && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} eta {eta} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        let ticker = (!quiet && bar.is_none()).then(|| {
            let counts = counts.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                let mut last = (Instant::now(), 0u64);
                loop {
                    tick.tick().await;
                    let now = Instant::now();
                    let done = counts.done.load(Ordering::Relaxed);
                    let secs = now.duration_since(last.0).as_secs_f64();
                    let rate = if secs > 0.0 {
                        done.saturating_sub(last.1) as f64 / secs
                    } else {
                        0.0
                    };
                    line(&counts, total, rate);
                    last = (now, done);
                }
            })
        });
        Self {
            bar,
            counts,
            ticker,
            total,
            started: Instant::now(),
        }
    }

    /// One more UUID answered; `failed` and `rate_limited` are the run's totals so far.
    pub(super) fn inc(&mut self, failed: u64, rate_limited: u64) {
        self.counts.done.fetch_add(1, Ordering::Relaxed);
        self.counts.failed.store(failed, Ordering::Relaxed);
        self.counts
            .rate_limited
            .store(rate_limited, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if failed > 0 || rate_limited > 0 {
                bar.set_message(format!("{failed} failed, {rate_limited} rate-limited"));
            }
        }
    }

    /// Clears the bar, or says the last line (at the run's average rate) when lines were shown.
    pub(super) fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
            let secs = self.started.elapsed().as_secs_f64();
            let done = self.counts.done.load(Ordering::Relaxed);
            if done > 0 {
                let rate = if secs > 0.0 { done as f64 / secs } else { 0.0 };
                line(&self.counts, self.total, rate);
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
        }
    }
}

/// One progress line (or JSON event) at `rate` UUIDs/s.
fn line(counts: &Counts, total: u64, rate: f64) {
    let done = counts.done.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    let rate_limited = counts.rate_limited.load(Ordering::Relaxed);
    let left = total.saturating_sub(done);
    let eta = (rate > 0.0).then(|| left as f64 / rate);
    let rate = (rate * 10.0).round() / 10.0;
    if json() {
        tracing::info!(
            target: CONSOLE,
            done,
            total,
            rate_per_s = rate,
            eta_s = eta.map(f64::round),
            failed,
            rate_limited,
            "progress"
        );
    } else {
        // Not a log record: progress is what a user watching a piped run wants to see.
        eprintln!(
            "progress: {done}/{total} done, {rate}/s, eta {}, {failed} failed, {rate_limited} rate-limited",
            eta.map_or_else(|| "unknown".to_string(), human)
        );
    }
}

/// Seconds as a person plans with them: `45s`, `12m05s`, `5h02m`.
fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::human;

    #[test]
    fn eta_reads_as_a_person_plans() {
        assert_eq!(human(44.6), "45s");
        assert_eq!(human(725.0), "12m05s");
        assert_eq!(human(5.0 * 3600.0 + 130.0), "5h02m");
    }
}
