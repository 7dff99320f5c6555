//! A disk that fills mid-run: the run stops with exit 1, the JSONL trail ends at its last
//! complete line and verifies as it was left, and `--resume` finishes the pending UUIDs once
//! there is space again.
//!
//! The fault is the kernel's own: the run is started under `ulimit -f` (RLIMIT_FSIZE) with
//! SIGXFSZ ignored, so a write that crosses the limit is cut short and the next fails with
//! EFBIG, as writes to a full file system are cut short and then fail with ENOSPC. No test hook
//! in the binary, and no mount (which CI machines may not allow).
#![cfg(unix)]

use std::collections::HashMap;
use std::process::Command;

use cxone_uuid_mock::MockConfig;

use crate::support::*;

/// `cmd` run by `sh` with files limited to `blocks` blocks and SIGXFSZ ignored.
fn with_file_size_limit(cmd: &Command, blocks: u64) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(format!(
            "ulimit -f {blocks} && trap '' XFSZ && exec \"$0\" \"$@\""
        ))
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        sh.current_dir(d);
    }
    sh
}

#[cfg(feature = "audit-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_under_the_sqlite_sink_rolls_back_and_resume_finishes_it() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("trail.db");
    let spec = format!("sqlite:{}", db.display());
    let n = 3000;
    let cmd = run_cmd_audit(&server, dir.path(), n, &spec);
    // The WAL outgrows 2 MiB long before 3,000 UUIDs' events are in.
    let out = output(with_file_size_limit(&cmd, 4096)).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // Stopped by the audit trail; whatever it had staged (if the failure left any) is pending,
    // and said to be resumable.
    let s = summary(&out);
    assert!(s["stop_reason"].as_str().unwrap().contains("audit"), "{s}");
    if s["pending"].as_u64().unwrap() > 0 {
        assert!(stderr(&out).contains("--resume"), "{}", stderr(&out));
    }
    assert_verifies(&spec).await;
    let sent_before: Vec<String> = server
        .recorded()
        .execute_requests
        .iter()
        .map(|r| r.uuid.clone().unwrap())
        .collect();
    assert!(
        sent_before.len() < n as usize,
        "the disk filled before the end"
    );

    let mut resume = run_cmd_audit(&server, dir.path(), 1, &spec);
    resume.arg("--resume");
    let out = output(resume).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut times: HashMap<String, usize> = HashMap::new();
    for r in &server.recorded().execute_requests {
        *times.entry(r.uuid.clone().unwrap()).or_default() += 1;
    }
    let resent = server.recorded().execute_requests.len() - sent_before.len();
    // Only UUIDs the rolled-back transaction left without an outcome can reach it twice.
    assert!(times.values().filter(|&&k| k > 1).count() <= resent);
    assert_verifies(&spec).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_leaves_a_trail_that_verifies_and_resume_finishes_it() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let trail = audit_path(dir.path());
    let spec = format!("jsonl:{}", trail.display());
    let n = 400;
    let cmd = run_cmd(&server, dir.path(), n);
    // 128 blocks: a few hundred events fit, the whole run does not.
    let out = output(with_file_size_limit(&cmd, 128)).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the trail ends at its last complete line"),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read(&trail).unwrap();
    assert!(!text.is_empty() && text.ends_with(b"\n"), "no partial line");
    assert_verifies(&spec).await;

    // What the trail left pending is what --resume sends; nothing else is sent again.
    let evs = events(&trail);
    let outcome = |e: &&serde_json::Value| {
        matches!(
            e["event"].as_str(),
            Some("action_executed" | "action_failed")
        )
    };
    let done: Vec<String> = evs
        .iter()
        .filter(outcome)
        .map(|e| e["uuid"].as_str().unwrap().to_string())
        .collect();
    let submitted: Vec<String> = of_kind(&evs, "action_submitted")
        .iter()
        .map(|e| e["uuid"].as_str().unwrap().to_string())
        .collect();
    let pending: Vec<&String> = submitted.iter().filter(|u| !done.contains(u)).collect();
    assert!(done.len() < n as usize, "the disk filled before the end");
    let before = server.recorded().execute_requests.len();

    let mut resume = run_cmd(&server, dir.path(), 1);
    resume.arg("--resume");
    let out = output(resume).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let resent: Vec<String> = server.recorded().execute_requests[before..]
        .iter()
        .map(|r| r.uuid.clone().unwrap())
        .collect();
    assert_eq!(resent.len(), pending.len());
    for u in &resent {
        assert!(pending.contains(&u), "{u} was not pending");
    }
    // No UUID reached the server twice except those resumed.
    let mut times: HashMap<String, usize> = HashMap::new();
    for r in &server.recorded().execute_requests {
        *times.entry(r.uuid.clone().unwrap()).or_default() += 1;
    }
    for (u, k) in times {
        assert!(k == 1 || resent.contains(&u), "{u} sent {k} times");
    }
    assert_verifies(&spec).await;
}
