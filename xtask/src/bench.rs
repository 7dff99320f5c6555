//! `cargo xtask bench`: one side-by-side report (issue 8), every row next to its anchor.
//!
//! Everything runs as child processes on loopback: the release binary, its `mock` command, the
//! tutorial's Python shapes (in the xtask virtualenv, which has `requests` through moto), and
//! a load generator (`oha`) when installed. No assertion is made: the report is the measurement.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Options of `cargo xtask bench`.
pub(crate) struct Opts {
    /// Scale every count down 20x (a smoke test of the harness, not a measurement).
    pub(crate) quick: bool,
    /// Benchmark this binary instead of building the release one.
    pub(crate) bin: Option<PathBuf>,
}

struct Row {
    section: &'static str,
    what: String,
    value: String,
    anchor: String,
    ratio: String,
    /// Machine-readable figures for report.json.
    json: Vec<(String, f64)>,
}

const GEN_PY: &str = r#"
import secrets, sys, uuid
n = int(sys.argv[1]); seen = set(); out = sys.stdout
while len(seen) < n:
    b = bytearray(secrets.token_bytes(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    u = uuid.UUID(bytes=bytes(b))
    if u in seen:
        continue
    seen.add(u)
    out.write(str(u) + "\n")
"#;

const POST_PY: &str = r#"
import sys, uuid, requests
base, n = sys.argv[1], int(sys.argv[2])
tok = requests.post(base + "/oauth2/token", data={"grant_type": "client_credentials",
      "client_id": "demo-client", "client_secret": "demo-secret"}).json()["access_token"]
for _ in range(n):
    u = str(uuid.uuid4())
    # The tutorial's shape: no Session, so a new connection per request.
    r = requests.post(base + "/api/v2/data-actions/bench/execute", json={"inputs": {"uuid": u}},
                      headers={"Authorization": "Bearer " + tok, "Idempotency-Key": u})
    r.raise_for_status()
"#;

const TOKEN_PY: &str = r#"
import sys, requests
print(requests.post(sys.argv[1] + "/oauth2/token", data={"grant_type": "client_credentials",
      "client_id": "demo-client", "client_secret": "demo-secret"}).json()["access_token"])
"#;

pub(crate) fn bench(opts: Opts) -> Result<()> {
    let scale = |n: u64| if opts.quick { (n / 20).max(1) } else { n };
    let root = crate::root();
    let out_dir = crate::target_dir().join("bench");
    std::fs::create_dir_all(&out_dir)?;
    let bin = match &opts.bin {
        Some(b) => b.clone(),
        None => {
            crate::run_cmd(crate::cargo().args(["build", "--release", "-p", "cxone-uuid-cli"]))?;
            crate::target_dir().join("release/cxone-uuid")
        }
    };
    // The bare-loop anchor: xtask itself, built optimised.
    crate::run_cmd(crate::cargo().args(["build", "--release", "-p", "xtask"]))?;
    let xtask_rel = crate::target_dir().join("release/xtask");
    let python = crate::services::ensure_moto()?
        .parent()
        .map(|p| p.join("python"))
        .context("virtualenv layout")?;
    let gen_py = write_script(&out_dir, "tutorial_generate.py", GEN_PY)?;
    let post_py = write_script(&out_dir, "tutorial_post.py", POST_PY)?;
    let token_py = write_script(&out_dir, "fetch_token.py", TOKEN_PY)?;
    let mut rows = Vec::new();

    // 1. Generation.
    let n = scale(10_000_000);
    let ours = timed_to_null(Command::new(&bin).args(["generate", "-n", &n.to_string()]))?;
    let bare = timed_to_null(Command::new(&xtask_rel).args(["uuid-loop", &n.to_string()]))?;
    let n_py = scale(1_000_000);
    let py = timed_to_null(Command::new(&python).arg(&gen_py).arg(n_py.to_string()))?;
    let ns = |d: Duration, n: u64| d.as_secs_f64() * 1e9 / n as f64;
    let (ours_ns, bare_ns, py_ns) = (ns(ours, n), ns(bare, n), ns(py, n_py));
    rows.push(Row {
        section: "generation",
        what: format!("generate -n {n} (health tests + exact registry)"),
        value: format!("{ours_ns:.1} ns/UUID"),
        anchor: format!("bare uuid::new_v4 loop {bare_ns:.1} ns/UUID"),
        ratio: format!("{:.2}x of bare (target <= 2x)", ours_ns / bare_ns),
        json: vec![("ours_ns".into(), ours_ns), ("bare_ns".into(), bare_ns)],
    });
    rows.push(Row {
        section: "generation",
        what: format!("generate (same run) vs tutorial Python, {n_py} UUIDs"),
        value: format!("{ours_ns:.1} ns/UUID"),
        anchor: format!("Python secrets+uuid+set {py_ns:.0} ns/UUID"),
        ratio: format!("{:.0}x faster (target >= 50x)", py_ns / ours_ns),
        json: vec![("python_ns".into(), py_ns)],
    });

    // 2. End to end against the mock, no injected latency.
    let n = scale(50_000);
    let mock = Mock::start(&bin, &[])?;
    let mut at64 = 0.0;
    for c in [1u32, 8, 64] {
        let trail = out_dir.join(format!("e2e-c{c}.jsonl"));
        let _ = std::fs::remove_file(&trail);
        let (d, _) = run_job(&bin, &mock, n, &["--concurrency", &c.to_string()], &trail)?;
        let rps = n as f64 / d.as_secs_f64();
        if c == 64 {
            at64 = rps;
        }
        rows.push(Row {
            section: "end-to-end",
            what: format!("run -n {n} --concurrency {c} --audit jsonl"),
            value: format!("{rps:.0} req/s"),
            anchor: String::new(),
            ratio: String::new(),
            json: vec![(format!("run_c{c}_rps"), rps)],
        });
    }
    let ceiling = oha_ceiling(&python, &token_py, &mock, n)?;
    match ceiling {
        Some(top) => rows.push(Row {
            section: "end-to-end",
            what: "run at concurrency 64 vs oha ceiling".into(),
            value: format!("{at64:.0} req/s"),
            anchor: format!("oha -c 64 keep-alive {top:.0} req/s"),
            ratio: format!("{:.0}% (target >= 60%)", 100.0 * at64 / top),
            json: vec![("oha_rps".into(), top)],
        }),
        None => rows.push(Row {
            section: "end-to-end",
            what: "run at concurrency 64 vs load-generator ceiling".into(),
            value: format!("{at64:.0} req/s"),
            anchor: "not measured: oha not on PATH (cargo install oha)".into(),
            ratio: "n/a".into(),
            json: vec![],
        }),
    }
    let n_py = scale(2_000);
    let py = timed(
        Command::new(&python)
            .arg(&post_py)
            .arg(&mock.base)
            .arg(n_py.to_string()),
    )?;
    let py_rps = n_py as f64 / py.as_secs_f64();
    rows.push(Row {
        section: "end-to-end",
        what: "run at concurrency 64 vs tutorial client".into(),
        value: format!("{at64:.0} req/s"),
        anchor: format!("Python requests, sequential, no Session {py_rps:.0} req/s"),
        ratio: format!("{:.0}x (target >= 20x)", at64 / py_rps),
        json: vec![("python_rps".into(), py_rps)],
    });
    drop(mock);

    // 3. Goodput under a rate limit.
    let n = scale(3_000);
    let mock = Mock::start(&bin, &["--rate-limit", "200", "--latency-ms", "20"])?;
    let trail = out_dir.join("rate.jsonl");
    let _ = std::fs::remove_file(&trail);
    let (d, summary) = run_job(
        &bin,
        &mock,
        n,
        &["--rate", "auto", "--concurrency", "64"],
        &trail,
    )?;
    let ok = json_number(&summary, "succeeded").unwrap_or(0.0);
    let goodput = ok / d.as_secs_f64();
    let recorded = http_get(mock.port, "/__mock/recorded").unwrap_or_default();
    let (total, throttled) = status_counts(&recorded);
    let share = if total > 0.0 { throttled / total } else { 0.0 };
    rows.push(Row {
        section: "rate limit",
        what: format!("run -n {n} --rate auto -c 64 vs mock limit 200/s, 20 ms"),
        value: format!("{goodput:.0} ok/s, {:.1}% answered 429", 100.0 * share),
        anchor: "the limit: 200 req/s".into(),
        ratio: format!(
            "{:.0}% of limit (target >= 95%, <= 5% 429)",
            100.0 * goodput / 200.0
        ),
        json: vec![("goodput".into(), goodput), ("share_429".into(), share)],
    });
    drop(mock);

    // 4. Audit: verify and SQLite import over the concurrency-64 trail.
    let trail = out_dir.join("e2e-c64.jsonl");
    let events = std::fs::read(&trail)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count())
        .unwrap_or(0) as f64;
    let d = timed(
        Command::new(&bin)
            .args(["audit", "verify"])
            .arg(format!("jsonl:{}", trail.display())),
    )?;
    let verify_eps = events / d.as_secs_f64();
    rows.push(Row {
        section: "audit",
        what: format!("audit verify jsonl ({events} events)"),
        value: format!("{verify_eps:.0} events/s"),
        anchor: "target 1,000,000 events/s".into(),
        ratio: format!("{:.2}x of target", verify_eps / 1e6),
        json: vec![("verify_eps".into(), verify_eps)],
    });
    let db = out_dir.join("import.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let d = timed(
        Command::new(&bin)
            .args(["audit", "import"])
            .arg(&trail)
            .arg("--db")
            .arg(&db),
    )?;
    let import_eps = events / d.as_secs_f64();
    rows.push(Row {
        section: "audit",
        what: "audit import into SQLite (verifies, batched inserts)".into(),
        value: format!("{import_eps:.0} events/s"),
        anchor: "SQLite sink target 100,000 events/s".into(),
        ratio: format!("{:.2}x of target", import_eps / 1e5),
        json: vec![("sqlite_import_eps".into(), import_eps)],
    });

    // 5. Memory.
    let n = scale(10_000_000);
    let rss = peak_rss_kib(Command::new(&bin).args(["generate", "-n", &n.to_string()]))?;
    rows.push(Row {
        section: "memory",
        what: format!("generate -n {n}, registry on"),
        value: format!("{:.1} MiB peak RSS", rss / 1024.0),
        anchor: "per UUID".into(),
        ratio: format!("{:.1} bytes/UUID", rss * 1024.0 / n as f64),
        json: vec![("generate_rss_kib".into(), rss)],
    });
    let mock = Mock::start(&bin, &[])?;
    let mut rss_runs = Vec::new();
    for n in [scale(20_000), scale(200_000)] {
        let trail = out_dir.join("mem.jsonl");
        let _ = std::fs::remove_file(&trail);
        let mut cmd = Command::new("/usr/bin/time");
        cmd.arg("-f").arg("%M").arg(&bin);
        job_args(&mut cmd, &mock, n, &["--concurrency", "64"], &trail);
        let out = cmd.stdout(Stdio::null()).output()?;
        let kib: f64 = String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0.0);
        rss_runs.push((n, kib));
    }
    drop(mock);
    if let [(n1, r1), (n2, r2)] = rss_runs[..] {
        let per = (r2 - r1) * 1024.0 / (n2 - n1) as f64;
        rows.push(Row {
            section: "memory",
            what: format!("run peak RSS at n={n1} and n={n2}"),
            value: format!("{:.1} / {:.1} MiB", r1 / 1024.0, r2 / 1024.0),
            anchor: "growth beyond the registry's share".into(),
            ratio: format!("{per:.1} bytes per extra UUID"),
            json: vec![
                ("run_rss_small_kib".into(), r1),
                ("run_rss_large_kib".into(), r2),
            ],
        });
    }

    report(&rows, &root, &out_dir, opts.quick)
}

fn report(rows: &[Row], root: &Path, out_dir: &Path, quick: bool) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = String::from_utf8_lossy(&crate::capture(
        Command::new("date").arg("-u").arg("+%Y-%m-%d %H:%M UTC"),
    )?)
    .trim()
    .to_string();
    let mut md = String::new();
    writeln!(md, "# Benchmarks")?;
    writeln!(md)?;
    writeln!(
        md,
        "Generated by `cargo xtask bench{}` on {date}, {cores} cores, loopback only. \
         Regenerate rather than edit.",
        if quick { " --quick" } else { "" }
    )?;
    writeln!(md)?;
    writeln!(md, "| Section | Measured | Result | Anchor | Ratio |")?;
    writeln!(md, "|---|---|---|---|---|")?;
    for r in rows {
        writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            r.section, r.what, r.value, r.anchor, r.ratio
        )?;
    }
    print!("{md}");
    if quick {
        eprintln!("xtask: --quick: not writing BENCHMARKS.md (figures at 1/20 scale)");
    } else {
        std::fs::write(root.join("BENCHMARKS.md"), &md)?;
    }
    let mut json = String::from("{\n");
    write!(
        json,
        "  \"date\": \"{date}\",\n  \"cores\": {cores},\n  \"quick\": {quick},\n  \"figures\": {{"
    )?;
    let figures: Vec<String> = rows
        .iter()
        .flat_map(|r| r.json.iter())
        .map(|(k, v)| format!("\n    \"{k}\": {}", if v.is_finite() { *v } else { 0.0 }))
        .collect();
    json.push_str(&figures.join(","));
    json.push_str("\n  }\n}\n");
    std::fs::write(out_dir.join("report.json"), json)?;
    eprintln!("xtask: wrote {}", out_dir.join("report.json").display());
    Ok(())
}

/// The hidden anchor `xtask uuid-loop N`: the `uuid` crate's v4 with the same output format.
pub(crate) fn uuid_loop(n: u64) -> Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut buf = uuid::Uuid::encode_buffer();
    for _ in 0..n {
        let s = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
        out.write_all(s.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

struct Mock {
    child: Child,
    port: u16,
    base: String,
}

impl Mock {
    fn start(bin: &Path, extra: &[&str]) -> Result<Self> {
        let port = crate::services::free_port()?;
        let child = Command::new(bin)
            .args(["mock", "--bind", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start cxone-uuid mock")?;
        let mock = Self {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
        };
        let start = Instant::now();
        while http_get(port, "/healthz").is_none() {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("cxone-uuid mock did not answer on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(mock)
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn job_args(cmd: &mut Command, mock: &Mock, n: u64, extra: &[&str], trail: &Path) {
    cmd.env("CXONE_CLIENT_ID", "demo-client")
        .env("CXONE_CLIENT_SECRET", "demo-secret")
        .env("CXONE_DATA_ACTION_ID", "bench")
        .env("CXONE_BASE_URL", &mock.base)
        .env("CXONE_TOKEN_URL", format!("{}/oauth2/token", mock.base))
        .args(["run", "-n", &n.to_string(), "--output", "json"])
        .args(extra)
        .arg("--audit")
        .arg(format!("jsonl:{}", trail.display()));
}

/// Runs `cxone-uuid run`, returning the wall time and its JSON summary.
fn run_job(
    bin: &Path,
    mock: &Mock,
    n: u64,
    extra: &[&str],
    trail: &Path,
) -> Result<(Duration, String)> {
    let mut cmd = Command::new(bin);
    job_args(&mut cmd, mock, n, extra, trail);
    let start = Instant::now();
    let out = cmd.output().context("run cxone-uuid run")?;
    let d = start.elapsed();
    if !out.status.success() {
        bail!(
            "cxone-uuid run -n {n} {extra:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((d, String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn oha_ceiling(python: &Path, token_py: &Path, mock: &Mock, n: u64) -> Result<Option<f64>> {
    let Some(oha) = crate::services::find_on_path("oha") else {
        return Ok(None);
    };
    let token = String::from_utf8_lossy(&crate::capture(
        Command::new(python).arg(token_py).arg(&mock.base),
    )?)
    .trim()
    .to_string();
    let out = crate::capture(
        Command::new(oha)
            .args([
                "--no-tui",
                "-j",
                "-c",
                "64",
                "-n",
                &n.to_string(),
                "-m",
                "POST",
            ])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .args(["-H", "Content-Type: application/json"])
            .args([
                "-d",
                r#"{"inputs":{"uuid":"0f8fad5b-d9cb-469f-a165-70867728950e"}}"#,
            ])
            .arg(format!("{}/api/v2/data-actions/bench/execute", mock.base)),
    )?;
    Ok(json_number(
        &String::from_utf8_lossy(&out),
        "requestsPerSec",
    ))
}

fn write_script(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let p = dir.join(name);
    std::fs::write(&p, text)?;
    Ok(p)
}

fn timed(cmd: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    crate::capture(cmd)?;
    Ok(start.elapsed())
}

fn timed_to_null(cmd: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .status()
        .context("start benchmark command")?;
    if !status.success() {
        bail!("benchmark command failed ({status})");
    }
    Ok(start.elapsed())
}

fn peak_rss_kib(cmd: &mut Command) -> Result<f64> {
    let mut time = Command::new("/usr/bin/time");
    time.arg("-f")
        .arg("%M")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let out = time
        .stdout(Stdio::null())
        .output()
        .context("/usr/bin/time")?;
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .context("GNU time printed no peak RSS (apt-get install time)")
}

/// The first number after `"key":` in a JSON text (the summaries are flat enough for this).
fn json_number(text: &str, key: &str) -> Option<f64> {
    let pat = format!("\"{key}\":");
    let at = text.find(&pat)? + pat.len();
    let rest = text[at..].trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `(all execute answers, 429 answers)` from the mock's `responses_by_status`.
fn status_counts(recorded: &str) -> (f64, f64) {
    let Some(at) = recorded.find("\"responses_by_status\"") else {
        return (0.0, 0.0);
    };
    let obj = &recorded[at..];
    let Some(open) = obj.find('{') else {
        return (0.0, 0.0);
    };
    let Some(close) = obj[open..].find('}') else {
        return (0.0, 0.0);
    };
    let mut total = 0.0;
    let mut throttled = 0.0;
    for pair in obj[open + 1..open + close].split(',') {
        if let Some((k, v)) = pair.split_once(':') {
            let v: f64 = v.trim().parse().unwrap_or(0.0);
            total += v;
            if k.trim().trim_matches('"') == "429" {
                throttled += v;
            }
        }
    }
    (total, throttled)
}

/// A plain HTTP/1.1 GET on loopback; the body, or `None` when nothing answers.
fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_status_counts_are_read_from_json() {
        assert_eq!(
            json_number(r#"{"a":1,"succeeded": 2999,"x":0}"#, "succeeded"),
            Some(2999.0)
        );
        assert_eq!(
            json_number(r#"{"summary":{"requestsPerSec":1234.5}}"#, "requestsPerSec"),
            Some(1234.5)
        );
        let (t, k) =
            status_counts(r#"{"token_requests":1,"responses_by_status":{"200":90,"429":10}}"#);
        assert_eq!((t, k), (100.0, 10.0));
    }
}
