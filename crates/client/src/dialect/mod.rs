//! What differs between platforms, behind one small object-safe trait: how a token is obtained
//! (one attempt; the caller retries and caches), how an execute request is built, and how a
//! 2xx body is read. Everything else (retries, rate, token cache, timeouts) is shared.

use std::fmt;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;
use uuid::Uuid;

use crate::config::{ClientConfig, Provider, ProviderConfig};
use crate::error::{Error, ErrorKind};
use crate::http::excerpt;
pub use crate::oauth::TokenGrant;

pub mod cxone;
pub mod genesys;
pub mod genesys_body;
pub mod tutorial;

/// Request ids a response carried in its headers, for support tickets and the audit trail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseIds {
    /// Genesys's `ININ-Correlation-Id`.
    pub inin_correlation_id: Option<String>,
    /// `X-Request-Id`, else `X-Correlation-Id`.
    pub request_id: Option<String>,
}

/// One execute request, ready to send (the client adds the bearer token, `Content-Type` and
/// `Idempotency-Key`).
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    /// HTTP method.
    pub method: Method,
    /// Full URL.
    pub url: String,
    /// JSON body.
    pub body: Vec<u8>,
}

/// Where the dialect authenticates and sends requests, for `cxone-uuid token`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Token endpoint (configured, derived or discovered).
    pub token_endpoint: Option<String>,
    /// API base (configured, derived or discovered).
    pub api_base: Option<String>,
    /// CXone tenant id from the id_token.
    pub tenant_id: Option<String>,
    /// CXone area from discovery.
    pub area: Option<String>,
}

/// The outputs of one successful execution, in the order the server gave them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outputs {
    /// Name/value pairs (tutorial `[{name, value}]`, or the fields of a JSON object).
    pub fields: Vec<(String, Value)>,
}

impl Outputs {
    /// The value of the output `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The fields of a JSON object, moved (not cloned) out of it; no field for anything else.
    fn from_value(v: Value) -> Self {
        match v {
            Value::Object(map) => Outputs {
                fields: map.into_iter().collect(),
            },
            _ => Outputs::default(),
        }
    }
}

/// A platform's API. Object-safe so the client holds a `Box<dyn Dialect>`.
#[async_trait]
pub trait Dialect: Send + Sync + fmt::Debug {
    /// Which provider this is.
    fn provider(&self) -> Provider;

    /// Requests one token (a single attempt, discovery included): 400/401 must come back as
    /// [`ErrorKind::Credentials`], 5xx/429/transport as transient errors.
    async fn fetch_token(&self, http: &reqwest::Client) -> Result<TokenGrant, Error>;

    /// Builds the execute request for `uuid`. Called after a token was obtained, so dialects
    /// with discovery can rely on it having run.
    fn prepare(&self, uuid: &Uuid) -> Result<PreparedRequest, Error>;

    /// Reads a 2xx body into outputs, checking shape and echo.
    fn parse(&self, uuid: &Uuid, body: &[u8]) -> Result<Outputs, Error>;

    /// The permission or scope a 403 most likely means is missing.
    fn required_permission(&self) -> String;

    /// Token endpoint and API base as known now (after discovery, if any).
    fn endpoints(&self) -> Endpoints;

    /// Extra detail for a failed non-2xx answer (e.g. Genesys `/test` step results).
    fn failure_detail(&self, _status: u16, _body: &[u8]) -> Option<String> {
        None
    }

    /// The id support would ask for: by default `X-Request-Id` or `X-Correlation-Id`.
    fn correlation_id(&self, ids: &ResponseIds, _body: &[u8]) -> Option<String> {
        ids.request_id.clone()
    }

    /// The named limit that refused a 429, as `key = value`, when the body says.
    fn refusing_limit(&self, _body: &[u8]) -> Option<String> {
        None
    }

    /// A line added to a connection failure's message (e.g. a default host that is wrong).
    fn transport_hint(&self) -> Option<String> {
        None
    }
}

/// Builds the dialect for a validated configuration.
pub fn for_config(config: &ClientConfig) -> Result<Box<dyn Dialect>, Error> {
    Ok(match &config.provider {
        ProviderConfig::Tutorial(t) => Box::new(tutorial::Tutorial::new(config, t)?),
        ProviderConfig::Genesys(g) => Box::new(genesys::Genesys::new(config, g)?),
        ProviderConfig::Cxone(x) => Box::new(cxone::Cxone::new(config, x)?),
    })
}

/// `"unexpected response format"` with a short, safe excerpt.
pub(crate) fn unexpected(what: &str, body: &[u8]) -> Error {
    Error::new(
        ErrorKind::UnexpectedResponse,
        format!(
            "unexpected response format: {what}; body starts with: {}",
            excerpt(body, 120)
        ),
    )
}

pub(crate) fn parse_json(body: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_eof() {
            "truncated JSON".to_string()
        } else {
            format!("not JSON ({e})")
        };
        unexpected(&what, body)
    })
}

pub(crate) fn echo_check(uuid: &Uuid, field: &str, value: Option<&Value>) -> Result<(), Error> {
    let got = match value {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => {
            return Err(Error::new(
                ErrorKind::EchoMismatch,
                format!("echo mismatch: sent {uuid}, the response has no {field:?} output"),
            ))
        }
    };
    match Uuid::parse_str(got.trim()) {
        Ok(u) if u == *uuid => Ok(()),
        _ => Err(Error::new(
            ErrorKind::EchoMismatch,
            format!(
                "echo mismatch: sent {uuid}, action returned {field} = {}",
                excerpt(got.as_bytes(), 60)
            ),
        )),
    }
}

/// Percent-encodes one path segment (action ids are opaque strings).
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Joins a base URL and a path with exactly one slash.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// A request body rendered once with its UUID's place left open.
///
/// Every execute body of a run is the same bytes but for the 36 characters of its UUID, and
/// building it per request through a `serde_json::Value` (a map, its key and value strings,
/// then serialisation) cost about 2% of the client's CPU in a profile. The body is rendered
/// twice at start-up, with the nil and the max UUID, and split where the two differ; a third
/// render must then equal the split filled in, or the template is not used (a body holding the
/// UUID twice, or one whose rendering depends on the UUID otherwise, is rendered per request).
#[derive(Debug, Clone)]
pub(crate) struct UuidBody {
    before: Vec<u8>,
    after: Vec<u8>,
}

impl UuidBody {
    /// The split of `render`'s output around its UUID, when it has exactly one.
    pub(crate) fn split(render: impl Fn(&Uuid) -> Vec<u8>) -> Option<Self> {
        let low = render(&Uuid::nil());
        let high = render(&Uuid::max());
        if low.len() != high.len() {
            return None;
        }
        let first = low.iter().zip(&high).position(|(a, b)| a != b)?;
        let last = low.iter().zip(&high).rposition(|(a, b)| a != b)?;
        if last + 1 - first != UUID_LEN {
            return None;
        }
        let body = UuidBody {
            before: low[..first].to_vec(),
            after: low[last + 1..].to_vec(),
        };
        let probe = Uuid::from_u128(0x0123_4567_89ab_4cde_8f01_2345_6789_abcd);
        (body.fill(&probe) == render(&probe)).then_some(body)
    }

    /// The body for `uuid`: filled into `split` where there is one, else `render`ed in full.
    pub(crate) fn for_uuid(
        split: Option<&UuidBody>,
        uuid: &Uuid,
        render: impl Fn(&Uuid) -> Vec<u8>,
    ) -> Vec<u8> {
        split.map_or_else(|| render(uuid), |body| body.fill(uuid))
    }

    /// The body for `uuid`.
    pub(crate) fn fill(&self, uuid: &Uuid) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.before.len() + UUID_LEN + self.after.len());
        out.extend_from_slice(&self.before);
        out.extend_from_slice(
            uuid.hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        out.extend_from_slice(&self.after);
        out
    }
}

/// Characters of a hyphenated UUID.
const UUID_LEN: usize = 36;

/// The inputs object shared by tutorial and genesys: the UUID under its name, then extras.
pub(crate) fn inputs(config_input: &str, extra: &[(String, String)], uuid: &Uuid) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(
        config_input.to_string(),
        Value::String(uuid.hyphenated().to_string()),
    );
    for (k, v) in extra {
        m.insert(k.clone(), Value::String(v.clone()));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_split_body_fills_in_as_a_full_render() {
        let extra = vec![
            ("a".to_string(), "x\"y".to_string()),
            ("z".into(), "00000000".into()),
        ];
        let render = |u: &Uuid| serde_json::to_vec(&inputs("uuid", &extra, u)).unwrap();
        let body = UuidBody::split(render).expect("one UUID in the body");
        for u in [Uuid::new_v4(), Uuid::nil(), Uuid::max(), Uuid::new_v4()] {
            assert_eq!(body.fill(&u), render(&u));
        }
    }

    #[test]
    fn a_body_with_the_uuid_twice_or_none_is_not_split() {
        let twice = |u: &Uuid| format!("{{\"a\":\"{u}\",\"b\":\"{u}\"}}").into_bytes();
        assert!(UuidBody::split(twice).is_none());
        assert!(UuidBody::split(|_: &Uuid| b"{}".to_vec()).is_none());
        // The UUID's case or form otherwise depends on it: the probe render must match.
        let upper = |u: &Uuid| u.to_string().to_uppercase().into_bytes();
        assert!(UuidBody::split(upper).is_none());
    }

    #[test]
    fn segments_and_join() {
        assert_eq!(encode_segment("abc-1_2.x~"), "abc-1_2.x~");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(join("http://h/", "/x"), "http://h/x");
        assert_eq!(join("http://h", "x"), "http://h/x");
    }

    #[test]
    fn echo() {
        let u = Uuid::new_v4();
        assert!(echo_check(&u, "output_uuid", Some(&Value::String(u.to_string()))).is_ok());
        assert!(echo_check(
            &u,
            "output_uuid",
            Some(&Value::String(u.to_string().to_uppercase()))
        )
        .is_ok());
        let e = echo_check(
            &u,
            "output_uuid",
            Some(&Value::String(Uuid::nil().to_string())),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::EchoMismatch);
        assert!(e.to_string().contains("echo mismatch"));
    }

    #[test]
    fn json_errors_are_unexpected_format() {
        let e = parse_json(b"[{\"name\":").unwrap_err();
        assert!(e.to_string().contains("unexpected response format"));
        assert!(e.to_string().contains("truncated"));
        let e = parse_json(b"<html><body>oops</body></html>").unwrap_err();
        assert!(e.to_string().contains("<html>"));
    }
}
