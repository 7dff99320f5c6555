//! `cargo xtask bench`: one side-by-side performance report against the tutorial's approach and
//! the machine's limits, so that every performance claim has a figure measured the same way.
//!
//! Key design decision: every figure comes from running real programs as child processes (the
//! release `cxone-uuid`, a bare `uuid` loop, the tutorial's Python, `oha`/`wrk`), each timed
//! from outside, and every row fails soft: a command that is missing or broken becomes
//! `error: …` in its row and the rest of the report still runs. The report is the measurement;
//! nothing here asserts a timing.
//!
//! Each group of rows is one file holding its thresholds and the reasons a row can miss them:
//! generate.rs (1a, 1b, 5a), run.rs (2a–2d, 2f), write_ahead.rs (2e, 2g), rate.rs (3a, 3b),
//! audit.rs (4a–4e), memory.rs (5b), registry.rs (6a). The shared machinery: runner.rs (best
//! of k runs, `run` against a mock), tools.rs (the comparison programs), report.rs (the table,
//! BENCHMARKS.md and report.json), proc.rs (child processes, timing) and json.rs.

mod audit;
mod generate;
mod hot_path;
mod json;
mod memory;
mod proc;
mod rate;
mod registry;
mod report;
mod run;
mod runner;
mod tools;
mod write_ahead;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use json::Json;
use proc::Job;
use report::{human, Row};
use runner::secs;
use tools::Tools;

/// Credentials the mock accepts by default (its `--client-id`/`--client-secret` defaults).
const CLIENT_ID: &str = "demo-client";
const CLIENT_SECRET: &str = "demo-secret";
const ACTION_ID: &str = "bench";

/// The fastest of this many short runs (generation, verify): on a shared machine the minimum
/// is the figure least disturbed by other work.
const BEST_OF: usize = 3;

/// Counts for one mode of the bench.
struct Sizes {
    gen: u64,
    py_gen: u64,
    /// (concurrency, n) for row 2.
    e2e: [(u32, u64); 3],
    py_client: u64,
    goodput: u64,
    /// UUIDs per limit shape, rows 3c-3n (the windows need more than one quota's worth).
    limit_shapes: u64,
    mem_large: u64,
    /// UUIDs in the database `audit report` reads for row 4f (about three events each).
    report_uuids: u64,
    wrk_secs: u32,
    /// UUIDs already in the SQLite registry file, then offered to it, for row 6a.
    sqlite_registry: u64,
}

const FULL: Sizes = Sizes {
    gen: 10_000_000,
    py_gen: 1_000_000,
    // Concurrency 1 fsyncs once per request (write-ahead): 50,000 of them alone take about a
    // minute on this class of disk, so it runs 20,000.
    e2e: [(1, 20_000), (8, 50_000), (64, 50_000)],
    py_client: 2_000,
    goodput: 3_000,
    limit_shapes: 900,
    mem_large: 200_000,
    report_uuids: 1_000_000,
    wrk_secs: 5,
    sqlite_registry: 1_000_000,
};

const QUICK: Sizes = Sizes {
    gen: 1_000_000,
    py_gen: 100_000,
    e2e: [(1, 500), (8, 2_000), (64, 5_000)],
    py_client: 300,
    goodput: 600,
    limit_shapes: 400,
    mem_large: 20_000,
    report_uuids: 20_000,
    wrk_secs: 2,
    sqlite_registry: 100_000,
};

/// Options of `cargo xtask bench` (parsed in main.rs).
pub(crate) struct Opts {
    /// Small counts and no tool installs: a smoke run of the harness in CI-like time, whose
    /// table goes to target/bench/BENCHMARKS.md instead of the committed BENCHMARKS.md.
    pub(crate) quick: bool,
    /// Benchmark this binary instead of building target/release/cxone-uuid.
    pub(crate) bin: Option<PathBuf>,
    /// Only rows 3c-3n (the limit shapes); the table goes to target/bench/BENCHMARKS.md.
    pub(crate) only_limits: bool,
}

/// What the bench carries from row to row.
struct Bench {
    opts: Opts,
    sizes: &'static Sizes,
    bin: PathBuf,
    dir: PathBuf,
    logs: PathBuf,
    rows: Vec<Row>,
    /// Every raw figure, by name, for report.json.
    figures: Vec<(String, Json)>,
    notes: Vec<String>,
    started: Instant,
    /// CPUs `cxone-uuid` is pinned to (`taskset -c`), for the rows that split the cores.
    pin: Option<&'static str>,
}

/// `cargo xtask bench [--quick] [--only-limits] [--bin PATH]`.
pub(crate) fn bench(opts: Opts) -> Result<()> {
    let target = crate::target_dir();
    let dir = target.join("bench");
    let bin = opts
        .bin
        .clone()
        .unwrap_or_else(|| target.join("release").join("cxone-uuid"));
    let mut b = Bench {
        sizes: if opts.quick { &QUICK } else { &FULL },
        opts,
        bin,
        logs: dir.join("logs"),
        dir,
        rows: Vec::new(),
        figures: Vec::new(),
        notes: Vec::new(),
        started: Instant::now(),
        pin: None,
    };
    std::fs::create_dir_all(&b.logs).with_context(|| format!("create {}", b.logs.display()))?;

    if b.opts.bin.is_none() {
        if let Err(e) =
            crate::run_cmd(crate::cargo().args(["build", "--release", "-p", "cxone-uuid-cli"]))
        {
            b.note(format!(
                "release build failed ({e:#}); measuring the binary already in target/release"
            ));
        }
    }
    if b.opts.only_limits {
        // Rows 3c-3n alone need neither the comparison tools nor the other rows' trails.
        let measured_from = Instant::now();
        b.limit_shapes();
        b.figure("measure_s", Json::Num(secs(measured_from.elapsed())));
        return b.write_outputs();
    }
    let tools = Tools::prepare(&mut b);
    b.figure("setup_s", Json::Num(secs(b.started.elapsed())));
    let measured_from = Instant::now();

    b.generation(&tools);
    let ceiling = b.end_to_end(&tools);
    b.hot_path(&tools);
    b.goodput();
    b.limit_shapes();
    b.memory_run(ceiling);
    b.audit_sinks();
    b.report_memory();
    b.registries();
    b.figure("measure_s", Json::Num(secs(measured_from.elapsed())));
    b.write_outputs()
}

impl Bench {
    fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("bench: note: {text}");
        self.notes.push(text);
    }

    fn figure(&mut self, name: impl Into<String>, v: Json) {
        self.figures.push((name.into(), v));
    }

    fn push(&mut self, row: Row) {
        match (&row.error, row.value) {
            (Some(e), _) => eprintln!("bench: {} {}: error: {e}", row.id, row.what),
            (None, Some(v)) => eprintln!(
                "bench: {} {}: {} {}{}",
                row.id,
                row.what,
                human(v),
                row.unit,
                row.ratio
                    .map(|r| format!(" (ratio {} {})", human(r), row.ratio_unit))
                    .unwrap_or_default()
            ),
            (None, None) => {}
        }
        self.rows.push(row);
    }

    fn timeout(&self, expected_s: f64) -> Duration {
        // Generous: a shared 2-core machine can be several times slower than expected.
        Duration::from_secs_f64((expected_s * 10.0).max(60.0))
    }

    fn job(&self) -> Job {
        proc::pinned(&self.bin, self.pin)
    }
}
