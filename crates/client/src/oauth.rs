//! Token requests and the shared token cache.
//!
//! The cache is single-flight: a fresh token is read under a cheap `RwLock`; refreshing takes
//! an async mutex, and whoever gets it second finds the token the first one fetched. Failures
//! are shared the same way (callers queued behind a failed refresh get its error instead of
//! each trying again), and a refused credential is remembered for the rest of the run.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use reqwest::header::ACCEPT;
use secrecy::SecretString;
use serde_json::Value;
use tokio::time::Instant;

use crate::dialect::{Dialect, TokenGrant};
use crate::error::{from_reqwest, server_message, Error, ErrorKind};
use crate::execute::{read_capped, MAX_BODY};
use crate::retry::{Decision, Failure, RetryPolicy};

/// A cached access token. `Debug` never shows the token.
pub(crate) struct CachedToken {
    pub(crate) secret: SecretString,
    /// Increments with every token fetched, so a 401 invalidates only the token it rejected.
    pub(crate) generation: u64,
    refresh_at: Instant,
    pub(crate) expires_at: SystemTime,
    pub(crate) scope: Option<String>,
}

impl fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedToken")
            .field("secret", &"[REDACTED]")
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

    /// A fresh token, fetching (with retries for 5xx, 429 and transport errors) if needed.
    pub(crate) async fn get(
        &self,
        dialect: &dyn Dialect,
        http: &reqwest::Client,
        policy: &RetryPolicy,
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
        match self.fetch_with_retries(dialect, http, policy).await {
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
    ) -> Result<Arc<CachedToken>, Error> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let err = match dialect.fetch_token(http).await {
                Ok(grant) => return Ok(self.store(grant)),
                Err(e) => e,
            };
            if !err.is_transient() {
                // Refused credentials, discovery faults, garbage answers: the same for every
                // UUID, so stop the run instead of retrying.
                return Err(err.into_fatal());
            }
            let failure = match err.kind() {
                ErrorKind::Timeout => Failure::Timeout,
                ErrorKind::Transport => Failure::Connection,
                _ => Failure::Status {
                    status: err.status().unwrap_or(503),
                    retry_after: err.retry_after(),
                },
            };
            match policy.decide(attempt, failure, true, rand::random()) {
                Decision::Retry(d) => tokio::time::sleep(d).await,
                _ => {
                    let mut e = Error::new(
                        ErrorKind::TokenUnavailable,
                        format!(
                            "could not obtain an access token after {attempt} attempt(s): {err}"
                        ),
                    );
                    if let Some(s) = err.status() {
                        e = e.with_status(s);
                    }
                    return Err(e);
                }
            }
        }
    }

    fn store(&self, grant: TokenGrant) -> Arc<CachedToken> {
        let expires_in = Duration::from_secs(grant.expires_in.unwrap_or(DEFAULT_EXPIRES_IN));
        let now = Instant::now();
        let token = Arc::new(CachedToken {
            secret: grant.access_token,
            generation: self.generation.fetch_add(1, Ordering::Relaxed) + 1,
            refresh_at: now + expires_in.saturating_sub(refresh_margin(expires_in)),
            expires_at: SystemTime::now() + expires_in,
            scope: grant.scope,
        });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(token.clone());
        token
    }
}

/// Client authentication for a token request.
pub(crate) enum ClientAuth<'a> {
    /// HTTP Basic with id and secret.
    Basic(&'a str, &'a str),
    /// Already in the form.
    InForm,
}

/// One token request: POST a URL-encoded form; classify the answer. `hint` finishes the
/// message for refused credentials (what to check).
pub(crate) async fn request_token(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
    auth: ClientAuth<'_>,
    hint: &str,
) -> Result<Value, Error> {
    let mut rb = http.post(url).header(ACCEPT, "application/json").form(form);
    if let ClientAuth::Basic(id, secret) = auth {
        rb = rb.basic_auth(id, Some(secret));
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| from_reqwest(&e, "token request to", url))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| crate::retry::parse_retry_after(v, SystemTime::now()));
    let (body, oversized) = read_capped(resp, MAX_BODY)
        .await
        .map_err(|e| from_reqwest(&e, "token request to", url))?;
    match status {
        200..=299 => {
            if oversized {
                return Err(Error::new(
                    ErrorKind::UnexpectedResponse,
                    format!("the token endpoint {url} answered with a body over 1 MiB"),
                ));
            }
            // Never quote a 2xx token body: it may hold a token.
            serde_json::from_slice::<Value>(&body).map_err(|_| {
                Error::new(
                    ErrorKind::UnexpectedResponse,
                    format!("the token endpoint {url} answered HTTP {status} with a body that is not JSON"),
                )
            })
        }
        400 | 401 | 403 => Err(Error::new(
            ErrorKind::Credentials,
            format!(
                "the token endpoint {url} refused the credentials (HTTP {status}: {}): {hint}",
                server_message(&body)
            ),
        )
        .with_status(status)),
        429 | 500..=599 => Err(Error::new(
            ErrorKind::TokenUnavailable,
            format!(
                "the token endpoint {url} answered HTTP {status}: {}",
                server_message(&body)
            ),
        )
        .with_status(status)
        .with_retry_after(retry_after)),
        _ => Err(Error::new(
            ErrorKind::Rejected,
            format!(
                "the token endpoint {url} answered HTTP {status}: {}",
                server_message(&body)
            ),
        )
        .with_status(status)),
    }
}

/// Reads `access_token`, `expires_in` and `scope` from a token answer.
pub(crate) fn grant_from_json(v: &Value, url: &str) -> Result<TokenGrant, Error> {
    let token = v
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::UnexpectedResponse,
                format!("the token endpoint {url} answered without an access_token"),
            )
        })?;
    let expires_in = match v.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    Ok(TokenGrant {
        access_token: SecretString::from(token.to_string()),
        expires_in,
        scope: v.get("scope").and_then(|s| s.as_str()).map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use secrecy::ExposeSecret;

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
    fn grant_parsing() {
        let v = serde_json::json!({"access_token":"tok-123","expires_in":60,"scope":"a b"});
        let g = grant_from_json(&v, "u").unwrap();
        assert_eq!(g.access_token.expose_secret(), "tok-123");
        assert_eq!(g.expires_in, Some(60));
        assert!(!format!("{g:?}").contains("tok-123"));
        let e = grant_from_json(&serde_json::json!({"token":"x"}), "https://t").unwrap_err();
        assert!(e.to_string().contains("https://t"));
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
}
