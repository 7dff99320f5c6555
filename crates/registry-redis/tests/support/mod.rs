//! A real `redis-server` for tests: the one named by `CXONE_UUID_TEST_REDIS_URL` (xtask sets it),
//! or one started here on a free loopback port. Never skips: without either, the test fails and
//! says how to get one.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The env variable naming an already running server.
pub(crate) const ENV: &str = "CXONE_UUID_TEST_REDIS_URL";

const HOW: &str = "install redis-server: apt-get install redis-server, or run cargo xtask test";

/// A Redis server for one test; a server started here is killed on drop.
pub(crate) struct TestRedis {
    url: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
    extra: Vec<String>,
}

impl TestRedis {
    /// The shared server when `CXONE_UUID_TEST_REDIS_URL` is set, else a fresh one.
    pub(crate) fn shared() -> Self {
        match std::env::var(ENV) {
            Ok(url) if !url.is_empty() => Self {
                url,
                child: None,
                _dir: None,
                extra: Vec::new(),
            },
            _ => Self::spawn(&[]),
        }
    }

    /// A server of our own (needed by tests that stop it), with extra `redis-server` arguments.
    pub(crate) fn spawn(extra: &[&str]) -> Self {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut last = String::new();
        // Picking a port by binding :0 then releasing it can race with another process: retry.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("cannot bind a loopback port")
                .port();
            match start(port, &extra) {
                Ok((child, dir)) => {
                    return Self {
                        url: format!("redis://127.0.0.1:{port}/0"),
                        child: Some(child),
                        _dir: Some(dir),
                        extra,
                    }
                }
                Err(e) => last = e,
            }
        }
        panic!("{last}: {HOW}");
    }

    /// Starts a stopped server again on the same port (an outage that ends), with empty data.
    pub(crate) fn restart(&mut self) {
        assert!(self.child.is_none(), "stop the server first");
        let (child, dir) = start(self.port(), &self.extra).unwrap_or_else(|e| panic!("{e}"));
        self.child = Some(child);
        self._dir = Some(dir);
    }

    /// `redis://127.0.0.1:PORT/0` (or the env's URL).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The port of a server started here.
    pub(crate) fn port(&self) -> u16 {
        let rest = self.url.rsplit_once(':').expect("url has a port").1;
        rest.split('/').next().unwrap().parse().unwrap()
    }

    /// Stops a server started here, as a crash or an outage would.
    pub(crate) fn stop(&mut self) {
        let child = self
            .child
            .as_mut()
            .expect("only a server started by the test can be stopped");
        let _ = child.kill();
        let _ = child.wait();
        self.child = None;
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `redis-server` on `port` and waits until it accepts connections.
fn start(port: u16, extra: &[String]) -> Result<(Child, tempfile::TempDir), String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!("cannot start redis-server ({e}) and {ENV} is not set: {HOW}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server exited with {status} on port {port}"));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((child, dir));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "redis-server did not listen on port {port} within 10 s"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A prefix no other test (or earlier run on a shared server) uses.
pub(crate) fn unique_prefix(name: &str) -> String {
    format!("cxone-uuid-test:{name}:{}:", uuid::Uuid::new_v4().simple())
}
