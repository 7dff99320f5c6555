//! Rows 1a, 1b and 5a: `cxone-uuid generate` against a bare `uuid` loop and the tutorial's
//! Python, and the bytes per UUID that its memory registry holds.

use super::json::Json;
use super::proc::{measure, Job, Stdout};
use super::report::{human, Row};
use super::runner::ns_per;
use super::tools::Tools;
use super::{Bench, BEST_OF};

/// Row 1a: `generate` may take at most this many times the bare loop's time per UUID.
const VS_BARE_MAX: f64 = 2.0;
/// Why row 1a can miss.
const WHY_VS_BARE: &str =
    "the time above the bare loop is mostly the exact registry insert: at 10 M, one \
    random write into a 229 MB table per UUID, near what such writes cost this machine \
    (and the zeroing of that table's pages, which varies with the host)";

/// Row 1b: `generate` must be at least this many times faster than the tutorial's Python.
const VS_PYTHON_MIN: f64 = 50.0;
/// Why row 1b can miss.
const WHY_VS_PYTHON: &str = "moves with row 1a; the Python figure is the interpreter's own cost";

/// Row 5a: the memory registry's bytes per UUID; row 5b falls back to it.
pub(super) const REGISTRY_BYTES_MAX: f64 = 24.0;
/// Why row 5a can miss.
const WHY_REGISTRY_BYTES: &str =
    "peak RSS above the baseline is the registry's table: its load factor sets the \
    bytes per UUID";

/// Python's generation runs are long: fewer of them than [`BEST_OF`].
const BEST_OF_PYTHON: usize = 2;

impl Bench {
    pub(super) fn generation(&mut self, tools: &Tools) {
        let n = self.sizes.gen;
        let what = format!("cxone-uuid generate -n {n} > /dev/null");
        let ours = self.best_of(
            BEST_OF,
            "generate",
            &self.job().args(["generate", "-n", &n.to_string()]),
            Stdout::Null,
            self.timeout(n as f64 * 1e-6),
        );
        let ours = match ours {
            Ok(o) => o,
            Err(e) => {
                for id in ["1a", "1b", "5a"] {
                    self.push(Row::new(id, what.clone()).failed(&e));
                }
                return;
            }
        };
        let ours_ns = ns_per(ours.wall, n);
        self.figure("generate_n", Json::Num(n as f64));
        self.figure("generate_ns_per_uuid", Json::Num(ours_ns));

        // (a) the bare uuid loop, same n, same output path.
        let mut row = Row::new("1a", what.clone());
        row.value = Some(ours_ns);
        row.unit = "ns/UUID";
        row.target = format!("≤ {VS_BARE_MAX}× anchor");
        row.ratio_unit = "× anchor's time";
        row.why = WHY_VS_BARE;
        row.note = format!(
            "health tests + exact memory registry on; fastest of {BEST_OF} runs each, wall time incl. process start"
        );
        let bare = tools
            .bare
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .and_then(|bare| {
                self.best_of(
                    BEST_OF,
                    "bare-uuid",
                    &Job::new(bare).arg(n.to_string()),
                    Stdout::Null,
                    self.timeout(n as f64 * 1e-6),
                )
            });
        match bare {
            Ok(b) => {
                let bare_ns = ns_per(b.wall, n);
                self.figure("bare_uuid_ns_per_uuid", Json::Num(bare_ns));
                row.anchor = format!(
                    "(a) bare `uuid::new_v4()` loop (fast-rng), same output: {} ns/UUID",
                    human(bare_ns)
                );
                row.ratio = Some(ours_ns / bare_ns);
                row.met = Some(ours_ns / bare_ns <= VS_BARE_MAX);
            }
            Err(e) => row = row.failed(&e),
        }
        self.push(row);

        // (b) the tutorial's Python method, fewer UUIDs (it is slow), compared per UUID.
        let mut row = Row::new("1b", what.clone());
        row.value = Some(ours_ns);
        row.unit = "ns/UUID";
        row.target = format!("≥ {VS_PYTHON_MIN}× faster");
        row.ratio_unit = "× faster";
        row.why = WHY_VS_PYTHON;
        let py_n = self.sizes.py_gen;
        let script = crate::root().join("xtask/bench/tutorial_generate.py");
        let py = tools
            .python
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .and_then(|python| {
                self.best_of(
                    BEST_OF_PYTHON,
                    "tutorial-generate",
                    &Job::new(python).arg(&script).arg(py_n.to_string()),
                    Stdout::Null,
                    self.timeout(py_n as f64 * 5e-6),
                )
            });
        match py {
            Ok(p) => {
                // The script's own timer leaves out interpreter start: in Python's favour.
                let log = std::fs::read_to_string(&p.stderr_log).unwrap_or_default();
                let inner = log
                    .lines()
                    .find_map(|l| l.strip_prefix("elapsed_s="))
                    .and_then(|v| v.trim().parse::<f64>().ok());
                let py_ns = inner.map_or(ns_per(p.wall, py_n), |s| s * 1e9 / py_n as f64);
                self.figure("tutorial_python_ns_per_uuid", Json::Num(py_ns));
                self.figure("tutorial_python_n", Json::Num(py_n as f64));
                row.anchor = format!(
                    "(b) tutorial Python (secrets + uuid.UUID + set), {py_n} UUIDs: {} ns/UUID",
                    human(py_ns)
                );
                row.ratio = Some(py_ns / ours_ns);
                row.met = Some(py_ns / ours_ns >= VS_PYTHON_MIN);
            }
            Err(e) => row = row.failed(&e),
        }
        self.push(row);

        // 5a: bytes per UUID above a one-UUID run's baseline.
        let mut row = Row::new("5a", format!("peak RSS of generate -n {n}"));
        row.unit = "B/UUID";
        row.target = format!("≤ {REGISTRY_BYTES_MAX} B/UUID (memory registry, issue 6)");
        row.why = WHY_REGISTRY_BYTES;
        let base = measure(
            "generate-1",
            &self.job().args(["generate", "-n", "1"]),
            Stdout::Null,
            self.timeout(1.0),
            &self.logs,
        );
        match (ours.peak_rss_kib, base.map(|b| b.peak_rss_kib)) {
            (Some(peak), Ok(Some(base))) => {
                let per = (peak.saturating_sub(base) * 1024) as f64 / n as f64;
                self.figure("generate_peak_rss_kib", Json::Num(peak as f64));
                self.figure("generate_1_peak_rss_kib", Json::Num(base as f64));
                self.figure("generate_bytes_per_uuid", Json::Num(per));
                row.value = Some(per);
                row.anchor = format!(
                    "peak {} MiB minus `generate -n 1` baseline {} MiB",
                    human(peak as f64 / 1024.0),
                    human(base as f64 / 1024.0)
                );
                row.met = Some(per <= REGISTRY_BYTES_MAX);
            }
            (_, Err(e)) => row = row.failed(&e),
            _ => {
                row = row.failed(&anyhow::anyhow!(
                    "peak RSS not available (no GNU time, /proc unreadable)"
                ))
            }
        }
        self.push(row);
    }
}
