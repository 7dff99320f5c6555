//! Prometheus metrics of a run (and of `mock`), served on `--metrics-addr` for as long as the
//! process wants them.
//!
//! The exposition text is written by `prometheus-client` (the Prometheus project's own Rust
//! client), never by hand: its encoder gets the escaping, the `_total` suffixes and the
//! histogram's cumulative buckets right. The endpoint is a one-route axum server on the run's
//! tokio runtime. It has no authentication, so [`resolve_addr`] warns when the address is not
//! loopback: a non-loopback address is taken as meant (the user typed it), but said out loud.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::Context as _;
use cxone_uuid_client::{ErrorKind, ExecuteReport};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::exit::usage;

/// Every metric name starts with this, then `_`.
pub(crate) const PREFIX: &str = "cxone_uuid";

/// Histogram buckets in seconds, 1 ms to 60 s: a platform answers in milliseconds when healthy
/// and in seconds when it is not; `--timeout` is 10 s by default and may be raised, and the
/// figure sums the attempts of a UUID.
const BUCKETS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The label set of the failure counter: one reason class.
type Reason = [(&'static str, &'static str); 1];

/// The counters and gauges of one run, updated where the summary's tally is, so a scrape after
/// the run and the summary agree to the unit.
pub(crate) struct RunMetrics {
    registry: Registry,
    pub(crate) generated: Counter,
    pub(crate) submitted: Counter,
    succeeded: Counter,
    failed: Family<Reason, Counter>,
    retries: Counter,
    rate_limited: Counter,
    ambiguous: Counter,
    pub(crate) audit_events: Counter,
    pub(crate) in_flight: Gauge,
    pub(crate) rate_limit: Gauge<f64, AtomicU64>,
    pub(crate) concurrency_limit: Gauge,
    pub(crate) pending: Gauge,
    server_latency: Histogram,
    wait: Histogram,
}

impl RunMetrics {
    /// Registers every metric; `run_id` and `provider` become the labels of `cxone_uuid_run_info`.
    pub(crate) fn new(run_id: &str, provider: &str) -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let m = Self {
            generated: Counter::default(),
            submitted: Counter::default(),
            succeeded: Counter::default(),
            failed: Family::default(),
            retries: Counter::default(),
            rate_limited: Counter::default(),
            ambiguous: Counter::default(),
            audit_events: Counter::default(),
            in_flight: Gauge::default(),
            rate_limit: Gauge::default(),
            concurrency_limit: Gauge::default(),
            pending: Gauge::default(),
            server_latency: Histogram::new(BUCKETS),
            wait: Histogram::new(BUCKETS),
            registry: Registry::default(),
        };
        registry.register(
            "run",
            "The run this process is doing (value always 1)",
            Info::new(vec![
                ("run_id".to_string(), run_id.to_string()),
                ("provider".to_string(), provider.to_string()),
            ]),
        );
        let r = &mut registry;
        r.register("uuids_generated", "UUIDs generated", m.generated.clone());
        r.register(
            "uuids_submitted",
            "UUIDs handed to the client to send (after their write-ahead record)",
            m.submitted.clone(),
        );
        r.register(
            "uuids_succeeded",
            "UUIDs the action accepted",
            m.succeeded.clone(),
        );
        r.register(
            "uuids_failed",
            "UUIDs that failed, by reason class",
            m.failed.clone(),
        );
        r.register(
            "retries",
            "Execute attempts after the first",
            m.retries.clone(),
        );
        r.register(
            "rate_limited",
            "HTTP 429 answers received",
            m.rate_limited.clone(),
        );
        r.register(
            "ambiguous_attempts",
            "Attempts whose outcome on the server is unknown (timeout, lost connection, 500/502/504)",
            m.ambiguous.clone(),
        );
        r.register(
            "audit_events_written",
            "Audit events the run handed to the audit writer and it accepted",
            m.audit_events.clone(),
        );
        r.register(
            "requests_in_flight",
            "UUIDs holding a concurrency slot (pacer wait or request out)",
            m.in_flight.clone(),
        );
        r.register(
            "rate_limit_per_second",
            "The pacer's current rate in requests/s (0 while unthrottled)",
            m.rate_limit.clone(),
        );
        r.register(
            "concurrency_limit",
            "Requests allowed in flight at once (--concurrency)",
            m.concurrency_limit.clone(),
        );
        r.register(
            "uuids_pending",
            "UUIDs of this run without an outcome yet",
            m.pending.clone(),
        );
        r.register(
            "server_latency_seconds",
            "Server latency per UUID: request written to answer, summed over attempts, waits excluded",
            m.server_latency.clone(),
        );
        r.register(
            "wait_seconds",
            "Time per UUID held back by the client's own pacer (--rate), summed over attempts",
            m.wait.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts one UUID's outcome, as the summary's tally does.
    pub(crate) fn observe(&self, report: &ExecuteReport) {
        self.retries.inc_by(u64::from(report.retries));
        self.rate_limited.inc_by(u64::from(report.rate_limited));
        self.ambiguous.inc_by(u64::from(report.ambiguous));
        self.server_latency
            .observe(report.server_latency.as_secs_f64());
        self.wait.observe(report.wait.as_secs_f64());
        match &report.outcome {
            Ok(_) => {
                self.succeeded.inc();
            }
            Err(e) => {
                self.failed
                    .get_or_create(&[("reason", reason(e.kind()))])
                    .inc();
            }
        }
    }

    /// The exposition text of every metric, as Prometheus scrapes it.
    pub(crate) fn render(&self) -> anyhow::Result<String> {
        let mut text = String::new();
        encode(&mut text, &self.registry).context("cannot encode the metrics")?;
        Ok(text)
    }
}

/// The mock's page: what it received and what it refused, counted from its record at scrape
/// time (a fresh registry per scrape: the record is the one source of truth).
pub(crate) fn mock_page(rec: &cxone_uuid_mock::Recorded) -> anyhow::Result<String> {
    type Status = [(&'static str, String); 1];
    let mut registry = Registry::with_prefix(format!("{PREFIX}_mock"));
    let token_requests = Counter::<u64>::default();
    token_requests.inc_by(rec.token_requests);
    registry.register(
        "token_requests",
        "Requests to the token endpoint",
        token_requests,
    );
    let execute_requests = Counter::<u64>::default();
    execute_requests.inc_by(rec.execute_requests.len() as u64);
    registry.register(
        "execute_requests",
        "Execute attempts received",
        execute_requests,
    );
    let keys: std::collections::HashSet<&str> = rec
        .execute_requests
        .iter()
        .filter_map(|r| r.idempotency_key.as_deref().or(r.uuid.as_deref()))
        .collect();
    let distinct = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    distinct.set(i64::try_from(keys.len()).unwrap_or(i64::MAX));
    registry.register(
        "uuids_received",
        "Distinct UUIDs (Idempotency-Keys) received",
        distinct,
    );
    let by_status = |map: &std::collections::BTreeMap<u16, u64>, refused_only: bool| {
        let family = Family::<Status, Counter>::default();
        for (status, n) in map {
            if !refused_only || *status >= 400 {
                family
                    .get_or_create(&[("status", status.to_string())])
                    .inc_by(*n);
            }
        }
        family
    };
    registry.register(
        "execute_responses",
        "Execute answers by HTTP status",
        by_status(&rec.responses_by_status, false),
    );
    registry.register(
        "execute_refused",
        "Execute answers that refused the request (status 400 or more), by status",
        by_status(&rec.responses_by_status, true),
    );
    registry.register(
        "token_responses",
        "Token-endpoint answers by HTTP status",
        by_status(&rec.token_responses_by_status, false),
    );
    let mut text = String::new();
    encode(&mut text, &registry).context("cannot encode the metrics")?;
    Ok(text)
}

/// The reason class a failure is counted under: few, stable values, so an alert can name one.
pub(crate) fn reason(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::RateLimited => "rate_limited",
        ErrorKind::Server => "server_error",
        ErrorKind::Rejected | ErrorKind::Forbidden | ErrorKind::Unauthorized => "client_error",
        ErrorKind::Timeout => "timeout",
        ErrorKind::Transport => "connection",
        ErrorKind::EchoMismatch => "echo_mismatch",
        ErrorKind::UnexpectedResponse => "unexpected_response",
        ErrorKind::ActionFailed => "action_failed",
        ErrorKind::Config
        | ErrorKind::Credentials
        | ErrorKind::Discovery
        | ErrorKind::TokenUnavailable => "token",
        // A kind added to the client later is counted, under a name an alert can still match.
        _ => "other",
    }
}

/// Resolves `--metrics-addr` (`HOST:PORT`; port 0 picks a free port). A non-loopback address is
/// served as asked, with a warning: the endpoint has no authentication.
pub(crate) fn resolve_addr(text: &str) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|e| {
            usage(format!(
                "--metrics-addr {text:?} is not an address: {e} (expected HOST:PORT, e.g. 127.0.0.1:9464)"
            ))
        })?
        .collect();
    let addr = addrs
        .iter()
        .find(|a| a.ip().is_loopback())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| usage(format!("--metrics-addr {text:?} resolves to no address")))?;
    if !addr.ip().is_loopback() {
        crate::exit::warn(&format!(
            "--metrics-addr {addr} is not a loopback address: the metrics endpoint has no \
             authentication and anyone who can reach it sees the run's progress"
        ));
    }
    Ok(addr)
}

/// What renders the page on each scrape.
pub(crate) type Render = Arc<dyn Fn() -> anyhow::Result<String> + Send + Sync>;

/// A running `/metrics` endpoint; dropping it stops it.
pub(crate) struct Endpoint {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Endpoint {
    /// Binds `addr` now (so a taken port fails before the run starts) and serves `render` at
    /// `GET /metrics` in the background.
    pub(crate) async fn start(addr: SocketAddr, render: Render) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| usage(format!("--metrics-addr {addr}: cannot listen: {e}")))?;
        let addr = listener.local_addr().context("metrics listener address")?;
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let render = render.clone();
                async move {
                    match render() {
                        Ok(text) => (
                            axum::http::StatusCode::OK,
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            text,
                        ),
                        Err(e) => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            [(
                                axum::http::header::CONTENT_TYPE,
                                "text/plain; charset=utf-8",
                            )],
                            format!("{e:#}\n"),
                        ),
                    }
                }
            }),
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            stop: Some(tx),
        })
    }

    /// The address actually bound (the port, when 0 was asked for).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_failure_kind_has_a_stable_reason_class() {
        assert_eq!(reason(ErrorKind::RateLimited), "rate_limited");
        assert_eq!(reason(ErrorKind::Server), "server_error");
        assert_eq!(reason(ErrorKind::Rejected), "client_error");
        assert_eq!(reason(ErrorKind::Forbidden), "client_error");
        assert_eq!(reason(ErrorKind::Unauthorized), "client_error");
        assert_eq!(reason(ErrorKind::Timeout), "timeout");
        assert_eq!(reason(ErrorKind::Transport), "connection");
        assert_eq!(reason(ErrorKind::EchoMismatch), "echo_mismatch");
        assert_eq!(reason(ErrorKind::UnexpectedResponse), "unexpected_response");
        assert_eq!(reason(ErrorKind::ActionFailed), "action_failed");
        assert_eq!(reason(ErrorKind::Credentials), "token");
    }

    #[test]
    fn the_metrics_address_is_taken_as_given() {
        // A name that resolves to loopback is served on loopback.
        assert!(resolve_addr("localhost:0").unwrap().ip().is_loopback());
        assert!(resolve_addr("127.0.0.1:9464").unwrap().ip().is_loopback());
        // A non-loopback address is served as asked (with a warning), not refused or rewritten.
        let any = resolve_addr("0.0.0.0:9464").unwrap();
        assert_eq!(any, "0.0.0.0:9464".parse().unwrap());
        let err = resolve_addr("9464").unwrap_err();
        assert!(err.to_string().contains("HOST:PORT"), "{err}");
    }

    #[test]
    fn the_page_is_prefixed_and_the_histogram_spans_1ms_to_60s() {
        let m = RunMetrics::new("run-1", "genesys");
        let page = m.render().unwrap();
        for line in page.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("cxone_uuid_"), "{line}");
        }
        assert!(
            page.contains(r#"cxone_uuid_run_info{run_id="run-1",provider="genesys"} 1"#),
            "{page}"
        );
        assert!(
            page.contains(r#"cxone_uuid_server_latency_seconds_bucket{le="0.001"}"#),
            "{page}"
        );
        assert!(
            page.contains(r#"cxone_uuid_server_latency_seconds_bucket{le="60.0"}"#),
            "{page}"
        );
    }
}
