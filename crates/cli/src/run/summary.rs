//! The summary of a run: counted as results come in ([`Tally`]), then frozen into a [`Summary`]
//! that both output formats and the `run_finished` record are made from, so the text lines,
//! the JSON object and the audit trail cannot disagree about a number.

use std::time::Duration;

use anyhow::Context as _;
use cxone_uuid_client::ExecuteReport;
use cxone_uuid_core::{collision_probability, UniquenessStats};
use serde::Serialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::args::OutputFormat;

/// Counters of one run, summarised at the end.
pub(super) struct Tally {
    succeeded: u64,
    pub(super) failed: u64,
    /// Made durable but never sent: left for `run --resume`.
    pub(super) pending: u64,
    retries: u64,
    pub(super) rate_limited: u64,
    /// UUIDs with at least one attempt whose outcome on the server is unknown.
    ambiguous: u64,
    errors: Vec<(Uuid, String, Option<String>)>,
    /// Server latency per UUID (request written to answer, retry waits excluded).
    latency_us: hdrhistogram::Histogram<u64>,
    /// Time per UUID held back by the client's own pacer and concurrency limit.
    wait_us: hdrhistogram::Histogram<u64>,
}

impl Tally {
    pub(super) fn new() -> anyhow::Result<Self> {
        Ok(Self {
            succeeded: 0,
            failed: 0,
            pending: 0,
            retries: 0,
            rate_limited: 0,
            ambiguous: 0,
            errors: Vec::new(),
            // 1 µs .. 1 hour at 3 significant digits: constant memory whatever n is.
            latency_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .context("cannot create the latency histogram")?,
            wait_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .context("cannot create the wait histogram")?,
        })
    }

    /// UUIDs with an outcome so far.
    pub(super) fn answered(&self) -> u64 {
        self.succeeded + self.failed
    }

    /// Counts one UUID's outcome.
    pub(super) fn add(&mut self, uuid: Uuid, report: &ExecuteReport) {
        self.retries += u64::from(report.retries);
        self.rate_limited += u64::from(report.rate_limited);
        self.ambiguous += u64::from(report.ambiguous > 0);
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency_us.saturating_record(us(report.server_latency));
        self.wait_us.saturating_record(us(report.wait));
        match &report.outcome {
            Ok(_) => self.succeeded += 1,
            Err(e) => {
                self.failed += 1;
                self.errors
                    .push((uuid, e.to_string(), report.correlation_id.clone()));
            }
        }
    }
}

/// What `--output json` prints, as one object.
///
/// Fields are in alphabetical order on purpose: the object was first built as a
/// `serde_json::Map`, which (without serde_json's `preserve_order`) sorts its keys, and scripts
/// may compare the output as text. Keep the order when adding a field.
#[derive(Serialize, Debug)]
pub(super) struct Summary {
    aborted: bool,
    /// UUIDs with at least one attempt that may have run the action (timeout or connection
    /// lost after sending, 500/502/504): their trail events carry `ambiguous_attempts`.
    ambiguous: u64,
    collision_probability: f64,
    duplicates: u64,
    elapsed_s: f64,
    errors: Vec<Failure>,
    failed: u64,
    latency_ms: Latency,
    /// What the client learned about the server's limits.
    #[serde(skip_serializing_if = "Option::is_none")]
    limits: Option<LimitsOut>,
    not_submitted: u64,
    pending: u64,
    rate_limited: u64,
    requested: u64,
    retries: u64,
    stop_reason: Option<String>,
    succeeded: u64,
    throughput_per_s: f64,
    uniqueness_rate: f64,
    wait_ms: Latency,
    /// UUIDs this run generated (none on `--resume`): the collision probability is about them.
    #[serde(skip)]
    generated: u64,
}

/// The `limits` object (alphabetical, as [`Summary`]).
#[derive(Serialize, Debug)]
struct LimitsOut {
    /// Requests in flight allowed at the end.
    concurrency: usize,
    /// Requests in flight the server said it takes (an IETF `concurrent-requests` policy).
    concurrency_advertised: Option<usize>,
    /// Whether `--concurrency auto` adapted it.
    concurrency_auto: bool,
    /// The quota policy the server advertised in its headers, if any.
    policy: Option<PolicyOut>,
    /// The rate as given, in the user's unit (`auto`, `300/min`).
    rate: String,
    /// The pace in requests/s at the end (`null`: auto and never throttled).
    rate_rps: Option<f64>,
}

/// An advertised quota policy (alphabetical).
#[derive(Serialize, Debug)]
struct PolicyOut {
    /// Requests per window.
    limit: Option<u64>,
    /// IETF policy name.
    name: Option<String>,
    /// Requests/s the quota regains between resets, once its readings proved it does (a
    /// token bucket, paced at this rate); `null`: a window that resets at once.
    refill_per_s: Option<f64>,
    /// `ietf` or `x`.
    style: &'static str,
    /// Window width in seconds.
    window_s: Option<f64>,
}

/// Milliseconds per UUID sent: server latency (`latency_ms`) or client-side wait (`wait_ms`)
/// (alphabetical, as [`Summary`]).
#[derive(Serialize, Debug)]
struct Latency {
    avg: f64,
    max: f64,
    p50: f64,
    p95: f64,
    p99: f64,
}

/// One UUID that failed and why (alphabetical, as [`Summary`]).
#[derive(Serialize, Debug)]
struct Failure {
    /// The platform's request id of the last answer (e.g. Genesys's `ININ-Correlation-Id`),
    /// for a support ticket; absent when the platform sent none.
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    error: String,
    uuid: String,
}

impl Latency {
    fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        let q = |p: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(p) as f64 / 1000.0
            }
        };
        Self {
            avg: if h.is_empty() {
                0.0
            } else {
                (h.mean() / 1000.0 * 1000.0).round() / 1000.0
            },
            max: if h.is_empty() {
                0.0
            } else {
                h.max() as f64 / 1000.0
            },
            p50: q(0.50),
            p95: q(0.95),
            p99: q(0.99),
        }
    }
}

impl Summary {
    /// Freezes the counters at the end of a run; `requested` is what the run set out to send.
    pub(super) fn new(
        tally: &Tally,
        requested: u64,
        stats: &UniquenessStats,
        elapsed: Duration,
        stop: Option<&str>,
        interrupted: bool,
    ) -> Self {
        let completed = tally.succeeded + tally.failed;
        let secs = elapsed.as_secs_f64();
        Self {
            aborted: stop.is_some() || interrupted,
            ambiguous: tally.ambiguous,
            collision_probability: collision_probability(stats.unique as f64),
            duplicates: stats.duplicates,
            elapsed_s: (secs * 1000.0).round() / 1000.0,
            errors: tally
                .errors
                .iter()
                .map(|(u, e, c)| Failure {
                    correlation_id: c.clone(),
                    error: e.clone(),
                    uuid: u.to_string(),
                })
                .collect(),
            failed: tally.failed,
            limits: None,
            latency_ms: Latency::of(&tally.latency_us),
            not_submitted: requested.saturating_sub(completed),
            pending: tally.pending,
            rate_limited: tally.rate_limited,
            requested,
            retries: tally.retries,
            stop_reason: stop.map(str::to_string),
            succeeded: tally.succeeded,
            throughput_per_s: if secs > 0.0 {
                ((completed as f64 / secs) * 10.0).round() / 10.0
            } else {
                0.0
            },
            uniqueness_rate: stats.uniqueness_rate(),
            wait_ms: Latency::of(&tally.wait_us),
            generated: stats.unique,
        }
    }

    /// Adds what the client learned about the server's limits.
    pub(super) fn with_limits(mut self, l: &cxone_uuid_client::Limits) -> Self {
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        self.limits = Some(LimitsOut {
            concurrency: l.concurrency,
            concurrency_advertised: l.advertised_concurrency,
            concurrency_auto: l.adaptive_concurrency,
            policy: l.advertised.as_ref().map(|a| PolicyOut {
                limit: a.limit,
                name: a.policy.clone(),
                refill_per_s: a.refill_per_s.map(round),
                style: match a.style {
                    cxone_uuid_client::quota::QuotaStyle::Ietf => "ietf",
                    _ => "x",
                },
                window_s: a.window.map(|w| w.as_secs_f64()),
            }),
            rate: l.rate.to_string(),
            rate_rps: l.rate_rps.map(round),
        });
        self
    }

    /// The counts `run_finished` records, so the trail alone says how a run ended.
    pub(super) fn finished_metadata(&self) -> Map<String, Value> {
        let mut md = Map::new();
        md.insert("requested".into(), json!(self.requested));
        md.insert("succeeded".into(), json!(self.succeeded));
        md.insert("failed".into(), json!(self.failed));
        md.insert("retries".into(), json!(self.retries));
        md.insert("rate_limited".into(), json!(self.rate_limited));
        md.insert("duplicates".into(), json!(self.duplicates));
        md.insert("pending".into(), json!(self.pending));
        md.insert("not_submitted".into(), json!(self.not_submitted));
        md.insert("ambiguous".into(), json!(self.ambiguous));
        md
    }

    /// Prints the summary on stdout in the chosen format, and on stderr what is left to resume.
    pub(super) fn print(&self, output: OutputFormat, sinks: &str) {
        match output {
            OutputFormat::Json => match serde_json::to_string(self) {
                Ok(line) => println!("{line}"),
                Err(e) => crate::exit::error(&format!("cannot write the summary as JSON: {e}")),
            },
            OutputFormat::Text => self.print_text(sinks),
        }
        // Said in both formats, on stderr: the one thing left to do after a stopped run.
        if self.pending > 0 && sinks != "none" {
            crate::exit::note(&format!(
                "{} UUIDs are recorded as submitted but were not sent: `cxone-uuid run --resume` with the same --audit ({sinks}) sends them",
                self.pending
            ));
        } else if self.pending > 0 {
            crate::exit::note(&format!(
                "{} UUIDs were not sent, and with --audit none nothing recorded them: they cannot be resumed (a run with an --audit trail can)",
                self.pending
            ));
        }
    }

    fn print_text(&self, sinks: &str) {
        let l = &self.latency_ms;
        let w = &self.wait_ms;
        // Every count the JSON has that is not zero: a stopped run's pending and unsent UUIDs
        // are what the reader must act on.
        let mut counts = format!(
            "requested {}  succeeded {}  failed {}  retries {}  rate-limited {}",
            self.requested, self.succeeded, self.failed, self.retries, self.rate_limited
        );
        for (name, n) in [
            ("pending", self.pending),
            ("not submitted", self.not_submitted),
            ("ambiguous", self.ambiguous),
        ] {
            if n > 0 {
                counts.push_str(&format!("  {name} {n}"));
            }
        }
        println!("{counts}");
        let collision = if self.collision_probability.is_finite() && self.generated > 0 {
            format!(
                "{:e} (that any two UUIDs this run generated collide by chance)",
                self.collision_probability
            )
        } else {
            "n/a (this run generated no UUID)".to_string()
        };
        println!(
            "duplicates {}  uniqueness rate {}  collision probability {collision}",
            self.duplicates,
            as_json(self.uniqueness_rate),
        );
        println!(
            "elapsed {} s  throughput {} /s  latency ms: avg {} p50 {} p95 {} p99 {} max {}  wait ms: avg {} p50 {} p95 {} p99 {} max {}",
            as_json(self.elapsed_s),
            as_json(self.throughput_per_s),
            as_json(l.avg),
            as_json(l.p50),
            as_json(l.p95),
            as_json(l.p99),
            as_json(l.max),
            as_json(w.avg),
            as_json(w.p50),
            as_json(w.p95),
            as_json(w.p99),
            as_json(w.max)
        );
        for e in self.errors.iter().take(20) {
            println!("failed {}: {}", e.uuid, e.error);
        }
        if self.errors.len() > 20 {
            println!(
                "... and {} more (see --output json)",
                self.errors.len() - 20
            );
        }
        println!("audit: {sinks}");
    }
}

/// A number as the JSON output writes it (`1.0`, not Rust's `1`; `null` when not finite), so the
/// text lines show the same digits as `--output json`.
fn as_json(x: f64) -> Value {
    Value::from(x)
}
