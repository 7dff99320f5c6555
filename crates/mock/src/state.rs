//! The server's shared state: issued tokens, attempt counters, the rate limiter and the record.
//!
//! Every lock is a `std::sync::Mutex` held for a few instructions and never across an await,
//! which is simpler and faster than an async lock for this.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::config::{MockConfig, Step};

/// A snapshot of what the mock received, for tests to assert on.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Recorded {
    /// Requests to the token endpoint, whatever their outcome.
    pub token_requests: u64,
    /// Every execute attempt, in arrival order.
    pub execute_requests: Vec<RecordedRequest>,
    /// Execute responses by status (token-endpoint answers are counted in
    /// `token_responses_by_status`; a closed connection counts nowhere).
    pub responses_by_status: BTreeMap<u16, u64>,
    /// Token-endpoint responses by status.
    #[serde(default)]
    pub token_responses_by_status: BTreeMap<u16, u64>,
}

impl Recorded {
    /// How many execute attempts carried this Idempotency-Key (or, without one, this UUID).
    pub fn attempts_for(&self, key: &str) -> usize {
        self.execute_requests
            .iter()
            .filter(|r| {
                r.idempotency_key.as_deref() == Some(key)
                    || (r.idempotency_key.is_none() && r.uuid.as_deref() == Some(key))
            })
            .count()
    }

    /// Execute responses with this status.
    pub fn count_status(&self, status: u16) -> u64 {
        self.responses_by_status.get(&status).copied().unwrap_or(0)
    }
}

/// One execute attempt as the mock saw it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// The request path.
    pub path: String,
    /// The query string, if any (e.g. `flatten=true`).
    #[serde(default)]
    pub query: Option<String>,
    /// The `Idempotency-Key` header, if sent.
    pub idempotency_key: Option<String>,
    /// The UUID found in the body, if any.
    pub uuid: Option<String>,
    /// The body as JSON (`null` when it was not JSON).
    pub body: serde_json::Value,
    /// The status answered; 0 when the connection was closed without an answer.
    pub status: u16,
    /// Milliseconds since the server started.
    pub at_ms: u64,
    /// The `ININ-Correlation-Id` the answer carried (Genesys dialect).
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Milliseconds from arrival until the answer left, once it has: the latency the server
    /// really held the request for. `--latency-ms` is a floor, not the figure: tokio's timer
    /// fires on whole milliseconds, so a bench oracle built on latency reads this.
    #[serde(default)]
    pub held_ms: Option<f64>,
}

/// Why a bearer token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenCheck {
    Valid,
    Missing,
    Unknown,
    Expired,
}

pub(crate) struct Shared {
    pub(crate) config: MockConfig,
    pub(crate) started: Instant,
    pub(crate) base_url: String,
    tokens: Mutex<HashMap<String, Instant>>,
    attempts: Mutex<HashMap<String, usize>>,
    token_counter: AtomicU64,
    contact_counter: AtomicU64,
    limits: crate::limits::Limits,
    recorded: Mutex<Recorded>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks cannot leave the data half-updated in a way
    // that matters to a test double, so recover instead of propagating the poison.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(config: MockConfig, base_url: String) -> Self {
        // `rate_limit` is the old spelling of a `bucket:R` limit.
        let limits: Vec<crate::limits::Limit> = config
            .rate_limit
            .filter(|r| r.is_finite() && *r > 0.0)
            .map(crate::limits::Limit::bucket)
            .into_iter()
            .chain(config.limits.iter().cloned())
            .collect();
        let limits = crate::limits::Limits::new(&limits);
        Shared {
            config,
            started: Instant::now(),
            base_url,
            tokens: Mutex::new(HashMap::new()),
            attempts: Mutex::new(HashMap::new()),
            token_counter: AtomicU64::new(0),
            contact_counter: AtomicU64::new(12345),
            limits,
            recorded: Mutex::new(Recorded::default()),
        }
    }

    pub(crate) fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Issues a fresh random token valid for `token_ttl_secs`.
    pub(crate) fn issue_token(&self) -> String {
        let bytes: [u8; 32] = rand::rng().random();
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let expiry = Instant::now() + Duration::from_secs(self.config.token_ttl_secs);
        let mut tokens = lock(&self.tokens);
        if tokens.len() > 10_000 {
            let now = Instant::now();
            tokens.retain(|_, exp| *exp > now);
        }
        tokens.insert(token.clone(), expiry);
        token
    }

    /// Every token issued and still remembered (expired ones too, until pruned past 10 000).
    pub(crate) fn issued_tokens(&self) -> Vec<String> {
        lock(&self.tokens).keys().cloned().collect()
    }

    pub(crate) fn check_token(&self, token: Option<&str>) -> TokenCheck {
        let Some(token) = token else {
            return TokenCheck::Missing;
        };
        match lock(&self.tokens).get(token) {
            None => TokenCheck::Unknown,
            Some(exp) if Instant::now() >= *exp => TokenCheck::Expired,
            Some(_) => TokenCheck::Valid,
        }
    }

    /// Counts a token request and returns its scripted step, if the script reaches that far.
    pub(crate) fn next_token_step(&self) -> Option<Step> {
        let k = self.token_counter.fetch_add(1, Ordering::SeqCst);
        lock(&self.recorded).token_requests += 1;
        usize::try_from(k)
            .ok()
            .and_then(|k| self.config.token_script.get(k).copied())
    }

    pub(crate) fn record_token_response(&self, status: u16) {
        *lock(&self.recorded)
            .token_responses_by_status
            .entry(status)
            .or_insert(0) += 1;
    }

    /// Counts an attempt for this key and returns its scripted step.
    pub(crate) fn next_execute_step(&self, key: Option<&str>) -> Option<Step> {
        let key = key?;
        let k = {
            let mut attempts = lock(&self.attempts);
            let n = attempts.entry(key.to_string()).or_insert(0);
            let k = *n;
            *n += 1;
            k
        };
        self.config.script.get(k).copied()
    }

    /// Checks an execute request against every limit (see [`crate::limits`]).
    pub(crate) fn admit(&self, token: &str) -> crate::limits::Decision {
        self.limits.admit(token, Instant::now())
    }

    /// Decides whether this attempt fails at random.
    pub(crate) fn random_failure(&self) -> bool {
        let p = self.config.fail_rate;
        p > 0.0 && rand::rng().random::<f64>() < p
    }

    pub(crate) fn next_contact_id(&self) -> u64 {
        self.contact_counter.fetch_add(1, Ordering::SeqCst)
    }

    /// Records an attempt and says where, for [`Shared::record_held`].
    pub(crate) fn record_execute(&self, request: RecordedRequest) -> usize {
        let mut rec = lock(&self.recorded);
        if request.status != 0 {
            *rec.responses_by_status.entry(request.status).or_insert(0) += 1;
        }
        rec.execute_requests.push(request);
        rec.execute_requests.len() - 1
    }

    /// How long the attempt recorded at `index` was held before its answer left.
    pub(crate) fn record_held(&self, index: usize, held: Duration) {
        if let Some(r) = lock(&self.recorded).execute_requests.get_mut(index) {
            r.held_ms = Some(held.as_secs_f64() * 1000.0);
        }
    }

    pub(crate) fn snapshot(&self) -> Recorded {
        lock(&self.recorded).clone()
    }
}
