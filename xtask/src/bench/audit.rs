//! Rows 4a–4f: the audit sinks (sink-only Criterion figures where they ran, else the c64 runs'
//! trails as a lower bound), `audit verify` on those trails, `audit import` into SQLite, and
//! `audit report`'s peak memory over a database of a few million events.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::json::Json;
use super::proc::{measure, Stdout};
use super::report::{human, Row};
use super::runner::{count_lines, remove_trail, secs};
use super::{Bench, BEST_OF};

/// Row 4a: the JSONL sink's events per second.
const JSONL_EVENTS_MIN: f64 = 500_000.0;
/// Why row 4a can miss. Only a sink-only (Criterion) figure can miss: a run-derived lower
/// bound is not judged.
const WHY_JSONL_EVENTS: &str =
    "the sink's own cost: JSON encoding and SHA-256 sealing per event, one write and \
    one fsync per batch";
/// Row 4b: the SQLite sink's events per second (row 4e is read against it too).
const SQLITE_EVENTS_MIN: f64 = 100_000.0;
/// Why row 4b can miss.
const WHY_SQLITE_EVENTS: &str =
    "SQLite's B-tree work: each event is inserted into the table and four indexes \
    when its staged batch is moved into `audit_events`, and the random-keyed \
    `uuid` index costs most of it";

/// Rows 4c and 4d: `audit verify`'s events per second, on either backend.
const VERIFY_EVENTS_MIN: f64 = 1_000_000.0;
/// Why rows 4c and 4d can miss.
const WHY_VERIFY_EVENTS: &str =
    "verify reads, parses and re-hashes (SHA-256 over the canonical form) every \
    event; process start is included in the time";

/// Row 4f: `audit report`'s peak RSS over a few million events.
const REPORT_RSS_MAX_MIB: f64 = 64.0;
/// Why row 4f can miss.
const WHY_REPORT_RSS: &str =
    "the report keeps something per event or per UUID in memory instead of leaving the \
    grouping to SQLite (which spills to its temporary files)";

impl Bench {
    /// Row 4f: `demo` writes a SQLite trail of `report_uuids` UUIDs (2% failing), then
    /// `audit report --output json` reads it; its peak RSS is judged against a fixed bound, and
    /// set beside the same report over the small c64 import (row 4e), which shows it does not
    /// grow with the trail.
    pub(super) fn report_memory(&mut self) {
        let n = self.sizes.report_uuids;
        let mut row = Row::new(
            "4f",
            format!("peak RSS of audit report over demo -n {n} (SQLite)"),
        );
        row.unit = "MiB";
        row.target = format!("≤ {REPORT_RSS_MAX_MIB} MiB");
        row.ratio_unit = "of bound";
        row.why = WHY_REPORT_RSS;
        let db = self.dir.join("report.db");
        remove_trail(&db);
        let demo = self
            .job()
            .args(["demo", "-n", &n.to_string(), "--latency-ms", "0"])
            .args([
                "--concurrency",
                "64",
                "--fail-rate",
                "0.02",
                "--output",
                "json",
            ])
            .arg("--audit")
            .arg(format!("sqlite:{}", db.display()))
            // 2% of a million attempts fail: a UUID failing all four of its attempts (about one
            // run in six) exits 1 with the trail whole, and the trail is what is measured.
            .exit_ok(1);
        let made = measure(
            "report-demo",
            &demo,
            Stdout::Capture,
            self.timeout(n as f64 / 20_000.0),
            &self.logs,
        );
        let report = |b: &Bench, db: &Path, label: &str| {
            let job = b
                .job()
                .args(["audit", "report", "--output", "json", "--db"])
                .arg(db);
            measure(label, &job, Stdout::Capture, b.timeout(30.0), &b.logs).and_then(|o| {
                let events = super::json::parse(&o.stdout_text())
                    .ok()
                    .and_then(|j| j.num("verification.events"))
                    .context("the report has no verification.events")?;
                let rss = o.peak_rss_kib.context("no peak RSS measured")? as f64 / 1024.0;
                Ok((events, rss, secs(o.wall)))
            })
        };
        let small = report(self, &self.dir.join("import.db"), "report-small");
        match made.and_then(|_| report(self, &db, "report-large")) {
            Ok((events, rss, wall)) => {
                self.figure("report_events", Json::Num(events));
                self.figure("report_peak_rss_mib", Json::Num(rss));
                self.figure("report_wall_s", Json::Num(wall));
                row.value = Some(rss);
                row.anchor = format!("bound {REPORT_RSS_MAX_MIB} MiB");
                row.ratio = Some(rss / REPORT_RSS_MAX_MIB);
                row.met = Some(rss <= REPORT_RSS_MAX_MIB);
                row.note = format!(
                    "{} events reported in {wall:.1} s{}",
                    human(events),
                    match &small {
                        Ok((e, r, _)) => format!(
                            "; the same report over {} events (row 4e's import) peaked at {r:.1} MiB",
                            human(*e)
                        ),
                        Err(e) => format!("; no small-trail figure ({e:#})"),
                    }
                );
            }
            Err(e) => row = row.failed(&e),
        }
        remove_trail(&db);
        self.push(row);
    }

    pub(super) fn audit_sinks(&mut self) {
        let criterion = if self.opts.quick {
            Err(anyhow::anyhow!(
                "--quick skips the audit crates' Criterion benches"
            ))
        } else {
            self.criterion()
        };
        let crit = |prefix: &str| -> Option<(String, f64)> {
            criterion.as_ref().ok().and_then(|all| {
                all.iter()
                    .filter(|(id, _)| id.starts_with(prefix))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .cloned()
            })
        };
        if let Ok(all) = &criterion {
            let obj = all
                .iter()
                .map(|(k, v)| (k.clone(), Json::Num(*v)))
                .collect();
            self.figure("criterion_elem_per_s", Json::Obj(obj));
        }

        let (c64, n64) = self.sizes.e2e[2];
        // Events the c64 runs wrote, per second of the run: a lower bound on the sink, which
        // waits on HTTP most of the time.
        let run_rate =
            |b: &Bench, trail: &Path, count: Result<u64>, key: &str| -> Result<(u64, f64)> {
                let events = count?;
                let elapsed = b
                    .figures
                    .iter()
                    .find(|(k, _)| k == key)
                    .and_then(|(_, v)| match v {
                        Json::Num(n) => Some(*n),
                        other => other.num("elapsed_s"),
                    })
                    .with_context(|| format!("no run produced {}", trail.display()))?;
                Ok((events, events as f64 / elapsed.max(1e-9)))
            };
        let jsonl_trail = self.dir.join(format!("run-c{c64}.jsonl"));
        let db = self.dir.join("run-c64.db");

        for (id, name, prefix, min, why, trail, count, key) in [
            (
                "4a",
                "JSONL sink, --audit-sync batch",
                "jsonl_sink/append_sync",
                JSONL_EVENTS_MIN,
                WHY_JSONL_EVENTS,
                jsonl_trail.clone(),
                count_lines(&jsonl_trail),
                format!("run_c{c64}_summary"),
            ),
            (
                "4b",
                "SQLite sink, --audit-sync batch",
                "sqlite_sink/batch",
                SQLITE_EVENTS_MIN,
                WHY_SQLITE_EVENTS,
                db.clone(),
                self.verify(&format!("sqlite:{}", db.display()), "count-sqlite")
                    .map(|(n, _)| n),
                "run_c64_sqlite_elapsed_s".to_string(),
            ),
        ] {
            let mut row = Row::new(id, name);
            row.unit = "events/s";
            row.target = format!("≥ {} events/s", human(min));
            row.ratio_unit = "of target";
            row.why = why;
            let from_run = run_rate(self, &trail, count, &key);
            if let Ok((events, rate)) = &from_run {
                self.figure(format!("{id}_run_events"), Json::Num(*events as f64));
                self.figure(format!("{id}_run_events_per_s"), Json::Num(*rate));
            }
            match (crit(prefix), from_run) {
                (Some((bench_id, rate)), run) => {
                    row.value = Some(rate);
                    row.anchor = format!("target {} events/s", human(min));
                    row.ratio = Some(rate / min);
                    row.met = Some(rate >= min);
                    row.note = format!(
                        "Criterion `{bench_id}` (append + sync per batch){}",
                        run.map(|(_, r)| format!(
                            "; inside `run` c64 n={n64}: {} events/s (the run's rate, whatever bounds it)",
                            human(r)
                        ))
                        .unwrap_or_default()
                    );
                }
                (None, Ok((events, rate))) => {
                    row.value = Some(rate);
                    row.anchor = format!("target {} events/s", human(min));
                    row.ratio = Some(rate / min);
                    row.met = (rate >= min).then_some(true);
                    row.note = format!(
                        "lower bound: {events} events / wall time of `run` c64 n={n64}, which waits on HTTP; \
                         no sink-only figure ({})",
                        criterion.as_ref().err().map(|e| format!("{e:#}")).unwrap_or_else(|| "Criterion bench missing".into())
                    );
                }
                (None, Err(e)) => row = row.failed(&e),
            }
            self.push(row);
        }

        // 4c/4d: `audit verify` on the largest trails the bench wrote.
        let large = self.dir.join(format!("run-{}.jsonl", self.sizes.mem_large));
        let jsonl = if large.is_file() { large } else { jsonl_trail };
        for (id, spec, label) in [
            ("4c", format!("jsonl:{}", jsonl.display()), "verify-jsonl"),
            ("4d", format!("sqlite:{}", db.display()), "verify-sqlite"),
        ] {
            let mut row = Row::new(
                id,
                format!(
                    "cxone-uuid audit verify {}",
                    spec.split(':').next().unwrap_or("")
                ),
            );
            row.unit = "events/s";
            row.target = format!("≥ {} events/s", human(VERIFY_EVENTS_MIN));
            row.ratio_unit = "of target";
            row.why = WHY_VERIFY_EVENTS;
            match self.verify(&spec, label) {
                Ok((events, wall)) => {
                    let rate = events as f64 / wall.max(1e-9);
                    self.figure(format!("{label}_events"), Json::Num(events as f64));
                    self.figure(format!("{label}_events_per_s"), Json::Num(rate));
                    row.value = Some(rate);
                    row.anchor = format!("target {} events/s", human(VERIFY_EVENTS_MIN));
                    row.ratio = Some(rate / VERIFY_EVENTS_MIN);
                    row.met = Some(rate >= VERIFY_EVENTS_MIN);
                    row.note = format!(
                        "{events} events, fastest of {BEST_OF} runs, wall time incl. process start"
                    );
                }
                Err(e) => row = row.failed(&e),
            }
            self.push(row);
        }

        // 4e: `audit import` JSONL → SQLite, the CLI's own bulk path into SQLite.
        let mut row = Row::new(
            "4e",
            "cxone-uuid audit import JSONL --db (verifying as it goes)",
        );
        row.unit = "events/s";
        row.target = "— (information)".into();
        let import_db = self.dir.join("import.db");
        remove_trail(&import_db);
        let src = self.dir.join(format!("run-c{c64}.jsonl"));
        let job = self
            .job()
            .args(["audit", "import"])
            .arg(&src)
            .arg("--db")
            .arg(&import_db);
        match measure(
            "audit-import",
            &job,
            Stdout::Capture,
            self.timeout(10.0),
            &self.logs,
        )
        .and_then(|o| count_lines(&src).map(|n| (n, o)))
        {
            Ok((n, o)) => {
                let rate = n as f64 / secs(o.wall).max(1e-9);
                self.figure("audit_import_events_per_s", Json::Num(rate));
                row.value = Some(rate);
                row.anchor = format!("SQLite target {} events/s", human(SQLITE_EVENTS_MIN));
                row.ratio = Some(rate / SQLITE_EVENTS_MIN);
                row.ratio_unit = "of SQLite target";
                row.note = format!("{n} events, wall time incl. process start");
            }
            Err(e) => row = row.failed(&e),
        }
        self.push(row);
    }

    /// `cxone-uuid audit verify SPEC`: (events, wall seconds of the fastest of [`BEST_OF`]
    /// runs). One pass over 150k events takes a fraction of a second, where a neighbour's burst
    /// moves a single run by half.
    fn verify(&self, spec: &str, label: &str) -> Result<(u64, f64)> {
        let job = self.job().args(["audit", "verify", spec]);
        let out = self.best_of(BEST_OF, label, &job, Stdout::Capture, self.timeout(10.0))?;
        let text = out.stdout_text();
        let events = text
            .lines()
            .find_map(|l| l.strip_prefix("ok: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("verify printed no `ok: N events` line: {}", text.trim()))?;
        Ok((events, secs(out.wall)))
    }

    /// Runs the audit crates' Criterion benches (short settings) and returns elements/s by id.
    fn criterion(&self) -> Result<Vec<(String, f64)>> {
        let mut all = Vec::new();
        let mut errors = Vec::new();
        for (pkg, bench) in [
            ("cxone-uuid-audit-jsonl", "jsonl"),
            ("cxone-uuid-audit-sqlite", "sqlite"),
        ] {
            let mut cmd = crate::cargo();
            cmd.args([
                "bench",
                "-p",
                pkg,
                "--bench",
                bench,
                "--",
                "--warm-up-time",
                "1",
                "--measurement-time",
                "2",
            ]);
            match crate::capture(&mut cmd) {
                Ok(out) => all.extend(parse_criterion(&String::from_utf8_lossy(&out))),
                Err(e) => errors.push(format!("{pkg}: {e:#}")),
            }
        }
        if all.is_empty() {
            bail!("no Criterion throughput: {}", errors.join("; "));
        }
        Ok(all)
    }
}

/// `(benchmark id, elements/s)` from Criterion's text output (the middle `thrpt:` estimate).
fn parse_criterion(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            if let Some(first) = line.split_whitespace().next() {
                if first.contains('/') {
                    current = first.to_string();
                }
            }
        }
        if let Some((_, rest)) = line.split_once("thrpt:") {
            let parts: Vec<&str> = rest
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split_whitespace()
                .collect();
            // [low unit mid unit high unit]
            if let (Some(v), Some(unit)) = (
                parts.get(2).and_then(|v| v.parse::<f64>().ok()),
                parts.get(3),
            ) {
                let scale = match unit.trim_end_matches("elem/s") {
                    "" => 1.0,
                    "K" => 1e3,
                    "M" => 1e6,
                    "G" => 1e9,
                    _ => continue,
                };
                if !current.is_empty() {
                    out.push((current.clone(), v * scale));
                }
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_criterion_throughput_with_its_unit() {
        let text = "\
Benchmarking jsonl_sink/append_sync/1024: Warming up for 1.0000 s
jsonl_sink/append_sync/1024
                        time:   [1.6474 ms 1.6683 ms 1.6921 ms]
                        thrpt:  [605.17 Kelem/s 613.79 Kelem/s 621.61 Kelem/s]
sqlite_sink/batch/8192  time:   [40.0 ms 41.0 ms 42.0 ms]
                        thrpt:  [195.1 Kelem/s 1.2000 Melem/s 205.3 Kelem/s]
";
        let got = parse_criterion(text);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "jsonl_sink/append_sync/1024");
        assert!((got[0].1 - 613_790.0).abs() < 1.0);
        assert_eq!(got[1].0, "sqlite_sink/batch/8192");
        assert!((got[1].1 - 1_200_000.0).abs() < 1.0);
    }
}
