//! Watching a run (issue 20): Prometheus metrics scraped by a real parser of the exposition
//! format, JSON log lines, server latency split from the client's own wait, progress lines at a
//! steady interval.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cxone_uuid_mock::MockConfig;
use serde_json::Value;

use crate::support::*;

/// One scrape, parsed by `prometheus-parse` (not by our own reading of the text).
struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    fn get(addr: &str) -> Scrape {
        let url = format!("http://{addr}/metrics");
        let text = http_get(addr, "/metrics");
        let lines = text.lines().map(|l| Ok(l.to_string()));
        Scrape(prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("{url}: {e}")))
    }

    /// Every sample of `name` whose labels include `labels`, summed.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                other => panic!("{name}: not a number: {other:?}"),
            })
            .sum()
    }

    fn has(&self, name: &str) -> bool {
        self.0.samples.iter().any(|s| s.metric == name)
    }

    fn labels(&self, name: &str) -> HashMap<String, String> {
        let s = self
            .0
            .samples
            .iter()
            .find(|s| s.metric == name)
            .unwrap_or_else(|| panic!("no {name}"));
        (*s.labels).clone()
    }
}

/// A bare HTTP/1.0 GET on loopback: the body.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the metrics endpoint");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_string()
}

/// Starts `cmd` with piped output; stderr lines and stdout lines come through channels.
fn spawn(mut cmd: Command) -> (Child, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cxone-uuid");
    let pipe = |r: Box<dyn std::io::Read + Send>| {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(r).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        rx
    };
    let out = pipe(Box::new(child.stdout.take().unwrap()));
    let err = pipe(Box::new(child.stderr.take().unwrap()));
    (child, out, err)
}

/// The `HOST:PORT` in a line that says `metrics: serving http://HOST:PORT/metrics`.
fn served_at(line: &str) -> Option<String> {
    let rest = line.split("metrics: serving http://").nth(1)?;
    Some(rest.split('/').next()?.to_string())
}

/// The mock started as `cxone-uuid mock` with its own metrics endpoint: (child, base, metrics).
fn cli_mock(args: &[&str]) -> (Child, String, String) {
    let mut cmd = bin();
    cmd.args(["mock", "--metrics-addr", "127.0.0.1:0"])
        .args(args);
    let (child, out, err) = spawn(cmd);
    let first = out
        .recv_timeout(Duration::from_secs(20))
        .expect("listening line");
    let base = first
        .strip_prefix("listening on ")
        .expect("listening on")
        .to_string();
    let metrics = loop {
        let line = err
            .recv_timeout(Duration::from_secs(20))
            .expect("metrics line");
        if let Some(addr) = served_at(&line) {
            break addr;
        }
    };
    (child, base, metrics)
}

#[test]
fn metrics_scraped_during_and_after_a_run_match_the_summary_and_the_mock() {
    // Each UUID: a 429, a 500, then 200 or (one in four) a 400 that is not retried.
    let (mut mock, base, mock_metrics) = cli_mock(&[
        "--script",
        "429:ra=0,500",
        "--fail-rate",
        "0.25",
        "--fail-status",
        "400",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let trail = audit_path(dir.path());
    let defaults = MockConfig::default();
    let mut cmd = bin();
    cmd.current_dir(dir.path())
        .env("CXONE_CLIENT_ID", &defaults.client_id)
        .env("CXONE_CLIENT_SECRET", &defaults.client_secret)
        .env("CXONE_DATA_ACTION_ID", "action-42")
        .env("CXONE_BASE_URL", &base)
        .env("CXONE_TOKEN_URL", format!("{base}/oauth2/token"))
        .env("CXONE_UUID_METRICS_ADDR", "127.0.0.1:0")
        .args([
            "--log-format",
            "json",
            "run",
            "-n",
            "60",
            "--output",
            "json",
        ])
        .args(["--rate", "40", "--concurrency", "2", "--max-retries", "3"])
        .args(["--backoff-base", "0.01", "--backoff-cap", "0.02"])
        .args(["--metrics-hold", "3", "--progress-every", "0.5"])
        .arg("--audit")
        .arg(format!("jsonl:{}", trail.display()));
    let (mut child, out, err) = spawn(cmd);

    // Every stderr line is JSON; the first names the endpoint.
    let mut stderr_lines = Vec::new();
    let mut next_err = || {
        let line = err
            .recv_timeout(Duration::from_secs(30))
            .expect("a stderr line");
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"));
        stderr_lines.push(v.clone());
        v
    };
    let addr = loop {
        let v = next_err();
        if let Some(addr) = v["message"].as_str().and_then(served_at) {
            break addr;
        }
    };
    // During: wait for the first progress line (some UUIDs answered, most not).
    loop {
        let v = next_err();
        if v["message"] == "progress" {
            break;
        }
    }
    let during = Scrape::get(&addr);
    assert!(during.sum("cxone_uuid_uuids_pending", &[]) > 0.0);
    assert_eq!(during.sum("cxone_uuid_concurrency_limit", &[]), 2.0);
    assert_eq!(during.sum("cxone_uuid_rate_limit_per_second", &[]), 40.0);

    // After: the summary is out, the endpoint is held for --metrics-hold.
    let line = out
        .recv_timeout(Duration::from_secs(60))
        .expect("the summary");
    let s: Value = serde_json::from_str(&line).unwrap();
    let after = Scrape::get(&addr);
    let mock_after = Scrape::get(&mock_metrics);
    let status = child.wait().unwrap();
    while let Ok(line) = err.recv_timeout(Duration::from_secs(5)) {
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"));
        stderr_lines.push(v);
    }
    let _ = mock.kill();
    let _ = mock.wait();

    let n = |k: &str| s[k].as_f64().unwrap();
    assert_eq!(
        status.code(),
        Some(if n("failed") > 0.0 { 1 } else { 0 }),
        "{s}"
    );
    assert_eq!(n("succeeded") + n("failed"), 60.0, "{s}");
    assert!(n("failed") > 0.0 && n("succeeded") > 0.0, "{s}");
    assert_eq!(after.sum("cxone_uuid_uuids_generated_total", &[]), 60.0);
    assert_eq!(after.sum("cxone_uuid_uuids_submitted_total", &[]), 60.0);
    assert_eq!(
        after.sum("cxone_uuid_uuids_succeeded_total", &[]),
        n("succeeded")
    );
    assert_eq!(after.sum("cxone_uuid_uuids_failed_total", &[]), n("failed"));
    assert_eq!(
        after.sum(
            "cxone_uuid_uuids_failed_total",
            &[("reason", "client_error")]
        ),
        n("failed")
    );
    assert_eq!(after.sum("cxone_uuid_retries_total", &[]), n("retries"));
    assert_eq!(
        after.sum("cxone_uuid_rate_limited_total", &[]),
        n("rate_limited")
    );
    assert_eq!(after.sum("cxone_uuid_rate_limited_total", &[]), 60.0);
    // The 500 of every UUID may have run the action.
    assert_eq!(after.sum("cxone_uuid_ambiguous_attempts_total", &[]), 60.0);
    assert_eq!(after.sum("cxone_uuid_uuids_pending", &[]), 0.0);
    assert_eq!(after.sum("cxone_uuid_requests_in_flight", &[]), 0.0);
    assert!(
        after.has("cxone_uuid_server_latency_seconds_bucket")
            || after.has("cxone_uuid_server_latency_seconds")
    );
    assert_eq!(
        after.sum("cxone_uuid_server_latency_seconds_count", &[]),
        60.0
    );
    assert_eq!(after.sum("cxone_uuid_wait_seconds_count", &[]), 60.0);

    // The trail: the audit event count, the run id of the info metric, and it verifies.
    let events = events(&trail);
    assert_eq!(
        after.sum("cxone_uuid_audit_events_written_total", &[]),
        events.len() as f64
    );
    let info = after.labels("cxone_uuid_run_info");
    assert_eq!(info.get("provider").map(String::as_str), Some("tutorial"));
    assert_eq!(
        info.get("run_id").map(String::as_str),
        events[0]["run_id"].as_str(),
        "{info:?}"
    );
    // Log lines inside the run carry its id.
    assert!(stderr_lines
        .iter()
        .any(|l| l["span"]["run_id"].as_str() == events[0]["run_id"].as_str()));
    let verify = bin()
        .args(["audit", "verify"])
        .arg(format!("jsonl:{}", trail.display()))
        .output()
        .unwrap();
    assert_eq!(verify.status.code(), Some(0), "{}", stderr(&verify));

    // The mock counted what it received and refused: three attempts a UUID.
    assert_eq!(
        mock_after.sum("cxone_uuid_mock_execute_requests_total", &[]),
        60.0 + n("retries")
    );
    assert_eq!(mock_after.sum("cxone_uuid_mock_uuids_received", &[]), 60.0);
    assert_eq!(
        mock_after.sum(
            "cxone_uuid_mock_execute_refused_total",
            &[("status", "429")]
        ),
        60.0
    );
    assert_eq!(
        mock_after.sum(
            "cxone_uuid_mock_execute_refused_total",
            &[("status", "400")]
        ),
        n("failed")
    );
    assert_eq!(
        mock_after.sum(
            "cxone_uuid_mock_execute_responses_total",
            &[("status", "200")]
        ),
        n("succeeded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_is_the_servers_and_the_pacers_wait_is_wait_ms() {
    let server = mock(MockConfig::default()).await;
    for (concurrency, low, high) in [(1, 25.0, 100.0), (4, 75.0, 400.0)] {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = run_cmd(&server, dir.path(), 40);
        cmd.args(["--rate", "20", "--concurrency", &concurrency.to_string()]);
        let out = output(cmd).await;
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        let s = summary(&out);
        let server_p50 = s["latency_ms"]["p50"].as_f64().unwrap();
        let wait_p50 = s["wait_ms"]["p50"].as_f64().unwrap();
        assert!(server_p50 < 5.0, "server p50 {server_p50} ms: {s}");
        // 50 ms per request in flight at 20/s, give or take the limiter's small burst.
        assert!(
            (low..=high).contains(&wait_p50),
            "concurrency {concurrency}: wait p50 {wait_p50} ms: {s}"
        );
        // The trail's execution latency is the server's too.
        let events = events(&audit_path(dir.path()));
        let mut exec: Vec<f64> = of_kind(&events, "action_executed")
            .iter()
            .map(|e| e["execution_latency_ms"].as_f64().unwrap())
            .collect();
        exec.sort_by(f64::total_cmp);
        assert!(exec[exec.len() / 2] < 5.0, "{exec:?}");
        // And each outcome records its wait, which the trail's verification covers.
        let mut wait: Vec<f64> = of_kind(&events, "action_executed")
            .iter()
            .map(|e| e["wait_ms"].as_f64().unwrap())
            .collect();
        wait.sort_by(f64::total_cmp);
        let median = wait[wait.len() / 2];
        assert!((low..=high).contains(&median), "{wait:?}");
        let mut verify = bin();
        verify
            .args(["audit", "verify"])
            .arg(format!("jsonl:{}", audit_path(dir.path()).display()));
        let v = output(verify).await;
        assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
    }
}

/// `run` against `server` with the text summary: progress lines show on a piped stderr.
fn text_run(server: &cxone_uuid_mock::MockServer, dir: &std::path::Path, n: u64) -> Command {
    let defaults = MockConfig::default();
    let mut cmd = bin();
    cmd.current_dir(dir)
        .env("CXONE_CLIENT_ID", &defaults.client_id)
        .env("CXONE_CLIENT_SECRET", &defaults.client_secret)
        .env("CXONE_DATA_ACTION_ID", "action-42")
        .env("CXONE_BASE_URL", server.base_url())
        .env("CXONE_TOKEN_URL", server.token_url())
        .args(["run", "-n", &n.to_string(), "--audit", "none"]);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_progress_lines_come_at_the_configured_interval() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // 40 UUIDs at 20/s: about 2 s, so about 4 lines at 0.5 s and the final one.
    let mut cmd = text_run(&server, dir.path(), 40);
    cmd.args(["--rate", "20", "--concurrency", "2"])
        .args(["--progress-every", "0.5"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("progress: "))
        .collect();
    assert!((3..=9).contains(&lines.len()), "{err}");
    for l in &lines {
        assert!(
            l.contains("/s, eta ") && l.contains(" failed, ") && l.ends_with(" rate-limited"),
            "{l}"
        );
    }
    assert!(
        lines.last().unwrap().starts_with("progress: 40/40 done, "),
        "{err}"
    );
    // The README's example line has the shape of the lines printed (numbers aside).
    let shape = |l: &str| {
        let mut out = String::new();
        for c in l.chars() {
            let c = if c.is_ascii_digit() || c == '.' {
                '#'
            } else {
                c
            };
            if !(c == '#' && out.ends_with('#')) {
                out.push(c);
            }
        }
        out
    };
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
    )
    .unwrap();
    let example = readme
        .lines()
        .find(|l| l.starts_with("progress: "))
        .expect("the README shows a progress line");
    assert_eq!(shape(example), shape(lines.last().unwrap()), "{err}");
    // With the default 10 s, a 2 s run says only its final line.
    let mut cmd = text_run(&server, dir.path(), 40);
    cmd.args(["--rate", "20", "--concurrency", "2"]);
    let out = output(cmd).await;
    let err = stderr(&out);
    assert_eq!(
        err.lines().filter(|l| l.starts_with("progress: ")).count(),
        1,
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_metrics_port_stops_the_run_before_anything_is_written() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut cmd = run_cmd(&server, dir.path(), 3);
    cmd.args(["--metrics-addr", &addr]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("--metrics-addr"), "{}", stderr(&out));
    assert!(server.recorded().execute_requests.is_empty());
    assert!(events(&audit_path(dir.path())).is_empty());
}

/// `run` of `n` UUIDs against the `cxone-uuid mock` at `base`, scraped once its summary is out
/// (the endpoint held meanwhile): the summary and the scrape.
fn run_and_scrape(base: &str, n: u64, args: &[&str]) -> (Value, Scrape) {
    let defaults = MockConfig::default();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.current_dir(dir.path())
        .env("CXONE_CLIENT_ID", &defaults.client_id)
        .env("CXONE_CLIENT_SECRET", &defaults.client_secret)
        .env("CXONE_DATA_ACTION_ID", "action-42")
        .env("CXONE_BASE_URL", base)
        .env("CXONE_TOKEN_URL", format!("{base}/oauth2/token"))
        .args([
            "run",
            "-n",
            &n.to_string(),
            "--output",
            "json",
            "--audit",
            "none",
        ])
        .args(["--metrics-addr", "127.0.0.1:0", "--metrics-hold", "30"])
        .args(["--backoff-base", "0.01", "--backoff-cap", "0.02"])
        .args(args);
    let (mut child, out, err) = spawn(cmd);
    let addr = loop {
        let line = err
            .recv_timeout(Duration::from_secs(30))
            .expect("the metrics line");
        if let Some(addr) = served_at(&line) {
            break addr;
        }
    };
    let line = out
        .recv_timeout(Duration::from_secs(60))
        .expect("the summary");
    let scrape = Scrape::get(&addr);
    // The hold is over for this test: the summary and the final values are read.
    let _ = child.kill();
    let _ = child.wait();
    (serde_json::from_str(&line).unwrap(), scrape)
}

#[test]
fn each_failure_is_counted_under_its_reason_class() {
    // (mock script per UUID, extra run flags, reason class an alert would match)
    let cases: [(&str, &[&str], &str); 5] = [
        ("429:ra=0*9", &[], "rate_limited"),
        ("503*9", &[], "server_error"),
        ("delay=3000*9", &["--timeout", "0.3"], "timeout"),
        ("close*9", &[], "connection"),
        ("echo-mismatch*9", &[], "echo_mismatch"),
    ];
    for (script, flags, reason) in cases {
        let (mut mock, base, _) = cli_mock(&["--script", script]);
        let mut args = vec!["--max-retries", "1"];
        args.extend_from_slice(flags);
        let (s, after) = run_and_scrape(&base, 2, &args);
        let _ = mock.kill();
        let _ = mock.wait();
        assert_eq!(s["failed"], 2, "{script}: {s}");
        assert_eq!(
            after.sum("cxone_uuid_uuids_failed_total", &[("reason", reason)]),
            2.0,
            "{script}: {:?}",
            after.0.samples
        );
        assert_eq!(after.sum("cxone_uuid_uuids_failed_total", &[]), 2.0);
        assert_eq!(
            after.sum("cxone_uuid_retries_total", &[]),
            s["retries"].as_f64().unwrap(),
            "{script}"
        );
        assert_eq!(
            after.sum("cxone_uuid_rate_limited_total", &[]),
            s["rate_limited"].as_f64().unwrap(),
            "{script}"
        );
    }
}

#[test]
fn json_stderr_is_json_even_for_a_usage_error_and_the_mock() {
    let all_json = |text: &str| {
        assert!(!text.trim().is_empty());
        for line in text.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("stderr line is not JSON ({e}): {line}"));
            assert!(
                v["timestamp"].is_string() && v["level"].is_string(),
                "{line}"
            );
        }
    };
    // A flag clap refuses, before any command runs: one error line, exit 2.
    let out = bin()
        .args(["--log-format", "json", "run", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    all_json(&stderr(&out));
    assert!(stderr(&out).contains("--no-such-flag"), "{}", stderr(&out));
    // The same through the environment, and text stays text without it.
    let out = bin()
        .env("CXONE_UUID_LOG_FORMAT", "json")
        .args(["generate", "-n", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    all_json(&stderr(&out));
    let out = bin().args(["generate", "-n", "0"]).output().unwrap();
    assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    // The mock's startup lines (endpoint, credentials, metrics address) are JSON lines too.
    let mut cmd = bin();
    cmd.env("CXONE_UUID_LOG_FORMAT", "json")
        .args(["mock", "--metrics-addr", "127.0.0.1:0"]);
    let (mut child, _out, err) = spawn(cmd);
    let mut lines = Vec::new();
    while let Ok(line) = err.recv_timeout(Duration::from_secs(20)) {
        let done = line.contains("Ctrl-C to stop");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text = lines.join("\n");
    all_json(&text);
    assert!(lines.iter().any(|l| served_at(l).is_some()), "{text}");
}
