//! Request pacing: a fixed token bucket (`governor`) or the adaptive limiter ([`Aimd`]).
//!
//! `Aimd` lives in `rate/aimd.rs`: the AIMD rules, the pauses a long Retry-After asks for, and
//! the quota learnt from a window that sends no headers (`rate/period.rs`).

use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter as Governor};
use tokio::time::Instant;

use crate::error::Error;

mod aimd;
mod period;

pub use aimd::Aimd;

/// Request rate control.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum RateSpec {
    /// Start unthrottled and adapt to 429s (AIMD).
    #[default]
    Auto,
    /// A fixed token-bucket rate, kept in the unit the user gave it in.
    Fixed(Rate),
    /// No limit beyond the concurrency.
    Unlimited,
}

/// The unit a fixed rate was given in: messages show it back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateUnit {
    /// A bare number or `R/s`.
    Second,
    /// `R/min`, as per-minute quotas are published (Genesys: 300 per token per minute).
    Minute,
    /// `R/h`.
    Hour,
}

impl RateUnit {
    fn seconds(self) -> f64 {
        match self {
            RateUnit::Second => 1.0,
            RateUnit::Minute => 60.0,
            RateUnit::Hour => 3600.0,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            RateUnit::Second => "/s",
            RateUnit::Minute => "/min",
            RateUnit::Hour => "/h",
        }
    }
}

/// A positive number of requests per [`RateUnit`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests per `unit`.
    pub count: f64,
    /// The unit the user wrote.
    pub unit: RateUnit,
}

impl Rate {
    /// Requests per second.
    pub fn per_second(count: f64) -> Self {
        Rate {
            count,
            unit: RateUnit::Second,
        }
    }

    /// The same rate in requests per second.
    pub fn as_per_second(&self) -> f64 {
        self.count / self.unit.seconds()
    }

    /// Reads `R`, `R/s`, `R/sec`, `R/min`, `R/m`, `R/h` or `R/hour` (case and spaces ignored).
    pub fn parse(text: &str) -> Option<Rate> {
        let t = text.trim().to_ascii_lowercase();
        let (num, unit) = match t.split_once('/') {
            None => (t.as_str(), RateUnit::Second),
            Some((n, u)) => (
                n,
                match u.trim() {
                    "s" | "sec" | "second" => RateUnit::Second,
                    "m" | "min" | "minute" => RateUnit::Minute,
                    "h" | "hr" | "hour" => RateUnit::Hour,
                    _ => return None,
                },
            ),
        };
        match num.trim().parse::<f64>() {
            Ok(count) if count.is_finite() && count > 0.0 => Some(Rate { count, unit }),
            _ => None,
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.count, self.unit.suffix())
    }
}

/// The accepted forms, for every message that rejects a rate.
pub const RATE_FORMS: &str = "auto, unlimited, R, R/s, R/min or R/h (e.g. 300/min)";

impl std::fmt::Display for RateSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateSpec::Auto => f.write_str("auto"),
            RateSpec::Unlimited => f.write_str("unlimited"),
            RateSpec::Fixed(r) => r.fmt(f),
        }
    }
}

impl FromStr for RateSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => Ok(RateSpec::Auto),
            "unlimited" | "none" | "off" => Ok(RateSpec::Unlimited),
            _ => Rate::parse(&t).map(RateSpec::Fixed).ok_or_else(|| {
                Error::config(format!(
                    "invalid rate {s:?}: use {RATE_FORMS}, with R a positive number"
                ))
            }),
        }
    }
}

/// A permission to send, carrying the AIMD round it was issued in.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    /// When it was issued: a refusal of a request sent right after a cut is the cut's echo.
    at: Instant,
}

impl Ticket {
    fn now(epoch: u64) -> Self {
        Ticket {
            epoch,
            at: Instant::now(),
        }
    }
}

/// The limiter shared by every request of one client.
#[derive(Debug)]
pub enum RateLimiter {
    /// No pacing.
    Unlimited,
    /// A fixed rate.
    Fixed(Box<DefaultDirectRateLimiter>),
    /// Adaptive.
    Auto(Box<Aimd>),
}

impl RateLimiter {
    /// Builds the limiter for a spec.
    pub fn new(spec: RateSpec) -> Self {
        match spec {
            RateSpec::Unlimited => RateLimiter::Unlimited,
            RateSpec::Auto => RateLimiter::Auto(Box::default()),
            RateSpec::Fixed(rate) => {
                let r = rate.as_per_second();
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

    /// An adaptive limiter that starts at `rate` requests/s instead of unthrottled: for a
    /// platform that documents its quota. It grows past it on successes and cuts on 429s.
    pub fn auto_from(rate: f64) -> Self {
        RateLimiter::Auto(Box::new(Aimd::starting_at(rate)))
    }

    /// Lets the adaptive limiter see how much of the run is left (it stops probing near the
    /// end); the others ignore it.
    pub fn with_backlog(self, backlog: crate::flow::Backlog) -> Self {
        match self {
            RateLimiter::Auto(a) => RateLimiter::Auto(Box::new(a.with_backlog(backlog))),
            other => other,
        }
    }

    /// Waits until a request may be sent.
    pub async fn acquire(&self) -> Ticket {
        match self {
            RateLimiter::Unlimited => Ticket::now(0),
            RateLimiter::Fixed(g) => {
                g.until_ready().await;
                Ticket::now(0)
            }
            RateLimiter::Auto(a) => a.acquire().await,
        }
    }

    /// Reports a non-429 answer to a request sent with `ticket`.
    pub fn on_success(&self, ticket: Ticket) {
        if let RateLimiter::Auto(a) = self {
            a.on_success_of(ticket, Instant::now());
        }
    }

    /// Reports a 429 for a request sent with `ticket`.
    pub fn on_throttled(&self, ticket: Ticket, retry_after: Option<Duration>) {
        if let RateLimiter::Auto(a) = self {
            a.on_throttled(ticket, retry_after, Instant::now());
        }
    }

    /// A 429 taken as a concurrency refusal: the rate stays, but a long Retry-After still holds
    /// every sender until it has passed (Retry-After wins over every other reading).
    pub fn hold(&self, retry_after: Option<Duration>) {
        if let RateLimiter::Auto(a) = self {
            a.hold(retry_after, Instant::now());
        }
    }

    /// A request that got no answer (transport error, cancelled): a probe past a learned
    /// quota that never came back must not hold the others.
    pub fn on_no_answer(&self) {
        if let RateLimiter::Auto(a) = self {
            a.on_no_answer();
        }
    }

    /// Whether the adaptive limiter has learned a fixed window's quota from its refusals.
    pub fn quota_learned(&self) -> bool {
        match self {
            RateLimiter::Auto(a) => a.quota_learned(),
            _ => false,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn auto_from_starts_at_the_given_rate() {
        let l = RateLimiter::auto_from(5.0);
        assert_eq!(l.target(), Some(5.0));
    }

    #[test]
    fn rate_forms_keep_their_unit() {
        let r: RateSpec = "300/min".parse().unwrap();
        assert_eq!(
            r,
            RateSpec::Fixed(Rate {
                count: 300.0,
                unit: RateUnit::Minute
            })
        );
        assert_eq!(r.to_string(), "300/min");
        let RateSpec::Fixed(rate) = r else {
            unreachable!()
        };
        assert!((rate.as_per_second() - 5.0).abs() < 1e-12);
        for (text, rps, shown) in [
            ("20", 20.0, "20/s"),
            ("2.5/s", 2.5, "2.5/s"),
            (" 40 / S ", 40.0, "40/s"),
            ("3600/h", 1.0, "3600/h"),
            ("90/minute", 1.5, "90/min"),
            ("1/sec", 1.0, "1/s"),
        ] {
            let Ok(RateSpec::Fixed(rate)) = text.parse::<RateSpec>() else {
                panic!("{text}")
            };
            assert!((rate.as_per_second() - rps).abs() < 1e-9, "{text}");
            assert_eq!(rate.to_string(), shown);
        }
        assert_eq!("AUTO".parse::<RateSpec>().unwrap(), RateSpec::Auto);
        assert_eq!(
            "unlimited".parse::<RateSpec>().unwrap(),
            RateSpec::Unlimited
        );
        for bad in [
            "", "0", "-1", "0/min", "x", "10/day", "10/", "/s", "inf", "NaN/s", "1/s/s",
        ] {
            let e = bad.parse::<RateSpec>().unwrap_err().to_string();
            assert!(e.contains("R/min"), "{bad}: {e}");
        }
    }

    #[tokio::test]
    async fn fixed_rate_builds() {
        let l = RateLimiter::new(RateSpec::Fixed(Rate::per_second(1000.0)));
        for _ in 0..5 {
            l.acquire().await;
        }
        assert!(matches!(
            RateLimiter::new(RateSpec::Unlimited),
            RateLimiter::Unlimited
        ));
    }
}
