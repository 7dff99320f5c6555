//! One HTTP exchange, as every call of the client makes it: send, read the body up to a cap,
//! and hand back the status, `Retry-After` and the body; plus the helpers that turn an answer or
//! a transport failure into a message a user can act on.
//!
//! Key design decision: the token request, CXone discovery and execute differ only in what they
//! send and how they classify the answer, so the part that must be identical (the 1 MiB cap,
//! the Retry-After grammar, the mapping of transport errors, excerpts that are safe to print)
//! lives here once and knows nothing of retries, tokens or dialects. The execute request goes
//! out on its own hyper pool ([`crate::direct`], [`exchange_direct`]), the rest on reqwest
//! ([`exchange`]); both end in the same [`Answer`].

use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind};

/// Largest response body read; anything longer fails as "unexpected response format".
pub const MAX_BODY: usize = 1024 * 1024;

/// An answer with its body read (up to [`MAX_BODY`]).
#[derive(Debug)]
pub(crate) struct Answer {
    /// The HTTP status.
    pub(crate) status: u16,
    /// The parsed `Retry-After` header, if any.
    pub(crate) retry_after: Option<Duration>,
    /// The body, at most [`MAX_BODY`] bytes.
    pub(crate) body: Vec<u8>,
    /// True when the body was longer than [`MAX_BODY`] (the rest was never buffered).
    pub(crate) oversized: bool,
    /// Request ids from the headers.
    pub(crate) ids: crate::dialect::ResponseIds,
    /// The quota the server advertised (RateLimit or X-RateLimit headers), if any.
    pub(crate) quota: Option<crate::quota::Quota>,
    /// Requests in flight the server takes, when a `concurrent-requests` policy says.
    pub(crate) concurrency_cap: Option<u64>,
}

impl Answer {
    /// True for a 2xx status.
    pub(crate) fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends `request` and reads its answer. `what` names the call in errors ("token request to").
pub(crate) async fn exchange(
    request: reqwest::RequestBuilder,
    what: &str,
    url: &str,
) -> Result<Answer, Error> {
    let resp = request
        .send()
        .await
        .map_err(|e| from_reqwest(&e, what, url))?;
    let (head, body) = http::Response::from(resp).into_parts();
    let (body, oversized) = read_body(body, MAX_BODY)
        .await
        .map_err(|e| from_reqwest(&e, what, url))?;
    Ok(answer(head.status.as_u16(), &head.headers, body, oversized))
}

/// [`exchange`] on the execute path's own pool ([`crate::direct`]) for the request `request`
/// builds (again, if the server refuses it unprocessed), under the pool's timeout for the whole
/// exchange, body included, as reqwest's.
pub(crate) async fn exchange_direct(
    direct: &crate::direct::Direct,
    request: impl Fn() -> http::Request<http_body_util::Full<bytes::Bytes>>,
    what: &str,
    url: &str,
) -> Result<Answer, Error> {
    let exchange = async {
        let resp = direct
            .send(request)
            .await
            .map_err(|e| from_hyper(&e, what, url))?;
        let (head, body) = resp.into_parts();
        let (body, oversized) = read_body(body, MAX_BODY)
            .await
            .map_err(|e| transport(&e, false, what, url))?;
        Ok(answer(head.status.as_u16(), &head.headers, body, oversized))
    };
    match tokio::time::timeout(direct.timeout, exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("{what} {url}: timed out"),
        )),
    }
}

/// What the client keeps of an answer: the status, Retry-After, request ids, quota and body.
fn answer(status: u16, headers: &http::HeaderMap, body: Vec<u8>, oversized: bool) -> Answer {
    let read = Read::scan(headers);
    let now = SystemTime::now();
    let retry_after = read
        .retry_after
        .flatten()
        .and_then(|v| parse_retry_after(v, now));
    let header = |v: Option<Option<&str>>| v.flatten().and_then(safe_id);
    let ids = crate::dialect::ResponseIds {
        inin_correlation_id: header(read.inin_correlation_id),
        request_id: header(read.request_id).or_else(|| header(read.correlation_id)),
    };
    let (quota, concurrency_cap) = read.quota(now);
    Answer {
        status,
        retry_after,
        body,
        oversized,
        ids,
        quota,
        concurrency_cap,
    }
}

/// The headers of an answer this client reads, found in one pass over the map.
///
/// Twelve lookups by name (each parsing the name, hashing it and probing) cost about 2% of the
/// client's CPU in a profile, for answers that carry three to six fields; one pass comparing
/// each field's (already lower-case) name is a fraction of that. Each single-valued field keeps
/// what `HeaderMap::get` gives: its first line, `None` inside when that is not text; lists keep
/// every line that is text, in order, as `get_all` does.
#[derive(Debug, Default)]
struct Read<'h> {
    retry_after: Option<Option<&'h str>>,
    inin_correlation_id: Option<Option<&'h str>>,
    request_id: Option<Option<&'h str>>,
    correlation_id: Option<Option<&'h str>>,
    policy: Vec<&'h str>,
    ratelimit: Vec<&'h str>,
    /// `X-RateLimit-Limit`, `RateLimit-Limit`, then the same for Remaining and Reset.
    x: [Option<Option<&'h str>>; 6],
}

impl<'h> Read<'h> {
    fn scan(headers: &'h http::HeaderMap) -> Self {
        let mut r = Read::default();
        for (name, value) in headers {
            let text = value.to_str().ok();
            let once = |slot: &mut Option<Option<&'h str>>| {
                slot.get_or_insert(text);
            };
            match name.as_str() {
                "retry-after" => once(&mut r.retry_after),
                "inin-correlation-id" => once(&mut r.inin_correlation_id),
                "x-request-id" => once(&mut r.request_id),
                "x-correlation-id" => once(&mut r.correlation_id),
                "ratelimit-policy" => r.policy.extend(text),
                "ratelimit" => r.ratelimit.extend(text),
                "x-ratelimit-limit" => once(&mut r.x[0]),
                "ratelimit-limit" => once(&mut r.x[1]),
                "x-ratelimit-remaining" => once(&mut r.x[2]),
                "ratelimit-remaining" => once(&mut r.x[3]),
                "x-ratelimit-reset" => once(&mut r.x[4]),
                "ratelimit-reset" => once(&mut r.x[5]),
                _ => {}
            }
        }
        r
    }

    /// The quota left, and the concurrency cap a `concurrent-requests` policy states (the
    /// X- names first, the unprefixed draft-era names where those are absent or not text).
    fn quota(&self, now: SystemTime) -> (Option<crate::quota::Quota>, Option<u64>) {
        let one = |i: usize| self.x[i].flatten().or(self.x[i + 1].flatten());
        let h = crate::quota::QuotaHeaders {
            policy: &self.policy,
            ratelimit: &self.ratelimit,
            x_limit: one(0),
            x_remaining: one(2),
            x_reset: one(4),
        };
        crate::quota::Quota::read_with_cap(&h, now)
    }
}

/// A request id fit for messages and the audit trail: trimmed, non-empty, visible ASCII only,
/// at most 128 characters; anything else is dropped rather than cleaned.
pub(crate) fn safe_id(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| v.to_string())
}

/// Reads at most `cap` bytes of a body (hyper's, or reqwest's) frame by frame; the flag says
/// the body was longer (the rest is never buffered: dropping the body drops the connection).
pub(crate) async fn read_body<B>(mut body: B, cap: usize) -> Result<(Vec<u8>, bool), B::Error>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
{
    use http_body_util::BodyExt;
    if body.size_hint().lower() > cap as u64 {
        // Keep only the start, for the error's excerpt.
        let mut head = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                head.extend_from_slice(&data[..data.len().min(1024)]);
                break;
            }
        }
        return Ok((head, true));
    }
    let mut out = Vec::with_capacity(body.size_hint().exact().map_or(0, |n| n as usize));
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            // Trailers: nothing the client reads.
            continue;
        };
        if out.len() + data.len() > cap {
            let room = cap - out.len();
            out.extend_from_slice(&data[..room]);
            return Ok((out, true));
        }
        out.extend_from_slice(&data);
    }
    Ok((out, false))
}

/// Parses a Retry-After value: delta-seconds (`"120"`) or an HTTP-date. A date in the past is
/// zero; anything else (negative, fractional, garbage) is `None`, so the caller backs off.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // Saturate absurdly long values instead of failing: they exceed max_retry_after anyway.
        return Some(Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Classifies a reqwest error without its URL's query or any header (reqwest's `Display` may
/// include the URL, which never carries secrets here, but keep the text short and stable).
pub(crate) fn from_reqwest(err: &reqwest::Error, what: &str, url: &str) -> Error {
    if err.is_timeout() {
        Error::new(ErrorKind::Timeout, format!("{what} {url}: timed out"))
    } else {
        transport(err, err.is_connect(), what, url)
    }
}

/// [`from_reqwest`] for the execute path's hyper client: a failure to connect (nothing was
/// sent, so not ambiguous) says so, as reqwest's does.
pub(crate) fn from_hyper(err: &hyper_util::client::legacy::Error, what: &str, url: &str) -> Error {
    transport(err, err.is_connect(), what, url)
}

/// A transport failure, with "connection failed" when nothing reached the server.
fn transport(
    err: &(dyn std::error::Error + 'static),
    connect: bool,
    what: &str,
    url: &str,
) -> Error {
    let failed = if connect { "connection failed: " } else { "" };
    Error::new(
        ErrorKind::Transport,
        format!("{what} {url}: {failed}{}", source_chain(err)),
    )
}

fn source_chain(err: &(dyn std::error::Error + 'static)) -> String {
    // The innermost cause ("connection refused", "connection closed before message completed")
    // is what a user can act on; reqwest's own outer text just repeats the URL.
    let mut last = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        last = e.to_string();
        cur = e.source();
    }
    last
}

/// A short, printable excerpt of a response body for error messages: at most `max` characters,
/// control characters replaced, so HTML or binary garbage cannot mess up a terminal or a log.
pub(crate) fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i >= max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    let trimmed = out.trim();
    if trimmed.is_empty() {
        "(empty body)".to_string()
    } else {
        trimmed.to_string()
    }
}

/// The server's own error text from a JSON error body (`message`, `error_description`,
/// `error`, `errors[0].message`), else an excerpt of the body.
pub(crate) fn server_message(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let mut parts = Vec::new();
        for key in ["error", "code", "error_description", "message"] {
            if let Some(s) = v.get(key).and_then(|x| x.as_str()) {
                if !parts.iter().any(|p: &String| p == s) {
                    parts.push(s.to_string());
                }
            }
        }
        if let Some(s) = v
            .get("errors")
            .and_then(|e| e.get(0))
            .and_then(|e| e.get("message"))
            .and_then(|m| m.as_str())
        {
            parts.push(s.to_string());
        }
        if !parts.is_empty() {
            return excerpt(parts.join(": ").as_bytes(), 300);
        }
    }
    excerpt(body, 200)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_pass_reads_what_lookups_by_name_read() {
        use http::header::{HeaderMap, HeaderName, HeaderValue};
        let mut h = HeaderMap::new();
        let mut add = |n: &str, v: &[u8]| {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        };
        add("Content-Type", b"application/json");
        add("Retry-After", b"7");
        add("retry-after", b"99");
        add("X-Request-Id", b"  req-1 ");
        add("X-Correlation-Id", b"corr-1");
        // Not text (obs-text): `get` gives this line, which is then no id, so the other name's
        // first line is read, as before.
        add("inin-correlation-id", b"caf\xe9");
        add("RateLimit-Policy", b"\"default\";q=100;w=60");
        add(
            "ratelimit-policy",
            b"\"conc\";q=6;qu=\"concurrent-requests\"",
        );
        add("RateLimit", b"\"default\";r=42;t=17");
        add("X-RateLimit-Limit", b"\xff");
        add("RateLimit-Limit", b"50");
        add("X-RateLimit-Remaining", b"9");
        let r = Read::scan(&h);
        assert_eq!(r.retry_after.flatten(), Some("7"));
        assert_eq!(r.inin_correlation_id, Some(None));
        assert_eq!(r.request_id.flatten(), Some("  req-1 "));
        assert_eq!(r.correlation_id.flatten(), Some("corr-1"));
        assert_eq!(r.policy.len(), 2);
        assert_eq!(r.ratelimit, ["\"default\";r=42;t=17"]);
        let a = answer(429, &h, Vec::new(), false);
        assert_eq!(a.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(a.ids.inin_correlation_id, None);
        assert_eq!(a.ids.request_id.as_deref(), Some("req-1"));
        let quota = a.quota.expect("a quota");
        assert_eq!((quota.remaining, quota.limit), (42, Some(100)));
        assert_eq!(a.concurrency_cap, Some(6));
        // Without the IETF fields, the X- names, each falling back to the unprefixed one
        // where its first line is not text.
        h.remove("ratelimit");
        h.remove("ratelimit-policy");
        let (quota, cap) = Read::scan(&h).quota(SystemTime::now());
        let quota = quota.expect("an X- quota");
        assert_eq!((quota.remaining, quota.limit, cap), (9, Some(50), None));
    }

    #[test]
    fn excerpt_is_short_and_printable() {
        let body = b"<html>\n<body>\x07Bad gateway</body></html>";
        let e = excerpt(body, 20);
        assert!(!e.contains('\n') && !e.contains('\x07'));
        assert!(e.chars().count() <= 21);
        assert_eq!(excerpt(b"  ", 10), "(empty body)");
    }

    #[test]
    fn server_message_prefers_json_fields() {
        let m = server_message(br#"{"error":"invalid_request","message":"uuid missing"}"#);
        assert_eq!(m, "invalid_request: uuid missing");
        assert_eq!(server_message(b"plain text"), "plain text");
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after("0", now), Some(Duration::ZERO));
        let future = httpdate::fmt_http_date(now + Duration::from_secs(5));
        assert_eq!(
            parse_retry_after(&future, now),
            Some(Duration::from_secs(5))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(50));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        for garbage in ["", "soon", "-1", "1.5", "Tue, 99 Foo 2024", "2 s"] {
            assert_eq!(parse_retry_after(garbage, now), None, "{garbage:?}");
        }
        assert!(
            parse_retry_after("99999999999999999999999", now).unwrap() > Duration::from_secs(60)
        );
    }
}
