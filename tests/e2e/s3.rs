//! `--audit s3://…` end to end: `run` archives to a real S3-compatible server (moto_server),
//! survives an outage, and `audit flush` / `audit verify` prove the archive whole.
//!
//! `cargo xtask test` exports CXONE_UUID_TEST_S3_ENDPOINT; without it each test starts its own
//! moto_server (target/xtask-venv or PATH) and fails with instructions when there is none.
#![cfg(feature = "s3")]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cxone_uuid_mock::{MockConfig, OutageProxy};

use crate::support::*;

pub(crate) struct Moto {
    pub(crate) endpoint: String,
    child: Option<Child>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends one raw HTTP/1.1 request and returns the status line (moto does not check signatures,
/// so test setup needs no SDK).
pub(crate) fn http(port: u16, request_line: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "{request_line} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().map(str::to_string)
}

pub(crate) fn port_of(endpoint: &str) -> u16 {
    endpoint
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

pub(crate) fn moto() -> Moto {
    if let Ok(endpoint) = std::env::var("CXONE_UUID_TEST_S3_ENDPOINT") {
        return Moto {
            endpoint,
            child: None,
        };
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let venv = target.join("xtask-venv/bin/moto_server");
    let bin = if venv.is_file() {
        venv
    } else {
        std::env::var_os("PATH")
            .and_then(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("moto_server"))
                    .find(|p| p.is_file())
            })
            .unwrap_or_else(|| {
                panic!(
                    "no S3 test server: run `cargo xtask test` (it installs moto[server] into \
                     target/xtask-venv and starts it), or set CXONE_UUID_TEST_S3_ENDPOINT"
                )
            })
    };
    let port = free_port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let moto = Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    };
    let start = Instant::now();
    while http(port, "GET /").is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "moto_server did not answer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

pub(crate) fn create_bucket(endpoint: &str, tag: &str) -> String {
    let bucket = format!(
        "cx-e2e-{tag}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..10]
    );
    let status = http(port_of(endpoint), &format!("PUT /{bucket}")).unwrap();
    assert!(status.contains(" 200"), "create bucket: {status}");
    bucket
}

/// S3 flags and credentials for a command talking to `endpoint`.
pub(crate) fn s3_flags(cmd: &mut Command, endpoint: &str, spool: &Path) {
    cmd.args([
        "--s3-endpoint",
        endpoint,
        "--s3-path-style",
        "--s3-region",
        "us-east-1",
    ])
    .arg("--s3-spool")
    .arg(spool)
    .env("AWS_ACCESS_KEY_ID", "testing")
    .env("AWS_SECRET_ACCESS_KEY", "testing")
    .env("AWS_EC2_METADATA_DISABLED", "true");
}

pub(crate) fn audit_cmd(sub: &str, uri: &str, endpoint: &str, spool: &Path) -> Command {
    let mut cmd = bin();
    cmd.args(["audit", sub, uri]);
    s3_flags(&mut cmd, endpoint, spool);
    cmd
}

pub(crate) fn ok_events(out: &std::process::Output) -> u64 {
    let text = stdout(out);
    let line = text
        .lines()
        .find(|l| l.starts_with("ok: "))
        .unwrap_or_else(|| panic!("no ok line: {text}\nstderr: {}", stderr(out)));
    line["ok: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_archives_a_trail_that_audit_verify_proves_whole() {
    let moto = moto();
    let bucket = create_bucket(&moto.endpoint, "run");
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let uri = format!("s3://{bucket}/trail");
    let mut cmd = run_cmd(&server, dir.path(), 25);
    cmd.args(["--audit", &uri, "--s3-batch-events", "10"]);
    s3_flags(&mut cmd, &moto.endpoint, &spool);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let local = events(&audit_path(dir.path())).len() as u64;
    assert!(local > 25, "run_started, per-UUID events, run_finished");

    let out = output(audit_cmd("verify", &uri, &moto.endpoint, &spool)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {} stderr: {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        ok_events(&out),
        local,
        "the archive holds every event the local trail does"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_on_one_s3_spool_exits_2_before_sending() {
    let moto = moto();
    let bucket = create_bucket(&moto.endpoint, "lock");
    let slow = mock(MockConfig {
        latency_ms: 200,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let uri = format!("s3://{bucket}/trail");
    let mut first = run_cmd(&slow, dir.path(), 10);
    first.args(["--audit", &uri, "--concurrency", "1"]);
    s3_flags(&mut first, &moto.endpoint, &spool);
    let mut first = crate::locks::start_and_wait(first, &slow).await;

    // Its own local trail, the same S3 destination and spool.
    let other = mock(MockConfig::default()).await;
    let mut second = run_cmd(&other, other_dir.path(), 2);
    second.args(["--audit", &uri]);
    s3_flags(&mut second, &moto.endpoint, &spool);
    let out = output(second).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "{uri} is being written by another cxone-uuid process (pid {})",
            first.id()
        )),
        "{}",
        stderr(&out)
    );
    assert!(other.recorded().execute_requests.is_empty());
    // `audit flush` leaves the spool to the run that writes it.
    let out = output(audit_cmd("flush", &uri, &moto.endpoint, &spool)).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("let that run upload its spool"),
        "{}",
        stderr(&out)
    );

    assert_eq!(first.wait().unwrap().code(), Some(0));
    let out = output(audit_cmd("verify", &uri, &moto.endpoint, &spool)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_mid_run_loses_nothing_and_flush_then_verify_show_every_event_once() {
    let moto = moto();
    let bucket = create_bucket(&moto.endpoint, "outage");
    let proxy = OutageProxy::new(&moto.endpoint).await.unwrap();
    let server = mock(MockConfig {
        latency_ms: 25,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let uri = format!("s3://{bucket}/p");
    let mut cmd = run_cmd(&server, dir.path(), 120);
    cmd.args([
        "--audit",
        &uri,
        "--s3-batch-events",
        "10",
        "--concurrency",
        "2",
    ]);
    s3_flags(&mut cmd, &proxy.endpoint(), &spool);
    let child = tokio::task::spawn_blocking(move || cmd.output().unwrap());
    tokio::time::sleep(Duration::from_millis(700)).await;
    proxy.stop().await;
    let out = child.await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "the run goes on: {}",
        stderr(&out)
    );
    let warnings = stderr(&out).matches("events are safe in the spool").count();
    assert_eq!(warnings, 1, "warns once: {}", stderr(&out));
    let local = events(&audit_path(dir.path())).len() as u64;

    proxy.start().await.unwrap();
    let out = output(audit_cmd("flush", &uri, &proxy.endpoint(), &spool)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "flush: {} {}",
        stdout(&out),
        stderr(&out)
    );
    let out = output(audit_cmd("verify", &uri, &proxy.endpoint(), &spool)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify: {} {}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(ok_events(&out), local, "every event exactly once");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_stops_the_run_before_anything_is_sent() {
    let moto = moto();
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 5);
    cmd.args(["--audit", "s3://cx-e2e-no-such-bucket/p"]);
    s3_flags(&mut cmd, &moto.endpoint, &dir.path().join("spool"));
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(
        stderr(&out).contains("\"cx-e2e-no-such-bucket\" does not exist"),
        "{}",
        stderr(&out)
    );
    assert!(server.recorded().execute_requests.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_a_public_key_proves_a_signed_archive_and_says_when_a_key_signed_nothing() {
    let moto = moto();
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("audit.key");
    let mut keygen = bin();
    keygen.args(["audit", "keygen", "--out"]).arg(&key);
    assert_eq!(output(keygen).await.status.code(), Some(0));
    let public = dir.path().join("audit.key.pub");
    let spool = dir.path().join("spool");

    // Signed: checkpoints every 10 events, archived in objects of 10.
    let bucket = create_bucket(&moto.endpoint, "signed");
    let uri = format!("s3://{bucket}/trail");
    let mut cmd = run_cmd(&server, dir.path(), 12);
    cmd.args(["--audit", &uri, "--s3-batch-events", "10"])
        .args(["--checkpoint-every", "10", "--audit-signing-key"])
        .arg(&key);
    s3_flags(&mut cmd, &moto.endpoint, &spool);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let mut verify = audit_cmd("verify", &uri, &moto.endpoint, &spool);
    verify.arg("--public-key").arg(&public);
    let out = output(verify).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("checkpoints valid; events 1–"),
        "{}",
        stdout(&out)
    );

    // Unsigned: intact, but nothing in it is proven by the key.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let bucket = create_bucket(&moto.endpoint, "unsigned");
    let uri = format!("s3://{bucket}/trail");
    let mut cmd = run_cmd(&server, &other, 5);
    cmd.args(["--audit", &uri]);
    s3_flags(&mut cmd, &moto.endpoint, &spool);
    assert_eq!(output(cmd).await.status.code(), Some(0));
    let mut verify = audit_cmd("verify", &uri, &moto.endpoint, &spool);
    verify.arg("--public-key").arg(&public);
    let out = output(verify).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("not proven: no checkpoint"),
        "{}",
        stdout(&out)
    );
}
