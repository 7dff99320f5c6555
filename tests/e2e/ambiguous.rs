//! Attempts whose outcome is unknown (500/502/504, a timeout or a connection lost after the
//! request was written) and what may be sent again: `--on-ambiguous retry|fail` and
//! `run --retry-failed`. Neither Genesys nor CXone honours an idempotency key, so the trail
//! records every attempt that may have run the action.

use std::collections::HashSet;

use cxone_uuid_mock::{parse_script, MockConfig, MockServer};
use serde_json::Value;

use crate::support::*;

async fn scripted(script: &str) -> MockServer {
    mock(MockConfig {
        script: parse_script(script).unwrap(),
        ..MockConfig::default()
    })
    .await
}

fn outcomes(dir: &std::path::Path) -> Vec<Value> {
    events(&audit_path(dir))
        .into_iter()
        .filter(|e| {
            matches!(
                e["event"].as_str(),
                Some("action_executed" | "action_failed")
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_ambiguous_attempts_are_recorded_and_counted() {
    let server = scripted("502,200").await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(run_cmd(&server, dir.path(), 3)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary(&out)["ambiguous"], 3);
    assert_eq!(server.recorded().execute_requests.len(), 6);
    for e in outcomes(dir.path()) {
        assert_eq!(e["event"], "action_executed");
        assert_eq!(e["ambiguous_attempts"], 1, "{e}");
    }
    assert_trail_verifies(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_ambiguous_fail_ends_the_uuid_and_nothing_resends_it() {
    let server = scripted("502,200").await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 3);
    cmd.args(["--on-ambiguous", "fail"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // One attempt each: the 502 may have run the action, so it is not retried.
    assert_eq!(server.recorded().execute_requests.len(), 3);
    let s = summary(&out);
    assert_eq!(
        (s["failed"].clone(), s["ambiguous"].clone()),
        (3.into(), 3.into())
    );
    for e in outcomes(dir.path()) {
        assert_eq!(e["event"], "action_failed");
        assert_eq!(e["ambiguous_attempts"], 1);
        let error = e["error"].as_str().unwrap();
        assert!(
            error.starts_with("may have executed: check the target before resubmitting"),
            "{error}"
        );
    }
    assert_trail_verifies(dir.path()).await;
    // Neither --resume nor --retry-failed sends them again.
    let mut again = run_cmd(&server, dir.path(), 1);
    again.args(["--resume", "--retry-failed"]);
    let out = output(again).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resubmitting 0 failed UUID(s) that did not run the action; 3 stay failed: may have executed (--on-ambiguous fail)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.recorded().execute_requests.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_after_an_outage_resends_only_what_did_not_run() {
    let dir = tempfile::tempdir().unwrap();
    // An outage: every attempt answers 503 until the retries run out.
    let outage = scripted("503,503").await;
    let mut cmd = run_cmd(&outage, dir.path(), 4);
    cmd.args(["--max-retries", "1"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let down: HashSet<String> = outage
        .recorded()
        .execute_requests
        .iter()
        .map(|r| r.uuid.clone().unwrap())
        .collect();
    assert_eq!(down.len(), 4);
    // Two UUIDs the platform refused: they stay failed.
    let refusing = scripted("400").await;
    let out = output(run_cmd(&refusing, dir.path(), 2)).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    let healthy = mock(MockConfig::default()).await;
    let mut cmd = run_cmd(&healthy, dir.path(), 1);
    cmd.arg("--retry-failed");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("resubmitting 4 failed UUID(s) that did not run the action; 2 stay failed: refused by the platform (4xx)"),
        "{}",
        stderr(&out)
    );
    let s = summary(&out);
    assert_eq!(
        (s["requested"].clone(), s["succeeded"].clone()),
        (4.into(), 4.into())
    );
    let rec = healthy.recorded();
    let resent: HashSet<String> = rec
        .execute_requests
        .iter()
        .map(|r| {
            assert_eq!(r.idempotency_key, r.uuid, "same Idempotency-Key");
            assert_eq!(r.path, "/api/v2/data-actions/action-42/execute");
            r.uuid.clone().unwrap()
        })
        .collect();
    assert_eq!(resent, down);
    assert_trail_verifies(dir.path()).await;
}
