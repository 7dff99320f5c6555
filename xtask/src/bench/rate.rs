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
    "elapsed time includes start-up (the first 429 sets the rate from a burst too short to \
    measure, and it takes about a second to climb to the limit) and each later cut, after which \
    the rate is below the limit for a moment";

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

/// One limit shape of rows 3c-3n: the mock's `--limit`, its latency, and the oracle.
struct Shape {
    spec: &'static str,
    latency_ms: u64,
    /// The least time in which a client that knows the limit finishes `n` requests, from the
    /// first admitted request to the last (issue 17), given how long the mock held each
    /// admitted request (seconds, its mean).
    oracle_s: fn(u64, f64) -> f64,
    /// Why a row of this shape can miss, without headers and with them.
    why_none: &'static str,
    why_headers: &'static str,
    /// How long the first quota window lasts from the first request (bucket: until a burst
    /// spent at once is back), after which a client that reads the headers should meet no 429;
    /// `None`: the limit advertises nothing (a concurrency cap), so the headers rows are held
    /// to the no-header share of 429s instead.
    first_window_s: Option<f64>,
}

/// bucket: (N − burst)/R; window: (⌈N/quota⌉ − 1)·width; concurrency: N·latency/K, with the
/// latency the mock's record says it held admitted requests.
const SHAPES: [Shape; 4] = [
    Shape {
        spec: "bucket:40:40",
        latency_ms: 20,
        oracle_s: |n, _| (n as f64 - 40.0).max(0.0) / 40.0,
        why_none: "a refusal takes a round trip to come back: once the burst of 40 is spent, \
            every request then in flight is refused (the window, 8 when slow start ends and \
            a little more by then: 9-10 in trials); the rate's climb from its first estimate \
            and the steps back down to what the bucket accepts add about 4, and AIMD's probes \
            of the rate (ever rarer at one limit) 2-4 more",
        why_headers: "the bucket is paced at its refill rate once the held last request of \
            the first window shows it refills; what is left over the oracle is that hold \
            (37.5 ms) and each reading's age (a reading is a round trip old when it arrives)",
        first_window_s: Some(1.0),
    },
    Shape {
        spec: "window:300/10s",
        latency_ms: 20,
        oracle_s: |n, _| ((n as f64 / 300.0).ceil() - 1.0) * 10.0,
        why_none: "the first window closes on every request then in flight and every one the \
            last successes sent (the window ends slow start at 8 until the quota is known); \
            later windows are met at their openings (learnt from the first refusal's \
            Retry-After) and refuse nothing, a round trip late, the window doubling again \
            within each",
        why_headers: WHY_HEADERS,
        first_window_s: Some(10.0),
    },
    Shape {
        spec: "concurrency:6",
        latency_ms: 50,
        // The latency the mock really held each request: tokio's timer fires on whole
        // milliseconds, so `--latency-ms 50` holds about 51, and a client told the cap
        // (`--concurrency 6`) reached only 0.965 of N·50 ms/K.
        oracle_s: |n, held| n as f64 * held / 6.0,
        why_none: WHY_CONCURRENCY,
        why_headers: WHY_CONCURRENCY_TOLD,
        first_window_s: None,
    },
    Shape {
        spec: "token-window:50/10s",
        latency_ms: 20,
        oracle_s: |n, _| ((n as f64 / 50.0).ceil() - 1.0) * 10.0,
        why_none: "the first window closes on every request then in flight and every one the \
            last successes sent (the window ends slow start at 8 until the quota is known); \
            later windows are met at their openings (learnt from the first refusal's \
            Retry-After) and refuse nothing",
        why_headers: WHY_HEADERS,
        first_window_s: Some(10.0),
    },
];

/// Without headers: this share of the oracle's rate, and at most this share of 429s.
const SHAPE_MIN: f64 = 0.97;
const SHAPE_429_MAX: f64 = 0.02;
/// With quota headers: this share of the oracle.
const HEADERS_MIN: f64 = 0.99;
const WHY_HEADERS: &str =
    "quota resets come in whole seconds (IETF t, X-RateLimit-Reset), rounded up: the client \
    resumes at the earliest reset any answer of the window implies, a little after the true one";
/// The stand-in advertises a concurrency cap as an IETF `concurrent-requests` policy; the X-
/// style has no field for it.
const WHY_CONCURRENCY_TOLD: &str =
    "with IETF headers the cap comes in a concurrent-requests policy with the first answer (no \
    429 at all), but before it the initial window of 4 sends a short first round: 900 take 151 \
    rounds of 6 (150 gaps from the first arrival to the last) where a client told the cap takes \
    150 (149), and the oracle counts 150 holds, so the time from an answer to the next arrival \
    (the stand-in's own parsing and writing, the VM's wake-ups and the client's turn-around) \
    must stay under 0.52 ms for 0.99. In interleaved trials oha at -c 6 left 0.40-0.49 ms (0.997-0.999 of this oracle \
    with its 149 gaps), run --concurrency 6 0.62 ms (0.994-0.995) and auto 0.70 ms \
    (0.987); the X- style has no field for a concurrency cap, so x is found by 429s, as \
    without headers";
/// Without headers the cap is found by refusals.
const WHY_CONCURRENCY: &str =
    "the cap is found by 429s: slow start, paced over the round trip, meets it with a few \
    requests, then one probe above it every second or more (each costs a 429, and that request \
    waits its 1 s Retry-After); bounded as the IETF row is (a short first round, the \
    turn-around): in interleaved trials paced runs reached 0.986-0.989 of the oracle (0.948-0.988 \
    unpaced)";

/// Row ids, three per shape: no headers, IETF, X-.
const SHAPE_IDS: [[&str; 3]; 4] = [
    ["3c", "3d", "3e"],
    ["3f", "3g", "3h"],
    ["3i", "3j", "3k"],
    ["3l", "3m", "3n"],
];

impl Bench {
    /// Rows 3c-3n: `run --rate auto --concurrency auto` against each limit shape and header
    /// style, as a ratio of the oracle's time (first to last admitted request, read from the
    /// mock's record), with the share of requests answered 429.
    pub(super) fn limit_shapes(&mut self) {
        let n = self.sizes.limit_shapes;
        for (shape, ids) in SHAPES.iter().zip(SHAPE_IDS) {
            for (headers, id) in ["none", "ietf", "x"].into_iter().zip(ids) {
                let row = self.limit_shape(id, shape, headers, n);
                self.push(row);
            }
        }
    }

    fn limit_shape(&mut self, id: &'static str, shape: &Shape, headers: &str, n: u64) -> Row {
        let what = format!(
            "run -n {n} --rate auto --concurrency auto, mock --limit {} --limit-headers {headers} \
             --latency-ms {}",
            shape.spec, shape.latency_ms
        );
        let mut row = Row::new(id, what);
        row.unit = "s";
        row.ratio_unit = "of oracle rate";
        let (min, why) = if headers == "none" {
            (SHAPE_MIN, shape.why_none)
        } else {
            (HEADERS_MIN, shape.why_headers)
        };
        // The window after which a client reading the headers should meet no 429; `None`: no
        // headers, or a limit that advertises nothing, held to the 429 share instead.
        let quota_window = if headers == "none" {
            None
        } else {
            shape.first_window_s
        };
        row.target = match quota_window {
            None => format!("≥ {min} of oracle, ≤ {}% 429", SHAPE_429_MAX * 100.0),
            Some(_) => format!("≥ {min} of oracle, no 429 after the first window"),
        };
        row.why = why;
        let nominal = shape.latency_ms as f64 / 1000.0;
        let oracle = (shape.oracle_s)(n, nominal);
        let latency = shape.latency_ms.to_string();
        let mock = match Mock::start(
            &self.bin,
            &[
                "--limit",
                shape.spec,
                "--limit-headers",
                headers,
                "--latency-ms",
                &latency,
            ],
            &self.logs,
            &format!("mock-{id}"),
        ) {
            Ok(m) => m,
            Err(e) => return row.failed(&e),
        };
        let trail = self.dir.join(format!("limits-{id}.jsonl"));
        remove_trail(&trail);
        let got = self.run_against(
            &format!("limits-{id}"),
            &mock,
            n,
            &[
                "--rate",
                "auto",
                "--concurrency",
                "auto",
                "--max-retries",
                "20",
                "--audit",
                &format!("jsonl:{}", trail.display()),
            ],
            oracle.max(1.0) * 2.0,
        );
        let recorded = super::proc::http_get(mock.authority(), "/__mock/recorded");
        drop(mock);
        let (f, rec) = match (got, recorded) {
            (Ok(f), Ok((200, body))) => (f, body),
            (Err(e), _) | (_, Err(e)) => return row.failed(&e),
            (_, Ok((status, _))) => {
                return row.failed(&anyhow::anyhow!("GET /__mock/recorded answered {status}"))
            }
        };
        let Some(Record {
            first,
            last,
            sent,
            held,
            started,
            refused_at,
        }) = admitted_span(&rec)
        else {
            return row.failed(&anyhow::anyhow!(
                "the mock's record has no admitted request"
            ));
        };
        // 429s after the first window, which a client reading the headers should not meet.
        let late = quota_window.map(|w| {
            refused_at
                .iter()
                .filter(|at| **at > started + w * 1000.0)
                .count()
        });
        let measured = (shape.oracle_s)(n, held.unwrap_or(nominal));
        row.anchor = if (measured - oracle).abs() > 1e-9 {
            format!(
                "oracle {} s (mean hold {} ms; {} s at the nominal {} ms)",
                human(measured),
                human(held.unwrap_or(nominal) * 1000.0),
                human(oracle),
                shape.latency_ms
            )
        } else {
            format!("oracle {} s", human(oracle))
        };
        let oracle = measured;
        let span = (last - first) / 1000.0;
        let ratio = if span > 0.0 { oracle / span } else { 1.0 };
        let refused = refused_at.len();
        let share = refused as f64 / sent.max(1) as f64;
        row.value = Some(span);
        row.ratio = Some(ratio);
        row.met = Some(ratio >= min && late.map_or(share <= SHAPE_429_MAX, |l| l == 0));
        let after_first = late.map_or(String::new(), |l| format!(", {l} after the first window"));
        row.note = format!(
            "{} succeeded; {refused} 429s of {sent} requests ({:.2}%{after_first}); final rate \
             {} req/s, concurrency {}",
            f.succeeded,
            share * 100.0,
            f.summary
                .num("limits.rate_rps")
                .map_or("unthrottled".into(), human),
            f.summary.num("limits.concurrency").unwrap_or(f64::NAN)
        );
        self.figure(format!("limits_{id}_summary"), f.summary.clone());
        row
    }
}

/// What the mock's record says about one run.
struct Record {
    /// First and last admitted request's `at_ms`.
    first: f64,
    last: f64,
    /// Requests in all.
    sent: u64,
    /// Mean seconds the admitted requests were held.
    held: Option<f64>,
    /// The first request's `at_ms`, admitted or not (where the mock's windows start).
    started: f64,
    /// Each 429's `at_ms` (their count is the run's 429s).
    refused_at: Vec<f64>,
}

/// Reads the mock's record (`GET /__mock/recorded`); `None` when nothing was admitted.
fn admitted_span(body: &str) -> Option<Record> {
    let rec = super::json::parse(body).ok()?;
    let super::json::Json::Arr(reqs) = rec.get("execute_requests")? else {
        return None;
    };
    let mut first = f64::INFINITY;
    let mut last = f64::NEG_INFINITY;
    let mut started = f64::INFINITY;
    let mut refused_at = Vec::new();
    let (mut held_sum, mut held_n) = (0.0, 0u64);
    for r in reqs {
        let at = r.num("at_ms")?;
        started = started.min(at);
        match r.num("status") {
            Some(s) if (200.0..300.0).contains(&s) => {
                first = first.min(at);
                last = last.max(at);
                if let Some(h) = r.num("held_ms") {
                    held_sum += h;
                    held_n += 1;
                }
            }
            Some(429.0) => refused_at.push(at),
            _ => {}
        }
    }
    let held = (held_n > 0).then(|| held_sum / held_n as f64 / 1000.0);
    first.is_finite().then_some(Record {
        first,
        last,
        sent: reqs.len() as u64,
        held,
        started,
        refused_at,
    })
}
