//! The shared token cache.
//!
//! The cache is single-flight: a fresh token is read under a cheap `RwLock`; refreshing takes
//! an async mutex, and whoever gets it second finds the token the first one fetched. Failures
//! are shared the same way (callers queued behind a failed refresh get its error instead of
//! each trying again), and a refused credential is remembered for the rest of the run.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderValue;
use secrecy::ExposeSecret;
use tokio::time::Instant;

use crate::dialect::Dialect;
use crate::error::{Error, ErrorKind};
use crate::oauth::TokenGrant;
use crate::retry::{drive, Attempted, Failure, GiveUp, RetryBudget, RetryLogic, RetryPolicy};

/// A cached access token. `Debug` never shows the token.
pub(crate) struct CachedToken {
    /// `Authorization: Bearer …`, built once per token (marked sensitive, so hyper and `Debug`
    /// never show it): formatting and validating it per request cost about 1% of the client's
    /// CPU. `None` when the token holds characters a header cannot carry. The grant's
    /// `SecretString` is dropped (and zeroed) once this is built.
    pub(crate) bearer: Option<HeaderValue>,
    /// Increments with every token fetched, so a 401 invalidates only the token it rejected.
    pub(crate) generation: u64,
    refresh_at: Instant,
    pub(crate) expires_at: SystemTime,
    pub(crate) scope: Option<String>,
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("token", &"[REDACTED]")
            .field("generation", &self.generation)
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Lifetime assumed when the token endpoint does not say.
const DEFAULT_EXPIRES_IN: u64 = 300;

/// How long before expiry to refresh: min(30 s, expires_in / 2).
pub(crate) fn refresh_margin(expires_in: Duration) -> Duration {
    Duration::from_secs(30).min(expires_in / 2)
}

/// Shared, single-flight token cache.
#[derive(Debug, Default)]
pub(crate) struct TokenCache {
    current: RwLock<Option<Arc<CachedToken>>>,
    refresh: tokio::sync::Mutex<()>,
    /// A refused credential: every later call fails with it at once.
    fatal: RwLock<Option<Error>>,
    /// Count and last error of failed refreshes, so queued callers share one failure.
    failures: AtomicU64,
    last_failure: RwLock<Option<Error>>,
    generation: AtomicU64,
    requests: AtomicU64,
}

impl TokenCache {
    fn fresh(&self) -> Option<Arc<CachedToken>> {
        let g = self.current.read().unwrap_or_else(|p| p.into_inner());
        g.as_ref()
            .filter(|t| t.refresh_at > Instant::now())
            .cloned()
    }

    fn fatal_error(&self) -> Option<Error> {
        self.fatal.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Token requests sent so far (attempts, including retries).
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Drops the cached token if it is still the one with `generation` (the one a server just
    /// rejected); if someone already replaced it, the newer token is kept.
    pub(crate) fn invalidate(&self, generation: u64) {
        let mut g = self.current.write().unwrap_or_else(|p| p.into_inner());
        if g.as_ref().is_some_and(|t| t.generation == generation) {
            *g = None;
        }
    }

    /// A fresh token, fetching (with retries for 5xx, 429 and transport errors, paid from the
    /// same retry budget as executes) if needed.
    pub(crate) async fn get(
        &self,
        dialect: &dyn Dialect,
        http: &reqwest::Client,
        policy: &RetryPolicy,
        budget: Option<&RetryBudget>,
    ) -> Result<Arc<CachedToken>, Error> {
        if let Some(e) = self.fatal_error() {
            return Err(e);
        }
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        let failures_before = self.failures.load(Ordering::Acquire);
        let _guard = self.refresh.lock().await;
        if let Some(e) = self.fatal_error() {
            return Err(e);
        }
        if let Some(t) = self.fresh() {
            return Ok(t);
        }
        if self.failures.load(Ordering::Acquire) != failures_before {
            // A refresh failed while we waited: share its error rather than repeating it.
            if let Some(e) = self
                .last_failure
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                return Err(e);
            }
        }
        match self.fetch_with_retries(dialect, http, policy, budget).await {
            Ok(t) => Ok(t),
            Err(e) => {
                if e.is_fatal() {
                    *self.fatal.write().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                }
                *self.last_failure.write().unwrap_or_else(|p| p.into_inner()) = Some(e.clone());
                self.failures.fetch_add(1, Ordering::AcqRel);
                Err(e)
            }
        }
    }

    async fn fetch_with_retries(
        &self,
        dialect: &dyn Dialect,
        http: &reqwest::Client,
        policy: &RetryPolicy,
        budget: Option<&RetryBudget>,
    ) -> Result<Arc<CachedToken>, Error> {
        let mut logic = TokenLogic {
            dialect,
            http,
            requests: &self.requests,
        };
        // One budget for every retry the client makes: a sick token endpoint must not multiply
        // the load any more than a sick execute endpoint.
        let grant = drive(policy, budget, &mut logic).await?;
        Ok(self.store(grant))
    }

    fn store(&self, grant: TokenGrant) -> Arc<CachedToken> {
        let expires_in = Duration::from_secs(grant.expires_in.unwrap_or(DEFAULT_EXPIRES_IN));
        let now = Instant::now();
        let bearer =
            HeaderValue::try_from(format!("Bearer {}", grant.access_token.expose_secret()))
                .ok()
                .map(|mut v| {
                    v.set_sensitive(true);
                    v
                });
        let token = Arc::new(CachedToken {
            bearer,
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
            refresh_at: now + expires_in.saturating_sub(refresh_margin(expires_in)),
            expires_at: SystemTime::now() + expires_in,
            scope: grant.scope,
        });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        token
    }
}

/// How a token request is retried: refused credentials, discovery faults and garbage answers
/// are the same for every UUID, so they stop at once (and stop the run); 5xx, 429 and
/// transport errors go through the policy.
struct TokenLogic<'a> {
    dialect: &'a dyn Dialect,
    http: &'a reqwest::Client,
    requests: &'a AtomicU64,
}

impl RetryLogic for TokenLogic<'_> {
    type Output = TokenGrant;

    async fn attempt(&mut self, _attempt: u32) -> Result<TokenGrant, Attempted> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let err = match self.dialect.fetch_token(self.http).await {
            Ok(grant) => return Ok(grant),
            Err(e) => e,
        };
        if !err.is_transient() {
            return Err(Attempted {
                failure: None,
                error: err.into_fatal(),
            });
        }
        let failure = match err.kind() {
            ErrorKind::Timeout => Failure::Timeout,
            ErrorKind::Transport => Failure::Connection,
            _ => Failure::Status {
                status: err.status().unwrap_or(503),
                retry_after: err.retry_after(),
            },
        };
        Err(Attempted {
            failure: Some(failure),
            error: err,
        })
    }

    fn give_up(&mut self, last: Error, failure: Failure, _why: GiveUp, attempts: u32) -> Error {
        if matches!(failure, Failure::Connection | Failure::Timeout) {
            // An endpoint that cannot be reached at all fails every UUID the same way: stop
            // the run, as refused credentials do, instead of retrying it once per UUID.
            return Error::new(
                ErrorKind::TokenUnavailable,
                format!(
                    "the token endpoint could not be reached after {attempts} attempt(s): {last}; \
                     nothing more is sent: check the URL and the network path to it (DNS, proxy, \
                     firewall)"
                ),
            )
            .into_fatal();
        }
        let mut e = Error::new(
            ErrorKind::TokenUnavailable,
            format!("could not obtain an access token after {attempts} attempt(s): {last}"),
        );
        if let Some(s) = last.status() {
            e = e.with_status(s);
        }
        e
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn margin_is_min_of_30s_and_half_life() {
        assert_eq!(
            refresh_margin(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(40)),
            Duration::from_secs(20)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn invalidate_only_the_rejected_generation() {
        let c = TokenCache::default();
        let t1 = c.store(TokenGrant {
            access_token: SecretString::from("a".to_string()),
            expires_in: Some(3600),
            scope: None,
        });
        let t2 = c.store(TokenGrant {
            access_token: SecretString::from("b".to_string()),
            expires_in: Some(3600),
            scope: None,
        });
        c.invalidate(t1.generation);
        assert_eq!(
            c.fresh().unwrap().generation,
            t2.generation,
            "newer token kept"
        );
        c.invalidate(t2.generation);
        assert!(c.fresh().is_none());
        assert!(format!("{t2:?}").contains("REDACTED"));
    }

    #[test]
    fn the_bearer_header_is_built_once_and_hidden() {
        let c = TokenCache::default();
        let grant = |t: &str| TokenGrant {
            access_token: SecretString::from(t.to_string()),
            expires_in: Some(3600),
            scope: None,
        };
        let t = c.store(grant("tok-123"));
        let bearer = t.bearer.as_ref().expect("a header value");
        assert_eq!(bearer.as_bytes(), b"Bearer tok-123");
        assert!(bearer.is_sensitive());
        let shown = format!("{t:?} {bearer:?}");
        assert!(!shown.contains("tok-123"), "{shown}");
        // A token no header can carry: no value, and the request fails saying so.
        assert!(c.store(grant("tok\n123")).bearer.is_none());
    }
}
