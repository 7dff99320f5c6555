//! Cargo features pick the backends: a build without one says which feature to rebuild with
//! (exit 2, nothing written), and a build with it uses it.

use cxone_uuid_mock::MockConfig;

use crate::support::*;

/// `run` with one `--audit` sink (besides the JSONL one `run_cmd` adds).
async fn run_with_sink(sink: &str) -> (std::process::Output, tempfile::TempDir, u64) {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 3);
    cmd.arg("--audit").arg(sink);
    let out = output(cmd).await;
    let sent = server.recorded().execute_requests.len() as u64;
    (out, dir, sent)
}

#[cfg(not(feature = "audit-sqlite"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_without_sqlite_names_the_feature_and_sends_nothing() {
    let (out, dir, sent) = run_with_sink("sqlite:trail.db").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out)
            .contains("this build has no sqlite sink; rebuild with --features audit-sqlite"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sent, 0);
    assert!(!dir.path().join("trail.db").exists());
}

#[cfg(feature = "audit-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_with_sqlite_writes_a_queryable_trail() {
    let (out, dir, sent) = run_with_sink("sqlite:trail.db").await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(sent, 3);
    let mut q = bin();
    q.current_dir(dir.path()).args([
        "audit",
        "query",
        "--db",
        "trail.db",
        "--status",
        "succeeded",
        "--output",
        "json",
    ]);
    let out = output(q).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).lines().count() >= 3, "{}", stdout(&out));
}

#[cfg(not(feature = "s3"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_without_s3_names_the_feature() {
    let (out, _dir, sent) = run_with_sink("s3://bucket/prefix").await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("rebuild with --features s3"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sent, 0);
}

#[cfg(not(feature = "redis"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_without_redis_names_the_feature() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 1);
    cmd.args(["--registry", "redis://127.0.0.1:1/0"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--features redis"),
        "{}",
        stderr(&out)
    );
    assert!(server.recorded().execute_requests.is_empty());
}
