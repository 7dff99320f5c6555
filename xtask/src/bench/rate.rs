//! Rows 3a and 3b: `run --rate auto` against a mock that answers 429 above its limit: how much
//! of the limit it uses, and how few requests it sends into a 429.

use super::proc::Mock;
use super::report::{human, Row};
use super::runner::remove_trail;
use super::Bench;

/// The mock's rate limit in row 3.
const LIMIT_RPS: f64 = 200.0;
/// Row 3a: succeeded requests per second, as a share of the limit.
const GOODPUT_MIN: f64 = 0.95;
/// Why row 3a can miss.
const WHY_GOODPUT: &str =
    "elapsed time includes start-up and the adaptive rate's recovery: after a 429 the \
    rate is cut and climbs back additively, leaving part of the limit unused";

/// Row 3b: the share of requests sent that may be answered 429.
const SHARE_429_MAX: f64 = 0.05;
/// Why row 3b can miss.
const WHY_SHARE_429: &str =
    "the adaptive rate starts unthrottled, so its first burst meets the limit before \
    the first 429 slows it";

impl Bench {
    pub(super) fn goodput(&mut self) {
        let n = self.sizes.goodput;
        let what = format!(
            "run -n {n} --rate auto --concurrency 64, mock --rate-limit 200 --latency-ms 20"
        );
        let limit = LIMIT_RPS.to_string();
        let mock = match Mock::start(
            &self.bin,
            &["--rate-limit", &limit, "--latency-ms", "20"],
            &self.logs,
            "mock-limit",
        ) {
            Ok(m) => m,
            Err(e) => {
                self.push(Row::new("3a", what.clone()).failed(&e));
                self.push(Row::new("3b", what).failed(&e));
                return;
            }
        };
        let trail = self.dir.join("goodput.jsonl");
        remove_trail(&trail);
        let got = self.run_against(
            "goodput",
            &mock,
            n,
            &[
                "--concurrency",
                "64",
                "--rate",
                "auto",
                "--audit",
                &format!("jsonl:{}", trail.display()),
            ],
            n as f64 / LIMIT_RPS,
        );
        drop(mock);
        let mut a = Row::new("3a", what.clone());
        a.unit = "ok req/s";
        a.anchor = format!("the mock's limit: {limit} req/s");
        a.ratio_unit = "of limit";
        a.target = format!("≥ {GOODPUT_MIN} of limit");
        a.why = WHY_GOODPUT;
        let mut b = Row::new("3b", what);
        b.unit = "% 429";
        b.anchor = "requests sent (UUIDs + retries)".into();
        b.target = format!("≤ {}% answered 429", SHARE_429_MAX * 100.0);
        b.why = WHY_SHARE_429;
        match got {
            Ok(f) => {
                let ok_rps = f.succeeded / f.elapsed_s.max(1e-9);
                let limited = f.summary.num("rate_limited").unwrap_or(0.0);
                let sent = f.summary.num("requested").unwrap_or(n as f64)
                    + f.summary.num("retries").unwrap_or(0.0);
                let share = limited / sent.max(1.0);
                self.figure("goodput_summary", f.summary.clone());
                a.value = Some(ok_rps);
                a.ratio = Some(ok_rps / LIMIT_RPS);
                a.met = Some(ok_rps / LIMIT_RPS >= GOODPUT_MIN);
                a.note = format!(
                    "{} succeeded in {} s incl. start-up; {} retries; server latency p50 {} ms, \
                     p99 {} ms; pacer wait p50 {} ms",
                    f.succeeded,
                    human(f.elapsed_s),
                    f.summary.num("retries").unwrap_or(0.0),
                    human(f.summary.num("latency_ms.p50").unwrap_or(f64::NAN)),
                    human(f.summary.num("latency_ms.p99").unwrap_or(f64::NAN)),
                    // Under a rate limit most of a request's time is the client's own pacing.
                    human(f.summary.num("wait_ms.p50").unwrap_or(f64::NAN))
                );
                b.value = Some(share * 100.0);
                b.ratio = Some(share);
                b.ratio_unit = "share";
                b.met = Some(share <= SHARE_429_MAX);
                b.note = format!("{limited} 429s of {sent} requests");
            }
            Err(e) => {
                a = a.failed(&e);
                b = b.failed(&e);
            }
        }
        self.push(a);
        self.push(b);
    }
}
