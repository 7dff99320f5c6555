//! Building answers: JSON errors, Retry-After in both forms, malformed bodies, dropped connections.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::config::{GenesysLimit, Malformed};

tokio::task_local! {
    /// The `ININ-Correlation-Id` of the Genesys request being answered, so an error body's
    /// `contextId` can carry the same value as the header (as in Genesys's own example).
    pub(crate) static CORRELATION: String;
}

/// The correlation id of the request being answered, when the Genesys middleware set one.
pub(crate) fn correlation_id() -> Option<String> {
    CORRELATION.try_with(Clone::clone).ok()
}

/// The dotted `code` of a Genesys `ErrorBody` for a status. Only `too.many.requests.retry.after`
/// (the normalized 429 announcement) and `not.authorized` are seen in Genesys's public material;
/// the rest follow the same dotted style.
pub(crate) fn genesys_code(status: u16) -> String {
    match status {
        400 => "bad.request".into(),
        401 => "authentication.required".into(),
        403 => "not.authorized".into(),
        404 => "not.found".into(),
        415 => "unsupported.media.type".into(),
        429 => "too.many.requests.retry.after".into(),
        500 => "internal.server.error".into(),
        502 => "bad.gateway".into(),
        503 => "service.unavailable".into(),
        504 => "gateway.timeout".into(),
        s => format!("error.{s}"),
    }
}

/// A Genesys `ErrorBody` value: `message`, dotted `code`, `status`, `contextId`, `details`,
/// `errors` (and `limit` when a named limit refused). Fields per the SDK model
/// (MyPureCloud/platform-client-sdk-java `build/docs/ErrorBody.md`).
pub(crate) fn genesys_error_body(
    status: u16,
    message: &str,
    limit: Option<&GenesysLimit>,
) -> Value {
    let mut body = json!({
        "message": message,
        "code": genesys_code(status),
        "status": status,
        "contextId": correlation_id().unwrap_or_default(),
        "details": [],
        "errors": [],
    });
    if let (Some(l), Value::Object(map)) = (limit, &mut body) {
        map.insert(
            "limit".into(),
            json!({ "key": l.key, "namespace": l.namespace, "value": l.value }),
        );
    }
    body
}

/// A Genesys error answer with its `ErrorBody`.
pub(crate) fn genesys_error(status: u16, message: &str) -> Response {
    let mut resp = json_body(status, &genesys_error_body(status, message, None));
    if status == 401 {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    resp
}

/// Genesys's normalized 429 (announced for 10 Nov 2021, API-5464,
/// <https://developer.genesys.cloud/forum/t/normalized-platform-api-429-responses/12028>):
/// `Retry-After` in whole seconds and the message naming them, empty `details` and `errors`,
/// plus the `limit` that refused when one is configured. Any other status (a scripted 503
/// with Retry-After) gets its own ErrorBody with the header.
pub(crate) fn genesys_retry_after(
    status: u16,
    secs: u64,
    as_date: bool,
    limit: Option<&GenesysLimit>,
) -> Response {
    let (message, limit) = if status == 429 {
        (
            format!("Rate limit exceeded the maximum. Retry the request in [{secs}] seconds"),
            limit,
        )
    } else {
        (format!("Service unavailable: retry after {secs} s"), None)
    };
    let mut resp = json_body(status, &genesys_error_body(status, &message, limit));
    set_retry_after(&mut resp, secs, as_date);
    resp
}

/// Above the 1 MiB limit clients are asked to enforce, with room to spare.
pub(crate) const OVERSIZED_PADDING: usize = 1024 * 1024 + 64 * 1024;

pub(crate) fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The OAuth-style error code that goes with a status.
pub(crate) fn error_code(status: u16) -> String {
    match status {
        400 => "bad_request".into(),
        401 => "invalid_token".into(),
        403 => "forbidden".into(),
        404 => "not_found".into(),
        415 => "unsupported_media_type".into(),
        429 => "rate_limited".into(),
        500 => "internal_error".into(),
        502 => "bad_gateway".into(),
        503 => "service_unavailable".into(),
        504 => "gateway_timeout".into(),
        s => format!("error_{s}"),
    }
}

/// A JSON error body `{"error", "message", "status"}` with that status.
pub(crate) fn json_error(status: u16, error: &str, message: &str) -> Response {
    let mut resp = (
        status_code(status),
        axum::Json(json!({ "error": error, "message": message, "status": status })),
    )
        .into_response();
    if status == 401 {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    resp
}

/// The status with a Retry-After header, in delta-seconds or HTTP-date form.
pub(crate) fn retry_after(status: u16, secs: u64, as_date: bool) -> Response {
    let mut resp = json_error(
        status,
        &error_code(status),
        &format!("slow down: retry after {secs} s"),
    );
    set_retry_after(&mut resp, secs, as_date);
    resp
}

fn set_retry_after(resp: &mut Response, secs: u64, as_date: bool) {
    let value = if as_date {
        retry_after_date(secs)
    } else {
        secs.to_string()
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
}

/// An HTTP-date at least `secs` ahead: HTTP-dates have whole seconds, so round up, or a client
/// would be told to wait up to a second less than the script says.
fn retry_after_date(secs: u64) -> String {
    let now = SystemTime::now();
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let whole = Duration::from_secs(since_epoch.as_secs() + 1 + secs);
    httpdate::fmt_http_date(UNIX_EPOCH + whole)
}

/// A JSON body with an explicit status.
pub(crate) fn json_body(status: u16, value: &Value) -> Response {
    (status_code(status), axum::Json(value)).into_response()
}

fn with_content_type(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut resp = (status_code(status), body).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// `normal` turned into the malformed variant `kind`, always with status 200. `wrong_shape` is
/// what "not the shape the client expects" means for this endpoint; `echo_mismatch` is the
/// normal body with another UUID (ignored by endpoints without an echo).
pub(crate) fn malformed(
    kind: Malformed,
    normal: &Value,
    wrong_shape: &Value,
    echo_mismatch: &Value,
) -> Response {
    match kind {
        Malformed::NotArray => json_body(200, wrong_shape),
        Malformed::EchoMismatch => json_body(200, echo_mismatch),
        Malformed::Html => with_content_type(
            200,
            "text/html; charset=utf-8",
            b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1><p>The upstream server sent an invalid response.</p></body></html>\n".to_vec(),
        ),
        Malformed::Oversized => {
            let body = pad(normal);
            with_content_type(200, "application/json", body)
        }
        Malformed::Truncated => {
            let full = serde_json::to_vec(normal).unwrap_or_default();
            let cut = full[..full.len() / 2].to_vec();
            with_content_type(200, "application/json", cut)
        }
    }
}

/// The normal body grown past 1 MiB while staying valid JSON of the same shape, so a client
/// that checks only the shape accepts it and only a size limit catches it.
fn pad(normal: &Value) -> Vec<u8> {
    let padding = "x".repeat(OVERSIZED_PADDING);
    let padded = match normal.clone() {
        Value::Array(mut items) => {
            items.push(json!({ "name": "padding", "value": padding }));
            Value::Array(items)
        }
        Value::Object(mut map) => {
            map.insert("padding".into(), Value::String(padding));
            Value::Object(map)
        }
        other => json!([other, padding]),
    };
    serde_json::to_vec(&padded).unwrap_or_default()
}

/// Drops the connection without an answer.
///
/// hyper writes the status line only together with the first body bytes, so a body stream
/// that fails before yielding anything makes it abort the connection with nothing sent: the
/// client sees a connection closed before the response, as from a crashed upstream.
pub(crate) fn close() -> Response {
    let stream = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "mock: scripted connection close",
        ))
    });
    Response::new(Body::from_stream(stream))
}

/// The bearer token of the request, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// `http://HOST` as the client addressed us, so discovery documents point back at the address
/// the client can reach (the bind address may be 0.0.0.0).
pub(crate) fn base_for(headers: &HeaderMap, fallback: &str) -> String {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ']))
        .map(|h| format!("http://{h}"))
        .unwrap_or_else(|| fallback.to_string())
}

/// Whether the Content-Type names this media type (parameters such as charset allowed).
pub(crate) fn has_content_type(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(media_type))
}
