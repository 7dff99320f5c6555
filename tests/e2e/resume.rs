//! `run --resume` sends each pending UUID to the action its `action_submitted` recorded: with
//! no action configured it uses the recorded one, and another one is refused before anything
//! is sent.
#![cfg(feature = "jsonl")]

use std::path::Path;

use cxone_uuid_audit::{AuditEvent, AuditSink as _, EventKind};
use cxone_uuid_audit_jsonl::{JsonlOptions, JsonlSink};
use cxone_uuid_mock::MockConfig;
use uuid::Uuid;

use crate::support::*;

/// A trail a crashed run left: `n` UUIDs submitted to `action`, none answered.
async fn crashed_trail(path: &Path, action: &str, n: usize) -> Vec<Uuid> {
    let run = Uuid::now_v7();
    let uuids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let mut evs = vec![AuditEvent::new(EventKind::RunStarted, run)];
    for u in &uuids {
        for kind in [EventKind::UuidGenerated, EventKind::ActionSubmitted] {
            let mut e = AuditEvent::new(kind, run);
            e.uuid = Some(*u);
            e.action_id = Some(action.to_string());
            evs.push(e);
        }
    }
    let sink = JsonlSink::open(path, JsonlOptions::default()).unwrap();
    sink.append(&evs).await.unwrap();
    sink.close().await.unwrap();
    uuids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_without_an_action_sends_to_the_recorded_one() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let uuids = crashed_trail(&audit_path(dir.path()), "recorded-7", 3).await;
    let mut cmd = run_cmd(&server, dir.path(), 1);
    cmd.env_remove("CXONE_DATA_ACTION_ID").arg("--resume");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rec = server.recorded();
    assert_eq!(rec.execute_requests.len(), 3);
    for r in &rec.execute_requests {
        assert_eq!(r.path, "/api/v2/data-actions/recorded-7/execute");
        assert!(uuids.contains(&r.uuid.clone().unwrap().parse().unwrap()));
    }
    assert_trail_verifies(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_with_another_action_exits_2_naming_both() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    crashed_trail(&audit_path(dir.path()), "recorded-7", 2).await;
    let before = std::fs::read(audit_path(dir.path())).unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 1);
    cmd.args(["--resume", "--data-action-id", "other-9"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "error: --data-action-id other-9 differs from the action the pending UUIDs were \
         submitted to (recorded-7): --resume sends each to the action it was recorded with; \
         drop --data-action-id, or give --data-action-id recorded-7"
    );
    assert!(server.recorded().execute_requests.is_empty());
    assert_eq!(
        std::fs::read(audit_path(dir.path())).unwrap(),
        before,
        "nothing was written"
    );
}

/// `run_cmd_audit`'s command with text output.
fn text_run(
    server: &cxone_uuid_mock::MockServer,
    dir: &Path,
    n: u64,
    audit: &str,
) -> std::process::Command {
    let d = MockConfig::default();
    let mut cmd = bin();
    cmd.current_dir(dir)
        .env("CXONE_CLIENT_ID", &d.client_id)
        .env("CXONE_CLIENT_SECRET", &d.client_secret)
        .env("CXONE_BASE_URL", server.base_url())
        .env("CXONE_TOKEN_URL", server.token_url())
        .args(["run", "-n", &n.to_string(), "--audit", audit])
        .args(["--backoff-base", "0.01", "--backoff-cap", "0.05"]);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_says_it_generated_nothing_to_collide() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let trail = audit_path(dir.path());
    crashed_trail(&trail, "recorded-7", 2).await;
    let mut cmd = text_run(
        &server,
        dir.path(),
        1,
        &format!("jsonl:{}", trail.display()),
    );
    cmd.arg("--resume");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("requested 2  succeeded 2  failed 0"),
        "{text}"
    );
    assert!(
        text.contains("collision probability n/a (this run generated no UUID)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_run_shows_pending_and_offers_resume_only_with_a_trail() {
    // A bad secret stops the run at its first token request: every staged UUID is pending.
    for (audit, resumable) in [("none", false), ("jsonl:t.jsonl", true)] {
        let server = mock(MockConfig {
            token_script: cxone_uuid_mock::parse_script("401").unwrap(),
            ..MockConfig::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = text_run(&server, dir.path(), 20, audit);
        cmd.env("CXONE_DATA_ACTION_ID", "a-1");
        let out = output(cmd).await;
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("  pending "), "{text}");
        assert!(text.contains("  not submitted 20"), "{text}");
        let err = stderr(&out);
        assert_eq!(
            err.contains("cxone-uuid run --resume"),
            resumable,
            "{audit}: {err}"
        );
        assert_eq!(
            err.contains("cannot be resumed"),
            !resumable,
            "{audit}: {err}"
        );
        assert!(server.recorded().execute_requests.is_empty());
    }
}
