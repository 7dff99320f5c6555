//! One writer per trail: a second `run` (or `audit import`) on a trail another process is
//! writing stops with exit 2 before it sends anything, and the first run's trail verifies.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cxone_uuid_mock::{MockConfig, MockServer};

use crate::support::*;

/// Starts `cmd` in the background and waits until `server` has seen a request: by then the
/// run holds its locks.
pub(crate) async fn start_and_wait(mut cmd: Command, server: &MockServer) -> Child {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.recorded().execute_requests.is_empty() {
        assert!(Instant::now() < deadline, "the first run never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child
}

/// Runs a second writer on `spec` while a first one writes it: the second exits 2 naming the
/// first's pid and sends nothing; the first finishes and the trail verifies.
async fn second_writer_is_refused(spec: &str, dir: &std::path::Path) {
    let slow = mock(MockConfig {
        latency_ms: 200,
        ..MockConfig::default()
    })
    .await;
    let mut first = run_cmd_audit(&slow, dir, 20, spec);
    first.args(["--concurrency", "2"]);
    let mut first = start_and_wait(first, &slow).await;

    let other = mock(MockConfig::default()).await;
    let out = output(run_cmd_audit(&other, dir, 5, spec)).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let expected = format!(
        "error: {spec} is being written by another cxone-uuid process (pid {}); wait for it or \
         choose another --audit path",
        first.id()
    );
    assert!(
        stderr(&out).lines().any(|l| l == expected),
        "{}",
        stderr(&out)
    );
    assert!(
        other.recorded().execute_requests.is_empty(),
        "the second run sent nothing"
    );
    assert!(out.stdout.is_empty(), "no summary: the run never started");

    let status = first.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(slow.recorded().execute_requests.len(), 20);
    let mut verify = bin();
    verify.args(["audit", "verify", spec]);
    let out = output(verify).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // run_started, three events per UUID, run_finished: the refused run wrote nothing.
    assert!(
        stdout(&out).starts_with("ok: 62 events"),
        "{}",
        stdout(&out)
    );

    // Released with its holder: a later run continues the same trail.
    let out = output(run_cmd_audit(&other, dir, 1, spec)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_a_jsonl_trail_exits_2_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("jsonl:{}", audit_path(dir.path()).display());
    second_writer_is_refused(&spec, dir.path()).await;
}

#[cfg(feature = "audit-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_a_sqlite_trail_exits_2_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("sqlite:{}", dir.path().join("trail.db").display());
    second_writer_is_refused(&spec, dir.path()).await;
}

#[cfg(feature = "audit-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_into_a_database_a_run_writes_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("trail.db");
    let spec = format!("sqlite:{}", db.display());
    let slow = mock(MockConfig {
        latency_ms: 200,
        ..MockConfig::default()
    })
    .await;
    let mut first = run_cmd_audit(&slow, dir.path(), 10, &spec);
    first.args(["--concurrency", "1"]);
    let mut first = start_and_wait(first, &slow).await;
    let other = mock(MockConfig::default()).await;
    let out = output(run_cmd(&other, dir.path(), 2)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut import = bin();
    import
        .args(["audit", "import"])
        .arg(audit_path(dir.path()))
        .arg("--db")
        .arg(&db);
    let out = output(import).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "is being written by another cxone-uuid process (pid {}); wait for it or import into another --db",
            first.id()
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(first.wait().unwrap().code(), Some(0));
    assert_verifies(&spec).await;
}
