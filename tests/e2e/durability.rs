//! Crashes and interruptions: kill -9 loses nothing, `--resume` finishes what was pending,
//! Ctrl-C drains and exits 130.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cxone_uuid_mock::{MockConfig, MockServer};

use crate::support::*;

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

async fn wait_for_requests(server: &cxone_uuid_mock::MockServer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.recorded().execute_requests.len() < n {
        assert!(Instant::now() < deadline, "the run never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A mock slow enough (300 ms an answer) that a killed run leaves requests in flight.
async fn slow_mock() -> MockServer {
    mock(MockConfig {
        latency_ms: 300,
        ..MockConfig::default()
    })
    .await
}

/// Starts `cmd` (a `run` of 500) at concurrency 8, kills it with SIGKILL once the server has
/// seen 20 requests, and returns the UUIDs the server received.
async fn kill_9_mid_run(server: &MockServer, mut cmd: Command) -> HashSet<String> {
    cmd.args(["--concurrency", "8"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    wait_for_requests(server, 20).await;
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    server
        .recorded()
        .execute_requests
        .iter()
        .filter_map(|r| r.uuid.clone())
        .collect()
}

/// The UUIDs the server received after its first `before` requests, each checked to carry the
/// same Idempotency-Key (its UUID) as the first attempt did.
fn resent_since(server: &MockServer, before: usize) -> HashSet<String> {
    server.recorded().execute_requests[before..]
        .iter()
        .map(|r| {
            assert_eq!(r.idempotency_key, r.uuid, "same Idempotency-Key on resume");
            r.uuid.clone().unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_and_resume_finishes_the_pending_uuids() {
    let server = slow_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let received = kill_9_mid_run(&server, run_cmd(&server, dir.path(), 500)).await;
    // Read the raw file: a partial last line is allowed, anything else must parse.
    let text = std::fs::read_to_string(audit_path(dir.path())).unwrap();
    let whole: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let submitted: HashSet<String> = whole
        .iter()
        .filter(|e| e["event"] == "action_submitted")
        .map(|e| e["uuid"].as_str().unwrap().to_string())
        .collect();
    for uuid in &received {
        assert!(
            submitted.contains(uuid),
            "{uuid} reached the server without a durable action_submitted"
        );
    }
    let pending: HashSet<String> = submitted
        .iter()
        .filter(|u| {
            !whole.iter().any(|e| {
                e["uuid"] == u.as_str()
                    && (e["event"] == "action_executed" || e["event"] == "action_failed")
            })
        })
        .cloned()
        .collect();
    assert!(
        !pending.is_empty(),
        "the kill should leave requests in flight"
    );

    // Resume: reopens the trail (moving any partial line aside) and finishes the pending UUIDs.
    let before = server.recorded().execute_requests.len();
    let mut cmd = run_cmd(&server, dir.path(), 1);
    cmd.arg("--resume");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        summary(&out)["succeeded"].as_u64().unwrap() as usize,
        pending.len()
    );
    let resent = resent_since(&server, before);
    assert_eq!(
        resent, pending,
        "exactly the pending UUIDs are submitted again"
    );

    let evs = events(&audit_path(dir.path()));
    for uuid in &pending {
        assert!(evs
            .iter()
            .any(|e| e["uuid"] == uuid.as_str() && e["event"] == "action_executed"));
    }
    assert_verifies(&format!("jsonl:{}", audit_path(dir.path()).display())).await;
}

/// The SQLite sink keeps its newest events in `audit_events_recent` until it moves them into
/// `audit_events`; a kill -9 must lose none of them, readers must see them, and the next writer
/// must move them.
#[cfg(feature = "audit-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_the_sqlite_sink_loses_nothing_and_resume_finishes_the_pending_uuids() {
    use rusqlite::{Connection, OpenFlags};

    fn uuids(conn: &Connection, sql: &str) -> HashSet<String> {
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }
    fn open(db: &std::path::Path) -> Connection {
        Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
    }

    let server = slow_mock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("trail.db");
    let spec = format!("sqlite:{}", db.display());
    let received = kill_9_mid_run(&server, run_cmd_audit(&server, dir.path(), 500, &spec)).await;
    // Read with SQLite itself, as a compliance team would.
    let conn = open(&db);
    let submitted = uuids(
        &conn,
        "SELECT uuid FROM audit_events_all WHERE event = 'action_submitted'",
    );
    for uuid in &received {
        assert!(
            submitted.contains(uuid),
            "{uuid} reached the server without a committed action_submitted"
        );
    }
    let finished = uuids(
        &conn,
        "SELECT uuid FROM audit_events_all WHERE event IN ('action_executed', 'action_failed')",
    );
    let pending: HashSet<String> = submitted.difference(&finished).cloned().collect();
    assert!(
        !pending.is_empty(),
        "the kill should leave requests in flight"
    );
    let by_status = uuids(
        &conn,
        "SELECT uuid FROM uuid_status WHERE status = 'pending' \
           AND uuid IN (SELECT uuid FROM audit_events_all WHERE event = 'action_submitted')",
    );
    assert_eq!(by_status, pending, "uuid_status sees the staged events too");
    drop(conn);

    let before = server.recorded().execute_requests.len();
    let mut cmd = run_cmd_audit(&server, dir.path(), 1, &spec);
    cmd.arg("--resume");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let resent = resent_since(&server, before);
    assert_eq!(
        resent, pending,
        "exactly the pending UUIDs are submitted again"
    );

    // Everything is in the indexed table now: the resuming writer moved the staged events
    // when it opened the database and its own when it closed it.
    let conn = open(&db);
    let staged: i64 = conn
        .query_row("SELECT count(*) FROM audit_events_recent", [], |r| r.get(0))
        .unwrap();
    assert_eq!(staged, 0);
    let executed = uuids(
        &conn,
        "SELECT uuid FROM audit_events WHERE event = 'action_executed'",
    );
    assert!(pending.is_subset(&executed));
    let merged = uuids(
        &conn,
        "SELECT uuid FROM audit_events WHERE uuid IS NOT NULL",
    );
    assert!(submitted.is_subset(&merged));
    drop(conn);
    assert_verifies(&spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_drains_in_flight_requests_writes_the_summary_and_exits_130() {
    drains_on_signal("-INT", 130, "interrupted by the user").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_like_ctrl_c_and_exits_143() {
    drains_on_signal("-TERM", 143, "interrupted by SIGTERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_drains_like_ctrl_c_and_exits_129() {
    drains_on_signal("-HUP", 129, "interrupted by SIGHUP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_stops_at_once_and_resume_finishes_the_rest() {
    let server = mock(MockConfig {
        latency_ms: 2000,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 200);
    cmd.args(["--concurrency", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    wait_for_requests(&server, 4).await;
    let started = Instant::now();
    signal(child.id(), "-TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    signal(child.id(), "-TERM");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(143), "stderr: {}", stderr(&out));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the second signal does not wait for the 2 s requests in flight"
    );
    assert!(
        stderr(&out).contains("stopping at once"),
        "{}",
        stderr(&out)
    );
    let spec = format!("jsonl:{}", audit_path(dir.path()).display());
    assert_verifies(&spec).await;
    let evs = events(&audit_path(dir.path()));
    assert!(
        of_kind(&evs, "run_finished").is_empty(),
        "no summary after the second signal"
    );

    // Every UUID with a write-ahead record and no outcome is sent again by --resume, those
    // whose request was in flight included (the same UUID and Idempotency-Key).
    let answered: HashSet<String> = of_kind(&evs, "action_executed")
        .iter()
        .map(|e| e["uuid"].as_str().unwrap().to_string())
        .collect();
    let pending: HashSet<String> = of_kind(&evs, "action_submitted")
        .iter()
        .map(|e| e["uuid"].as_str().unwrap().to_string())
        .filter(|u| !answered.contains(u))
        .collect();
    assert!(!pending.is_empty());
    let before = server.recorded().execute_requests.len();
    let mut cmd = run_cmd(&server, dir.path(), 1);
    cmd.arg("--resume");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let resent: HashSet<String> = server.recorded().execute_requests[before..]
        .iter()
        .map(|r| r.uuid.clone().unwrap())
        .collect();
    assert_eq!(resent, pending);
    assert_verifies(&spec).await;
}

/// A stop signal mid-run: requests in flight finish and are recorded, the summary and
/// `run_finished` are written, the exit code is 128 + the signal, and `--resume` sends exactly
/// the UUIDs that were staged but not sent.
async fn drains_on_signal(flag: &str, code: i32, reason: &str) {
    let server = mock(MockConfig {
        latency_ms: 200,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 1000);
    cmd.args(["--concurrency", "4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    wait_for_requests(&server, 8).await;
    signal(child.id(), flag);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(&out));
    let s = summary(&out);
    let done = s["succeeded"].as_u64().unwrap() + s["failed"].as_u64().unwrap();
    assert!(done < 1000);
    let rec = server.recorded();
    assert_eq!(
        rec.execute_requests.len() as u64,
        done,
        "every request sent was waited for and counted"
    );
    let evs = events(&audit_path(dir.path()));
    assert_eq!(
        of_kind(&evs, "action_executed").len() as u64,
        s["succeeded"].as_u64().unwrap()
    );
    let fin = of_kind(&evs, "run_finished");
    assert_eq!(fin.len(), 1);
    assert_eq!(fin[0]["error"].as_str().unwrap(), reason);

    // UUIDs whose write-ahead record was already durable (staged for the next free request
    // slot) are not sent after Ctrl-C: they stay pending, are counted and named on stderr, and
    // `--resume` sends exactly them.
    let sent: HashSet<String> = rec
        .execute_requests
        .iter()
        .map(|r| r.uuid.clone().unwrap())
        .collect();
    let staged: HashSet<String> = of_kind(&evs, "action_submitted")
        .iter()
        .map(|e| e["uuid"].as_str().unwrap().to_string())
        .filter(|u| !sent.contains(u))
        .collect();
    assert_eq!(
        of_kind(&evs, "action_submitted").len() as u64,
        done + staged.len() as u64
    );
    assert_eq!(s["pending"].as_u64().unwrap(), staged.len() as u64);
    // The stage is 16 × --concurrency, and at least 64.
    assert!(
        staged.len() <= 64,
        "at most the stage is pending: {}",
        staged.len()
    );
    if !staged.is_empty() {
        assert!(
            stderr(&out).contains("run --resume"),
            "stderr: {}",
            stderr(&out)
        );
    }
    let before = rec.execute_requests.len();
    let mut cmd = run_cmd(&server, dir.path(), 1);
    cmd.arg("--resume");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let resent: HashSet<String> = server.recorded().execute_requests[before..]
        .iter()
        .map(|r| r.uuid.clone().unwrap())
        .collect();
    assert_eq!(resent, staged, "--resume sends exactly the staged UUIDs");
    assert_verifies(&format!("jsonl:{}", audit_path(dir.path()).display())).await;
}
