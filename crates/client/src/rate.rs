//! Request pacing: a fixed token bucket (`governor`) or an adaptive AIMD limiter.
//!
//! The adaptive limiter starts unthrottled. The first 429 sets a target rate from the rate
//! actually observed (times [`Aimd::DECREASE`]); each further 429 from a request sent *after*
//! the last decrease cuts it again (one cut per round, as TCP does per window, so a burst of
//! 429s from requests already in flight counts once). Every success adds a little, so the
//! target creeps back up towards the server's limit. A Retry-After pauses every sender, not
//! just the one that got it.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter as Governor};
use tokio::time::Instant;

use crate::config::RateSpec;

/// A permission to send, carrying the AIMD round it was issued in.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
}

/// The limiter shared by every request of one client.
#[derive(Debug)]
pub enum RateLimiter {
    /// No pacing.
    Unlimited,
    /// A fixed rate.
    Fixed(Box<DefaultDirectRateLimiter>),
    /// Adaptive.
    Auto(Aimd),
}

impl RateLimiter {
    /// Builds the limiter for a spec.
    pub fn new(spec: RateSpec) -> Self {
        match spec {
            RateSpec::Unlimited => RateLimiter::Unlimited,
            RateSpec::Auto => RateLimiter::Auto(Aimd::new()),
            RateSpec::PerSecond(r) => {
                let period = Duration::from_secs_f64(1.0 / r.max(1e-6));
                // Burst of a tenth of a second's worth keeps the average honest without
                // serialising fast rates to one request per tick.
                let burst =
                    NonZeroU32::new(((r / 10.0).floor() as u32).max(1)).unwrap_or(NonZeroU32::MIN);
                match Quota::with_period(period) {
                    Some(q) => RateLimiter::Fixed(Box::new(Governor::direct(q.allow_burst(burst)))),
                    None => RateLimiter::Unlimited,
                }
            }
        }
    }

    /// Waits until a request may be sent.
    pub async fn acquire(&self) -> Ticket {
        match self {
            RateLimiter::Unlimited => Ticket { epoch: 0 },
            RateLimiter::Fixed(g) => {
                g.until_ready().await;
                Ticket { epoch: 0 }
            }
            RateLimiter::Auto(a) => a.acquire().await,
        }
    }

    /// Reports a non-429 answer.
    pub fn on_success(&self) {
        if let RateLimiter::Auto(a) = self {
            a.on_success(Instant::now());
        }
    }

    /// Reports a 429 for a request sent with `ticket`.
    pub fn on_throttled(&self, ticket: Ticket, retry_after: Option<Duration>) {
        if let RateLimiter::Auto(a) = self {
            a.on_throttled(ticket, retry_after, Instant::now());
        }
    }

    /// The current adaptive target in requests/s (`None` when unthrottled or not adaptive).
    pub fn target(&self) -> Option<f64> {
        match self {
            RateLimiter::Auto(a) => a.target(),
            _ => None,
        }
    }
}

/// Additive-increase, multiplicative-decrease pacing.
#[derive(Debug)]
pub struct Aimd {
    state: Mutex<AimdState>,
}

#[derive(Debug)]
struct AimdState {
    /// `None` until the first 429: unthrottled.
    target: Option<f64>,
    /// Increments at every decrease; 429s for tickets of older rounds are ignored.
    epoch: u64,
    next_slot: Instant,
    paused_until: Option<Instant>,
    /// Recent send instants, to estimate the rate in use when the first 429 arrives.
    recent: VecDeque<Instant>,
}

impl Default for Aimd {
    fn default() -> Self {
        Self::new()
    }
}

impl Aimd {
    /// Factor applied to the target on a 429.
    pub const DECREASE: f64 = 0.7;
    /// Lowest target, requests/s.
    pub const MIN_RATE: f64 = 0.5;
    const RECENT: usize = 64;

    /// An unthrottled limiter.
    pub fn new() -> Self {
        Aimd {
            state: Mutex::new(AimdState {
                target: None,
                epoch: 0,
                next_slot: Instant::now(),
                paused_until: None,
                recent: VecDeque::with_capacity(Self::RECENT),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AimdState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves the next send slot and waits for it.
    pub async fn acquire(&self) -> Ticket {
        let (slot, ticket) = self.reserve(Instant::now());
        if slot > Instant::now() {
            tokio::time::sleep_until(slot).await;
        }
        ticket
    }

    /// Reserves a slot at or after `now`: the pure part of [`acquire`](Self::acquire).
    pub fn reserve(&self, now: Instant) -> (Instant, Ticket) {
        let mut s = self.lock();
        let mut slot = now;
        if let Some(p) = s.paused_until {
            if p > slot {
                slot = p;
            } else {
                s.paused_until = None;
            }
        }
        if let Some(rate) = s.target {
            slot = slot.max(s.next_slot);
            s.next_slot = slot + Duration::from_secs_f64(1.0 / rate);
        }
        if s.recent.len() == Self::RECENT {
            s.recent.pop_front();
        }
        s.recent.push_back(slot);
        (slot, Ticket { epoch: s.epoch })
    }

    /// A success: additive increase of about `max(1, target/20)` requests/s per second.
    pub fn on_success(&self, _now: Instant) {
        let mut s = self.lock();
        if let Some(rate) = s.target {
            let step_per_second = (rate / 20.0).max(1.0);
            // `rate` successes arrive per second, so each adds step/rate.
            s.target = Some(rate + step_per_second / rate);
        }
    }

    /// A 429: one multiplicative decrease per round, and a global pause for Retry-After.
    pub fn on_throttled(&self, ticket: Ticket, retry_after: Option<Duration>, now: Instant) {
        let mut s = self.lock();
        if let Some(ra) = retry_after {
            let until = now + ra;
            if s.paused_until.is_none_or(|p| p < until) {
                s.paused_until = Some(until);
            }
        }
        if ticket.epoch != s.epoch {
            return;
        }
        let current = match s.target {
            Some(r) => r,
            None => observed_rate(&s.recent).unwrap_or(10.0),
        };
        s.target = Some((current * Self::DECREASE).max(Self::MIN_RATE));
        s.epoch += 1;
        // Restart pacing from now (or after the pause) at the new rate.
        s.next_slot = s.paused_until.unwrap_or(now).max(now);
    }

    /// The current target rate, `None` while unthrottled.
    pub fn target(&self) -> Option<f64> {
        self.lock().target
    }
}

fn observed_rate(recent: &VecDeque<Instant>) -> Option<f64> {
    let first = *recent.front()?;
    let last = *recent.back()?;
    let span = last.saturating_duration_since(first).as_secs_f64();
    if recent.len() < 2 || span <= 0.0 {
        return None;
    }
    Some((recent.len() - 1) as f64 / span)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn starts_unthrottled() {
        let a = Aimd::new();
        let now = Instant::now();
        for _ in 0..100 {
            let (slot, _) = a.reserve(now);
            assert_eq!(slot, now);
        }
        assert_eq!(a.target(), None);
    }

    #[test]
    fn decreases_once_per_round_and_increases_additively() {
        let a = Aimd::new();
        let t0 = Instant::now();
        // 20 requests 50 ms apart: 20 req/s observed
        let mut tickets = Vec::new();
        for i in 0..20 {
            tickets.push(a.reserve(t0 + Duration::from_millis(i * 50)).1);
        }
        let now = t0 + Duration::from_secs(1);
        a.on_throttled(tickets[18], None, now);
        let r1 = a.target().unwrap();
        assert!((r1 - 20.0 * Aimd::DECREASE).abs() < 0.5, "{r1}");
        // more 429s from requests sent before the cut do not cut again
        a.on_throttled(tickets[19], None, now);
        assert_eq!(a.target().unwrap(), r1);
        // a 429 from a request sent after the cut does
        let (_, t) = a.reserve(now);
        a.on_throttled(t, None, now);
        let r2 = a.target().unwrap();
        assert!((r2 - r1 * Aimd::DECREASE).abs() < 1e-9);
        // additive increase: about +1 req/s after r2 successes (one second's worth)
        let n = r2.round() as usize;
        for _ in 0..n {
            a.on_success(now);
        }
        let r3 = a.target().unwrap();
        assert!(r3 > r2 + 0.8 && r3 < r2 + 1.3, "{r2} -> {r3}");
        // floor
        for _ in 0..100 {
            let (_, t) = a.reserve(now);
            a.on_throttled(t, None, now);
        }
        assert!(a.target().unwrap() >= Aimd::MIN_RATE);
    }

    #[test]
    fn paces_at_target_and_pauses_for_retry_after() {
        let a = Aimd::new();
        let t0 = Instant::now();
        let (_, t) = a.reserve(t0);
        a.on_throttled(t, Some(Duration::from_secs(2)), t0);
        let rate = a.target().unwrap();
        let (s1, _) = a.reserve(t0);
        assert!(s1 >= t0 + Duration::from_secs(2), "global pause");
        let (s2, _) = a.reserve(t0);
        let gap = s2.duration_since(s1).as_secs_f64();
        assert!((gap - 1.0 / rate).abs() < 1e-6);
    }

    #[tokio::test]
    async fn fixed_rate_builds() {
        let l = RateLimiter::new(RateSpec::PerSecond(1000.0));
        for _ in 0..5 {
            l.acquire().await;
        }
        assert!(matches!(
            RateLimiter::new(RateSpec::Unlimited),
            RateLimiter::Unlimited
        ));
    }
}
