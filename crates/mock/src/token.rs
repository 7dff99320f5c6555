//! Token endpoints of the three dialects and CXone's discovery documents.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::config::{DiscoveryFault, Provider, Step};
use crate::respond;
use crate::state::Shared;

/// `POST` on the configured provider's token path.
pub(crate) async fn token(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let step = state.next_token_step();
    let (status, resp) = match step {
        None | Some(Step::Ok) => issue(&state, &headers, &body),
        Some(Step::Delay(ms)) => {
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            issue(&state, &headers, &body)
        }
        Some(Step::Close) => (0, respond::close()),
        Some(Step::Status(s)) => {
            let (code, msg) = match s {
                400 => ("invalid_request", "scripted token failure: bad request"),
                401 => (
                    "invalid_client",
                    "scripted token failure: client authentication failed",
                ),
                _ => ("server_error", "scripted token failure"),
            };
            (s, respond::json_error(s, code, msg))
        }
        Some(Step::RetryAfterSecs(s, secs)) => (s, respond::retry_after(s, secs, false)),
        Some(Step::RetryAfterDate(s, secs)) => (s, respond::retry_after(s, secs, true)),
        Some(Step::Malformed(kind)) => {
            // A token response in the wrong shape is a JSON array; no echo to mismatch.
            let normal = json!({
                "access_token": state.issue_token(),
                "token_type": "Bearer",
                "expires_in": state.config.token_ttl_secs,
            });
            let resp = respond::malformed(kind, &normal, &json!([]), &normal);
            (200, resp)
        }
    };
    if status != 0 {
        state.record_token_response(status);
    }
    resp
}

/// Client credentials from HTTP Basic, if that header is present and well-formed.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), secret.to_string()))
}

/// Decodes `application/x-www-form-urlencoded` (`+` is a space, `%XX` a byte).
pub(crate) fn parse_form(body: &[u8]) -> HashMap<String, String> {
    body.split(|b| *b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut it = pair.splitn(2, |b| *b == b'=');
            let key = percent_decode(it.next().unwrap_or_default());
            let value = percent_decode(it.next().unwrap_or_default());
            (key, value)
        })
        .collect()
}

fn percent_decode(input: &[u8]) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                input.get(i + 1).and_then(|b| hex(*b)),
                input.get(i + 2).and_then(|b| hex(*b)),
            ) {
                (Some(hi), Some(lo)) => {
                    // Two hex digits make at most 255.
                    out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Credentials compare equal as sent, or after form-decoding (RFC 6749 §2.3.1 says Basic
/// credentials are form-encoded first; most clients skip that, so accept both).
fn same(sent: &str, expected: &str) -> bool {
    sent == expected || percent_decode(sent.as_bytes()) == expected
}

fn invalid_client(message: &str) -> (u16, Response) {
    (401, respond::json_error(401, "invalid_client", message))
}

fn bad_request(error: &str, message: &str) -> (u16, Response) {
    (400, respond::json_error(400, error, message))
}

/// The normal token-endpoint answer: checks the grant and credentials, issues a token.
fn issue(state: &Shared, headers: &HeaderMap, body: &[u8]) -> (u16, Response) {
    let config = &state.config;
    if !respond::has_content_type(headers, "application/x-www-form-urlencoded") {
        return bad_request(
            "invalid_request",
            "the token request must be a form (Content-Type: application/x-www-form-urlencoded)",
        );
    }
    let form = parse_form(body);
    let expected_grant = match config.provider {
        Provider::Cxone => "password",
        Provider::Tutorial | Provider::Genesys => "client_credentials",
    };
    match form.get("grant_type").map(String::as_str) {
        None => return bad_request("invalid_request", "grant_type is missing"),
        Some(g) if g != expected_grant => {
            return bad_request(
                "unsupported_grant_type",
                &format!("grant_type must be {expected_grant}"),
            )
        }
        Some(_) => {}
    }
    let basic = basic_credentials(headers);
    let client = match (config.provider, basic) {
        (_, Some(creds)) => Some(creds),
        (Provider::Genesys, None) => {
            return invalid_client("client authentication must use HTTP Basic")
        }
        (_, None) => match (form.get("client_id"), form.get("client_secret")) {
            (Some(id), Some(secret)) => Some((id.clone(), secret.clone())),
            _ => None,
        },
    };
    let Some((id, secret)) = client else {
        return invalid_client("client credentials are missing");
    };
    if !same(&id, &config.client_id) || !same(&secret, &config.client_secret) {
        return invalid_client("unknown client id or wrong client secret");
    }

    let ttl = config.token_ttl_secs;
    match config.provider {
        Provider::Tutorial => {
            let scope = form
                .get("scope")
                .cloned()
                .unwrap_or_else(|| "data-actions:execute".into());
            let body = json!({
                "access_token": state.issue_token(),
                "token_type": "Bearer",
                "expires_in": ttl,
                "scope": scope,
            });
            (200, respond::json_body(200, &body))
        }
        Provider::Genesys => {
            let body = json!({
                "access_token": state.issue_token(),
                "token_type": "bearer",
                "expires_in": ttl,
            });
            (200, respond::json_body(200, &body))
        }
        Provider::Cxone => {
            let user = form.get("username").map(String::as_str).unwrap_or_default();
            let pass = form.get("password").map(String::as_str).unwrap_or_default();
            if user != config.access_key_id || pass != config.access_key_secret {
                return bad_request(
                    "invalid_grant",
                    "unknown access key id or wrong access key secret",
                );
            }
            let base = respond::base_for(headers, &state.base_url);
            let body = json!({
                "access_token": state.issue_token(),
                "token_type": "Bearer",
                "expires_in": ttl,
                "id_token": id_token(state, &base),
                "scope": "RealTimeApi AdminApi ReportingApi",
            });
            (200, respond::json_body(200, &body))
        }
    }
}

/// `POST /authentication/v1/token/access-key` (CXone): NICE's access-key token endpoint, JSON
/// `{"accessKeyId", "accessKeySecret"}`, no client id or secret
/// (<https://developer.niceincontact.com/Documentation/UserHubGettingStarted>). The answer has
/// the fields NICE's own SDK reads (`access_token`, `token_type`, `expires_in`, `id_token`,
/// `refresh_token`; nice-devone/nice-cxone-agent-sdk `auth-token.js`); the tenant is only in
/// the tokens' claims, as third-party clients read it. The token script applies here too.
pub(crate) async fn access_key_token(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let step = state.next_token_step();
    let (status, resp) = match step {
        None | Some(Step::Ok) | Some(Step::Delay(_)) => access_key_issue(&state, &headers, &body),
        Some(Step::Close) => (0, respond::close()),
        Some(Step::Status(s)) => (
            s,
            respond::json_error(s, "server_error", "scripted token failure"),
        ),
        Some(Step::RetryAfterSecs(s, secs)) => (s, respond::retry_after(s, secs, false)),
        Some(Step::RetryAfterDate(s, secs)) => (s, respond::retry_after(s, secs, true)),
        Some(Step::Malformed(kind)) => {
            let normal = json!({ "access_token": state.issue_token(), "expires_in": 1 });
            (200, respond::malformed(kind, &normal, &json!([]), &normal))
        }
    };
    if status != 0 {
        state.record_token_response(status);
    }
    resp
}

fn access_key_issue(state: &Shared, headers: &HeaderMap, body: &[u8]) -> (u16, Response) {
    let config = &state.config;
    if !respond::has_content_type(headers, "application/json") {
        return bad_request(
            "invalid_request",
            "the access-key token request must be JSON (Content-Type: application/json)",
        );
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return bad_request("invalid_request", "the body is not JSON");
    };
    let id = v.get("accessKeyId").and_then(Value::as_str);
    let secret = v.get("accessKeySecret").and_then(Value::as_str);
    let (Some(id), Some(secret)) = (id, secret) else {
        return bad_request(
            "invalid_request",
            "the body must carry accessKeyId and accessKeySecret",
        );
    };
    if id != config.access_key_id || secret != config.access_key_secret {
        return invalid_client("unknown access key id or wrong access key secret");
    }
    let base = respond::base_for(headers, &state.base_url);
    let body = json!({
        "access_token": state.issue_token(),
        "token_type": "Bearer",
        "expires_in": config.token_ttl_secs,
        "refresh_token": state.issue_token(),
        "id_token": id_token(state, &base),
    });
    (200, respond::json_body(200, &body))
}

/// A JWT-looking id token that nobody can verify: the client only reads its payload, as the
/// real CXone client may without checking the signature, to learn its tenant.
fn id_token(state: &Shared, base: &str) -> String {
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": "mock-unsigned" });
    let mut payload = json!({
        "iss": base,
        "sub": format!("user:{}", state.config.access_key_id),
        "aud": state.config.client_id,
        "iat": now,
        "exp": now + state.config.token_ttl_secs,
        "name": "Mock API user",
        "tenantId": state.config.tenant_id,
    });
    if state.config.discovery_fault == Some(DiscoveryFault::NoTenant) {
        if let Value::Object(map) = &mut payload {
            map.remove("tenantId");
        }
    }
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes()),
        b64(b"unsigned")
    )
}

/// `GET /.well-known/openid-configuration` (CXone).
pub(crate) async fn openid_configuration(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Response {
    if state.config.discovery_fault == Some(DiscoveryFault::NotFound) {
        return respond::json_error(404, "not_found", "no OpenID configuration here");
    }
    let base = respond::base_for(&headers, &state.base_url);
    respond::json_body(
        200,
        &json!({
            "issuer": base,
            "token_endpoint": format!("{base}/auth/token"),
            "authorization_endpoint": format!("{base}/auth/authorize"),
            "jwks_uri": format!("{base}/.well-known/jwks"),
            "grant_types_supported": ["password", "client_credentials", "authorization_code", "refresh_token"],
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }),
    )
}

/// `GET /.well-known/cxone-configuration?tenantId=T` (CXone).
pub(crate) async fn cxone_configuration(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if state.config.discovery_fault == Some(DiscoveryFault::MalformedJson) {
        let mut resp = respond::json_body(200, &Value::Null);
        *resp.body_mut() = axum::body::Body::from("{\"api_endpoint\": \"http://");
        return resp;
    }
    let Some(tenant) = query.get("tenantId") else {
        return respond::json_error(
            400,
            "invalid_request",
            "the tenantId query parameter is missing",
        );
    };
    if *tenant != state.config.tenant_id {
        return respond::json_error(404, "not_found", &format!("unknown tenant {tenant}"));
    }
    let base = respond::base_for(&headers, &state.base_url);
    // The fields NICE's agent SDK reads (nice-devone/nice-cxone-agent-sdk
    // `cxone-configuration.js`, parseData): api_endpoint, area, cluster, domain, acdDomain,
    // uhDomain. There is no documented auth_endpoint, so none is served.
    respond::json_body(
        200,
        &json!({
            "api_endpoint": base,
            "area": "na1",
            "cluster": "C32",
            "domain": "niceincontact.com",
            "acdDomain": "nice-incontact.com",
            "uhDomain": "nice-incontact.com",
        }),
    )
}
