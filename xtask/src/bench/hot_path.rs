//! Rows 2h–2j: the client's hot path (issue 22). 2h splits the cores: the mock on one, the
//! client on another, and the same split for oha, so the ratio is the client's CPU per request
//! against a load generator's. 2i is row 2c without the audit trail, 2j the same at 256 in
//! flight against 64: more in flight must not be slower (a shared, contended path would be).

use super::proc::Mock;
use super::report::{human, Row};
use super::run::RUN_REPEATS;
use super::tools::Tools;
use super::Bench;

/// Row 2h: `run --audit jsonl` c64 against oha c64, one core each.
const PINNED_MIN: f64 = 0.5;
const WHY_PINNED: &str =
    "the client's own CPU per request (building, sealing and writing the events, the HTTP \
    client, the runtime) is more than twice a load generator's on one core";
/// Row 2i: `run --audit none` c64 against oha c64, sharing the cores with the mock.
const UNAUDITED_MIN: f64 = 0.6;
const WHY_UNAUDITED: &str =
    "the client's CPU per request without the trail: HTTP client, response parsing and \
    checking, registry, flow control, runtime";
/// Row 2j: 256 in flight against 64.
const WIDER_MIN: f64 = 1.0;
const WHY_WIDER: &str = "more in flight costs the client more per request, spread over the \
    whole path with no lock or shared task standing out: the cost per request climbs up to 128 \
    in flight and flattens after, as the in-flight state outgrows the core's cache (README, \
    development); the note gives the load generator's own c256 against c64 on the same mock, \
    which moves with the host, and the client's share once that is taken out";
/// Row 2j's reason when the client's own share is at least one: the slowdown is the mock's.
const WHY_WIDER_MOCK: &str = "the mock answers 256 connections more slowly than 64 whoever \
    sends: the load generator's own c256 against c64 on the same mock (in the note) fell as \
    much or more, so the client's own share, once that is taken out, is at least one";

impl Bench {
    pub(super) fn hot_path(&mut self, tools: &Tools) {
        let (_, n) = self.sizes.e2e[2];
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let run_args = |c: &str, audit: &str| {
            vec![
                "--concurrency".to_string(),
                c.to_string(),
                "--rate".into(),
                "unlimited".into(),
                "--audit".into(),
                audit.to_string(),
            ]
        };

        // 2h: one core for the mock, one for the client (or oha).
        let mut row = Row::new(
            "2h",
            format!("run -n {n} --concurrency 64 --audit jsonl, client on CPU 0, mock on CPU 1"),
        );
        row.unit = "req/s";
        row.target = format!("≥ {PINNED_MIN} of (a)");
        row.ratio_unit = "of oha, same cores";
        row.why = WHY_PINNED;
        if cores < 2 {
            row = row.failed(&anyhow::anyhow!("needs 2 CPUs, this machine has {cores}"));
        } else {
            let trail = self.dir.join("run-pinned.jsonl");
            let audit = format!("jsonl:{}", trail.display());
            let got = Mock::start_on(Some("1"), &self.bin, &[], &self.logs, "mock-pinned")
                .and_then(|mock| {
                    let oha = self.ceiling_on(tools, &mock, n, Some("0"), 64)?;
                    self.pin = Some("0");
                    let args = run_args("64", &audit);
                    let args: Vec<&str> = args.iter().map(String::as_str).collect();
                    let run = self.run_best(
                        "run-pinned",
                        &mock,
                        n,
                        &args,
                        n as f64 / 300.0,
                        Some(&trail),
                        RUN_REPEATS,
                    );
                    self.pin = None;
                    Ok((oha, run?))
                });
            super::runner::remove_trail(&trail);
            match got {
                Ok((oha, f)) => {
                    self.figure("pinned_oha_rps", super::json::Json::Num(oha));
                    self.figure("pinned_run_rps", super::json::Json::Num(f.throughput));
                    row.value = Some(f.throughput);
                    row.anchor = format!(
                        "(a) {} c64 on CPU 0, same mock: {} req/s",
                        tools.load_name(),
                        human(oha)
                    );
                    row.ratio = Some(f.throughput / oha);
                    row.met = Some(f.throughput / oha >= PINNED_MIN);
                    row.note = format!(
                        "client CPU per request ≈ {} µs (one core, run) vs {} µs (oha)",
                        human(1e6 / f.throughput),
                        human(1e6 / oha)
                    );
                }
                Err(e) => row = row.failed(&e),
            }
        }
        self.push(row);

        // 2i and 2j: unpinned, against one mock, best of RUN_REPEATS each.
        let mock = match Mock::start(&self.bin, &[], &self.logs, "mock-hot") {
            Ok(m) => m,
            Err(e) => {
                for id in ["2i", "2j"] {
                    self.push(Row::new(id, "run --audit none").failed(&e));
                }
                return;
            }
        };
        let ceiling = self.figures.iter().find_map(|(k, v)| match v {
            super::json::Json::Num(x) if k == "ceiling_c64_rps" => Some(*x),
            _ => None,
        });
        // The load generator at 256 on the same mock: what 256 in flight costs the mock and the
        // kernel sharing these cores, apart from the client.
        let load_pair = self
            .ceiling_on(tools, &mock, n, None, 64)
            .and_then(|narrow| Ok((narrow, self.ceiling_on(tools, &mock, n, None, 256)?)));
        let mut rps = Vec::new();
        for c in ["64", "256"] {
            let args = run_args(c, "none");
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            rps.push(self.run_best(
                &format!("run-none-c{c}"),
                &mock,
                n,
                &args,
                n as f64 / 500.0,
                None,
                RUN_REPEATS,
            ));
        }
        drop(mock);
        let mut row = Row::new("2i", format!("run -n {n} --concurrency 64 --audit none"));
        row.unit = "req/s";
        row.target = format!("≥ {UNAUDITED_MIN} of (a)");
        row.ratio_unit = "of ceiling";
        row.why = WHY_UNAUDITED;
        match (&rps[0], ceiling) {
            (Ok(f), Some(c)) => {
                row.value = Some(f.throughput);
                row.anchor = format!("(a) as row 2c: {} req/s", human(c));
                row.ratio = Some(f.throughput / c);
                row.met = Some(f.throughput / c >= UNAUDITED_MIN);
            }
            (Ok(f), None) => {
                row.value = Some(f.throughput);
                row.anchor = "(a) unavailable (row 2c's load generator failed)".into();
            }
            (Err(e), _) => row = row.failed(e),
        }
        self.push(row);
        let mut row = Row::new("2j", format!("run -n {n} --concurrency 256 --audit none"));
        row.unit = "req/s";
        row.target = format!("≥ {WIDER_MIN}× row 2i (256 in flight no slower than 64)");
        row.ratio_unit = "of c64";
        row.why = WHY_WIDER;
        match (&rps[1], &rps[0]) {
            (Ok(wide), Ok(narrow)) => {
                row.value = Some(wide.throughput);
                row.anchor = format!("row 2i (c64): {} req/s", human(narrow.throughput));
                row.ratio = Some(wide.throughput / narrow.throughput);
                row.met = Some(wide.throughput / narrow.throughput >= WIDER_MIN);
                match &load_pair {
                    Ok((narrow_load, wide_load)) => {
                        self.figure("ceiling_c256_rps", super::json::Json::Num(*wide_load));
                        let share =
                            (wide.throughput / narrow.throughput) / (wide_load / narrow_load);
                        if share >= WIDER_MIN {
                            row.why = WHY_WIDER_MOCK;
                        }
                        row.note = format!(
                            "{} on the same mock: c256 at {:.3} of its c64 ({} against {} \
                             req/s); the client's own share: {:.3}",
                            tools.load_name(),
                            wide_load / narrow_load,
                            human(*wide_load),
                            human(*narrow_load),
                            share
                        );
                    }
                    Err(e) => row.note = format!("no load generator at c256: {e:#}"),
                }
            }
            (Err(e), _) | (_, Err(e)) => row = row.failed(e),
        }
        self.push(row);
    }
}
