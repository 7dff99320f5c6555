//! Retries: a pure policy, a shared budget, and the one driver every kind of call goes through.
//!
//! Key design decision: the loop is written once (`drive`); what differs between a token
//! request and an execute is a small `RetryLogic` (how one attempt is made and classified,
//! whether a token can be refreshed, how the final error reads), as in Vector's `RetryLogic` and
//! OpenDAL's retry layer. The policy itself is a pure function from (attempt, failure,
//! Retry-After, a random number) to a decision, so every rule is unit-tested without a clock or
//! a network.
//!
//! Hand-written rather than `backoff`/`backon`: those drive the loop themselves and know
//! nothing of Retry-After (its ceiling, "jitter only added on top") or of the 401-refresh rule,
//! and the loop here also has to spend a shared retry budget.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use crate::error::Error;

pub use crate::http::parse_retry_after;

/// Why an attempt failed, as far as the policy needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// An HTTP answer with this status; `retry_after` is the parsed Retry-After header.
    Status {
        /// The HTTP status.
        status: u16,
        /// The parsed Retry-After header, if any.
        retry_after: Option<Duration>,
    },
    /// Connection refused, reset or closed before an answer.
    Connection,
    /// The attempt timed out.
    Timeout,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then try again with the same UUID and Idempotency-Key.
    Retry(Duration),
    /// Refresh the token (invalidating the rejected one) and retry at once.
    RefreshToken,
    /// Give up on this UUID.
    Fail(GiveUp),
}

/// Why the policy gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiveUp {
    /// Not retryable (most 4xx).
    NotRetryable,
    /// `max_retries` retries were made.
    Exhausted,
    /// The server asked to wait longer than `max_retry_after`.
    RetryAfterTooLong(Duration),
    /// The token was rejected again right after a refresh.
    UnauthorizedAfterRefresh,
}

/// Retry settings; see [`RetryPolicy::decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// Exponential backoff base.
    pub base: Duration,
    /// Exponential backoff cap.
    pub cap: Duration,
    /// Longest Retry-After honoured.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Decides after attempt number `attempt` (1 for the first) failed.
    ///
    /// `refreshed` says whether the token was already refreshed for this UUID; `random` is a
    /// uniform number in `[0, 1)` used for jitter (pass `rand::random()`; tests pass fixed ones).
    pub fn decide(&self, attempt: u32, failure: Failure, refreshed: bool, random: f64) -> Decision {
        let retryable = match failure {
            Failure::Status { status: 401, .. } => {
                // One refresh per UUID, independent of max_retries: a token expiring is not a
                // failure of the request.
                return if refreshed {
                    Decision::Fail(GiveUp::UnauthorizedAfterRefresh)
                } else {
                    Decision::RefreshToken
                };
            }
            Failure::Status { status, .. } => is_retryable_status(status),
            Failure::Connection | Failure::Timeout => true,
        };
        if !retryable {
            return Decision::Fail(GiveUp::NotRetryable);
        }
        // RFC 9110 §10.2.3 allows Retry-After on 503 as on 429: honour it the same way.
        if let Failure::Status {
            status: 429 | 503,
            retry_after: Some(ra),
        } = failure
        {
            if ra > self.max_retry_after {
                return Decision::Fail(GiveUp::RetryAfterTooLong(ra));
            }
            if attempt > self.max_retries {
                return Decision::Fail(GiveUp::Exhausted);
            }
            // Jitter is only ever added: waking before the server's time would earn another 429,
            // and spreading clients told the same instant keeps them from waking together.
            return Decision::Retry(ra + self.jitter_on_top(random));
        }
        if attempt > self.max_retries {
            return Decision::Fail(GiveUp::Exhausted);
        }
        Decision::Retry(self.backoff(attempt, random))
    }

    /// Full-jitter exponential backoff (AWS architecture blog): uniform in
    /// `[0, min(cap, base * 2^(attempt-1)))`.
    pub fn backoff(&self, attempt: u32, random: f64) -> Duration {
        let exp = attempt.saturating_sub(1).min(31);
        let ceiling = self
            .base
            .checked_mul(1u32 << exp)
            .unwrap_or(self.cap)
            .min(self.cap);
        ceiling.mul_f64(random.clamp(0.0, 1.0))
    }

    /// Extra wait added on top of a Retry-After: uniform in `[0, min(base, 1 s))`.
    pub fn jitter_on_top(&self, random: f64) -> Duration {
        self.base
            .min(Duration::from_secs(1))
            .mul_f64(random.clamp(0.0, 1.0))
    }
}

/// 429 and the gateway-ish 5xx are worth retrying; 501, 505… and all other 4xx are not.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// A client-wide retry budget as in AWS SDK "standard" retry mode: retries spend tokens
/// (5, or 10 after a timeout), successes refund them (1, or the retry's cost), and no retry is
/// made when the bucket cannot pay. When most calls fail the bucket drains and the client stops
/// multiplying the load on a sick server by `max_retries + 1`.
#[derive(Debug)]
pub struct RetryBudget {
    capacity: u32,
    tokens: Mutex<u32>,
}

/// Tokens one retry costs.
pub const RETRY_COST: u32 = 5;
/// Tokens a retry after a timeout costs.
pub const TIMEOUT_RETRY_COST: u32 = 10;
/// Tokens a first-attempt success refunds.
pub const SUCCESS_REFUND: u32 = 1;

impl RetryBudget {
    /// A full bucket of `capacity` tokens.
    pub fn new(capacity: u32) -> Self {
        RetryBudget {
            capacity,
            tokens: Mutex::new(capacity),
        }
    }

    /// Tries to pay for one retry; `false` means do not retry.
    pub fn try_spend(&self, cost: u32) -> bool {
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if *t >= cost {
            *t -= cost;
            true
        } else {
            false
        }
    }

    /// Refunds after a success: `spent` is what this call's retries cost (0 for a first-attempt
    /// success, which refunds [`SUCCESS_REFUND`]).
    pub fn on_success(&self, spent: u32) {
        let refund = if spent == 0 { SUCCESS_REFUND } else { spent };
        let mut t = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        *t = (*t + refund).min(self.capacity);
    }

    /// Tokens left.
    pub fn available(&self) -> u32 {
        *self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A failed attempt as the driver sees it.
#[derive(Debug)]
pub(crate) struct Attempted {
    /// What the policy classifies; `None` ends the call at once with `error` (the logic
    /// already knows retrying cannot help, e.g. refused credentials).
    pub(crate) failure: Option<Failure>,
    /// The error of this attempt, handed back to [`RetryLogic::give_up`].
    pub(crate) error: Error,
}

/// What differs between kinds of calls; the loop itself is [`drive`].
pub(crate) trait RetryLogic {
    /// What a successful call yields.
    type Output;

    /// Makes attempt number `attempt` (1 for the first).
    fn attempt(&mut self, attempt: u32) -> impl Future<Output = Result<Self::Output, Attempted>>;

    /// Whether a 401 may be answered by refreshing the token (once per call).
    fn can_refresh(&self) -> bool {
        false
    }

    /// Drops the rejected token; the next attempt fetches a new one at once.
    fn refresh(&mut self) {}

    /// Called before each wait-and-retry.
    fn on_retry(&mut self, _attempt: u32, _wait: Duration) {}

    /// The error the call ends with when the policy gives up after `attempts` attempts.
    fn give_up(&mut self, last: Error, failure: Failure, why: GiveUp, attempts: u32) -> Error;
}

/// Runs a call to its end: attempts, asks the policy, spends the budget (when there is one),
/// waits, and tries again.
pub(crate) async fn drive<L: RetryLogic>(
    policy: &RetryPolicy,
    budget: Option<&RetryBudget>,
    logic: &mut L,
) -> Result<L::Output, Error> {
    let mut refreshed = !logic.can_refresh();
    let mut spent = 0u32;
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let failed = match logic.attempt(attempt).await {
            Ok(out) => {
                if let Some(b) = budget {
                    b.on_success(spent);
                }
                return Ok(out);
            }
            Err(failed) => failed,
        };
        let Some(failure) = failed.failure else {
            return Err(failed.error);
        };
        match policy.decide(attempt, failure, refreshed, rand::random()) {
            Decision::RefreshToken => {
                logic.refresh();
                refreshed = true;
            }
            Decision::Retry(wait) => {
                let cost = if failure == Failure::Timeout {
                    TIMEOUT_RETRY_COST
                } else {
                    RETRY_COST
                };
                if let Some(b) = budget {
                    if !b.try_spend(cost) {
                        return Err(logic
                            .give_up(failed.error, failure, GiveUp::Exhausted, attempt)
                            .prefixed(
                                "retry budget exhausted (most recent calls failed), not retrying: ",
                            ));
                    }
                }
                spent += cost;
                logic.on_retry(attempt, wait);
                tokio::time::sleep(wait).await;
            }
            Decision::Fail(why) => return Err(logic.give_up(failed.error, failure, why, attempt)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
    }
    fn status(s: u16) -> Failure {
        Failure::Status {
            status: s,
            retry_after: None,
        }
    }

    #[test]
    fn five_xx_retries_exactly_max_retries_times() {
        let p = policy();
        let mut attempts = 1;
        while let Decision::Retry(_) = p.decide(attempts, status(503), false, 0.5) {
            attempts += 1;
        }
        assert_eq!(attempts, 4, "3 retries → 4 attempts");
        assert_eq!(
            p.decide(4, status(500), false, 0.5),
            Decision::Fail(GiveUp::Exhausted)
        );
        for s in [500, 502, 503, 504] {
            assert!(matches!(
                p.decide(1, status(s), false, 0.1),
                Decision::Retry(_)
            ));
        }
        let zero = RetryPolicy {
            max_retries: 0,
            ..p
        };
        assert_eq!(
            zero.decide(1, Failure::Timeout, false, 0.3),
            Decision::Fail(GiveUp::Exhausted)
        );
    }

    #[test]
    fn client_errors_fail_at_once() {
        let p = policy();
        for s in [400, 403, 404, 409, 422, 501] {
            assert_eq!(
                p.decide(1, status(s), false, 0.5),
                Decision::Fail(GiveUp::NotRetryable),
                "{s}"
            );
        }
    }

    #[test]
    fn unauthorized_refreshes_once() {
        let p = policy();
        assert_eq!(p.decide(1, status(401), false, 0.5), Decision::RefreshToken);
        // even on the last allowed attempt
        assert_eq!(p.decide(4, status(401), false, 0.5), Decision::RefreshToken);
        assert_eq!(
            p.decide(2, status(401), true, 0.5),
            Decision::Fail(GiveUp::UnauthorizedAfterRefresh)
        );
    }

    #[test]
    fn connection_errors_and_timeouts_back_off() {
        let p = policy();
        assert!(matches!(
            p.decide(1, Failure::Connection, false, 0.5),
            Decision::Retry(_)
        ));
        assert!(matches!(
            p.decide(3, Failure::Timeout, false, 0.5),
            Decision::Retry(_)
        ));
    }

    #[test]
    fn retry_after_is_honoured_and_jitter_only_added() {
        let p = policy();
        let ra = Duration::from_secs(2);
        let f = Failure::Status {
            status: 429,
            retry_after: Some(ra),
        };
        for r in [0.0, 0.25, 0.5, 0.999] {
            match p.decide(1, f, false, r) {
                Decision::Retry(d) => {
                    assert!(d >= ra, "never earlier than Retry-After");
                    assert!(d < ra + Duration::from_millis(500));
                }
                other => panic!("{other:?}"),
            }
        }
        // 429 without Retry-After: backoff
        assert!(matches!(p.decide(1, status(429), false, 0.5), Decision::Retry(d) if d < p.base));
        // 503 with Retry-After waits as a 429 does (RFC 9110 §10.2.3).
        let f = Failure::Status {
            status: 503,
            retry_after: Some(ra),
        };
        assert!(matches!(p.decide(1, f, false, 0.0), Decision::Retry(d) if d >= ra));
    }

    #[test]
    fn retry_after_above_ceiling_fails() {
        let p = policy();
        let f = Failure::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(61)),
        };
        assert_eq!(
            p.decide(1, f, false, 0.5),
            Decision::Fail(GiveUp::RetryAfterTooLong(Duration::from_secs(61)))
        );
        let f = Failure::Status {
            status: 429,
            retry_after: Some(Duration::from_secs(60)),
        };
        assert!(matches!(p.decide(1, f, false, 0.5), Decision::Retry(_)));
    }

    #[test]
    fn full_jitter_bounds() {
        let p = policy();
        for attempt in 1..=12 {
            let ceiling = (p.base * 2u32.pow(attempt - 1)).min(p.cap);
            assert_eq!(p.backoff(attempt, 0.0), Duration::ZERO);
            let hi = p.backoff(attempt, 0.999_999);
            assert!(hi <= ceiling && hi + Duration::from_millis(1) >= ceiling.mul_f64(0.999));
            for r in [0.1, 0.5, 0.9] {
                assert!(p.backoff(attempt, r) <= ceiling);
            }
        }
        assert!(p.backoff(40, 0.999_999) <= p.cap);
        assert!(p.backoff(1, 0.999_999) < Duration::from_millis(500));
        // random numbers out of range are clamped
        assert!(p.backoff(2, 7.0) <= Duration::from_secs(1));
    }

    #[test]
    fn budget_spends_and_refunds() {
        let b = RetryBudget::new(20);
        assert!(b.try_spend(RETRY_COST));
        assert!(b.try_spend(TIMEOUT_RETRY_COST));
        assert_eq!(b.available(), 5);
        assert!(b.try_spend(RETRY_COST));
        assert!(!b.try_spend(RETRY_COST), "empty bucket stops retries");
        b.on_success(0);
        assert_eq!(b.available(), 1);
        b.on_success(RETRY_COST);
        assert_eq!(b.available(), 6);
        for _ in 0..100 {
            b.on_success(0);
        }
        assert_eq!(b.available(), 20, "never above capacity");
    }

    #[test]
    fn budget_stops_a_failing_storm() {
        // 1000 UUIDs against a server failing every call: without a budget 3000 retries,
        // with the default budget at most 500 / 5 = 100.
        let b = RetryBudget::new(500);
        let p = policy();
        let mut retries = 0;
        for _ in 0..1000 {
            let mut attempt = 1;
            while let Decision::Retry(_) = p.decide(attempt, status(503), false, 0.5) {
                if !b.try_spend(RETRY_COST) {
                    break;
                }
                retries += 1;
                attempt += 1;
            }
        }
        assert_eq!(retries, 100);
    }
}
