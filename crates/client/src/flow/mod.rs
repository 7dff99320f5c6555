//! Flow control: everything that decides *when* a request may leave, in one place.
//!
//! Three independent limits, each for one shape of server limit, taken in this order before
//! every attempt:
//! 1. the concurrency window ([`window`], `--concurrency auto`; a fixed `--concurrency` is the
//!    caller's semaphore and the window is then off): requests in flight;
//! 2. the quota gate ([`gate`]): what the server's quota headers say is left before the reset;
//! 3. the rate limiter ([`crate::rate`]): a fixed rate, or AIMD on 429s that carried no quota
//!    headers (a server that says nothing is learnt from its refusals).
//!
//! Each answer is read once ([`Flow::on_answer`]) and routed: quota headers feed the gate; a
//! `concurrent-requests` policy caps the window at what the server says it takes; a 429
//! the gate calls a quota refusal waits for the reset and cuts nothing; a 429 while quota is
//! left, one naming a concurrency limit (Genesys's `actions.concurrent.executions.max`), or one
//! whose headers list a `concurrent-requests` policy and no quota (the server's only limit)
//! cuts the window; a bare 429 asking for more than [`Aimd::GLOBAL_PAUSE`](crate::rate::Aimd)
//! is a window spent, which holds everyone and cuts nothing; any other bare 429 cuts the window
//! when its request was sent with more in flight than any success since the last cut, moves
//! nothing when it was sent with one fewer (the client's count runs ahead of the server's, so
//! that can still be a cap's), and slows the rate otherwise.

pub mod gate;
mod refill;
pub mod window;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::quota::Quota;
use crate::rate::{RateLimiter, RateSpec, Ticket};

pub use gate::{Advertised, Gate, Verdict};
pub use window::{Signal, Window};

/// What the client learned about the server's limits, for the run's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The rate as configured (`auto`, `unlimited`, `300/min`).
    pub rate: RateSpec,
    /// The pace in requests/s at the end: the fixed rate, or the adaptive target once a 429
    /// set one (`None`: never throttled).
    pub rate_rps: Option<f64>,
    /// Requests in flight allowed at the end (the adaptive window, or the fixed number).
    pub concurrency: usize,
    /// Whether the concurrency adapted.
    pub adaptive_concurrency: bool,
    /// The quota policy the server advertised in its headers, if any.
    pub advertised: Option<Advertised>,
    /// Requests in flight the server said it takes (an IETF `concurrent-requests` policy).
    pub advertised_concurrency: Option<usize>,
}

/// How many requests of the run are still to be sent for the first time, when the caller
/// said how many it will send.
///
/// Probing for more (a window one above a confirmed cap, a rate a little above the last cut)
/// pays off over the rest of a run, but a refused probe's request waits out its Retry-After
/// (whole seconds, at least one). Near the end there is no rest of the run to gain in, and a
/// refusal there is the run's last answer, a second late: measured against the stand-in's
/// `concurrency:6`, a probe in the last second made that whole 7.5 s run 13% longer. So both
/// stop probing once what is left would be sent within [`Backlog::ENDGAME`].
#[derive(Debug, Clone)]
pub struct Backlog(Arc<AtomicU64>);

impl Default for Backlog {
    fn default() -> Self {
        Backlog(Arc::new(AtomicU64::new(u64::MAX)))
    }
}

impl Backlog {
    /// Twice the shortest wait a refusal asks for (a Retry-After of one second).
    pub const ENDGAME: Duration = Duration::from_secs(2);

    /// The run will send `n` requests.
    pub fn expect(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    /// One of them left for the first time.
    pub fn sent_one(&self) {
        let _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                (v != u64::MAX).then(|| v.saturating_sub(1))
            });
    }

    /// Requests still to send, `None` when unknown.
    fn left(&self) -> Option<u64> {
        Some(self.0.load(Ordering::Relaxed)).filter(|v| *v != u64::MAX)
    }

    /// Whether what is left goes out within [`Backlog::ENDGAME`] at `per_second`.
    pub fn ending(&self, per_second: f64) -> bool {
        self.left()
            .is_some_and(|n| (n as f64) < per_second * Self::ENDGAME.as_secs_f64())
    }
}

/// The flow control of one client.
#[derive(Debug)]
pub struct Flow {
    spec: RateSpec,
    rate: RateLimiter,
    gate: Gate,
    window: Option<Window>,
    concurrency: usize,
    backlog: Backlog,
    /// The last `concurrent-requests` quota read (0: none yet).
    told_concurrency: AtomicUsize,
}

/// Permission for one attempt; hand it back with [`Flow::on_answer`] or [`Flow::on_no_answer`].
#[derive(Debug)]
pub struct Permit<'a> {
    slot: Option<window::Slot<'a>>,
    pass: gate::Pass,
    ticket: Ticket,
    /// When the request was let go: the time before it was spent waiting on the limits.
    pub granted_at: Instant,
}

/// What an answer said, as far as flow control cares.
#[derive(Debug, Clone, Copy)]
pub struct AnswerInfo<'q> {
    /// HTTP status.
    pub status: u16,
    /// Parsed Retry-After.
    pub retry_after: Option<Duration>,
    /// Quota headers.
    pub quota: Option<&'q Quota>,
    /// The refusing limit names a concurrency limit (Genesys's ErrorBody `limit`).
    pub concurrency_limit: bool,
    /// Requests in flight the server says it takes (an IETF `concurrent-requests` policy).
    pub concurrency_cap: Option<u64>,
}

impl Flow {
    /// Builds the flow control; `adaptive` turns the window on, up to `concurrency`.
    pub fn new(spec: RateSpec, rate: RateLimiter, concurrency: usize, adaptive: bool) -> Self {
        let backlog = Backlog::default();
        Flow {
            spec,
            rate: rate.with_backlog(backlog.clone()),
            gate: Gate::new(),
            window: adaptive.then(|| Window::new(concurrency).with_backlog(backlog.clone())),
            concurrency,
            backlog,
            told_concurrency: AtomicUsize::new(0),
        }
    }

    /// The caller will send `n` requests in all (first attempts): the end of the run is then
    /// known, and probing stops near it (see [`Backlog`]).
    pub fn expect(&self, n: u64) {
        self.backlog.expect(n);
    }

    /// A request left for the first time (not a retry).
    pub fn first_sent(&self) {
        self.backlog.sent_one();
    }

    /// Waits for the window, the quota and the rate, in that order.
    pub async fn acquire(&self) -> Permit<'_> {
        let mut slot = match &self.window {
            Some(w) => Some(w.acquire().await),
            None => None,
        };
        let pass = self.gate.acquire().await;
        let ticket = self.rate.acquire().await;
        if let Some(s) = slot.as_mut() {
            s.sending_now();
        }
        Permit {
            slot,
            pass,
            ticket,
            granted_at: Instant::now(),
        }
    }

    /// Reads an answer and routes what it says (see the module doc).
    pub fn on_answer(&self, permit: Permit<'_>, answer: AnswerInfo<'_>) {
        let Permit {
            slot, pass, ticket, ..
        } = permit;
        let verdict = self.gate.observe(
            pass,
            Some(answer.status),
            answer.retry_after,
            answer.quota,
            Instant::now(),
        );
        let refused = answer.status == 429;
        // Read only for a refusal: each takes the window's lock, and most answers are not.
        let crowded = refused && slot.as_ref().is_some_and(window::Slot::beyond_ok_peak);
        // Refused one below the window's peak: the window's or the rate's, nothing says which
        // (see `Slot::just_below_peak`); the request waits its Retry-After and neither moves.
        let unclear =
            refused && !crowded && slot.as_ref().is_some_and(window::Slot::just_below_peak);
        // A bare refusal that asks everyone to wait (a fixed window spent) is neither a
        // concurrency cap, which frees a place as soon as any request in flight is answered,
        // nor a pace: cutting for it left a window:300/10s run sending its last window at
        // a fifth of the concurrency it had reached.
        let pause =
            verdict == Verdict::NoQuota && crate::rate::Aimd::holds_everyone(answer.retry_after);
        let signal = match (refused, verdict) {
            (false, _) => Signal::Success,
            (true, _) if answer.concurrency_limit => Signal::Drop,
            (true, Verdict::OtherRefusal) => Signal::Drop,
            (true, Verdict::QuotaRefusal) => Signal::Ignore,
            // Headers that list a concurrent-requests policy and no quota name the cap as the
            // only limit the server says it has, so its 429 is taken as the cap's even below
            // the count a success was sent at: the cap is shared with other clients.
            (true, Verdict::NoQuota) if answer.concurrency_cap.is_some() => Signal::Drop,
            (true, _) if pause => Signal::Ignore,
            (true, _) if crowded => Signal::Drop,
            (true, _) => Signal::Ignore,
        };
        if !refused {
            self.rate.on_success(ticket);
        } else if verdict == Verdict::NoQuota && signal != Signal::Drop && !pause && !unclear {
            // A bare 429 that does not look like concurrency: the rate's.
            self.rate.on_throttled(ticket, answer.retry_after);
        } else {
            // Cut for concurrency, or a quota refusal: whatever else it means, a long
            // Retry-After holds every sender (a fixed window without headers says when it
            // reopens only this way).
            self.rate.hold(answer.retry_after);
        }
        if let Some(cap) = answer.concurrency_cap {
            let cap = usize::try_from(cap).unwrap_or(usize::MAX);
            self.told_concurrency.store(cap, Ordering::Relaxed);
            if let Some(w) = &self.window {
                w.server_cap(cap);
            }
        }
        if let (Some(w), Some(slot)) = (&self.window, slot) {
            // A fixed window without headers that has shown its quota is now kept to it by the
            // rate limiter's period, as the gate keeps a told one: read only at such a pause.
            if answer.quota.is_some() || (pause && self.rate.quota_learned()) {
                w.quota_told();
            }
            w.release(slot, signal);
        }
    }

    /// A request that got no answer: frees its place, learns nothing.
    pub fn on_no_answer(&self, permit: Permit<'_>) {
        self.gate.forget(permit.pass);
        self.rate.on_no_answer();
        // The slot, if any, is released as it drops.
    }

    /// The adaptive rate target, `None` while unthrottled or not adaptive.
    pub fn rate_target(&self) -> Option<f64> {
        self.rate.target()
    }

    /// What was learned so far.
    pub fn limits(&self) -> Limits {
        Limits {
            rate: self.spec,
            rate_rps: match self.spec {
                RateSpec::Fixed(r) => Some(r.as_per_second()),
                _ => self.rate.target(),
            },
            concurrency: self.window.as_ref().map_or(self.concurrency, Window::limit),
            adaptive_concurrency: self.window.is_some(),
            advertised: self.gate.advertised(),
            advertised_concurrency: Some(self.told_concurrency.load(Ordering::Relaxed))
                .filter(|c| *c > 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(
        status: u16,
        retry_after: Option<Duration>,
        concurrency_limit: bool,
    ) -> AnswerInfo<'static> {
        AnswerInfo {
            status,
            retry_after,
            quota: None,
            concurrency_limit,
            concurrency_cap: None,
        }
    }

    /// A 429 the window takes as a concurrency cut still holds every sender for a long
    /// Retry-After: Retry-After wins over every other reading.
    #[tokio::test(start_paused = true)]
    async fn a_long_retry_after_holds_everyone_even_when_the_window_takes_the_cut() {
        let flow = Flow::new(RateSpec::Auto, RateLimiter::new(RateSpec::Auto), 8, true);
        let first = flow.acquire().await;
        flow.on_answer(first, answer(200, None, false));
        let (a, b) = (flow.acquire().await, flow.acquire().await);
        let t0 = Instant::now();
        flow.on_answer(b, answer(429, Some(Duration::from_secs(5)), true));
        flow.on_answer(a, answer(200, None, false));
        let _next = flow.acquire().await;
        assert!(Instant::now() >= t0 + Duration::from_secs(5), "held");
        assert_eq!(flow.rate_target(), None, "the rate was not cut");

        // A short one is the refused request's alone.
        let flow = Flow::new(RateSpec::Auto, RateLimiter::new(RateSpec::Auto), 8, true);
        let (a, b) = (flow.acquire().await, flow.acquire().await);
        let t0 = Instant::now();
        flow.on_answer(b, answer(429, Some(Duration::from_secs(1)), true));
        flow.on_answer(a, answer(200, None, false));
        let _next = flow.acquire().await;
        assert_eq!(Instant::now(), t0, "not held");
    }

    /// A server that lists only a concurrent-requests policy has no other limit to refuse for:
    /// a 429 sent with fewer in flight than a success was (another client took places under a
    /// shared cap) cuts the window, and the rate is left alone. Taken for a rate's, it set the
    /// pace to 10 requests a second.
    #[tokio::test(start_paused = true)]
    async fn a_told_cap_is_the_only_limit_a_refusal_below_it_can_be() {
        let flow = Flow::new(RateSpec::Auto, RateLimiter::new(RateSpec::Auto), 64, true);
        let told = |status| AnswerInfo {
            concurrency_cap: Some(6),
            ..answer(status, Some(Duration::from_secs(1)), false)
        };
        let first = flow.acquire().await;
        flow.on_answer(first, told(200));
        let mut round = Vec::new();
        for _ in 0..6 {
            round.push(flow.acquire().await);
        }
        for p in round {
            flow.on_answer(p, told(200));
        }
        assert_eq!(flow.limits().concurrency, 6, "at the told cap");
        // Two in flight, the second refused: below the six a success was sent with.
        let a = flow.acquire().await;
        let b = flow.acquire().await;
        flow.on_answer(b, told(429));
        flow.on_answer(a, told(200));
        assert!(flow.limits().concurrency < 6, "{:?}", flow.limits());
        assert_eq!(flow.rate_target(), None, "the rate was not cut");
    }

    /// A bare refusal one below the most in flight a success was sent with is neither the
    /// window's nor the rate's: the client's count runs ahead of the server's, so it may be a
    /// concurrency cap's, and taken for a rate's it paced a run held by a cap of 6 at what
    /// the window sent. Two below, it is the rate's, as before.
    #[tokio::test(start_paused = true)]
    async fn a_refusal_just_below_the_peak_moves_neither_the_window_nor_the_rate() {
        let flow = Flow::new(RateSpec::Auto, RateLimiter::new(RateSpec::Auto), 64, true);
        let one_second = Some(Duration::from_secs(1));
        // Slow start's first refusal ends it: the window is cut to 3.
        let mut first = Vec::new();
        for _ in 0..3 {
            first.push(flow.acquire().await);
        }
        let last = flow.acquire().await;
        flow.on_answer(last, answer(429, one_second, false));
        for p in first {
            flow.on_answer(p, answer(200, None, false));
        }
        assert_eq!(flow.limits().concurrency, 3);
        assert_eq!(flow.rate_target(), None);
        // Sent with 1, 2 and 3 on the wire; the third succeeds (the peak is 3).
        let (x, y, z) = (
            flow.acquire().await,
            flow.acquire().await,
            flow.acquire().await,
        );
        flow.on_answer(z, answer(200, None, false));
        flow.on_answer(y, answer(429, one_second, false));
        assert_eq!(flow.limits().concurrency, 3, "the window was not cut");
        assert_eq!(flow.rate_target(), None, "the rate was not set");
        flow.on_answer(x, answer(429, one_second, false));
        assert!(
            flow.rate_target().is_some(),
            "two below the peak: the rate's"
        );
        assert_eq!(flow.limits().concurrency, 3);
    }

    /// A fixed window without headers that has shown its quota is kept to it by the rate
    /// limiter's period, as a told quota is by the gate: the window's slow start, which ended
    /// early for fear of a quota spent in one round, goes on. Against the stand-in's
    /// `window:300/10s` the last window's 300 went out 16 at a time without it.
    #[tokio::test(start_paused = true)]
    async fn a_learned_window_quota_lets_slow_start_go_on() {
        let flow = Flow::new(RateSpec::Auto, RateLimiter::new(RateSpec::Auto), 64, true);
        let round = |n: usize| {
            let flow = &flow;
            async move {
                let mut permits = Vec::new();
                for _ in 0..n {
                    permits.push(flow.acquire().await);
                }
                tokio::time::advance(Duration::from_millis(20)).await;
                for p in permits {
                    flow.on_answer(p, answer(200, None, false));
                }
            }
        };
        let end = window::Window::SLOW_START_END as usize;
        while flow.limits().concurrency < end + 2 {
            round(flow.limits().concurrency).await;
        }
        let before = flow.limits().concurrency;
        // The window's quota is spent: refused with a long Retry-After, learned.
        let spent = flow.acquire().await;
        flow.on_answer(spent, answer(429, Some(Duration::from_secs(9)), false));
        assert_eq!(flow.limits().concurrency, before, "not cut");
        // The next window: one request checks the opening, then rounds grow as slow start's.
        round(1).await;
        round(before).await;
        let after = flow.limits().concurrency;
        assert!(
            after > before + 3,
            "slow start again, not one a round trip: {before} -> {after}"
        );
    }

    /// A bare refusal with a long Retry-After is a window spent, not a concurrency cap or a
    /// pace: everyone waits, and neither the window nor the rate is cut, even for a request
    /// sent in slow start (which any other bare 429 would cut).
    #[tokio::test(start_paused = true)]
    async fn a_spent_window_holds_everyone_and_cuts_nothing() {
        let flow = Flow::new(RateSpec::Auto, RateLimiter::new(RateSpec::Auto), 64, true);
        let first = flow.acquire().await;
        flow.on_answer(first, answer(200, None, false));
        let before = flow.limits().concurrency;
        let (a, b) = (flow.acquire().await, flow.acquire().await);
        let t0 = Instant::now();
        flow.on_answer(b, answer(429, Some(Duration::from_secs(9)), false));
        flow.on_answer(a, answer(429, Some(Duration::from_secs(9)), false));
        assert!(flow.limits().concurrency >= before, "window not cut");
        assert_eq!(flow.rate_target(), None, "rate not cut");
        let _next = flow.acquire().await;
        assert!(Instant::now() >= t0 + Duration::from_secs(9), "held");

        // The same refusal asking for one second is the rate's or the window's, as before.
        let flow = Flow::new(RateSpec::Auto, RateLimiter::new(RateSpec::Auto), 64, true);
        let first = flow.acquire().await;
        flow.on_answer(first, answer(200, None, false));
        let before = flow.limits().concurrency;
        let b = flow.acquire().await;
        flow.on_answer(b, answer(429, Some(Duration::from_secs(1)), false));
        assert!(
            flow.limits().concurrency < before,
            "slow start's refusal cuts the window"
        );
    }
}
