//! The comparison programs the anchors need: the bare uuid loop, the tutorial's Python (in a
//! virtualenv with `requests`) and a load generator (oha, else wrk).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::Bench;

/// The comparison programs, each optional: a missing one fails only its rows.
pub(super) struct Tools {
    pub(super) bare: Result<Bare>,
    pub(super) python: Result<PathBuf>,
    pub(super) load: Result<LoadGen>,
}

pub(super) enum LoadGen {
    Oha(PathBuf),
    Wrk(PathBuf),
}

impl Tools {
    pub(super) fn prepare(b: &mut Bench) -> Self {
        let bare = build_bare();
        let python = python_venv();
        let load = load_generator(b);
        if let Err(e) = &bare {
            b.note(format!("bare uuid loop unavailable: {e:#}"));
        }
        if let Err(e) = &python {
            b.note(format!("Python virtualenv unavailable: {e:#}"));
        }
        match &load {
            Ok(LoadGen::Oha(p)) => b.note(format!("load generator: oha ({})", p.display())),
            Ok(LoadGen::Wrk(p)) => b.note(format!(
                "load generator: wrk ({}), oha could not be installed",
                p.display()
            )),
            Err(e) => b.note(format!("no load generator: {e:#}")),
        }
        Self { bare, python, load }
    }
}

/// The bare-loop anchor: xtask/bench/bare-uuid (uuid with `fast-rng`, its own workspace),
/// else `xtask uuid-loop` built optimised (the workspace's uuid features: no `fast-rng`, so one
/// getrandom call per UUID, a slower and so kinder anchor; the report says which ran).
fn build_bare() -> Result<Bare> {
    let manifest = crate::root().join("xtask/bench/bare-uuid/Cargo.toml");
    let target = crate::target_dir().join("bench-bare");
    let standalone = crate::run_cmd(
        crate::cargo()
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target),
    );
    match standalone {
        Ok(()) => Ok(Bare {
            program: target.join("release").join("bare-uuid"),
            args: Vec::new(),
            what: "bare `uuid::new_v4()` loop (fast-rng), same output",
        }),
        Err(e) => {
            eprintln!("bench: bare-uuid did not build ({e:#}); using `xtask uuid-loop`");
            crate::run_cmd(crate::cargo().args(["build", "--release", "-p", "xtask"]))?;
            Ok(Bare {
                program: crate::target_dir().join("release").join("xtask"),
                args: vec!["uuid-loop".into()],
                what: "bare `uuid::new_v4()` loop (xtask uuid-loop, no fast-rng), same output",
            })
        }
    }
}

/// How to run the bare loop: `program ARGS... N`.
pub(super) struct Bare {
    pub(super) program: PathBuf,
    pub(super) args: Vec<OsString>,
    pub(super) what: &'static str,
}

/// target/bench-venv with `requests`, created on first use.
fn python_venv() -> Result<PathBuf> {
    let venv = crate::target_dir().join("bench-venv");
    let python = venv.join("bin").join("python3");
    let has_requests = |p: &Path| {
        Command::new(p)
            .args(["-c", "import requests"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.is_file() && has_requests(&python) {
        return Ok(python);
    }
    let system = crate::services::find_on_path("python3")
        .context("python3 is not on PATH (Debian: apt-get install -y python3 python3-venv)")?;
    crate::run_cmd(Command::new(system).arg("-m").arg("venv").arg(&venv))
        .context("create the bench virtualenv (Debian: apt-get install -y python3-venv)")?;
    crate::run_cmd(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "requests",
    ]))
    .context("pip install requests (needs PyPI)")?;
    if !has_requests(&python) {
        bail!("{} cannot import requests after install", python.display());
    }
    Ok(python)
}

/// oha from target/bench-tools or PATH; installed with cargo when absent (not in --quick);
/// else Debian's wrk.
fn load_generator(b: &Bench) -> Result<LoadGen> {
    let tools = crate::target_dir().join("bench-tools");
    let local = tools.join("bin").join("oha");
    if local.is_file() {
        return Ok(LoadGen::Oha(local));
    }
    if let Some(p) = crate::services::find_on_path("oha") {
        return Ok(LoadGen::Oha(p));
    }
    let install = if b.opts.quick {
        Err(anyhow::anyhow!(
            "oha is not installed and --quick installs nothing (a full run installs it into {})",
            tools.display()
        ))
    } else {
        crate::run_cmd(
            crate::cargo()
                .args(["install", "oha", "--locked", "--root"])
                .arg(&tools),
        )
    };
    match install {
        Ok(()) if local.is_file() => Ok(LoadGen::Oha(local)),
        other => {
            let why = match other {
                Err(e) => format!("{e:#}"),
                Ok(()) => "cargo install oha left no binary".into(),
            };
            crate::services::find_on_path("wrk")
                .map(LoadGen::Wrk)
                .with_context(|| {
                    format!("{why}; and wrk is not on PATH (Debian: apt-get install -y wrk)")
                })
        }
    }
}

impl Tools {
    pub(super) fn load_name(&self) -> &'static str {
        match &self.load {
            Ok(LoadGen::Oha(_)) => "oha",
            Ok(LoadGen::Wrk(_)) => "wrk",
            Err(_) => "load generator",
        }
    }
}
