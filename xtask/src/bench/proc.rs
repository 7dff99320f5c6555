//! Child processes for the bench: timed runs with peak RSS, the mock server guard, and one
//! tiny HTTP/1.1 POST for the token the load generator needs.
//!
//! Peak RSS comes from GNU time (`/usr/bin/time -f %M`, the kernel's own rusage figure) when
//! present; otherwise from polling `/proc/PID/status` `VmHWM`, which can miss growth in the
//! last few milliseconds before exit and says so in the figure's note.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// What to do with a child's stdout.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stdout {
    /// `/dev/null`, as a user's `> /dev/null`.
    Null,
    /// Kept in memory (summaries are small).
    Capture,
}

/// A program to run with its arguments and extra environment.
pub(crate) struct Job {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: Option<PathBuf>,
    /// An exit code that still counts as done (see [`Job::exit_ok`]).
    pub(crate) also_ok: Option<i32>,
}

impl Job {
    /// Also takes exit `code` as done: `run` and `demo` exit 1 when a UUID failed after its
    /// retries, and a job that injects failures can meet that by chance while its output
    /// (a whole trail) is what the row measures.
    pub(crate) fn exit_ok(mut self, code: i32) -> Self {
        self.also_ok = Some(code);
        self
    }

    pub(crate) fn new(program: impl Into<PathBuf>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            also_ok: None,
        }
    }

    pub(crate) fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub(crate) fn args<I, S>(mut self, items: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(items.into_iter().map(Into::into));
        self
    }

    pub(crate) fn envs(mut self, env: &[(String, String)]) -> Self {
        self.env.extend(env.iter().cloned());
        self
    }

    pub(crate) fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    /// The command line as a person would type it (for logs and the report).
    pub(crate) fn shown(&self) -> String {
        let prog = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        std::iter::once(prog)
            .chain(self.args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What a timed run produced.
pub(crate) struct Outcome {
    pub(crate) wall: Duration,
    pub(crate) peak_rss_kib: Option<u64>,
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr_log: PathBuf,
}

impl Outcome {
    pub(crate) fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

fn gnu_time() -> Option<&'static Path> {
    let p = Path::new("/usr/bin/time");
    let out = Command::new(p)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    text.contains("GNU").then_some(p)
}

/// Runs `job` to completion (killing it after `timeout`), timing it and measuring its peak RSS.
/// Fails unless it exits 0; the error carries the tail of its stderr. `label` names the stderr
/// log under `logs`.
pub(crate) fn measure(
    label: &str,
    job: &Job,
    stdout: Stdout,
    timeout: Duration,
    logs: &Path,
) -> Result<Outcome> {
    std::fs::create_dir_all(logs)?;
    let stderr_log = logs.join(format!("{label}.stderr"));
    let rss_file = logs.join(format!("{label}.rss"));
    let _ = std::fs::remove_file(&rss_file);
    let time = gnu_time();
    let mut cmd = match time {
        Some(t) => {
            let mut c = Command::new(t);
            c.arg("-f")
                .arg("%M")
                .arg("-o")
                .arg(&rss_file)
                .arg(&job.program);
            c
        }
        None => Command::new(&job.program),
    };
    cmd.args(&job.args);
    for (k, v) in &job.env {
        cmd.env(k, v);
    }
    if let Some(dir) = &job.cwd {
        cmd.current_dir(dir);
    }
    let err_file = std::fs::File::create(&stderr_log)
        .with_context(|| format!("create {}", stderr_log.display()))?;
    cmd.stdin(Stdio::null())
        .stderr(err_file)
        .stdout(match stdout {
            Stdout::Null => Stdio::null(),
            Stdout::Capture => Stdio::piped(),
        })
        // Its own process group, so a timeout kills the program and not just GNU time.
        .process_group(0);
    eprintln!("bench: $ {}", job.shown());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", job.program.display()))?;
    let reader = child.stdout.take().map(|mut out| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        })
    });
    let mut polled_hwm = 0u64;
    let status: ExitStatus = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if time.is_none() {
            polled_hwm = polled_hwm.max(vm_hwm_kib(child.id()).unwrap_or(0));
        }
        if started.elapsed() > timeout {
            kill_group(&mut child);
            bail!(
                "`{}` did not finish within {:?} and was killed",
                job.shown(),
                timeout
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = started.elapsed();
    let stdout = reader
        .map(|h| h.join().unwrap_or_default())
        .unwrap_or_default();
    let done = status.success() || (job.also_ok.is_some() && status.code() == job.also_ok);
    if !done {
        bail!(
            "`{}` failed ({status}): {}",
            job.shown(),
            tail(&stderr_log, 6)
        );
    }
    let peak_rss_kib = match time {
        Some(_) => std::fs::read_to_string(&rss_file)
            .ok()
            .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok())),
        None => (polled_hwm > 0).then_some(polled_hwm),
    };
    Ok(Outcome {
        wall,
        peak_rss_kib,
        stdout,
        stderr_log,
    })
}

fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Kills the child's whole process group (it was started as the group's leader).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.kill();
    let _ = child.wait();
}

/// The last `n` non-empty lines of a log file, joined with " | ".
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let shown = lines[lines.len().saturating_sub(n)..].join(" | ");
    if shown.is_empty() {
        "(no stderr)".into()
    } else {
        shown
    }
}

/// `program`, run on the CPUs `cpus` (`taskset -c CPUS program`) when given.
pub(crate) fn pinned(program: &Path, cpus: Option<&str>) -> Job {
    match cpus {
        Some(c) => Job::new("taskset").args(["-c", c]).arg(program),
        None => Job::new(program),
    }
}

/// A running `cxone-uuid mock`, killed on drop so a failed row never leaves it behind.
pub(crate) struct Mock {
    child: Child,
    /// `http://127.0.0.1:PORT`, from the mock's first stdout line.
    pub(crate) base_url: String,
}

impl Mock {
    /// Starts `bin mock EXTRA...` and waits (at most 30 s) for `listening on URL`.
    pub(crate) fn start(bin: &Path, extra: &[&str], logs: &Path, label: &str) -> Result<Self> {
        Self::start_on(None, bin, extra, logs, label)
    }

    /// As [`Mock::start`], on the CPUs `cpus` when given.
    pub(crate) fn start_on(
        cpus: Option<&str>,
        bin: &Path,
        extra: &[&str],
        logs: &Path,
        label: &str,
    ) -> Result<Self> {
        std::fs::create_dir_all(logs)?;
        let log = logs.join(format!("{label}.stderr"));
        let err = std::fs::File::create(&log)?;
        let job = pinned(bin, cpus);
        let mut child = Command::new(&job.program)
            .args(&job.args)
            .arg("mock")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {} mock", bin.display()))?;
        let Some(out) = child.stdout.take() else {
            let _ = child.kill();
            bail!("mock: no stdout pipe");
        };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out);
            let mut first = String::new();
            let _ = lines.read_line(&mut first);
            let _ = tx.send(first);
            // Keep draining so a chatty mock never blocks on a full pipe.
            let _ = std::io::copy(&mut lines, &mut std::io::sink());
        });
        let first = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("mock printed no `listening on` line within 30 s");
            }
        };
        let Some(url) = first.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "mock's first line was {:?}, expected `listening on http://HOST:PORT`; stderr: {}",
                first.trim(),
                tail(&log, 4)
            );
        };
        let base_url = url.trim_end_matches('/').to_string();
        eprintln!("bench: mock {} on {base_url}", extra.join(" "));
        Ok(Self { child, base_url })
    }

    /// `HOST:PORT` of the mock.
    pub(crate) fn authority(&self) -> &str {
        self.base_url
            .strip_prefix("http://")
            .unwrap_or(&self.base_url)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `GET` over a fresh connection; returns the status code and the body.
pub(crate) fn http_get(authority: &str, path: &str) -> Result<(u16, String)> {
    let mut stream =
        TcpStream::connect(authority).with_context(|| format!("connect to {authority}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n"
    )?;
    read_answer(stream)
}

/// One `POST` over a fresh connection; returns the status code and the body.
pub(crate) fn http_post(
    authority: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> Result<(u16, String)> {
    let mut stream =
        TcpStream::connect(authority).with_context(|| format!("connect to {authority}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    read_answer(stream)
}

fn read_answer(mut stream: TcpStream) -> Result<(u16, String)> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .context("HTTP response without a header end")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("HTTP response without a status code")?;
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn measures_a_child_and_reports_its_failure() {
        let logs = std::env::temp_dir().join(format!("xtask-bench-{}", std::process::id()));
        let ok = measure(
            "echo",
            &Job::new("/bin/sh").args(["-c", "echo hi; echo warn >&2"]),
            Stdout::Capture,
            Duration::from_secs(10),
            &logs,
        )
        .unwrap();
        assert_eq!(ok.stdout_text(), "hi\n");
        assert!(ok.peak_rss_kib.unwrap_or(1) > 0);
        let err = measure(
            "fail",
            &Job::new("/bin/sh").args(["-c", "echo broken >&2; exit 3"]),
            Stdout::Null,
            Duration::from_secs(10),
            &logs,
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("broken"), "{err:#}");
        // An exit code the job takes as done is done; any other still fails.
        let job = |code: i32| Job::new("/bin/sh").args(["-c", &format!("exit {code}")]);
        let run = |job: &Job| measure("code", job, Stdout::Null, Duration::from_secs(10), &logs);
        assert!(run(&job(1).exit_ok(1)).is_ok());
        assert!(run(&job(3).exit_ok(1)).is_err());
        assert!(run(&job(1)).is_err());
        let slow = measure(
            "slow",
            &Job::new("/bin/sh").args(["-c", "sleep 30"]),
            Stdout::Null,
            Duration::from_millis(200),
            &logs,
        );
        assert!(format!("{:#}", slow.err().unwrap()).contains("killed"));
        std::fs::remove_dir_all(&logs).unwrap();
    }

    #[test]
    fn dechunks_a_chunked_body() {
        assert_eq!(dechunk("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"), "Wikipedia");
    }
}
