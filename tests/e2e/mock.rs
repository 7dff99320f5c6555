//! `cxone-uuid mock` as a child process: the first stdout line, the endpoints it serves, the
//! flags that inject faults, refusing a non-loopback bind, and stopping on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::support::{bin, stderr};

const UUID: &str = "0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b";

/// A running `cxone-uuid mock`, killed on drop even when the test fails.
struct MockProcess {
    child: Child,
    /// `HOST:PORT` from the first stdout line.
    host: String,
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[&str]) -> MockProcess {
    let mut child = bin()
        .arg("mock")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cxone-uuid mock");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            panic!("cxone-uuid mock printed no first line within 60 s");
        }
    };
    let host = line
        .trim_end()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("first line is not `listening on http://HOST:PORT`: {line:?}"))
        .to_string();
    MockProcess { child, host }
}

/// One HTTP/1.1 request over a fresh connection: (status, body).
fn http(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(host).expect("connect to the mock");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).expect("send");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, body.to_string())
}

fn token(host: &str) -> String {
    let (status, body) = http(
        host,
        "POST",
        "/oauth2/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        "grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret",
    );
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("token JSON");
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_string()
}

fn execute(host: &str, token: &str) -> (u16, String) {
    let auth = format!("Bearer {token}");
    http(
        host,
        "POST",
        "/api/v2/data-actions/action-42/execute",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", UUID),
        ],
        &format!(r#"{{"inputs":{{"uuid":"{UUID}"}}}}"#),
    )
}

#[test]
fn mock_prints_its_address_first_and_serves_token_and_execute() {
    let mock = spawn(&[]);
    assert!(mock.host.starts_with("127.0.0.1:"), "{}", mock.host);
    let token = token(&mock.host);
    let (status, body) = execute(&mock.host, &token);
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("execute JSON");
    assert_eq!(body[0]["name"], "output_uuid");
    assert_eq!(body[0]["value"], UUID);

    let (status, recorded) = http(&mock.host, "GET", "/__mock/recorded", &[], "");
    assert_eq!(status, 200);
    let recorded: Value = serde_json::from_str(&recorded).expect("recorded JSON");
    assert_eq!(recorded["token_requests"], 1);
    assert_eq!(recorded["execute_requests"][0]["idempotency_key"], UUID);
    assert_eq!(recorded["execute_requests"][0]["status"], 200);
}

#[test]
fn mock_flags_inject_faults() {
    let mock = spawn(&["--script", "503,429:ra=7", "--token-ttl", "60"]);
    let token = token(&mock.host);
    assert_eq!(execute(&mock.host, &token).0, 503);
    let (status, body) = execute(&mock.host, &token);
    assert_eq!(status, 429, "{body}");
    assert_eq!(execute(&mock.host, &token).0, 200);
    // A token the mock never issued is refused.
    assert_eq!(execute(&mock.host, "forged").0, 401);

    let html = spawn(&["--malformed", "html"]);
    let token = self::token(&html.host);
    let (status, body) = execute(&html.host, &token);
    assert_eq!(status, 200);
    assert!(body.contains("<html>"));
}

#[test]
fn mock_speaks_the_cxone_dialect() {
    let mock = spawn(&["--provider", "cxone"]);
    let (status, body) = http(
        &mock.host,
        "GET",
        "/.well-known/openid-configuration",
        &[],
        "",
    );
    assert_eq!(status, 200);
    let oidc: Value = serde_json::from_str(&body).expect("discovery JSON");
    assert_eq!(
        oidc["token_endpoint"],
        format!("http://{}/auth/token", mock.host)
    );
}

#[test]
fn mock_refuses_a_non_loopback_bind_and_bad_flags() {
    for args in [
        &["--bind", "0.0.0.0:0"][..],
        &["--script", "500,teapot"][..],
        &["--fail-rate", "2"][..],
        &["--provider", "acme"][..],
    ] {
        let out = bin()
            .arg("mock")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run cxone-uuid mock");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
    let out = bin()
        .args(["mock", "--bind", "0.0.0.0:0"])
        .output()
        .expect("run");
    assert!(stderr(&out).contains("--allow-remote"), "{}", stderr(&out));
}

#[cfg(unix)]
#[test]
fn mock_stops_cleanly_on_sigterm() {
    let mut mock = spawn(&[]);
    let pid = mock.child.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("run kill");
    assert!(sent.success());
    let mut waited = Duration::ZERO;
    let status = loop {
        if let Some(status) = mock.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            waited < Duration::from_secs(30),
            "mock did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
        waited += Duration::from_millis(50);
    };
    assert!(status.success(), "{status:?}");
}

/// The start-up lines on stderr until the one that ends with `needle`.
fn startup_lines(args: &[&str], needle: &str) -> String {
    let mut child = bin()
        .arg("mock")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cxone-uuid mock");
    let err = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    let needle = needle.to_string();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            if line.contains(&needle) {
                break;
            }
        }
        let _ = tx.send(text);
    });
    let text = rx.recv_timeout(Duration::from_secs(60));
    let _ = child.kill();
    let _ = child.wait();
    text.expect("start-up lines within 60 s")
}

#[test]
fn prints_every_credential_it_accepts() {
    let text = startup_lines(&["--provider", "cxone"], "recorded requests");
    for part in [
        "client id \"demo-client\"",
        "client secret \"demo-secret\"",
        "access key id \"demo-key\"",
        "access key secret \"demo-key-secret\"",
        "/authentication/v1/token/access-key",
        "executes only on /incontactapi/services/v31.0/scripts/start",
    ] {
        assert!(text.contains(part), "{part} missing from:\n{text}");
    }
    // A secret that is not the demo default is never printed.
    let text = startup_lines(
        &[
            "--provider",
            "genesys",
            "--client-secret",
            "real-secret-123",
        ],
        "recorded requests",
    );
    assert!(!text.contains("real-secret-123"), "{text}");
    assert!(text.contains("(given with --client-secret)"), "{text}");
}
