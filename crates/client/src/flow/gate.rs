//! The quota gate: when the server advertises its quota (RateLimit or X-RateLimit headers),
//! send at most what is left before the reset, then wait for the reset.
//!
//! Accounting: each answer says `r` left as the server counted when it handled that request.
//! The gate keeps the least reading of the window (what is left only goes down within one, so
//! the least is the server's latest state, in whatever order requests reached it) and lets
//! through `r` minus every request still unanswered. That never overspends: whatever the server
//! counted after the reading is among the unanswered. It strands nothing either: the
//! unanswered the server had already counted leave the sum as their answers come in, so once
//! everything is answered what the gate allows is exactly what the server said is left. (An
//! earlier version let the balance only go down within a window; a transient undercount then
//! stood for the rest of the window, and one request stranded per window costs a whole extra
//! window at the end of a run.)
//!
//! Windows: an answer whose reset is a second or more later than the gate's starts a new one;
//! one a second or more earlier is stale and ignored. Resets come in whole seconds, rounded up
//! (IETF `t`, Retry-After, epoch seconds), so the earliest reset any answer of a window implies
//! is the best estimate of the true one. It is still an estimate: a token bucket reports the
//! time until it is full, which moves later with every request spent after the first answer
//! (seen: a bucket of 40 that the gate refilled to 40 at the earliest such time refused 7), and
//! an epoch reset (`X-RateLimit-Reset`) is as early as the server's clock is ahead. So after
//! the reset the gate lets one request through and spends what its answer says is left, not
//! the advertised limit: a round trip per window instead of a refusal for every request the
//! estimate was early by.
//!
//! A 429 whose quota shows nothing left closes the gate until its `Retry-After` (it wins over
//! the quota fields); a 429 while quota is left is some other limit's (the concurrency
//! window's, [`Verdict::OtherRefusal`]).

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::quota::{Quota, QuotaStyle};

/// The policy the server advertised, for the run's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Advertised {
    /// Header style.
    pub style: QuotaStyle,
    /// IETF policy name.
    pub policy: Option<String>,
    /// Requests per window.
    pub limit: Option<u64>,
    /// Window width.
    pub window: Option<Duration>,
}

/// What one answer told the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No quota headers: the gate learned nothing.
    NoQuota,
    /// Quota read; nothing refused.
    Read,
    /// A 429 while the quota ran out: a quota refusal (wait for the reset).
    QuotaRefusal,
    /// A 429 while the headers still showed quota: some other limit (concurrency) refused.
    OtherRefusal,
}

#[derive(Debug, Default)]
struct State {
    /// The least `r` read in this window; `None`: not counting.
    remaining: Option<u64>,
    reset_at: Option<Instant>,
    /// A quota refusal's Retry-After: nothing leaves before it.
    closed_until: Option<Instant>,
    /// Requests sent and not answered.
    unanswered: u64,
    /// The reset has passed and the new window is unread: one request reads it.
    reopening: bool,
    /// That request is out.
    reader_out: bool,
    advertised: Option<Advertised>,
}

/// The quota gate shared by every request of one client.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<State>,
    changed: Notify,
}

/// A request let through: it counts as unanswered until it is handed back, once, with its
/// answer ([`Gate::observe`]) or without one ([`Gate::forget`]).
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// The one request that reads a window after its reset.
    reader: bool,
}

impl Gate {
    /// A gate that lets everything through until an answer carries quota headers.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the quota allows one more request.
    pub async fn acquire(&self) -> Pass {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.try_acquire(Instant::now()) {
                Ok(pass) => return pass,
                Err(until) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = &mut changed => {}
                    }
                }
            }
        }
    }

    /// Lets one request through now, or says until when to wait.
    pub fn try_acquire(&self, now: Instant) -> Result<Pass, Instant> {
        let mut s = self.lock();
        if let Some(until) = s.closed_until {
            if until > now {
                return Err(until);
            }
            s.closed_until = None;
        }
        if let Some(reset) = s.reset_at {
            if reset <= now {
                // A new window, unread until an answer tells what is left in it.
                s.reset_at = None;
                s.remaining = None;
                s.reopening = true;
            }
        }
        if s.reopening {
            if s.reader_out {
                // Its answer (or its loss) wakes the waiters; this is a fallback.
                return Err(now + Duration::from_secs(1));
            }
            s.reader_out = true;
            s.unanswered += 1;
            return Ok(Pass { reader: true });
        }
        if s.remaining.is_some_and(|r| r <= s.unanswered) {
            return Err(s.reset_at.unwrap_or(now + Duration::from_secs(1)));
        }
        s.unanswered += 1;
        Ok(Pass { reader: false })
    }

    /// Reads one answer: its status, its Retry-After and its quota headers.
    pub fn observe(
        &self,
        pass: Pass,
        status: Option<u16>,
        retry_after: Option<Duration>,
        quota: Option<&Quota>,
        now: Instant,
    ) -> Verdict {
        let verdict = {
            let mut s = self.lock();
            s.unanswered = s.unanswered.saturating_sub(1);
            if pass.reader {
                // Read: what it says is left (or, without quota fields, no count until an
                // answer has them, as before the first).
                s.reader_out = false;
                s.reopening = false;
            }
            match quota {
                None => Verdict::NoQuota,
                Some(q) => {
                    s.reopening = false;
                    s.advertised = Some(Advertised {
                        style: q.style,
                        policy: q.policy.clone(),
                        limit: q.limit.or(s.advertised.as_ref().and_then(|a| a.limit)),
                        window: q.window.or(s.advertised.as_ref().and_then(|a| a.window)),
                    });
                    let refused = status == Some(429);
                    let reset_at = now + q.reset.or(q.window).unwrap_or(Duration::from_secs(1));
                    let second = Duration::from_secs(1);
                    match s.reset_at {
                        Some(current) if reset_at + second <= current => {
                            // From a window already over: stale.
                        }
                        Some(current) if reset_at < current + second => {
                            s.reset_at = Some(current.min(reset_at));
                            // Within a window what is left only goes down as the server
                            // counts: the least reading is its latest state, whichever order
                            // the requests reached it in.
                            s.remaining =
                                Some(s.remaining.map_or(q.remaining, |r| r.min(q.remaining)));
                        }
                        _ => {
                            s.reset_at = Some(reset_at);
                            s.remaining = Some(q.remaining);
                        }
                    }
                    if refused && q.remaining == 0 {
                        // Retry-After wins over the quota's own reset.
                        if let Some(ra) = retry_after {
                            let until = now + ra;
                            s.closed_until = Some(s.closed_until.map_or(until, |c| c.max(until)));
                            s.reset_at = Some(until);
                        }
                        if let Some(r) = s.remaining.as_mut() {
                            *r = 0;
                        }
                    }
                    match (refused, q.remaining) {
                        (false, _) => Verdict::Read,
                        (true, 0) => Verdict::QuotaRefusal,
                        (true, _) => Verdict::OtherRefusal,
                    }
                }
            }
        };
        self.changed.notify_waiters();
        verdict
    }

    /// Forgets a request that got no answer (transport error, cancelled).
    pub fn forget(&self, pass: Pass) {
        {
            let mut s = self.lock();
            s.unanswered = s.unanswered.saturating_sub(1);
            if pass.reader {
                // Another request reads the window.
                s.reader_out = false;
            }
        }
        self.changed.notify_waiters();
    }

    /// The policy the server advertised, if any answer carried one.
    pub fn advertised(&self) -> Option<Advertised> {
        self.lock().advertised.clone()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn quota(remaining: u64, reset: u64) -> Quota {
        Quota {
            remaining,
            reset: Some(Duration::from_secs(reset)),
            limit: Some(10),
            window: Some(Duration::from_secs(10)),
            policy: Some("default".into()),
            style: QuotaStyle::Ietf,
        }
    }

    #[test]
    fn unthrottled_until_headers_then_spends_what_is_left() {
        let g = Gate::new();
        let t0 = Instant::now();
        let passes: Vec<Pass> = (0..5).map(|_| g.try_acquire(t0).unwrap()).collect();
        // The first answer says 7 left; the 4 sent after it and unanswered may not be counted.
        assert_eq!(
            g.observe(passes[0], Some(200), None, Some(&quota(7, 5)), t0),
            Verdict::Read
        );
        let three: Vec<Pass> = (0..3).map(|_| g.try_acquire(t0).unwrap()).collect();
        assert_eq!(g.try_acquire(t0).unwrap_err(), t0 + Duration::from_secs(5));
        // The last of the batch says 3 left: the server had counted the others.
        for p in &passes[1..4] {
            g.forget(*p);
        }
        g.observe(passes[4], Some(200), None, Some(&quota(3, 5)), t0);
        assert!(g.try_acquire(t0).is_err(), "3 left, 3 unanswered");
        for p in three {
            g.forget(p);
        }
        // Nothing in flight: exactly what the server said, none stranded.
        let last: Vec<Pass> = (0..3).map(|_| g.try_acquire(t0).unwrap()).collect();
        assert!(g.try_acquire(t0).is_err());
        // After the reset one request reads the new window; the rest wait for its answer...
        let t1 = t0 + Duration::from_secs(5);
        let reader = g.try_acquire(t1).unwrap();
        assert!(g.try_acquire(t1).is_err(), "the new window is unread");
        // ...and spend what it says is left, less what is still unanswered (the server may
        // count those in the new window)...
        g.observe(reader, Some(200), None, Some(&quota(9, 5)), t1);
        for _ in 0..6 {
            g.try_acquire(t1).unwrap();
        }
        assert!(g.try_acquire(t1).is_err());
        // ...given back as their answers come in.
        for p in last {
            g.forget(p);
        }
        for _ in 0..3 {
            g.try_acquire(t1).unwrap();
        }
        assert!(g.try_acquire(t1).is_err());
        let a = g.advertised().unwrap();
        assert_eq!((a.limit, a.policy.as_deref()), (Some(10), Some("default")));
    }

    /// A reset estimate can be early (a bucket's time until full moves later as it is spent):
    /// after it the gate spends what the first answer says is left, not the advertised limit.
    /// A reader that gets no answer is replaced; one answered without quota fields ends the
    /// wait (nothing to count by, as before the first answer with them).
    #[test]
    fn after_a_reset_one_request_reads_the_window() {
        let g = Gate::new();
        let t0 = Instant::now();
        let p = g.try_acquire(t0).unwrap();
        g.observe(p, Some(200), None, Some(&quota(0, 1)), t0);
        let t1 = t0 + Duration::from_secs(1);
        let reader = g.try_acquire(t1).unwrap();
        assert!(g.try_acquire(t1).is_err());
        g.forget(reader);
        let reader = g.try_acquire(t1).unwrap();
        assert!(g.try_acquire(t1).is_err(), "one reader at a time");
        // The bucket was not full yet: 3 left of the advertised 10.
        g.observe(reader, Some(200), None, Some(&quota(3, 1)), t1);
        for _ in 0..3 {
            g.try_acquire(t1).unwrap();
        }
        assert!(g.try_acquire(t1).is_err(), "3, not the advertised 10");

        let g = Gate::new();
        let p = g.try_acquire(t0).unwrap();
        g.observe(p, Some(200), None, Some(&quota(0, 1)), t0);
        let reader = g.try_acquire(t1).unwrap();
        g.observe(reader, Some(200), None, None, t1);
        for _ in 0..20 {
            g.try_acquire(t1).unwrap();
        }
    }

    /// Answers that come back out of order lower the count only for as long as their requests
    /// are unanswered: once all are in, the gate allows exactly what the server last said.
    #[test]
    fn answers_out_of_order_strand_nothing() {
        let g = Gate::new();
        let t0 = Instant::now();
        let passes: Vec<Pass> = (0..5).map(|_| g.try_acquire(t0).unwrap()).collect();
        // The server handled them in order; the last one's answer (5 left) comes in first.
        g.observe(passes[4], Some(200), None, Some(&quota(5, 5)), t0);
        // Four unanswered may or may not have been counted: 1 is surely free.
        g.try_acquire(t0).map(|p| g.forget(p)).unwrap();
        for (i, p) in passes[..4].iter().enumerate() {
            // Older requests, handled earlier, report more left: they lower nothing.
            g.observe(*p, Some(200), None, Some(&quota(9 - i as u64, 5)), t0);
        }
        for _ in 0..5 {
            g.try_acquire(t0).unwrap();
        }
        assert!(g.try_acquire(t0).is_err(), "no more than the server said");
    }

    #[test]
    fn retry_after_wins_and_other_refusals_are_told_apart() {
        let g = Gate::new();
        let t0 = Instant::now();
        let p = g.try_acquire(t0).unwrap();
        let v = g.observe(
            p,
            Some(429),
            Some(Duration::from_secs(3)),
            Some(&quota(0, 9)),
            t0,
        );
        assert_eq!(v, Verdict::QuotaRefusal);
        assert_eq!(g.try_acquire(t0).unwrap_err(), t0 + Duration::from_secs(3));
        let t1 = t0 + Duration::from_secs(3);
        let p = g.try_acquire(t1).unwrap();
        let v = g.observe(
            p,
            Some(429),
            Some(Duration::from_secs(1)),
            Some(&quota(4, 7)),
            t1,
        );
        assert_eq!(v, Verdict::OtherRefusal);
        let p = g.try_acquire(t1).unwrap();
        assert_eq!(g.observe(p, Some(429), None, None, t1), Verdict::NoQuota);
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_waits_for_the_reset() {
        let g = Gate::new();
        let t0 = Instant::now();
        let p = g.acquire().await;
        g.observe(p, Some(200), None, Some(&quota(0, 2)), t0);
        let _ = g.acquire().await;
        assert!(Instant::now() >= t0 + Duration::from_secs(2));
    }
}
