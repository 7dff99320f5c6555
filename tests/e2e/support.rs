//! Shared helpers: run the binary, start the mock in-process, read audit trails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cxone_uuid_mock::{MockConfig, MockServer};
use serde_json::Value;

/// The binary under test.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cxone-uuid"));
    // A clean environment: the developer's own CXONE_* settings must not leak into tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("CXONE_") || k.starts_with("GENESYS_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Runs a command to completion off the async runtime (the mock lives on it).
pub async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run cxone-uuid"))
        .await
        .expect("join")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A mock server on an ephemeral loopback port.
pub async fn mock(config: MockConfig) -> MockServer {
    MockServer::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("start mock")
}

/// A `run` command pointed at `server`, with the mock's credentials and an audit file in `dir`.
pub fn run_cmd(server: &MockServer, dir: &Path, n: u64) -> Command {
    run_cmd_audit(
        server,
        dir,
        n,
        &format!("jsonl:{}", audit_path(dir).display()),
    )
}

/// `run_cmd` writing to the audit sink `spec` instead of the JSONL trail in `dir`.
pub fn run_cmd_audit(server: &MockServer, dir: &Path, n: u64, spec: &str) -> Command {
    let defaults = MockConfig::default();
    let mut cmd = bin();
    cmd.current_dir(dir)
        .env("CXONE_CLIENT_ID", &defaults.client_id)
        .env("CXONE_CLIENT_SECRET", &defaults.client_secret)
        .env("CXONE_DATA_ACTION_ID", "action-42")
        .env("CXONE_BASE_URL", server.base_url())
        .env("CXONE_TOKEN_URL", server.token_url())
        .args(["run", "-n", &n.to_string(), "--output", "json"])
        .args(["--backoff-base", "0.01", "--backoff-cap", "0.05"])
        .args(["--audit", spec]);
    cmd
}

pub fn audit_path(dir: &Path) -> PathBuf {
    dir.join("audit.jsonl")
}

/// Every event of a JSONL trail.
pub fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit line is JSON"))
        .collect()
}

/// The events of one kind.
pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

/// The single JSON summary `run --output json` prints.
pub fn summary(out: &Output) -> Value {
    let text = stdout(out);
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no summary; stderr: {}", stderr(out)));
    assert!(
        lines.next().is_none(),
        "stdout must hold exactly one JSON object: {text}"
    );
    serde_json::from_str(first).expect("summary is JSON")
}

/// `audit verify SPEC` exits 0 and reports an intact chain.
pub async fn assert_verifies(spec: &str) {
    let mut verify = bin();
    verify.args(["audit", "verify", spec]);
    let out = output(verify).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "verify: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));
}

/// [`assert_verifies`] for the JSONL trail `run_cmd` writes in `dir`.
pub async fn assert_trail_verifies(dir: &Path) {
    assert_verifies(&format!("jsonl:{}", audit_path(dir).display())).await;
}
