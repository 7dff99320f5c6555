//! The client: one connection pool, the token cache, the rate limiter and the retry loop
//! around a dialect.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::config::{AuthMethod, ClientConfig, Provider};
use crate::dialect::{self, Dialect, Outputs, PreparedRequest};
use crate::error::{from_reqwest, server_message, Error, ErrorKind};
use crate::oauth::TokenCache;
use crate::rate::RateLimiter;
use crate::retry::{
    parse_retry_after, Decision, Failure, GiveUp, RetryBudget, RetryPolicy, RETRY_COST,
    TIMEOUT_RETRY_COST,
};

/// Largest response body read; anything longer fails as "unexpected response format".
pub const MAX_BODY: usize = 1024 * 1024;

/// Reads at most `cap` bytes of a body chunk by chunk; the flag says the body was longer (the
/// rest is never buffered: the connection is dropped instead).
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    cap: usize,
) -> Result<(Vec<u8>, bool), reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > cap as u64) {
        // Keep only the start, for the error's excerpt.
        let mut head = resp.chunk().await?.map(|c| c.to_vec()).unwrap_or_default();
        head.truncate(1024);
        return Ok((head, true));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > cap {
            let room = cap - body.len();
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

/// Who and where the client authenticated, for `cxone-uuid token`. Never holds the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Provider.
    pub provider: Provider,
    /// Token endpoint used.
    pub token_endpoint: String,
    /// API base requests go to.
    pub api_base: Option<String>,
    /// When the token expires.
    pub expires_at: SystemTime,
    /// Granted scope, if the endpoint said.
    pub scope: Option<String>,
    /// CXone tenant id.
    pub tenant_id: Option<String>,
    /// CXone area.
    pub area: Option<String>,
    /// Client authentication method used.
    pub auth_method: AuthMethod,
}

/// The result of one UUID's execution with the counters the summary needs.
#[derive(Debug, Clone)]
pub struct ExecuteReport {
    /// Outputs, or why the UUID failed.
    pub outcome: Result<Outputs, Error>,
    /// HTTP execute attempts made.
    pub attempts: u32,
    /// Status of the last answer, if any.
    pub http_status: Option<u16>,
    /// Retries made (attempts after the first, including the one after a token refresh).
    pub retries: u32,
    /// 429 answers seen.
    pub rate_limited: u32,
    /// Wall time from the call to the outcome, waits included.
    pub latency: Duration,
}

struct Inner {
    config: ClientConfig,
    http: reqwest::Client,
    dialect: Box<dyn Dialect>,
    tokens: TokenCache,
    policy: RetryPolicy,
    budget: Option<RetryBudget>,
    rate: RateLimiter,
}

/// The Data Action client. Cheap to clone (one shared pool, token cache and limiter).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("provider", &self.inner.config.provider)
            .field("endpoints", &self.inner.dialect.endpoints())
            .field("policy", &self.inner.policy)
            .field("rate", &self.inner.config.rate)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Counters {
    attempts: u32,
    http_status: Option<u16>,
    retries: u32,
    rate_limited: u32,
}

impl Client {
    /// Validates what a token needs (use [`ClientConfig::validate`] first for `run`) and builds
    /// the pool. No request is sent yet.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        config.validate_for_token()?;
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(config.concurrency.max(1))
            // A redirect could lead to http:// or another host with our token: never follow.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cxone-uuid/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
        let dialect = dialect::for_config(&config)?;
        let policy = RetryPolicy {
            max_retries: config.max_retries,
            base: config.backoff_base,
            cap: config.backoff_cap,
            max_retry_after: config.max_retry_after,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                budget: config.retry_budget.map(RetryBudget::new),
                rate: RateLimiter::new(config.rate),
                policy,
                http,
                dialect,
                tokens: TokenCache::default(),
                config,
            }),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Token requests sent so far (including retries).
    pub fn token_requests(&self) -> u64 {
        self.inner.tokens.requests()
    }

    /// The adaptive rate target in requests/s, `None` while unthrottled or not adaptive.
    pub fn rate_target(&self) -> Option<f64> {
        self.inner.rate.target()
    }

    /// Fetches (or reuses) a token and says who and where it authenticated.
    pub async fn token_info(&self) -> Result<TokenInfo, Error> {
        let i = &self.inner;
        let token = i.tokens.get(&*i.dialect, &i.http, &i.policy).await?;
        let ep = i.dialect.endpoints();
        Ok(TokenInfo {
            provider: i.config.provider,
            token_endpoint: ep.token_endpoint.unwrap_or_default(),
            api_base: ep.api_base,
            expires_at: token.expires_at,
            scope: token.scope.clone().or_else(|| match i.config.provider {
                Provider::Tutorial => Some(
                    i.config
                        .scope
                        .clone()
                        .unwrap_or_else(|| crate::config::DEFAULT_SCOPE.to_string()),
                ),
                _ => i.config.scope.clone(),
            }),
            tenant_id: ep.tenant_id,
            area: ep.area,
            auth_method: i.config.effective_auth_method(),
        })
    }

    /// Submits one UUID, retrying as the policy says. Never panics, never returns early: the
    /// report always carries the counters.
    pub async fn execute(&self, uuid: Uuid) -> ExecuteReport {
        let start = tokio::time::Instant::now();
        let mut c = Counters::default();
        let outcome = self.execute_inner(uuid, &mut c).await;
        ExecuteReport {
            outcome,
            attempts: c.attempts,
            http_status: c.http_status,
            retries: c.retries,
            rate_limited: c.rate_limited,
            latency: start.elapsed(),
        }
    }

    async fn execute_inner(&self, uuid: Uuid, c: &mut Counters) -> Result<Outputs, Error> {
        let i = &*self.inner;
        let mut refreshed = false;
        let mut spent = 0u32;
        loop {
            let token = i.tokens.get(&*i.dialect, &i.http, &i.policy).await?;
            let req = i.dialect.prepare(&uuid)?;
            let ticket = i.rate.acquire().await;
            c.attempts += 1;
            let answer = self.send(&req, token.secret.expose_secret(), &uuid).await;
            let (failure, body, transport_err) = match answer {
                Ok((status, retry_after, body, oversized)) => {
                    c.http_status = Some(status);
                    if (200..300).contains(&status) {
                        i.rate.on_success();
                        if let Some(b) = &i.budget {
                            b.on_success(spent);
                        }
                        if oversized {
                            return Err(dialect::unexpected("body larger than 1 MiB", &body)
                                .with_status(status));
                        }
                        return i
                            .dialect
                            .parse(&uuid, &body)
                            .map_err(|e| e.with_status(status));
                    }
                    if status == 429 {
                        c.rate_limited += 1;
                        i.rate.on_throttled(ticket, retry_after);
                    }
                    (
                        Failure::Status {
                            status,
                            retry_after,
                        },
                        body,
                        None,
                    )
                }
                Err(e) => {
                    let f = if e.kind() == ErrorKind::Timeout {
                        Failure::Timeout
                    } else {
                        Failure::Connection
                    };
                    (f, Vec::new(), Some(e))
                }
            };
            match i
                .policy
                .decide(c.attempts, failure, refreshed, rand::random())
            {
                Decision::RefreshToken => {
                    i.tokens.invalidate(token.generation);
                    refreshed = true;
                    c.retries += 1;
                }
                Decision::Retry(wait) => {
                    let cost = if failure == Failure::Timeout {
                        TIMEOUT_RETRY_COST
                    } else {
                        RETRY_COST
                    };
                    if let Some(b) = &i.budget {
                        if !b.try_spend(cost) {
                            return Err(self
                                .final_error(&req, failure, &body, transport_err, GiveUp::Exhausted, c)
                                .prefixed("retry budget exhausted (most recent calls failed), not retrying: "));
                        }
                    }
                    spent += cost;
                    c.retries += 1;
                    tracing::debug!(%uuid, attempt = c.attempts, wait_ms = wait.as_millis() as u64, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Decision::Fail(why) => {
                    return Err(self.final_error(&req, failure, &body, transport_err, why, c));
                }
            }
        }
    }

    /// One attempt: (status, Retry-After, body up to the cap, oversized) or a transport error.
    async fn send(
        &self,
        req: &PreparedRequest,
        token: &str,
        uuid: &Uuid,
    ) -> Result<(u16, Option<Duration>, Vec<u8>, bool), Error> {
        let resp = self
            .inner
            .http
            .request(req.method.clone(), &req.url)
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json")
            .header("Idempotency-Key", uuid.hyphenated().to_string())
            .body(req.body.clone())
            .send()
            .await
            .map_err(|e| from_reqwest(&e, "execute request to", &req.url))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let (body, oversized) = read_capped(resp, MAX_BODY)
            .await
            .map_err(|e| from_reqwest(&e, "execute request to", &req.url))?;
        Ok((status, retry_after, body, oversized))
    }

    fn final_error(
        &self,
        req: &PreparedRequest,
        failure: Failure,
        body: &[u8],
        transport_err: Option<Error>,
        why: GiveUp,
        c: &Counters,
    ) -> Error {
        let i = &*self.inner;
        let attempts = c.attempts;
        let url = &req.url;
        match failure {
            Failure::Timeout | Failure::Connection => {
                let base = transport_err.unwrap_or_else(|| {
                    Error::new(
                        ErrorKind::Transport,
                        format!("execute request to {url} failed"),
                    )
                });
                let kind = base.kind();
                let extra = if failure == Failure::Timeout {
                    format!(
                        " (per-attempt timeout {:?}; raise --timeout if the action is slow)",
                        i.config.timeout
                    )
                } else {
                    String::new()
                };
                Error::new(
                    kind,
                    format!("{base}{extra}; gave up after {attempts} attempt(s)"),
                )
            }
            Failure::Status {
                status,
                retry_after,
            } => {
                let server = server_message(body);
                let detail = i
                    .dialect
                    .failure_detail(status, body)
                    .map(|d| format!("; {d}"))
                    .unwrap_or_default();
                let e = match (status, why) {
                    (_, GiveUp::RetryAfterTooLong(ra)) => Error::new(
                        ErrorKind::RateLimited,
                        format!(
                            "rate limited (HTTP {status}): the server asked to retry after {} s, more than --max-retry-after {} s; not waiting",
                            ra.as_secs(),
                            i.config.max_retry_after.as_secs()
                        ),
                    ),
                    (401, _) => Error::new(
                        ErrorKind::Unauthorized,
                        format!(
                            "unauthorized (HTTP 401) at {url} even with a freshly issued token: the token is not accepted for this API; server said: {server}"
                        ),
                    ),
                    (403, _) => Error::new(
                        ErrorKind::Forbidden,
                        format!(
                            "forbidden (HTTP 403) at {url}: the credentials lack {}; server said: {server}{detail}",
                            i.dialect.required_permission()
                        ),
                    ),
                    (429, _) => Error::new(
                        ErrorKind::RateLimited,
                        format!(
                            "rate limited (HTTP 429) at {url}, gave up after {attempts} attempt(s){}",
                            retry_after
                                .map(|d| format!(" (last Retry-After {} s)", d.as_secs()))
                                .unwrap_or_default()
                        ),
                    ),
                    (500..=599, _) => Error::new(
                        ErrorKind::Server,
                        format!(
                            "server error (HTTP {status}) at {url}, gave up after {attempts} attempt(s): {server}{detail}"
                        ),
                    ),
                    (300..=399, _) => Error::new(
                        ErrorKind::Rejected,
                        format!("unexpected redirect (HTTP {status}) from {url}; redirects are not followed: check the base URL"),
                    ),
                    _ => Error::new(
                        ErrorKind::Rejected,
                        format!("the server rejected the request (HTTP {status}) at {url}: {server}{detail}"),
                    ),
                };
                e.with_status(status)
            }
        }
    }
}
