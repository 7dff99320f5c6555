//! What the mock serves and which faults it injects, and the text forms of scripts.
//!
//! Scripts have a text form (`"500,429:ra=2,200"`) so the same script can be given to the
//! `cxone-uuid mock --script` flag, to `MockConfig::script` in a test, and printed back.

use std::fmt;
use std::str::FromStr;

/// Why a provider, fault or script text was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The provider name is not one of the dialects the mock speaks.
    #[error("unknown provider {0:?}: expected tutorial, genesys or cxone")]
    Provider(String),
    /// The malformed-body kind is unknown.
    #[error(
        "unknown malformed body {0:?}: expected not-array, html, oversized, truncated or echo-mismatch"
    )]
    Malformed(String),
    /// The discovery fault is unknown.
    #[error("unknown discovery fault {0:?}: expected not-found, no-tenant or malformed-json")]
    DiscoveryFault(String),
    /// A Genesys limit is not `KEY=VALUE`.
    #[error(
        "invalid Genesys limit {0:?}: expected KEY=VALUE, e.g. client.credentials.token.rate.per.minute=300"
    )]
    GenesysLimit(String),
    /// A script step could not be read.
    #[error(
        "invalid script step {step:?}: {reason} (steps look like 200, 500, 429:ra=2, 429:date=2, delay=1500, close, html, 500*3)"
    )]
    Step {
        /// The step text as given.
        step: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Which platform's API the mock imitates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Provider {
    /// The tutorial's API: client credentials at `/oauth2/token`, `[{name, value}]` responses.
    #[default]
    Tutorial,
    /// Genesys Cloud Data Actions: `/oauth/token` with HTTP Basic, flat-object execute bodies.
    Genesys,
    /// NICE CXone: password grant over access keys, OpenID and tenant discovery documents.
    Cxone,
}

impl Provider {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Tutorial => "tutorial",
            Provider::Genesys => "genesys",
            Provider::Cxone => "cxone",
        }
    }

    /// The token endpoint path of this dialect.
    pub fn token_path(self) -> &'static str {
        match self {
            Provider::Tutorial => "/oauth2/token",
            Provider::Genesys => "/oauth/token",
            Provider::Cxone => "/auth/token",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tutorial" => Ok(Provider::Tutorial),
            "genesys" => Ok(Provider::Genesys),
            "cxone" => Ok(Provider::Cxone),
            _ => Err(ParseError::Provider(s.to_string())),
        }
    }
}

/// A response body a careful client must refuse, sent with status 200.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Valid JSON of the wrong shape for the dialect: an object where the tutorial expects an
    /// array, an array where Genesys and CXone answer an object.
    NotArray,
    /// An HTML page with `Content-Type: text/html`, as a proxy's error page.
    Html,
    /// A valid body of the right shape padded beyond 1 MiB, so only a size limit catches it.
    Oversized,
    /// The normal body cut mid-way (with a matching Content-Length).
    Truncated,
    /// A normal body whose echoed UUID differs from the one sent.
    EchoMismatch,
}

impl Malformed {
    /// The name used in scripts and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Malformed::NotArray => "not-array",
            Malformed::Html => "html",
            Malformed::Oversized => "oversized",
            Malformed::Truncated => "truncated",
            Malformed::EchoMismatch => "echo-mismatch",
        }
    }
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Malformed {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "not-array" | "not_array" | "notarray" => Ok(Malformed::NotArray),
            "html" => Ok(Malformed::Html),
            "oversized" => Ok(Malformed::Oversized),
            "truncated" => Ok(Malformed::Truncated),
            "echo-mismatch" | "echo_mismatch" | "echomismatch" => Ok(Malformed::EchoMismatch),
            _ => Err(ParseError::Malformed(s.to_string())),
        }
    }
}

/// A broken CXone discovery step, so clients can be tested for a clear error naming the URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiscoveryFault {
    /// `/.well-known/openid-configuration` answers 404.
    NotFound,
    /// The `id_token` carries no `tenantId` claim.
    NoTenant,
    /// `/.well-known/cxone-configuration` answers a body that is not JSON.
    MalformedJson,
}

impl DiscoveryFault {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscoveryFault::NotFound => "not-found",
            DiscoveryFault::NoTenant => "no-tenant",
            DiscoveryFault::MalformedJson => "malformed-json",
        }
    }
}

impl fmt::Display for DiscoveryFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DiscoveryFault {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "not-found" | "not_found" | "notfound" | "404" => Ok(DiscoveryFault::NotFound),
            "no-tenant" | "no_tenant" | "notenant" => Ok(DiscoveryFault::NoTenant),
            "malformed-json" | "malformed_json" | "malformedjson" => {
                Ok(DiscoveryFault::MalformedJson)
            }
            _ => Err(ParseError::DiscoveryFault(s.to_string())),
        }
    }
}

/// The Genesys limit a 429 names in its body's `limit` object (`{key, namespace, value}`).
///
/// The object is a field of Genesys's `ErrorBody` model (`Limit.java`: `key`, `namespace`,
/// `value`; MyPureCloud/platform-client-sdk-java). The limit names come from
/// <https://developer.genesys.cloud/organization/organization/limits#platform-api> and
/// <https://help.mypurecloud.com/articles/data-actions-integration-performance-analysis/>.
/// Their default values for Data Actions are not documented, so the mock claims none: the
/// value is whatever the test configures.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GenesysLimit {
    /// The limit's name, e.g. `client.credentials.token.rate.per.minute`.
    pub key: String,
    /// The limit's namespace. Not documented per limit: `platform.api` for the per-token
    /// limit, `integrations` for the Data Actions ones (the SDK's namespace enum has both
    /// `integrations` and `dataactions`; which one these use is not documented).
    pub namespace: String,
    /// The limit's value.
    pub value: u64,
}

impl FromStr for GenesysLimit {
    type Err = ParseError;

    /// `KEY=VALUE` or `KEY=VALUE@NAMESPACE`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseError::GenesysLimit(s.to_string());
        let (key, rest) = s.trim().split_once('=').ok_or_else(bad)?;
        let (value, namespace) = match rest.split_once('@') {
            Some((v, ns)) => (v, Some(ns.trim().to_string())),
            None => (rest, None),
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(bad());
        }
        let value = value.trim().parse().map_err(|_| bad())?;
        let namespace = namespace.filter(|n| !n.is_empty()).unwrap_or_else(|| {
            if key.starts_with("client.credentials.") || key.starts_with("org.app.") {
                "platform.api".to_string()
            } else {
                "integrations".to_string()
            }
        });
        Ok(GenesysLimit {
            key: key.to_string(),
            namespace,
            value,
        })
    }
}

/// NICE's documented script-start path as the README shows it. The version segment is
/// tenant-dependent and not documented by NICE (third-party code shows v32.0 and v33.0), so
/// the mock serves whatever `MockConfig::execute_path` says and 404s every other path.
pub const DEFAULT_CXONE_EXECUTE_PATH: &str = "/incontactapi/services/v31.0/scripts/start";

/// NICE's access-key token endpoint (UserHub):
/// `POST https://{area}.nice-incontact.com/authentication/v1/token/access-key` with JSON
/// `{"accessKeyId", "accessKeySecret"}`
/// (<https://developer.niceincontact.com/Documentation/UserHubGettingStarted>).
pub const CXONE_ACCESS_KEY_TOKEN_PATH: &str = "/authentication/v1/token/access-key";

/// One scripted answer. Parsed from text by `Step::from_str` and [`parse_script`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// `"200"`: normal success.
    Ok,
    /// `"500"`, `"401"`, …: that status with a JSON error body `{"error", "message"}`.
    Status(u16),
    /// `"429:ra=2"`: the status with `Retry-After: 2` (delta-seconds).
    RetryAfterSecs(u16, u64),
    /// `"429:date=2"`: the status with `Retry-After` as an HTTP-date about 2 s ahead (rounded
    /// up to the next whole second, so the wait it asks for is never shorter than 2 s).
    RetryAfterDate(u16, u64),
    /// `"delay=1500"`: sleep 1500 ms, then answer normally (to drive client timeouts).
    Delay(u64),
    /// `"not-array"`, `"html"`, `"oversized"`, `"truncated"`, `"echo-mismatch"`.
    Malformed(Malformed),
    /// `"close"`: drop the connection without an answer.
    Close,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Ok => f.write_str("200"),
            Step::Status(s) => write!(f, "{s}"),
            Step::RetryAfterSecs(s, secs) => write!(f, "{s}:ra={secs}"),
            Step::RetryAfterDate(s, secs) => write!(f, "{s}:date={secs}"),
            Step::Delay(ms) => write!(f, "delay={ms}"),
            Step::Malformed(m) => write!(f, "{m}"),
            Step::Close => f.write_str("close"),
        }
    }
}

fn step_err(step: &str, reason: &'static str) -> ParseError {
    ParseError::Step {
        step: step.to_string(),
        reason,
    }
}

fn parse_status(step: &str, text: &str) -> Result<u16, ParseError> {
    let status: u16 = text
        .trim()
        .parse()
        .map_err(|_| step_err(step, "the status is not a number"))?;
    if !(100..=599).contains(&status) {
        return Err(step_err(step, "the status must be within 100..=599"));
    }
    Ok(status)
}

impl FromStr for Step {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim().to_ascii_lowercase();
        if text == "close" {
            return Ok(Step::Close);
        }
        if let Ok(m) = text.parse::<Malformed>() {
            return Ok(Step::Malformed(m));
        }
        if let Some(ms) = text.strip_prefix("delay=") {
            let ms = ms
                .trim()
                .parse()
                .map_err(|_| step_err(s, "delay= takes milliseconds"))?;
            return Ok(Step::Delay(ms));
        }
        if let Some((status, param)) = text.split_once(':') {
            let status = parse_status(s, status)?;
            let (key, value) = param
                .split_once('=')
                .ok_or_else(|| step_err(s, "expected ra=SECONDS or date=SECONDS after ':'"))?;
            let secs: u64 = value
                .trim()
                .parse()
                .map_err(|_| step_err(s, "the Retry-After seconds are not a number"))?;
            return match key.trim() {
                "ra" => Ok(Step::RetryAfterSecs(status, secs)),
                "date" => Ok(Step::RetryAfterDate(status, secs)),
                _ => Err(step_err(s, "expected ra=SECONDS or date=SECONDS after ':'")),
            };
        }
        match parse_status(s, &text)? {
            200 => Ok(Step::Ok),
            status => Ok(Step::Status(status)),
        }
    }
}

/// Reads a comma-separated script such as `"500,429:ra=2,200"`. `STEP*N` repeats a step N times
/// (`"500*3,200"`). An empty text is an empty script.
pub fn parse_script(text: &str) -> Result<Vec<Step>, ParseError> {
    let mut steps = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (step, times) = match item.rsplit_once('*') {
            Some((step, n)) => {
                let n: usize = n
                    .trim()
                    .parse()
                    .map_err(|_| step_err(item, "the repeat count after '*' is not a number"))?;
                if n > 100_000 {
                    return Err(step_err(item, "the repeat count is above 100000"));
                }
                (step, n)
            }
            None => (item, 1),
        };
        let step: Step = step.parse()?;
        steps.extend(std::iter::repeat_n(step, times));
    }
    Ok(steps)
}

/// Formats a script back to its text form, the inverse of [`parse_script`].
pub fn format_script(steps: &[Step]) -> String {
    steps
        .iter()
        .map(Step::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Everything the mock does: which dialect, which credentials it accepts, which faults.
///
/// Build it with struct update syntax: `MockConfig { rate_limit: Some(50.0), ..Default::default() }`.
#[derive(Clone)]
pub struct MockConfig {
    /// Which platform's API to imitate.
    pub provider: Provider,
    /// The accepted client id.
    pub client_id: String,
    /// The accepted client secret.
    pub client_secret: String,
    /// The accepted access key id (CXone password grant `username`).
    pub access_key_id: String,
    /// The accepted access key secret (CXone password grant `password`).
    pub access_key_secret: String,
    /// The `tenantId` claim of CXone id tokens, and the tenant the discovery document knows.
    pub tenant_id: String,
    /// `expires_in` of issued tokens; a token past it gets 401 so clients must refresh.
    pub token_ttl_secs: u64,
    /// Token bucket on execute requests, in requests/s (burst `max(1, rate/10)`): over it, 429
    /// with `Retry-After` in whole seconds (at least 1). The same as a `bucket:R` in `limits`.
    pub rate_limit: Option<f64>,
    /// Limits every execute request must pass (`--limit`, repeatable).
    pub limits: Vec<crate::limits::Limit>,
    /// The quota headers every execute answer carries (`--limit-headers`).
    pub limit_headers: crate::limits::LimitHeaders,
    /// Added to every execute response.
    pub latency_ms: u64,
    /// Probability (0..=1) that an execute answers `fail_status`.
    pub fail_rate: f64,
    /// The status of random failures.
    pub fail_status: u16,
    /// Every execute answers this malformed body (status 200).
    pub malformed: Option<Malformed>,
    /// Per-UUID script: the k-th attempt for one Idempotency-Key gets step k; after the end,
    /// normal behaviour (including the random faults above).
    pub script: Vec<Step>,
    /// The k-th token request (counted over the whole server) gets step k; then normal.
    pub token_script: Vec<Step>,
    /// A broken discovery step (CXone dialect only).
    pub discovery_fault: Option<DiscoveryFault>,
    /// Genesys: the limit every 429 names (rate limiter and scripted 429s alike).
    pub genesys_limit: Option<GenesysLimit>,
    /// CXone: the one path executes are accepted on; every other path answers 404.
    pub execute_path: String,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            provider: Provider::Tutorial,
            client_id: "demo-client".to_string(),
            client_secret: "demo-secret".to_string(),
            access_key_id: "demo-key".to_string(),
            access_key_secret: "demo-key-secret".to_string(),
            tenant_id: "11111111-2222-4333-8444-555555555555".to_string(),
            token_ttl_secs: 3600,
            rate_limit: None,
            limits: Vec::new(),
            limit_headers: crate::limits::LimitHeaders::None,
            latency_ms: 0,
            fail_rate: 0.0,
            fail_status: 500,
            malformed: None,
            script: Vec::new(),
            token_script: Vec::new(),
            discovery_fault: None,
            genesys_limit: None,
            execute_path: DEFAULT_CXONE_EXECUTE_PATH.to_string(),
        }
    }
}

// Hand-written so the secrets never reach logs, even the mock's demo ones: a test that scans
// output for a secret must not be defeated by the mock printing its own configuration.
impl fmt::Debug for MockConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConfig")
            .field("provider", &self.provider)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"[redacted]")
            .field("tenant_id", &self.tenant_id)
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("rate_limit", &self.rate_limit)
            .field("limits", &self.limits)
            .field("limit_headers", &self.limit_headers)
            .field("latency_ms", &self.latency_ms)
            .field("fail_rate", &self.fail_rate)
            .field("fail_status", &self.fail_status)
            .field("malformed", &self.malformed)
            .field("script", &format_script(&self.script))
            .field("token_script", &format_script(&self.token_script))
            .field("discovery_fault", &self.discovery_fault)
            .field("genesys_limit", &self.genesys_limit)
            .field("execute_path", &self.execute_path)
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_step_form() {
        let steps =
            parse_script("500, 429:ra=2,429:date=3,200,delay=1500,close,html,503*2").unwrap();
        assert_eq!(
            steps,
            vec![
                Step::Status(500),
                Step::RetryAfterSecs(429, 2),
                Step::RetryAfterDate(429, 3),
                Step::Ok,
                Step::Delay(1500),
                Step::Close,
                Step::Malformed(Malformed::Html),
                Step::Status(503),
                Step::Status(503),
            ]
        );
        assert_eq!(
            format_script(&steps),
            "500,429:ra=2,429:date=3,200,delay=1500,close,html,503,503"
        );
        assert!(parse_script("").unwrap().is_empty());
    }

    #[test]
    fn refuses_bad_steps_with_the_step_named() {
        for bad in ["abc", "999", "429:xx=1", "429:ra=x", "delay=soon", "500*x"] {
            let err = parse_script(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn parses_genesys_limits() {
        let l: GenesysLimit = "client.credentials.token.rate.per.minute=300"
            .parse()
            .unwrap();
        assert_eq!(l.namespace, "platform.api");
        assert_eq!(l.value, 300);
        let l: GenesysLimit = "requests.volume.max=10@dataactions".parse().unwrap();
        assert_eq!(
            (l.key.as_str(), l.namespace.as_str()),
            ("requests.volume.max", "dataactions")
        );
        for bad in ["", "x", "=3", "k=x"] {
            assert!(bad.parse::<GenesysLimit>().is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_secrets() {
        let text = format!("{:?}", MockConfig::default());
        assert!(!text.contains("demo-secret"));
        assert!(!text.contains("demo-key-secret"));
    }
}
