//! `cxone-uuid run` against the mock: every fault the main-job issue names, checked in the
//! outcome, in what the server received, and in the audit trail.

use std::time::{Duration, Instant};

use cxone_uuid_mock::{parse_script, Malformed, MockConfig};
use serde_json::Value;

use crate::support::*;

fn scripted(script: &str) -> MockConfig {
    MockConfig {
        script: parse_script(script).expect("script"),
        ..MockConfig::default()
    }
}

/// The one terminal event of the only UUID in a one-UUID run.
fn terminal(dir: &std::path::Path) -> Value {
    let evs = events(&audit_path(dir));
    let t: Vec<_> = evs
        .iter()
        .filter(|e| e["event"] == "action_executed" || e["event"] == "action_failed")
        .cloned()
        .collect();
    assert_eq!(t.len(), 1, "exactly one terminal event: {evs:?}");
    t[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_submits_each_uuid_once_with_its_idempotency_key() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(run_cmd(&server, dir.path(), 20)).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["requested"], 20);
    assert_eq!(s["succeeded"], 20);
    assert_eq!(s["failed"], 0);
    assert_eq!(s["duplicates"], 0);
    assert_eq!(s["uniqueness_rate"], 1.0);
    for key in ["p50", "p95", "p99", "max", "avg"] {
        assert!(s["latency_ms"][key].as_f64().unwrap() > 0.0, "{key}");
    }
    assert!(s["collision_probability"].as_f64().unwrap() < 1e-30);
    assert!(s["errors"].as_array().unwrap().is_empty());

    let rec = server.recorded();
    assert_eq!(rec.execute_requests.len(), 20);
    assert_eq!(rec.token_requests, 1, "the token is cached");
    for r in &rec.execute_requests {
        assert_eq!(r.path, "/api/v2/data-actions/action-42/execute");
        let uuid = r.uuid.clone().unwrap();
        assert_eq!(r.idempotency_key.as_deref(), Some(uuid.as_str()));
        assert_eq!(r.body, serde_json::json!({"inputs": {"uuid": uuid}}));
        let parsed = uuid::Uuid::parse_str(&uuid).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(
            uuid,
            parsed.hyphenated().to_string(),
            "lowercase hyphenated"
        );
    }

    let evs = events(&audit_path(dir.path()));
    assert_eq!(of_kind(&evs, "run_started").len(), 1);
    assert_eq!(of_kind(&evs, "uuid_generated").len(), 20);
    assert_eq!(of_kind(&evs, "action_submitted").len(), 20);
    assert_eq!(of_kind(&evs, "action_executed").len(), 20);
    assert_eq!(of_kind(&evs, "run_finished").len(), 1);
    // Write-ahead order: each UUID's submission precedes its outcome in the stream.
    for ex in of_kind(&evs, "action_executed") {
        let sub = evs
            .iter()
            .find(|e| e["event"] == "action_submitted" && e["uuid"] == ex["uuid"])
            .unwrap();
        assert!(sub["seq"].as_u64() < ex["seq"].as_u64());
        assert_eq!(ex["attempts"], 1);
        assert_eq!(ex["http_status"], 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_in_seconds_is_waited_for() {
    let server = mock(scripted("429:ra=1,200")).await;
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = output(run_cmd(&server, dir.path(), 1)).await;
    let waited = t0.elapsed();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["rate_limited"], 1);
    assert_eq!(s["retries"], 1);
    assert!(
        waited >= Duration::from_millis(950),
        "waited only {waited:?}"
    );
    let rec = server.recorded();
    assert_eq!(rec.execute_requests.len(), 2);
    let gap = rec.execute_requests[1].at_ms - rec.execute_requests[0].at_ms;
    assert!(
        gap >= 950,
        "second attempt came after {gap} ms, Retry-After said 1 s"
    );
    assert_eq!(
        rec.execute_requests[0].idempotency_key,
        rec.execute_requests[1].idempotency_key
    );
    assert_eq!(terminal(dir.path())["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_as_http_date_is_waited_for() {
    let server = mock(scripted("429:date=2,200")).await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(run_cmd(&server, dir.path(), 1)).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let rec = server.recorded();
    assert_eq!(rec.execute_requests.len(), 2);
    let gap = rec.execute_requests[1].at_ms - rec.execute_requests[0].at_ms;
    // An HTTP-date has one-second resolution: 2 s ahead means at least ~1 s of waiting.
    assert!(gap >= 900, "second attempt came after {gap} ms");
    assert_eq!(summary(&out)["rate_limited"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_beyond_the_limit_fails_the_uuid() {
    let server = mock(scripted("429:ra=120,200")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 1);
    cmd.args(["--max-retry-after", "5"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(server.recorded().execute_requests.len(), 1);
    let t = terminal(dir.path());
    assert_eq!(t["event"], "action_failed");
    assert!(
        t["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("retry after"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_then_success_is_retried_with_the_same_uuid() {
    let server = mock(scripted("500,502,200")).await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(run_cmd(&server, dir.path(), 3)).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["succeeded"], 3);
    assert_eq!(s["retries"], 6);
    let rec = server.recorded();
    assert_eq!(rec.execute_requests.len(), 9);
    let mut keys: Vec<_> = rec
        .execute_requests
        .iter()
        .map(|r| (r.idempotency_key.clone().unwrap(), r.uuid.clone().unwrap()))
        .collect();
    for (k, u) in &keys {
        assert_eq!(k, u, "Idempotency-Key is the UUID on every attempt");
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3, "three UUIDs, three attempts each");
    for e in of_kind(&events(&audit_path(dir.path())), "action_executed") {
        assert_eq!(e["attempts"], 3);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_forever_makes_exactly_max_retries_plus_one_attempts() {
    let server = mock(MockConfig {
        fail_rate: 1.0,
        fail_status: 503,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 1);
    cmd.args(["--max-retries", "2"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    let s = summary(&out);
    assert_eq!(s["failed"], 1);
    assert_eq!(s["errors"].as_array().unwrap().len(), 1);
    assert_eq!(server.recorded().execute_requests.len(), 3);
    let t = terminal(dir.path());
    assert_eq!(t["event"], "action_failed");
    assert_eq!(t["attempts"], 3);
    assert_eq!(t["http_status"], 503);
}

async fn fails_at_once(script: &str, status: u16, needle: &str) {
    let server = mock(scripted(script)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(run_cmd(&server, dir.path(), 1)).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert_eq!(
        server.recorded().execute_requests.len(),
        1,
        "{status} is not retried"
    );
    let t = terminal(dir.path());
    assert_eq!(t["event"], "action_failed");
    assert_eq!(t["http_status"], status);
    assert_eq!(t["attempts"], 1);
    let err = t["error"].as_str().unwrap().to_lowercase();
    assert!(
        err.contains(needle),
        "error {err:?} should mention {needle:?}"
    );
    let s = summary(&out);
    assert_eq!(s["errors"][0]["uuid"], t["uuid"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_request_fails_at_once_with_the_servers_text() {
    fails_at_once("400", 400, "400").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_fails_at_once_naming_the_permission() {
    fails_at_once("403", 403, "permission").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_refreshes_the_token_once_and_retries() {
    let server = mock(scripted("401,200")).await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(run_cmd(&server, dir.path(), 1)).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let rec = server.recorded();
    assert_eq!(rec.token_requests, 2, "one refresh after the 401");
    assert_eq!(rec.execute_requests.len(), 2);
    assert_eq!(terminal(dir.path())["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_unauthorized_fails_the_uuid() {
    let server = mock(scripted("401,401,200")).await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(run_cmd(&server, dir.path(), 1)).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(server.recorded().execute_requests.len(), 2);
    assert_eq!(terminal(dir.path())["http_status"], 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_rejection_stops_the_run_without_a_retry_storm() {
    let server = mock(MockConfig {
        token_script: parse_script("401").unwrap(),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 10);
    cmd.args(["--concurrency", "4"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    let rec = server.recorded();
    assert_eq!(
        rec.token_requests, 1,
        "no retry storm on the token endpoint"
    );
    assert!(rec.execute_requests.is_empty());
    let all = format!("{}{}", stdout(&out), stderr(&out)).to_lowercase();
    assert!(all.contains("credentials"), "{all}");
    let evs = events(&audit_path(dir.path()));
    let fin = of_kind(&evs, "run_finished");
    assert_eq!(fin.len(), 1);
    assert!(
        fin[0]["error"].is_string(),
        "the stop is recorded: {:?}",
        fin[0]
    );
    // Nothing was sent: the staged UUIDs are pending for --resume, not failed.
    assert!(of_kind(&evs, "action_failed").is_empty());
    let s = summary(&out);
    assert_eq!(s["failed"], 0);
    assert!(s["pending"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(
        s["pending"].as_u64().unwrap(),
        of_kind(&evs, "action_submitted").len() as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_calls_share_one_token_request() {
    let server = mock(MockConfig {
        latency_ms: 20,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 50);
    cmd.args(["--concurrency", "50", "--rate", "unlimited"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(server.recorded().token_requests, 1);
    assert_eq!(summary(&out)["succeeded"], 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_before_use() {
    let server = mock(MockConfig {
        token_ttl_secs: 2,
        latency_ms: 150,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 12);
    cmd.args(["--concurrency", "1"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let rec = server.recorded();
    assert!(rec.token_requests >= 2, "token refreshed before expiry");
    assert_eq!(
        rec.responses_by_status.get(&401).copied().unwrap_or(0),
        0,
        "refreshed before the server had to reject it"
    );
}

async fn malformed(kind: Malformed, needle: &str) {
    let server = mock(MockConfig {
        malformed: Some(kind),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(run_cmd(&server, dir.path(), 1)).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert_eq!(server.recorded().execute_requests.len(), 1, "not retried");
    let t = terminal(dir.path());
    assert_eq!(t["event"], "action_failed");
    let err = t["error"].as_str().unwrap();
    assert!(err.contains(needle), "{err}");
    assert!(err.len() < 600, "the excerpt is short: {} bytes", err.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_object_instead_of_an_array_is_rejected() {
    malformed(Malformed::NotArray, "unexpected response format").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_page_is_rejected() {
    malformed(Malformed::Html, "unexpected response format").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_rejected() {
    malformed(Malformed::Oversized, "unexpected response format").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_is_rejected() {
    malformed(Malformed::Truncated, "unexpected response format").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_echo_mismatch_is_rejected() {
    malformed(Malformed::EchoMismatch, "echo mismatch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_is_retried() {
    let server = mock(scripted("delay=2000,200")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 1);
    cmd.args(["--timeout", "0.5"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(server.recorded().execute_requests.len(), 2);
    assert_eq!(terminal(dir.path())["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_retried() {
    let server = mock(scripted("close,200")).await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(run_cmd(&server, dir.path(), 1)).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(terminal(dir.path())["attempts"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_variables_are_all_named_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.current_dir(dir.path()).args(["run", "-n", "1"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for var in [
        "CXONE_CLIENT_ID",
        "CXONE_CLIENT_SECRET",
        "CXONE_DATA_ACTION_ID",
    ] {
        assert!(err.contains(var), "{var} missing from: {err}");
    }
    assert!(
        !dir.path().join("cxone_uuid_audit.jsonl").exists(),
        "nothing half-written on a configuration error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_to_a_remote_host_is_refused_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = bin();
    cmd.current_dir(dir.path())
        .env("CXONE_CLIENT_ID", "id")
        .env("CXONE_CLIENT_SECRET", "secret")
        .env("CXONE_DATA_ACTION_ID", "a")
        // .invalid never resolves, so even a broken check could not reach anyone.
        .env("CXONE_BASE_URL", "http://cxone.invalid")
        .args(["run", "-n", "1"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("http://"), "{err}");
    assert!(!dir.path().join("cxone_uuid_audit.jsonl").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_output_logs_or_the_audit_trail() {
    // Both shapes of stderr: lines for a person and JSON lines for a log shipper.
    for format in ["text", "json"] {
        let secret = "s3cr3t-Value-9f8e7d";
        let server = mock(MockConfig {
            client_secret: secret.to_string(),
            script: parse_script("401,500,200").unwrap(),
            ..MockConfig::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = run_cmd(&server, dir.path(), 3);
        cmd.env("CXONE_CLIENT_SECRET", secret)
            .args(["--log", "trace", "--log-format", format, "--audit"])
            .arg(format!(
                "jsonl:{}",
                dir.path().join("second.jsonl").display()
            ));
        let out = output(cmd).await;
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        let tokens = server.issued_tokens();
        assert!(!tokens.is_empty());
        if format == "json" {
            // One object a line, every line; the client's retry events carry uuid and attempt.
            let lines: Vec<Value> = stderr(&out)
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
            assert!(lines
                .iter()
                .any(|l| l["uuid"].is_string() && l["attempt"].is_number()));
        }
        let mut haystacks = vec![stdout(&out), stderr(&out)];
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                haystacks
                    .push(String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned());
            }
        }
        for h in &haystacks {
            assert!(!h.contains(secret), "the client secret leaked ({format})");
            for t in &tokens {
                assert!(!h.contains(t.as_str()), "an access token leaked ({format})");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_token_endpoint_stops_the_run_at_once() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/oauth2/token", dead.local_addr().unwrap());
    drop(dead);
    let mut cmd = run_cmd(&server, dir.path(), 200);
    cmd.env("CXONE_TOKEN_URL", &url)
        .args(["--concurrency", "4"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("could not be reached") && err.contains(&url),
        "{err}"
    );
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The run stopped on the first token failure: the UUIDs in flight then failed with it and
    // the rest were never submitted (no longer one token retry cycle per UUID).
    assert!(s["failed"].as_u64().unwrap() <= 4, "{s}");
    assert!(
        s["not_submitted"].as_u64().unwrap() >= 196 - s["pending"].as_u64().unwrap(),
        "{s}"
    );
    assert!(server.recorded().execute_requests.is_empty());
    let mut verify = bin();
    verify.args([
        "audit",
        "verify",
        &format!("jsonl:{}", audit_path(dir.path()).display()),
    ]);
    let v = output(verify).await;
    assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
}

/// `--log` takes plain `target=level` directives and EnvFilter's span directives alike (the
/// first go to a cheaper filter, the second to EnvFilter): the client's retry line comes out
/// under each, nothing else below warn does outside what the filter names, and under a level
/// alone it sits inside the run's span (its run id on the line).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_filters_take_targets_and_span_directives() {
    for filter in ["debug", "cxone_uuid_client=debug", "[uuid]=debug"] {
        let server = mock(MockConfig {
            script: parse_script("500,200").unwrap(),
            ..MockConfig::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = run_cmd(&server, dir.path(), 1);
        cmd.args(["--log", filter, "--log-format", "json", "--audit", "none"]);
        let out = output(cmd).await;
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
        let lines: Vec<Value> = stderr(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{filter}: {e}: {l}")))
            .collect();
        let retry = lines
            .iter()
            .find(|l| l["message"] == "retrying")
            .unwrap_or_else(|| panic!("{filter}: no retry line in {lines:?}"));
        assert_eq!(retry["attempt"], 1, "{filter}: {retry}");
        let below_warn = lines
            .iter()
            .filter(|l| l["level"] == "DEBUG" || l["level"] == "TRACE");
        match filter {
            "debug" => {
                assert_eq!(retry["spans"][0]["name"], "run", "{retry}");
                assert!(retry["spans"][0]["run_id"].is_string(), "{retry}");
            }
            // Only the client's own line.
            "cxone_uuid_client=debug" => assert!(
                below_warn.clone().all(|l| l["message"] == "retrying"),
                "{filter}: {lines:?}"
            ),
            // Every line below warn (the HTTP stack's too) from inside a UUID's span.
            _ => assert!(
                below_warn.clone().all(|l| l["span"]["name"] == "uuid"),
                "{filter}: {lines:?}"
            ),
        }
    }
}
