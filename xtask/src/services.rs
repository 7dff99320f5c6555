//! The real services the test suite talks to: moto_server (S3) and redis-server, and the
//! headless browser (Debian's `chromium`) the HTML report is opened in.
//!
//! Each runs as a child process on an ephemeral 127.0.0.1 port, and a [`Service`] guard kills
//! it on `Drop`, so a failing or panicking test run never leaves a server behind.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long a service may take to answer after it starts (moto imports a lot of Python).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// One running child process, killed when dropped.
pub(crate) struct Service {
    name: &'static str,
    port: u16,
    child: Child,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("xtask: stopped {} (port {})", self.name, self.port);
    }
}

/// Every service the suite needs, and the environment that points tests at them.
pub(crate) struct Services {
    s3: Service,
    redis: Service,
    chromium: PathBuf,
}

impl Services {
    /// Installs what is missing, starts both services and waits until they answer.
    pub(crate) fn start() -> Result<Self> {
        if find_on_path("redis-server").is_none() {
            install_debian("redis-server");
        }
        if find_chromium().is_none() {
            install_debian("chromium");
        }
        let chromium = find_chromium().context(
            "no headless browser: install the Debian package `chromium` \
             (apt-get install -y chromium; .ci/run does this) and try again",
        )?;
        let redis_bin = find_on_path("redis-server").context(
            "redis-server is not on PATH: install the Debian package `redis-server` \
             (apt-get install -y redis-server; .ci/run does this) and try again",
        )?;
        let moto_bin = ensure_moto()?;
        let logs = crate::target_dir().join("xtask-logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("create {}", logs.display()))?;

        let port = free_port()?;
        let mut cmd = Command::new(&moto_bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let s3 = spawn("moto_server", port, cmd, &logs)?;
        // Start redis while moto is still importing: the waits overlap.
        let port = free_port()?;
        let redis_dir = crate::target_dir().join("xtask-redis");
        std::fs::create_dir_all(&redis_dir)?;
        let mut cmd = Command::new(redis_bin);
        cmd.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&redis_dir);
        let redis = spawn("redis-server", port, cmd, &logs)?;

        let mut services = Self {
            s3,
            redis,
            chromium,
        };
        wait_ready(&mut services.s3, &logs, http_ok)?;
        wait_ready(&mut services.redis, &logs, redis_pong)?;
        Ok(services)
    }

    /// The variables tests read to find the services.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "CXONE_UUID_TEST_S3_ENDPOINT",
                format!("http://127.0.0.1:{}", self.s3.port),
            ),
            (
                "CXONE_UUID_TEST_REDIS_URL",
                format!("redis://127.0.0.1:{}/", self.redis.port),
            ),
            (
                "CXONE_UUID_TEST_CHROMIUM",
                self.chromium.display().to_string(),
            ),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            // No instance-metadata probes from the credential chain on a developer machine.
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

/// Path to `moto_server` in the project-local virtualenv, creating it when absent.
pub(crate) fn ensure_moto() -> Result<PathBuf> {
    let venv = crate::target_dir().join("xtask-venv");
    let moto = venv.join("bin").join("moto_server");
    if moto.is_file() {
        return Ok(moto);
    }
    let python = find_on_path("python3").context(
        "python3 is not on PATH: it is needed to install the S3 test server moto[server] \
         (Debian: apt-get install -y python3 python3-venv)",
    )?;
    eprintln!("xtask: installing moto[server] into {}", venv.display());
    crate::run_cmd(Command::new(python).arg("-m").arg("venv").arg(&venv))
        .context("create the virtualenv (Debian: apt-get install -y python3-venv)")?;
    crate::run_cmd(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "moto[server]",
    ]))
    .context("pip install moto[server] (needs access to PyPI)")?;
    if !moto.is_file() {
        bail!(
            "pip installed moto[server] but {} is missing",
            moto.display()
        );
    }
    Ok(moto)
}

fn spawn(name: &'static str, port: u16, mut cmd: Command, logs: &Path) -> Result<Service> {
    let log_path = logs.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("create {}", log_path.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {name}"))?;
    eprintln!(
        "xtask: started {name} on 127.0.0.1:{port} (log {})",
        log_path.display()
    );
    Ok(Service { name, port, child })
}

fn wait_ready(service: &mut Service, logs: &Path, probe: fn(u16) -> bool) -> Result<()> {
    let started = Instant::now();
    loop {
        if probe(service.port) {
            return Ok(());
        }
        let log = logs.join(format!("{}.log", service.name));
        if let Some(status) = service.child.try_wait()? {
            bail!(
                "{} exited early ({status}); its log {}:\n{}",
                service.name,
                log.display(),
                tail(&log)
            );
        }
        if started.elapsed() > READY_TIMEOUT {
            bail!(
                "{} did not answer on 127.0.0.1:{} within {:?}; its log:\n{}",
                service.name,
                service.port,
                READY_TIMEOUT,
                tail(&log)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A port the OS just handed out; released for the service to bind.
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn exchange(port: u16, request: &[u8]) -> Option<Vec<u8>> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(request).ok()?;
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).ok()?;
    Some(buf[..n].to_vec())
}

fn http_ok(port: u16) -> bool {
    exchange(
        port,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .is_some_and(|r| r.starts_with(b"HTTP/1"))
}

fn redis_pong(port: u16) -> bool {
    exchange(port, b"PING\r\n").is_some_and(|r| r.starts_with(b"+PONG"))
}

/// The first `name` on PATH that is a file.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Chromium under the names distributions give it.
fn find_chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| find_on_path(name))
}

/// On a fresh Debian machine where we are root, install a package the suite needs (redis-server,
/// chromium) so the README's one test command is enough; anywhere else, say what to install (at
/// the call site).
fn install_debian(package: &str) {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root || find_on_path("apt-get").is_none() {
        return;
    }
    eprintln!("xtask: {package} missing; installing the Debian package");
    let quiet = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !quiet(&["update", "-qq"]) || !quiet(&["install", "-y", "-qq", package]) {
        eprintln!("xtask: apt-get could not install {package}");
    }
}
