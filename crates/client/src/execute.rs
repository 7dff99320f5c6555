//! The client: one connection pool, the token cache, the rate limiter and the retry driver
//! around a dialect.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::{
    HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT,
};
use uuid::Uuid;

use crate::config::{AuthMethod, ClientConfig, OnAmbiguous, Provider, RateSpec};
use crate::dialect::{self, Dialect, Outputs, PreparedRequest};
use crate::error::{Error, ErrorKind};
use crate::flow::{AnswerInfo, Flow, Limits};
use crate::http::{exchange, exchange_direct, server_message, Answer};
use crate::rate::RateLimiter;
use crate::retry::{drive, Attempted, Failure, GiveUp, RetryBudget, RetryLogic, RetryPolicy};
use crate::token::TokenCache;

/// The execute request's content type and accepted type.
const JSON: HeaderValue = HeaderValue::from_static("application/json");
/// The UUID, as draft-ietf-httpapi-idempotency-key-header names it.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// What reqwest sends for the other requests (its `user_agent`).
const USER_AGENT_VALUE: HeaderValue =
    HeaderValue::from_static(concat!("cxone-uuid/", env!("CARGO_PKG_VERSION")));

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
    /// The CXone token flow, for the CXone dialect.
    pub cxone_auth: Option<crate::config::CxoneAuth>,
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
    /// Wall time from the call to the outcome, every wait included (pacer, token, backoff).
    pub latency: Duration,
    /// The server's part: from each attempt's request being written to its answer read, summed
    /// over the attempts. Waits between attempts (backoff, Retry-After), the pacer and fetching a
    /// token are excluded, so `--rate 20` against an instant server reports about 0, not 50 ms.
    pub server_latency: Duration,
    /// Time held back by the client's own pacer (`--rate`), summed over the attempts. With N
    /// requests in flight, each queues here behind the others (about N pacer intervals); the
    /// time a caller keeps a UUID before calling (its backlog) is not in it.
    pub wait: Duration,
    /// Attempts whose outcome on the server is unknown: a timeout or a connection lost after the
    /// request may have been written, or a 500/502/504 (the action may have run). The
    /// Idempotency-Key makes their retries safe; the count says how often it was needed.
    pub ambiguous: u32,
    /// The last answer's request id, for support: Genesys's `ININ-Correlation-Id` (else the
    /// error body's `contextId`), other platforms' `X-Request-Id` or `X-Correlation-Id`.
    pub correlation_id: Option<String>,
}

struct Inner {
    config: ClientConfig,
    http: reqwest::Client,
    dialect: Box<dyn Dialect>,
    tokens: TokenCache,
    policy: RetryPolicy,
    budget: Option<RetryBudget>,
    flow: Flow,
    /// The execute path's own pool ([`crate::direct`]).
    direct: crate::direct::Direct,
    /// The execute URL parsed once: the dialects build the same one for every UUID, and
    /// parsing it per request (with IDNA) was about 2% of the client's CPU per request.
    parsed_url: std::sync::OnceLock<(String, ParsedUrl)>,
}

/// The execute URL, parsed for each of the two ways it may be sent.
#[derive(Clone)]
struct ParsedUrl {
    /// For reqwest (a proxy applies to it).
    url: reqwest::Url,
    /// For the direct pool, with its `Host` header; `None` when a proxy applies.
    uri: Option<(http::Uri, HeaderValue)>,
}

/// The `Host` header hyper-util would write for `uri`: the host, and the port unless it is the
/// scheme's default. Sent by the client, it is worked out once per run: left to hyper-util, it
/// was formatted and parsed again on every request (1.4% of the client's CPU at 64 in flight,
/// one core, `--audit jsonl`).
fn host_header(uri: &http::Uri) -> Option<HeaderValue> {
    let host = uri.host()?;
    let secure = matches!(uri.scheme_str(), Some("https" | "wss"));
    let value = match uri.port_u16() {
        Some(443) if secure => host.to_string(),
        Some(80) if !secure => host.to_string(),
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    HeaderValue::from_str(&value).ok()
}

/// The Data Action client. Cheap to clone (one shared pool, token cache and limiter).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("provider", &self.inner.config.provider.kind())
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
    server: Duration,
    wait: Duration,
    ambiguous: u32,
    correlation_id: Option<String>,
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
            .user_agent(USER_AGENT_VALUE)
            .build()
            .map_err(|e| Error::config(format!("cannot build the HTTP client: {e}")))?;
        let direct = crate::direct::Direct::new(
            config.timeout,
            config.timeout.min(Duration::from_secs(10)),
            config.concurrency.max(1),
        )
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
                flow: Flow::new(
                    config.rate,
                    match (config.rate, config.provider.kind()) {
                        // Genesys documents its per-token quota (300/min): start there, not
                        // unthrottled, and adapt from there.
                        (RateSpec::Auto, Provider::Genesys) => {
                            RateLimiter::auto_from(dialect::genesys::TOKEN_RATE_PER_SECOND)
                        }
                        (spec, _) => RateLimiter::new(spec),
                    },
                    config.concurrency.max(1),
                    config.adaptive_concurrency,
                ),
                policy,
                http,
                direct,
                dialect,
                tokens: TokenCache::default(),
                parsed_url: std::sync::OnceLock::new(),
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
        self.inner.flow.rate_target()
    }

    /// The run will submit `n` UUIDs: near its end the flow control stops probing for a
    /// higher limit, since a refused probe would wait out its Retry-After after the rest.
    pub fn expect(&self, n: u64) {
        self.inner.flow.expect(n);
    }

    /// What the client learned about the server's limits (rate, concurrency, quota policy).
    pub fn limits(&self) -> Limits {
        self.inner.flow.limits()
    }

    /// A failure without any HTTP answer (DNS, connect, timeout) gets the dialect's hint line.
    fn hinted(&self, e: Error) -> Error {
        let no_answer = e.status().is_none()
            && matches!(
                e.kind(),
                ErrorKind::Transport | ErrorKind::Timeout | ErrorKind::TokenUnavailable
            );
        match self.inner.dialect.transport_hint() {
            Some(h) if no_answer && !e.message().contains(&h) => e.suffixed(&format!("\n{h}")),
            _ => e,
        }
    }

    /// Fetches (or reuses) a token and says who and where it authenticated.
    pub async fn token_info(&self) -> Result<TokenInfo, Error> {
        let i = &self.inner;
        let token = i
            .tokens
            .get(&*i.dialect, &i.http, &i.policy, i.budget.as_ref())
            .await
            .map_err(|e| self.hinted(e))?;
        let ep = i.dialect.endpoints();
        Ok(TokenInfo {
            provider: i.config.provider.kind(),
            token_endpoint: ep.token_endpoint.unwrap_or_default(),
            api_base: ep.api_base,
            expires_at: token.expires_at,
            scope: token
                .scope
                .clone()
                .or_else(|| match i.config.provider.kind() {
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
            cxone_auth: match &i.config.provider {
                crate::config::ProviderConfig::Cxone(x) => Some(x.auth),
                _ => None,
            },
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
            server_latency: c.server,
            wait: c.wait,
            ambiguous: c.ambiguous,
            correlation_id: c.correlation_id,
        }
    }

    async fn execute_inner(&self, uuid: Uuid, c: &mut Counters) -> Result<Outputs, Error> {
        let i = &*self.inner;
        let mut logic = ExecuteLogic {
            client: self,
            uuid,
            counters: c,
            token_generation: None,
            last_request: None,
        };
        drive(&i.policy, i.budget.as_ref(), &mut logic).await?
    }

    /// One attempt: the answer with its body read, or a transport error.
    async fn send(
        &self,
        req: &PreparedRequest,
        bearer: Option<&HeaderValue>,
        uuid: &Uuid,
    ) -> Result<Answer, Error> {
        let cached = self
            .inner
            .parsed_url
            .get()
            .filter(|(raw, _)| *raw == req.url)
            .map(|(_, parsed)| parsed);
        // Borrowed from the cache: a clone would copy the URL's string on every request.
        let fresh;
        let parsed = match cached {
            Some(parsed) => parsed,
            None => {
                fresh = self.parse_url(&req.url)?;
                let _ = self.inner.parsed_url.set((req.url.clone(), fresh.clone()));
                &fresh
            }
        };
        let what = "execute request to";
        let bearer = bearer.cloned().ok_or_else(|| {
            Error::new(
                ErrorKind::TokenUnavailable,
                "the access token holds characters an HTTP header cannot carry".to_string(),
            )
        })?;
        let key = HeaderValue::try_from(uuid.hyphenated().to_string())
            .map_err(|e| Error::new(ErrorKind::Config, format!("Idempotency-Key: {e}")))?;
        let Some((uri, host)) = &parsed.uri else {
            let request = self
                .inner
                .http
                .request(req.method.clone(), parsed.url.clone())
                .header(AUTHORIZATION, bearer)
                .header(CONTENT_TYPE, JSON)
                .header(ACCEPT, JSON)
                .header(IDEMPOTENCY_KEY, key)
                .body(req.body.clone());
            return exchange(request, what, &req.url).await;
        };
        let body = bytes::Bytes::from(req.body.clone());
        let request = || {
            let mut request = http::Request::new(http_body_util::Full::new(body.clone()));
            *request.method_mut() = req.method.clone();
            *request.uri_mut() = uri.clone();
            let headers = request.headers_mut();
            headers.insert(HOST, host.clone());
            headers.insert(AUTHORIZATION, bearer.clone());
            headers.insert(CONTENT_TYPE, JSON);
            headers.insert(ACCEPT, JSON);
            headers.insert(IDEMPOTENCY_KEY, key.clone());
            headers.insert(USER_AGENT, USER_AGENT_VALUE);
            request
        };
        exchange_direct(&self.inner.direct, request, what, &req.url).await
    }

    /// Parses the execute URL for reqwest, and for the direct pool unless a proxy applies.
    fn parse_url(&self, raw: &str) -> Result<ParsedUrl, Error> {
        let not_url = |e: &dyn fmt::Display| {
            Error::new(
                ErrorKind::Config,
                format!("execute URL {raw} is not a URL: {e}"),
            )
        };
        let url = reqwest::Url::parse(raw).map_err(|e| not_url(&e))?;
        let uri: http::Uri = url.as_str().parse().map_err(|e| not_url(&e))?;
        let uri = (!self.inner.direct.proxied(&uri))
            .then(|| host_header(&uri).map(|host| (uri, host)))
            .flatten();
        Ok(ParsedUrl { url, uri })
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
                let hint = match failure {
                    Failure::Connection => i
                        .dialect
                        .transport_hint()
                        .map(|h| format!("\n{h}"))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
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
                    format!("{base}{extra}; gave up after {attempts} attempt(s){hint}"),
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
                    .map(|d| {
                        if d.starts_with('\n') {
                            d
                        } else {
                            format!("; {d}")
                        }
                    })
                    .unwrap_or_default();
                let limit = (status == 429)
                    .then(|| i.dialect.refusing_limit(body))
                    .flatten();
                let e = match (status, why) {
                    (_, GiveUp::RetryAfterTooLong(ra)) => Error::new(
                        ErrorKind::RateLimited,
                        format!(
                            "rate limited (HTTP {status}){}: the server asked to retry after {} s, more than --max-retry-after {} s; not waiting",
                            limit.as_ref().map(|l| format!(" by {l}")).unwrap_or_default(),
                            ra.as_secs(),
                            i.config.max_retry_after.as_secs()
                        ),
                    ),
                    // The limit that refused, when the platform names it (Genesys's ErrorBody
                    // `limit`): the one thing to raise or spread load over.
                    (429, _) if limit.is_some() => Error::new(
                        ErrorKind::RateLimited,
                        format!(
                            "rate limited (429) by {}, after {attempts} attempt{} (at {url}{})",
                            limit.as_deref().unwrap_or_default(),
                            if attempts == 1 { "" } else { "s" },
                            retry_after
                                .map(|d| format!(", last Retry-After {} s", d.as_secs()))
                                .unwrap_or_default()
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

/// How a UUID ended by `--on-ambiguous fail` begins its error, so the trail says it and
/// `--retry-failed` leaves it alone.
pub const AMBIGUOUS_PREFIX: &str = "may have executed";

/// Whether an attempt's outcome on the server is unknown (see [`ExecuteReport::ambiguous`]): a
/// refused connection never reached the server, every other transport failure may have.
fn is_ambiguous(answer: &Result<Answer, Error>) -> bool {
    match answer {
        Ok(a) => matches!(a.status, 500 | 502 | 504),
        Err(e) => match e.kind() {
            ErrorKind::Timeout => true,
            ErrorKind::Transport => !e.to_string().contains(": connection failed: "),
            _ => false,
        },
    }
}

/// The execute call's side of the retry driver: a token, the rate limiter and one POST per
/// attempt; a 401 refreshes the token once, a 429 slows the limiter, and the final error says
/// what the server answered last.
struct ExecuteLogic<'a> {
    client: &'a Client,
    uuid: Uuid,
    counters: &'a mut Counters,
    /// The token the last attempt used, invalidated on a 401.
    token_generation: Option<u64>,
    /// The last request sent and the body of its failed answer, for the final error.
    last_request: Option<(PreparedRequest, Vec<u8>)>,
}

impl RetryLogic for ExecuteLogic<'_> {
    /// A 2xx answer, parsed or not: a body that does not parse is not retried.
    type Output = Result<Outputs, Error>;

    async fn attempt(&mut self, attempt: u32) -> Result<Self::Output, Attempted> {
        let i = &*self.client.inner;
        let stop = |error| Attempted {
            failure: None,
            error,
        };
        let token = i
            .tokens
            .get(&*i.dialect, &i.http, &i.policy, i.budget.as_ref())
            .await
            .map_err(|e| stop(self.client.hinted(e)))?;
        self.token_generation = Some(token.generation);
        let req = i.dialect.prepare(&self.uuid).map_err(stop)?;
        let paced = tokio::time::Instant::now();
        let permit = i.flow.acquire().await;
        if attempt == 1 {
            i.flow.first_sent();
        }
        let sent = tokio::time::Instant::now();
        self.counters.wait += sent - paced;
        self.counters.attempts += 1;
        let answer = self
            .client
            .send(&req, token.bearer.as_ref(), &self.uuid)
            .await;
        self.counters.server += sent.elapsed();
        let ambiguous = is_ambiguous(&answer);
        if ambiguous {
            self.counters.ambiguous += 1;
        }
        // Retrying an attempt that may have run the action could run it twice: with
        // --on-ambiguous fail it ends the UUID here, saying so (after the flow control has
        // heard the answer, so its slot and its signal are not lost).
        let may_have_executed = |kind: ErrorKind, what: String| {
            Attempted {
            failure: None,
            error: Error::new(
                kind,
                format!(
                    "{AMBIGUOUS_PREFIX}: check the target before resubmitting ({what}; --on-ambiguous fail)"
                ),
            ),
        }
        };
        let fail_ambiguous = ambiguous && i.config.on_ambiguous == OnAmbiguous::Fail;
        let (failure, body, error) = match answer {
            Ok(answer) => {
                let status = answer.status;
                self.counters.http_status = Some(status);
                self.counters.correlation_id = i.dialect.correlation_id(&answer.ids, &answer.body);
                // Genesys names the refusing limit: actions.concurrent.executions.max (and
                // its function-action subset) is a concurrency limit, not a rate.
                let concurrency_limit = status == 429
                    && i.dialect
                        .refusing_limit(&answer.body)
                        .is_some_and(|l| l.contains("concurrent"));
                i.flow.on_answer(
                    permit,
                    AnswerInfo {
                        status,
                        retry_after: answer.retry_after,
                        quota: answer.quota.as_ref(),
                        concurrency_limit,
                        concurrency_cap: answer.concurrency_cap,
                    },
                );
                if answer.is_success() {
                    if answer.oversized {
                        return Ok(Err(dialect::unexpected(
                            "body larger than 1 MiB",
                            &answer.body,
                        )
                        .with_status(status)));
                    }
                    return Ok(i
                        .dialect
                        .parse(&self.uuid, &answer.body)
                        .map_err(|e| e.with_status(status)));
                }
                if status == 429 {
                    self.counters.rate_limited += 1;
                }
                if fail_ambiguous {
                    return Err(may_have_executed(
                        ErrorKind::Server,
                        format!("HTTP {status}"),
                    ));
                }
                let failure = Failure::Status {
                    status,
                    retry_after: answer.retry_after,
                };
                // Placeholder: the final error is built from the body in `give_up`.
                let error = Error::new(ErrorKind::Rejected, String::new());
                (failure, answer.body, error)
            }
            Err(e) => {
                i.flow.on_no_answer(permit);
                if fail_ambiguous {
                    return Err(may_have_executed(e.kind(), e.to_string()));
                }
                let f = if e.kind() == ErrorKind::Timeout {
                    Failure::Timeout
                } else {
                    Failure::Connection
                };
                (f, Vec::new(), e)
            }
        };
        self.last_request = Some((req, body));
        Err(Attempted {
            failure: Some(failure),
            error,
        })
    }

    fn can_refresh(&self) -> bool {
        true
    }

    fn refresh(&mut self) {
        if let Some(g) = self.token_generation {
            self.client.inner.tokens.invalidate(g);
        }
        // The attempt after a refresh is a retry too, in the counts users see.
        self.counters.retries += 1;
    }

    fn on_retry(&mut self, attempt: u32, wait: Duration) {
        self.counters.retries += 1;
        tracing::debug!(uuid = %self.uuid, attempt, backoff_ms = wait.as_millis() as u64, "retrying");
    }

    fn give_up(&mut self, last: Error, failure: Failure, why: GiveUp, _attempts: u32) -> Error {
        let Some((req, body)) = self.last_request.take() else {
            return last;
        };
        let transport_err = match failure {
            Failure::Timeout | Failure::Connection => Some(last),
            Failure::Status { .. } => None,
        };
        self.client
            .final_error(&req, failure, &body, transport_err, why, self.counters)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::host_header;

    /// The port is named unless it is the scheme's default, as hyper-util writes it.
    #[test]
    fn the_host_header_drops_only_a_default_port() {
        let host = |u: &str| host_header(&u.parse().unwrap()).unwrap();
        assert_eq!(host("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
        assert_eq!(host("http://127.0.0.1:80/x"), "127.0.0.1");
        assert_eq!(host("http://127.0.0.1:443/x"), "127.0.0.1:443");
        assert_eq!(host("https://api.mypurecloud.com/x"), "api.mypurecloud.com");
        assert_eq!(
            host("https://api.mypurecloud.com:443/x"),
            "api.mypurecloud.com"
        );
        assert_eq!(
            host("https://api.mypurecloud.com:8443/x"),
            "api.mypurecloud.com:8443"
        );
        assert_eq!(host("http://[::1]:3000/x"), "[::1]:3000");
    }
}
