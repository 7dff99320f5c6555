//! Project automation: `cargo xtask test | ci | release | services`.
//!
//! Key design decision: xtask drives everything through child processes (cargo, the built
//! binary, moto_server, redis-server) and links no project crate and no async runtime, so it
//! compiles in seconds and a broken crate cannot break the tool that reports it broken.
//! Services bind 127.0.0.1 on ephemeral ports and are stopped by guards' `Drop`, even when
//! tests fail.

mod bench;
mod release;
mod services;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

const HELP: &str = "\
cargo xtask <COMMAND>

Commands:
  test [ARGS...]       start moto_server (S3) and redis-server on loopback ephemeral ports,
                       then `cargo nextest run --workspace --all-features ARGS...`
                       (`cargo test` when nextest is missing); services stop afterwards
  ci                   fmt check, clippy and rustdoc -D warnings, feature-matrix builds, then test
  release [--dry-run] [--bin PATH]
                       release build (all features), dist/cxone-uuid-VERSION-TARGET.tar.gz with
                       README, licence, completions and man page, and dist/SHA256SUMS;
                       --dry-run stages under target/dist and writes nothing to dist/;
                       --bin packages an already built binary instead of building
  bench [--quick] [--only-limits] [--bin PATH]
                       the side-by-side performance report: table on stdout, BENCHMARKS.md,
                       target/bench/report.json (--quick: 1/20 scale smoke run, no BENCHMARKS.md;
                       --only-limits: rows 3c-3n, the limit shapes, no BENCHMARKS.md)
  services             start the test services, print their env vars, wait for Enter
  help                 this text

Environment given to tests:
  CXONE_UUID_TEST_S3_ENDPOINT   http://127.0.0.1:PORT of moto_server
  CXONE_UUID_TEST_REDIS_URL     redis://127.0.0.1:PORT/
  CXONE_UUID_TEST_CHROMIUM      the headless browser the HTML report is opened in
  AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let task = args.next().map(|a| a.to_string_lossy().into_owned());
    let rest: Vec<OsString> = args.collect();
    match task.as_deref() {
        Some("test") => test(&rest),
        Some("ci") => {
            no_args("ci", &rest)?;
            ci()
        }
        Some("release") => {
            let mut dry_run = false;
            let mut prebuilt = None;
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match a.to_str() {
                    Some("--dry-run") => dry_run = true,
                    Some("--bin") => match it.next() {
                        Some(p) => prebuilt = Some(PathBuf::from(p)),
                        None => bail!("release: --bin needs a path"),
                    },
                    _ => bail!("release: unknown argument {a:?} (--dry-run, --bin PATH)"),
                }
            }
            release::release(dry_run, prebuilt)
        }
        Some("bench") => {
            let mut opts = bench::Opts {
                quick: false,
                bin: None,
                only_limits: false,
            };
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                match a.to_str() {
                    Some("--quick") => opts.quick = true,
                    Some("--only-limits") => opts.only_limits = true,
                    Some("--bin") => match it.next() {
                        Some(p) => opts.bin = Some(PathBuf::from(p)),
                        None => bail!("bench: --bin needs a path"),
                    },
                    _ => {
                        bail!("bench: unknown argument {a:?} (--quick, --only-limits, --bin PATH)")
                    }
                }
            }
            bench::bench(opts)
        }
        Some("services") => {
            no_args("services", &rest)?;
            let services = services::Services::start()?;
            for (k, v) in services.env() {
                println!("export {k}={v}");
            }
            eprintln!("services running; press Enter to stop them");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            Ok(())
        }
        None | Some("help" | "-h" | "--help") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => bail!("unknown command {other:?}\n\n{HELP}"),
    }
}

fn no_args(task: &str, rest: &[OsString]) -> Result<()> {
    if let Some(a) = rest.first() {
        bail!("{task} takes no arguments (got {a:?})");
    }
    Ok(())
}

/// `cargo xtask test [ARGS...]`: with no arguments the whole suite, lints included (the README's
/// test command); with arguments only the tests they select.
fn test(extra: &[OsString]) -> Result<()> {
    if extra.is_empty() {
        lint()?;
    }
    let services = services::Services::start()?;
    let nextest = has_nextest();
    let mut cmd = cargo();
    if nextest {
        cmd.args(["nextest", "run"]);
    } else {
        eprintln!("xtask: cargo-nextest not found; using `cargo test` (cargo install cargo-nextest for a faster run)");
        cmd.arg("test");
    }
    // `--workspace` would override a `-p` the caller passed through.
    let picks_package = extra
        .iter()
        .any(|a| a == "-p" || a == "--package" || a.to_string_lossy().starts_with("--package="));
    if !picks_package {
        cmd.arg("--workspace");
    }
    cmd.arg("--all-features").args(extra);
    for (k, v) in services.env() {
        cmd.env(k, v);
    }
    let result = run_cmd(&mut cmd);
    // Explicit for the reader: the guards stop the services whatever `result` holds.
    drop(services);
    result
}

/// fmt, clippy and the API docs, the first things a reviewer would run.
fn lint() -> Result<()> {
    run_cmd(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run_cmd(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))?;
    // A doc link to an item that moved or is private renders as plain text, silently: the
    // docs build is checked as clippy is.
    run_cmd(
        cargo()
            .args(["doc", "--no-deps", "--workspace", "--all-features"])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )
}

/// `cargo xtask ci`: the feature matrix, then the whole suite.
fn ci() -> Result<()> {
    // A build with only the JSONL sink must build, and must say which feature a sink needs.
    run_cmd(cargo().args([
        "test",
        "-p",
        "cxone-uuid-cli",
        "--no-default-features",
        "--features",
        "jsonl",
        "--test",
        "e2e",
        "features::",
    ]))?;
    run_cmd(cargo().args([
        "clippy",
        "-p",
        "cxone-uuid-cli",
        "--no-default-features",
        "--features",
        "jsonl",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The default build (what `cargo install` gives) is warning-free too, not only the
    // all-features one.
    run_cmd(cargo().args(["clippy", "-p", "cxone-uuid-cli", "--", "-D", "warnings"]))?;
    test(&[])
}

fn has_nextest() -> bool {
    cargo()
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `cargo`, as the one that started us, run from the workspace root.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs `cmd`, echoing it first, and fails unless it exits 0.
pub(crate) fn run_cmd(cmd: &mut Command) -> Result<()> {
    let shown = show(cmd);
    eprintln!("$ {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout; fails unless it exits 0.
pub(crate) fn capture(cmd: &mut Command) -> Result<Vec<u8>> {
    let shown = show(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot start `{shown}`"))?;
    if !out.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

fn show(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The shared target directory (honours CARGO_TARGET_DIR like cargo does).
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                root().join(dir)
            }
        }
        None => root().join("target"),
    }
}
