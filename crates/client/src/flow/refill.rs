//! Quotas that refill between resets (token buckets), told apart from fixed windows by what
//! the quota headers say over time, and paced by their refill rate.
//!
//! A token bucket advertises itself in the same fields as a fixed window: what is left (`r`,
//! `X-RateLimit-Remaining`), the time until it is full again (`t`, `X-RateLimit-Reset`), its
//! size (`q`, `X-RateLimit-Limit`) and the time it takes to fill (`w`). The gate's window model
//! (spend what is left, wait for the reset, read the new window) is exact for a fixed window
//! and never overspends a bucket, but it wastes what the bucket refills while the gate waits:
//! against the stand-in's `bucket:40:40` it reached 0.954 of the oracle, one 40 per 1.05 s
//! (a whole-second reset, then a round trip to read the refilled bucket) instead of 40 per
//! second.
//!
//! The test is exact, so a fixed window is never taken for a bucket. When one request is left
//! in the window and nothing else is unanswered, the gate holds that last request until a
//! bucket refilling at the slowest rate the policy allows (its size over its fill time) would
//! have regained one and a half, then sends it. A fixed window answers that nothing is left; a
//! bucket, that something is. Until the answer says which, this costs a few tens of
//! milliseconds once per run (37.5 ms for `bucket:40:40`, 50 ms for `window:300/10s`, 300 ms
//! for Genesys's 300 a minute), spent within a window that is open anyway; a quota that would
//! need more than [`MAX_HOLD`] to show a refill is not tested and stays on windows.
//!
//! Then the gate paces by a token-bucket model. Each reading `r_i`, received at `t_i`, bounds
//! what is left now from above by `r_i + rate·(now − t_i)` (the server read it before the
//! answer came back, and the bucket holds at most `r_i + 1` then, the field being rounded
//! down); the least of these bounds, capped at the size, less every request still unanswered,
//! is what may leave now. The rate is the size over the fill time (IETF `w`, or for the X-
//! style the longest reset seen), which rounds a bucket's rate down, as its fill time comes in
//! whole seconds. A quota refusal while pacing means the model was wrong for this server (a
//! sliding window also reads as replenishing, but frees its quota only as old requests age
//! out): the gate goes back to the window model for the rest of the run.
//!
//! Hand-written: the rate-limiting crates (`governor`, `leaky-bucket`) pace by a rate the
//! caller knows; none estimates a server's bucket from what it reports.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::quota::Quota;

/// One answer's count of what is left.
#[derive(Debug, Clone, Copy)]
struct Reading {
    /// Its index among the gate's readings.
    seq: u64,
    left: u64,
    at: Instant,
}

/// The longest a window's last request is held to tell a bucket from a window. A hold costs
/// nothing while the window would stay closed anyway, but a run whose last request is the held
/// one ends that much later; a quota slower than this proves nothing and stays on windows.
pub(super) const MAX_HOLD: Duration = Duration::from_secs(1);

/// How long to hold a window's last request: half as long again as the slowest refill the
/// policy allows (`limit` per `fill`, the fill time rounded up to whole seconds) takes to
/// regain one request, counted from when the reading that left one came back. `None`: no
/// size, or a hold longer than [`MAX_HOLD`].
pub(super) fn hold_until(limit: u64, fill: Duration, read_at: Instant) -> Option<Instant> {
    let hold = Duration::from_secs_f64(1.5 / fill_rate(limit.max(1) as f64, fill));
    (limit > 0 && hold <= MAX_HOLD).then_some(read_at + hold)
}

/// The rate of a bucket of `size` that fills in `fill` (at least a second: fill times come in
/// whole seconds, rounded up, so this is never above the true rate).
fn fill_rate(size: f64, fill: Duration) -> f64 {
    size / fill.as_secs_f64().max(1.0)
}

/// What the held request's answer proves, read as the gate's `seq`-th: a refill if it shows
/// any quota left (the model to pace by), a window that resets at once if it shows none.
pub(super) fn probe(
    limit: u64,
    fill: Duration,
    q: &Quota,
    seq: u64,
    now: Instant,
) -> Option<Refill> {
    (q.remaining > 0).then(|| {
        let mut refill = Refill {
            per_sec: fill_rate(limit as f64, fill),
            limit: limit as f64,
            readings: VecDeque::new(),
        };
        refill.read(q, seq, seq, now);
        refill
    })
}

/// A token-bucket model of the server's quota, kept from its readings.
///
/// Each reading `r`, received at `t`, bounds what is left now by `r + rate·(now − t)` less the
/// requests counted after it. The reading counted last among those answered has no such
/// requests but those still unanswered, so the least bound, less everything unanswered, never
/// overspends. A reading is dropped once the answer to a request sent after it came back (that
/// request was counted after it): what is kept are the readings that may still be the last
/// counted, at most about one per request in flight. Every answer brings a reading, so the
/// gate spends what the server last counted rather than what the assumed rate predicts: a
/// bucket refilling faster than its whole-second fill time suggests is met at its true rate
/// (the simulated 20 regaining 50/s, with 20/s assumed, at 0.998 of its oracle). Dropping
/// superseded readings matters when the count rises faster than assumed (after an idle
/// spell): an older, lower reading would otherwise hold the gate back for up to size/rate.
#[derive(Debug, Clone)]
pub(super) struct Refill {
    /// Requests the bucket regains per second.
    per_sec: f64,
    /// Its size.
    limit: f64,
    /// The readings that may be the last the server counted, oldest first.
    readings: VecDeque<Reading>,
}

impl Refill {
    /// The refill rate, for the run's summary.
    pub(super) fn per_sec(&self) -> f64 {
        self.per_sec
    }

    fn left(&self, now: Instant) -> f64 {
        self.readings
            .iter()
            .map(|r| {
                let since = now.saturating_duration_since(r.at).as_secs_f64();
                r.left as f64 + self.per_sec * since
            })
            .fold(self.limit, f64::min)
    }

    /// Takes one reading, the gate's `seq`-th, answering a request sent when the gate had taken
    /// `sent_seq`. A reset longer than the fill time assumed so far (a bucket drained further
    /// than before) lowers the rate.
    pub(super) fn read(&mut self, q: &Quota, sent_seq: u64, seq: u64, now: Instant) {
        if let Some(reset) = q.reset.filter(|r| !r.is_zero()) {
            self.per_sec = self.per_sec.min(fill_rate(self.limit, reset));
        }
        while self.readings.front().is_some_and(|r| r.seq <= sent_seq) {
            self.readings.pop_front();
        }
        self.readings.push_back(Reading {
            seq,
            left: q.remaining,
            at: now,
        });
    }

    /// Whether one more request may leave with `unanswered` out, or until when to wait.
    pub(super) fn admit(&self, unanswered: u64, now: Instant) -> Result<(), Instant> {
        let short = unanswered as f64 + 1.0 - self.left(now);
        if short <= 0.0 {
            return Ok(());
        }
        let wait = Duration::from_secs_f64((short / self.per_sec).clamp(0.001, 3600.0));
        Err(now + wait)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::quota::QuotaStyle;

    fn reading(remaining: u64, reset: u64) -> Quota {
        Quota {
            remaining,
            reset: Some(Duration::from_secs(reset)),
            limit: Some(40),
            window: Some(Duration::from_secs(1)),
            policy: None,
            style: QuotaStyle::Ietf,
        }
    }

    /// The last request of a window is held once, and its answer tells a bucket (something
    /// left) from a window that resets at once (nothing); after a window, no more holds.
    #[test]
    fn the_last_request_is_held_once_to_tell_a_bucket_from_a_window() {
        use super::super::gate::Gate;
        let t0 = Instant::now();
        let ms = Duration::from_millis(1);
        for (answer, refill) in [(0, None), (1, Some(40.0))] {
            let g = Gate::new();
            let p = g.try_acquire(t0).unwrap();
            g.observe(p, Some(200), None, Some(&reading(1, 1)), t0);
            // A bucket of 40 filling in 1 s regains 1.5 in 37.5 ms.
            assert_eq!(g.try_acquire(t0).unwrap_err(), t0 + 37 * ms + ms / 2);
            let probe = g.try_acquire(t0 + 38 * ms).unwrap();
            g.observe(
                probe,
                Some(200),
                None,
                Some(&reading(answer, 1)),
                t0 + 58 * ms,
            );
            assert_eq!(g.advertised().unwrap().refill_per_s, refill);
            if refill.is_none() {
                // A window: after its reset, the last one leaves at once.
                let t1 = t0 + Duration::from_secs(2);
                let reader = g.try_acquire(t1).unwrap();
                g.observe(reader, Some(200), None, Some(&reading(1, 1)), t1);
                assert!(g.try_acquire(t1).is_ok());
            }
        }
        assert_eq!(hold_until(0, Duration::from_secs(1), t0), None);
        // 10 an hour: proving a refill would take 9 minutes.
        assert_eq!(hold_until(10, Duration::from_secs(3600), t0), None);
        assert_eq!(
            hold_until(300, Duration::from_secs(10), t0),
            Some(t0 + 50 * ms)
        );
    }

    #[test]
    fn newer_readings_lead_and_a_longer_reset_lowers_the_rate() {
        let t0 = Instant::now();
        let mut r = Refill {
            per_sec: 40.0,
            limit: 40.0,
            readings: VecDeque::new(),
        };
        r.read(&reading(0, 1), 0, 1, t0);
        // Out of order: an answer counted earlier (sent before reading 1 came back) shows more
        // left; the least bound holds.
        r.read(&reading(5, 1), 0, 2, t0);
        let t1 = t0 + Duration::from_millis(100);
        assert!(r.admit(3, t1).is_ok());
        assert!(r.admit(4, t1).is_err());
        // A request sent after both came back shows 20 left: the bucket refills faster than
        // assumed, and its count leads.
        r.read(&reading(20, 1), 2, 3, t1);
        assert!(r.admit(19, t1).is_ok());
        assert!(r.admit(20, t1).is_err());
        // A reset of 4 s: 40 in 4 s is 10/s.
        let mut full = reading(40, 4);
        full.window = None;
        r.read(&full, 3, 4, t1);
        assert_eq!(r.per_sec(), 10.0);
        assert!(r.admit(39, t1).is_ok());
        let until = r.admit(40, t1).unwrap_err();
        assert_eq!(until - t1, Duration::from_millis(100));
    }

    /// The stand-in's two shapes, served by a simulated server on explicit instants (1 ms
    /// steps, 20 ms of latency, a slow start up to 64 in flight), through the whole gate.
    enum Server {
        Bucket {
            tokens: f64,
            rate: f64,
            size: f64,
            at: f64,
        },
        Window {
            quota: u64,
            width: f64,
            start: Option<f64>,
            count: u64,
        },
    }

    impl Server {
        /// Admits one request at `t` seconds, or refuses it; the quota headers after it.
        fn admit(&mut self, t: f64) -> (bool, Quota) {
            let mut q = reading(0, 1);
            let ok = match self {
                Server::Bucket {
                    tokens,
                    rate,
                    size,
                    at,
                } => {
                    *tokens = (*tokens + (t - *at) * *rate).min(*size);
                    *at = t;
                    let ok = *tokens >= 1.0;
                    if ok {
                        *tokens -= 1.0;
                    }
                    q.remaining = tokens.floor() as u64;
                    q.reset = Some(Duration::from_secs(
                        ((*size - *tokens) / *rate).ceil() as u64
                    ));
                    q.limit = Some(*size as u64);
                    q.window = Some(Duration::from_secs((*size / *rate).ceil().max(1.0) as u64));
                    ok
                }
                Server::Window {
                    quota,
                    width,
                    start,
                    count,
                } => {
                    let s = start.get_or_insert(t);
                    if t >= *s + *width {
                        *s += ((t - *s) / *width).floor() * *width;
                        *count = 0;
                    }
                    let ok = *count < *quota;
                    if ok {
                        *count += 1;
                    }
                    q.remaining = *quota - *count;
                    q.reset = Some(Duration::from_secs((*s + *width - t).ceil() as u64));
                    q.limit = Some(*quota);
                    q.window = Some(Duration::from_secs_f64(*width));
                    ok
                }
            };
            (ok, q)
        }
    }

    /// Sends `n` requests; returns (seconds from the first admitted to the last, refusals
    /// after the first second, the gate's refill rate).
    fn serve(mut server: Server, n: u64) -> (f64, u64, Option<f64>) {
        use super::super::gate::Gate;
        let gate = Gate::new();
        let t0 = Instant::now();
        let mut in_flight: Vec<(u64, super::super::gate::Pass, bool, Quota)> = Vec::new();
        let (mut done, mut first, mut last, mut late) = (0u64, None, 0.0, 0u64);
        // Slow start, as the concurrency window's: 4, then one more per success, up to 64.
        let mut cap = 4u64;
        for ms in 0..600_000u64 {
            let now = t0 + Duration::from_millis(ms);
            let t = ms as f64 / 1000.0;
            let (answered, rest): (Vec<_>, Vec<_>) =
                in_flight.drain(..).partition(|(due, ..)| *due <= ms);
            in_flight = rest;
            for (_, pass, ok, q) in answered {
                let (status, ra) = if ok {
                    (200, None)
                } else {
                    (429, Some(Duration::from_secs(1)))
                };
                gate.observe(pass, Some(status), ra, Some(&q), now);
                if ok {
                    done += 1;
                    cap = (cap + 1).min(64);
                }
            }
            if done >= n {
                break;
            }
            let wanted = n - done - in_flight.len() as u64;
            for _ in 0..wanted.min(cap.saturating_sub(in_flight.len() as u64)) {
                let Ok(pass) = gate.try_acquire(now) else {
                    break;
                };
                let (ok, q) = server.admit(t);
                if ok {
                    first.get_or_insert(t);
                    last = t;
                } else if t > 1.0 {
                    late += 1;
                }
                in_flight.push((ms + 20, pass, ok, q));
            }
        }
        let refill = gate.advertised().and_then(|a| a.refill_per_s);
        (last - first.unwrap_or(0.0), late, refill)
    }

    #[test]
    fn a_bucket_is_paced_at_its_rate_and_a_window_spent_and_waited_for() {
        // 40 regaining 40/s, met at its rate; 20 regaining 50/s advertises a fill time of 1 s
        // (whole seconds): 20/s is assumed, and its readings, showing more each time, lead the
        // gate to its true rate.
        for (size, rate, assumed, least) in [(40.0, 40.0, 40.0, 0.99), (20.0, 50.0, 20.0, 0.95)] {
            let bucket = Server::Bucket {
                tokens: size,
                rate,
                size,
                at: 0.0,
            };
            let (span, late, refill) = serve(bucket, 900);
            let oracle = (900.0 - size) / rate;
            assert_eq!(refill, Some(assumed));
            assert_eq!(late, 0, "no refusal once the bucket is known");
            assert!(
                oracle / span >= least,
                "{span} s against the oracle's {oracle} s"
            );
        }

        let window = Server::Window {
            quota: 300,
            width: 10.0,
            start: None,
            count: 0,
        };
        let (span, late, refill) = serve(window, 900);
        assert_eq!(refill, None, "a fixed window is never taken for a bucket");
        assert_eq!(late, 0);
        assert!(span <= 20.3, "{span} s: each window spent as it opens");
    }

    /// Pacing by a refill that meets a quota refusal goes back to windows for good.
    #[test]
    fn a_quota_refusal_while_pacing_goes_back_to_windows() {
        use super::super::gate::{Gate, Verdict};
        let g = Gate::new();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(40);
        let p = g.try_acquire(t0).unwrap();
        g.observe(p, Some(200), None, Some(&reading(1, 1)), t0);
        let probe = g.try_acquire(t1).unwrap();
        g.observe(probe, Some(200), None, Some(&reading(1, 1)), t1);
        assert_eq!(g.advertised().unwrap().refill_per_s, Some(40.0));
        let p = g.try_acquire(t1).unwrap();
        let v = g.observe(
            p,
            Some(429),
            Some(Duration::from_secs(2)),
            Some(&reading(0, 1)),
            t1,
        );
        assert_eq!(v, Verdict::QuotaRefusal);
        assert_eq!(g.advertised().unwrap().refill_per_s, None);
        assert_eq!(g.try_acquire(t1).unwrap_err(), t1 + Duration::from_secs(2));
        // After it, one reader, then windows: the last request is not held again.
        let t2 = t1 + Duration::from_secs(2);
        let reader = g.try_acquire(t2).unwrap();
        assert!(g.try_acquire(t2).is_err());
        g.observe(reader, Some(200), None, Some(&reading(1, 1)), t2);
        let last = g.try_acquire(t2).unwrap();
        g.observe(last, Some(200), None, Some(&reading(1, 1)), t2);
        assert_eq!(g.advertised().unwrap().refill_per_s, None);
    }
}
