//! The comparison programs the anchors need: the bare uuid loop, the tutorial's Python (in a
//! virtualenv with `requests`) and a load generator (oha, else wrk).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::Bench;

/// The comparison programs, each optional: a missing one fails only its rows.
pub(super) struct Tools {
    /// The bare-uuid program, run as `bare-uuid N`.
    pub(super) bare: Result<PathBuf>,
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
        // Paths relative to the project: the report is committed and read on other machines.
        let shown = |p: &std::path::Path| {
            let root = crate::root();
            p.strip_prefix(&root).unwrap_or(p).display().to_string()
        };
        match &load {
            Ok(LoadGen::Oha(p)) => b.note(format!("load generator: oha ({})", shown(p))),
            Ok(LoadGen::Wrk(p)) => b.note(format!(
                "load generator: wrk ({}), oha could not be installed",
                shown(p)
            )),
            Err(e) => b.note(format!("no load generator: {e:#}")),
        }
        Self { bare, python, load }
    }
}

/// The bare-loop anchor, row 1a's one comparison: xtask/bench/bare-uuid (`uuid::new_v4()` with
/// `fast-rng`, in its own workspace so this one never builds or locks it), built optimised.
fn build_bare() -> Result<PathBuf> {
    let manifest = crate::root().join("xtask/bench/bare-uuid/Cargo.toml");
    let target = crate::target_dir().join("bench-bare");
    crate::run_cmd(
        crate::cargo()
            .args(["build", "--release", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target),
    )?;
    Ok(target.join("release").join("bare-uuid"))
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
