//! Row 5b: how `run`'s peak memory grows with n, against the registry's own share (row 5a).

use super::generate::REGISTRY_BYTES_MAX;
use super::json::Json;
use super::proc::Mock;
use super::report::{human, Row};
use super::runner::{remove_trail, RunFigures};
use super::Bench;

/// Allocator slack on top of the registry's share when `run` grows with n: a per-UUID list of
/// latencies (8–16 B) or of events (hundreds) would exceed it, a histogram does not.
const RUN_GROWTH_SLACK: f64 = 8.0;
/// Why row 5b can miss.
const WHY_RUN_GROWTH: &str =
    "growth beyond the registry's share means per-UUID state is kept (a list of \
    latencies, events or errors)";

impl Bench {
    pub(super) fn memory_run(&mut self, small: Option<(u64, RunFigures)>) {
        let large_n = self.sizes.mem_large;
        let what = format!(
            "peak RSS growth of run -n {large_n} over run -n {}",
            self.sizes.e2e[2].1
        );
        let mut row = Row::new("5b", what);
        row.unit = "B/extra UUID";
        let Some((small_n, small)) = small else {
            self.push(row.failed(&anyhow::anyhow!(
                "the c64 run (row 2c) failed: no small-n point"
            )));
            return;
        };
        let mock = match Mock::start(&self.bin, &[], &self.logs, "mock-memory") {
            Ok(m) => m,
            Err(e) => {
                self.push(row.failed(&e));
                return;
            }
        };
        let trail = self.dir.join(format!("run-{large_n}.jsonl"));
        remove_trail(&trail);
        let got = self.run_against(
            "run-large",
            &mock,
            large_n,
            &[
                "--concurrency",
                "64",
                "--rate",
                "unlimited",
                "--audit",
                &format!("jsonl:{}", trail.display()),
            ],
            large_n as f64 / 500.0,
        );
        drop(mock);
        let registry = self
            .figures
            .iter()
            .find(|(k, _)| k == "generate_bytes_per_uuid")
            .and_then(|(_, v)| if let Json::Num(n) = v { Some(*n) } else { None })
            .unwrap_or(REGISTRY_BYTES_MAX);
        let limit = registry + RUN_GROWTH_SLACK;
        row.target = format!(
            "≤ registry share (row 5a) + {RUN_GROWTH_SLACK} B = {} B",
            human(limit)
        );
        row.why = WHY_RUN_GROWTH;
        match (got, small.peak_rss_kib) {
            (Ok(large), Some(s)) => match large.peak_rss_kib {
                Some(l) => {
                    let growth = (l as f64 - s as f64) * 1024.0 / (large_n - small_n) as f64;
                    self.figure("run_large_rps", Json::Num(large.throughput));
                    self.figure("run_small_peak_rss_kib", Json::Num(s as f64));
                    self.figure("run_large_peak_rss_kib", Json::Num(l as f64));
                    self.figure("run_growth_bytes_per_uuid", Json::Num(growth));
                    row.value = Some(growth);
                    row.anchor = format!(
                        "peak {} MiB at n={large_n} vs {} MiB at n={small_n}",
                        human(l as f64 / 1024.0),
                        human(s as f64 / 1024.0)
                    );
                    if self.opts.quick {
                        // A few MiB between quick sizes is allocator noise, not a trend.
                        row.note = "--quick: n too small to judge growth; see a full run".into();
                    } else {
                        row.met = Some(growth <= limit);
                    }
                }
                None => row = row.failed(&anyhow::anyhow!("peak RSS not available")),
            },
            (Err(e), _) => row = row.failed(&e),
            (_, None) => row = row.failed(&anyhow::anyhow!("peak RSS not available")),
        }
        self.push(row);
    }
}
