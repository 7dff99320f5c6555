//! The quota gate: when the server advertises its quota (RateLimit or X-RateLimit headers),
//! send at most what is left before the reset, then wait for the reset.
//!
//! Accounting: each answer says `r` left as the server counted when it handled that request.
//! Requests sent *after* it and still in flight may not be counted yet, so the local balance is
//! `r` minus those (earlier ones were counted before it, as the server handles in order). Within
//! one window the balance and the reset only ever go down (a late answer from earlier in the
//! window cannot give quota back); an answer whose reset is a second or more later starts a new
//! window. Resets come in whole seconds, rounded up (IETF `t`, Retry-After, epoch seconds), so
//! the earliest reset any answer implies is the best estimate of the true one.
//!
//! A 429 with `Retry-After` closes the gate until then: Retry-After wins over the quota fields.
//! After a reset the gate admits the advertised limit (`q`, `X-RateLimit-Limit`) or, when none
//! was advertised, stops counting until the next answer.

use std::collections::BTreeSet;
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
    /// What may still be sent before `reset_at`; `None`: not counting.
    balance: Option<u64>,
    reset_at: Option<Instant>,
    /// Sequence numbers of requests sent and not answered.
    in_flight: BTreeSet<u64>,
    next_seq: u64,
    advertised: Option<Advertised>,
}

/// The quota gate shared by every request of one client.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<State>,
    changed: Notify,
}

/// A request let through, to hand back with its answer.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    seq: u64,
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
        if let Some(reset) = s.reset_at {
            if reset <= now {
                // A new window: the advertised limit, or stop counting until the next answer.
                s.reset_at = None;
                s.balance = s.advertised.as_ref().and_then(|a| a.limit);
            }
        }
        match s.balance {
            Some(0) => return Err(s.reset_at.unwrap_or(now + Duration::from_secs(1))),
            Some(n) => s.balance = Some(n - 1),
            None => {}
        }
        let seq = s.next_seq;
        s.next_seq += 1;
        s.in_flight.insert(seq);
        Ok(Pass { seq })
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
            s.in_flight.remove(&pass.seq);
            match quota {
                None => Verdict::NoQuota,
                Some(q) => {
                    s.advertised = Some(Advertised {
                        style: q.style,
                        policy: q.policy.clone(),
                        limit: q.limit.or(s.advertised.as_ref().and_then(|a| a.limit)),
                        window: q.window.or(s.advertised.as_ref().and_then(|a| a.window)),
                    });
                    let later = s.in_flight.range(pass.seq + 1..).count() as u64;
                    let refused = status == Some(429);
                    let mut balance = q.remaining.saturating_sub(later);
                    // Retry-After wins over the quota's own reset.
                    let reset = match (refused, retry_after) {
                        (true, Some(ra)) => Some(ra),
                        _ => q.reset.or(q.window),
                    };
                    if refused && q.remaining == 0 {
                        balance = 0;
                    }
                    let reset_at = reset.map(|r| now + r);
                    let same_window = match (s.reset_at, reset_at) {
                        (Some(a), Some(b)) => {
                            let gap = if a > b { a - b } else { b - a };
                            gap < Duration::from_secs(1)
                        }
                        (None, _) => false,
                        (Some(_), None) => true,
                    };
                    if same_window {
                        s.balance = Some(s.balance.map_or(balance, |b| b.min(balance)));
                        if let (Some(a), Some(b)) = (s.reset_at, reset_at) {
                            s.reset_at = Some(a.min(b));
                        }
                    } else if s.reset_at.is_none() || reset_at > s.reset_at {
                        s.balance = Some(balance);
                        s.reset_at = reset_at.or(Some(now + Duration::from_secs(1)));
                    }
                    // An answer from an older window is stale: ignored.
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
        self.lock().in_flight.remove(&pass.seq);
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
        // The first answer says 3 left; the 4 sent after it and unanswered may not be counted.
        assert_eq!(
            g.observe(passes[0], Some(200), None, Some(&quota(3, 5)), t0),
            Verdict::Read
        );
        assert_eq!(g.try_acquire(t0).unwrap_err(), t0 + Duration::from_secs(5));
        // The last answer of the batch says 6 left (the server had counted the others).
        for p in &passes[1..4] {
            g.forget(*p);
        }
        g.observe(passes[4], Some(200), None, Some(&quota(6, 5)), t0);
        // Within the window the balance only goes down: still 0.
        assert!(g.try_acquire(t0).is_err());
        // After the reset, the advertised limit.
        let t1 = t0 + Duration::from_secs(5);
        for _ in 0..10 {
            g.try_acquire(t1).unwrap();
        }
        assert!(g.try_acquire(t1).is_err());
        let a = g.advertised().unwrap();
        assert_eq!((a.limit, a.policy.as_deref()), (Some(10), Some("default")));
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
