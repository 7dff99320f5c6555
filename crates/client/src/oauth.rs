//! One OAuth token request (a single attempt: the token cache retries and caches) and the
//! reading of its answer.

use std::fmt;

use reqwest::header::ACCEPT;
use secrecy::SecretString;
use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::http::{exchange, server_message};

/// A token endpoint's answer, reduced to what the client keeps.
pub struct TokenGrant {
    /// The bearer token.
    pub access_token: SecretString,
    /// Lifetime in seconds, when the endpoint said.
    pub expires_in: Option<u64>,
    /// Granted scope, when the endpoint said.
    pub scope: Option<String>,
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access_token", &"[REDACTED]")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish()
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
    classify(rb, url, hint).await
}

/// One token request with a JSON body (NICE's access-key endpoint), classified as a form's.
pub(crate) async fn request_token_json(
    http: &reqwest::Client,
    url: &str,
    body: &Value,
    hint: &str,
) -> Result<Value, Error> {
    let rb = http.post(url).header(ACCEPT, "application/json").json(body);
    classify(rb, url, hint).await
}

async fn classify(rb: reqwest::RequestBuilder, url: &str, hint: &str) -> Result<Value, Error> {
    let answer = exchange(rb, "token request to", url).await?;
    let status = answer.status;
    let retry_after = answer.retry_after;
    let (body, oversized) = (answer.body, answer.oversized);
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
    fn grant_parsing() {
        let v = serde_json::json!({"access_token":"tok-123","expires_in":60,"scope":"a b"});
        let g = grant_from_json(&v, "u").unwrap();
        assert_eq!(g.access_token.expose_secret(), "tok-123");
        assert_eq!(g.expires_in, Some(60));
        assert!(!format!("{g:?}").contains("tok-123"));
        let e = grant_from_json(&serde_json::json!({"token":"x"}), "https://t").unwrap_err();
        assert!(e.to_string().contains("https://t"));
    }
}
