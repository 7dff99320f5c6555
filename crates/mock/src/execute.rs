//! Execute endpoints of the three dialects, behind one pipeline: authenticate, rate-limit,
//! check the body, pick the scripted or random outcome, record, then answer in the dialect.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use crate::config::{Provider, Step};
use crate::respond;
use crate::state::{RecordedRequest, Shared, TokenCheck};

/// Which execute shape a request asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    /// `[{name, value}]` array, status 200.
    Tutorial,
    /// `{"uuid", "status"}` object, status 200.
    GenesysExecute,
    /// Step-by-step `{"operations", "success", "finalResult"}`, status 200 even when the
    /// action fails (the failure is in the body).
    GenesysTest,
    /// `{"contactId", "uuid"}`, status 202.
    Cxone,
}

pub(crate) async fn tutorial(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    execute(&state, Dialect::Tutorial, &headers, &uri, &body).await
}

pub(crate) async fn genesys_execute(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    execute(&state, Dialect::GenesysExecute, &headers, &uri, &body).await
}

pub(crate) async fn genesys_test(
    State(state): State<Arc<Shared>>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    execute(&state, Dialect::GenesysTest, &headers, &uri, &body).await
}

/// CXone has no generic execute endpoint (NICE recommends `POST /scripts/start` to start a
/// script from outside: <https://help.nice-incontact.com/content/studio/fundamentals/spawnscriptcx.htm>),
/// so the mock executes on the one configured path, `MockConfig::execute_path`, and answers
/// 404 elsewhere, as a tenant would to a mistyped `--execute-path`.
pub(crate) async fn cxone_fallback(
    State(state): State<Arc<Shared>>,
    method: Method,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Response {
    if method != Method::POST || uri.path() != state.config.execute_path {
        return not_found(&state, &uri);
    }
    execute(&state, Dialect::Cxone, &headers, &uri, &body).await
}

pub(crate) async fn fallback(State(state): State<Arc<Shared>>, uri: Uri) -> Response {
    not_found(&state, &uri)
}

fn not_found(state: &Shared, uri: &Uri) -> Response {
    error(
        state,
        404,
        "not_found",
        &format!("no such endpoint: {}", uri.path()),
    )
}

/// An error in the dialect's shape: a Genesys `ErrorBody`, else `{"error", "message", "status"}`.
fn error(state: &Shared, status: u16, code: &str, message: &str) -> Response {
    match state.config.provider {
        Provider::Genesys => respond::genesys_error(status, message),
        Provider::Tutorial | Provider::Cxone => respond::json_error(status, code, message),
    }
}

/// A Retry-After answer in the dialect's shape (Genesys: the normalized 429 with its limit).
fn retry_after(state: &Shared, status: u16, secs: u64, as_date: bool) -> Response {
    match state.config.provider {
        Provider::Genesys => {
            respond::genesys_retry_after(status, secs, as_date, state.config.genesys_limit.as_ref())
        }
        Provider::Tutorial | Provider::Cxone => respond::retry_after(status, secs, as_date),
    }
}

/// Whether the query asks for `flatten=true` (Genesys execute and test).
fn wants_flatten(uri: &Uri) -> bool {
    uri.query()
        .is_some_and(|q| q.split('&').any(|p| p.eq_ignore_ascii_case("flatten=true")))
}

/// Flattens nested objects to dotted keys: `{"a":{"b":1}}` becomes `{"a.b":1}`.
///
/// Genesys documents `flatten` only as "reformatted, based on Architect's flattening format"
/// (platform-client-sdk-javascript `build/docs/IntegrationsApi.md`); the exact key format is not
/// public. Dotted keys are this mock's assumption, and arrays are left as they are.
fn flatten(value: &Value) -> Value {
    fn walk(prefix: &str, value: &Value, out: &mut serde_json::Map<String, Value>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.clone());
            }
        }
    }
    match value {
        Value::Object(_) => {
            let mut out = serde_json::Map::new();
            walk("", value, &mut out);
            Value::Object(out)
        }
        other => other.clone(),
    }
}

fn parse_uuid(s: &str) -> Option<String> {
    uuid::Uuid::try_parse(s.trim())
        .ok()
        .map(|u| u.hyphenated().to_string())
}

/// A UUID inside a longer string, such as CXone script parameters `"<uuid>|e2e"`: the first
/// run of hex digits and hyphens that parses as one.
fn embedded_uuid(s: &str) -> Option<String> {
    s.split(|c: char| !(c.is_ascii_hexdigit() || c == '-'))
        .filter(|part| part.len() >= 32)
        .find_map(parse_uuid)
}

/// The first string anywhere in the value that is, or contains, a UUID, depth first.
fn first_uuid(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => parse_uuid(s).or_else(|| embedded_uuid(s)),
        Value::Array(items) => items.iter().find_map(first_uuid),
        Value::Object(map) => map.values().find_map(first_uuid),
        _ => None,
    }
}

const NOT_JSON: &str = "the body is not JSON";

/// Finds the UUID the dialect carries, or says what is wrong with the body.
fn find_uuid(dialect: Dialect, body: &Value) -> Result<String, &'static str> {
    if body.is_null() {
        return Err(NOT_JSON);
    }
    match dialect {
        Dialect::Tutorial => {
            let inputs = body
                .get("inputs")
                .and_then(Value::as_object)
                .ok_or("the body must be a JSON object with an \"inputs\" object")?;
            // The input may be renamed (--input-name): take the first whose value is a UUID.
            inputs
                .values()
                .find_map(|v| v.as_str().and_then(parse_uuid))
                .ok_or("no input value is a UUID")
        }
        Dialect::GenesysExecute | Dialect::GenesysTest => {
            let obj = body
                .as_object()
                .ok_or("the body must be a flat JSON object of the action's inputs")?;
            obj.get("uuid")
                .and_then(Value::as_str)
                .and_then(parse_uuid)
                .or_else(|| obj.values().find_map(|v| v.as_str().and_then(parse_uuid)))
                .ok_or("no input value is a UUID")
        }
        Dialect::Cxone => first_uuid(body).ok_or("no string in the body is or contains a UUID"),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Option<String> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// What one attempt gets: a status and a response, decided before any sleep so the record
/// keeps arrival order even for delayed answers.
struct Outcome {
    status: u16,
    response: Response,
    delay_ms: u64,
    /// Concurrency slots held until the answer leaves.
    held: Vec<crate::limits::Held>,
}

impl Outcome {
    fn now(status: u16, response: Response) -> Self {
        Outcome {
            status,
            response,
            delay_ms: 0,
            held: Vec::new(),
        }
    }
}

async fn execute(
    state: &Shared,
    dialect: Dialect,
    headers: &HeaderMap,
    uri: &Uri,
    raw: &[u8],
) -> Response {
    let arrived = tokio::time::Instant::now();
    let path = uri.path();
    let flat = dialect != Dialect::Tutorial && dialect != Dialect::Cxone && wants_flatten(uri);
    let at_ms = state.elapsed_ms();
    let key = idempotency_key(headers);
    let body: Value = serde_json::from_slice(raw).unwrap_or(Value::Null);
    let found = find_uuid(dialect, &body);
    let outcome = decide(
        state,
        dialect,
        headers,
        key.as_deref(),
        found.as_deref().map_err(|e| *e),
        flat,
    );
    let uuid = found.ok();
    let index = state.record_execute(RecordedRequest {
        path: path.to_string(),
        query: uri.query().map(str::to_string),
        idempotency_key: key,
        uuid,
        body,
        status: outcome.status,
        at_ms,
        correlation_id: respond::correlation_id(),
        held_ms: None,
    });
    let wait = state.config.latency_ms + outcome.delay_ms;
    if wait > 0 {
        // Counted from arrival: parsing and recording are part of the latency, not added to it.
        tokio::time::sleep_until(arrived + Duration::from_millis(wait)).await;
    }
    // In flight until here, as far as a concurrency limit counts.
    drop(outcome.held);
    state.record_held(index, arrived.elapsed());
    outcome.response
}

fn decide(
    state: &Shared,
    dialect: Dialect,
    headers: &HeaderMap,
    key: Option<&str>,
    found: Result<&str, &str>,
    flat: bool,
) -> Outcome {
    let message = match state.check_token(respond::bearer(headers)) {
        TokenCheck::Valid => None,
        TokenCheck::Missing => Some("the Authorization: Bearer token is missing"),
        TokenCheck::Unknown => Some("the bearer token is unknown: fetch a new one"),
        TokenCheck::Expired => Some("the bearer token has expired: fetch a new one"),
    };
    if let Some(message) = message {
        return Outcome::now(401, error(state, 401, "invalid_token", message));
    }
    let admission = state.admit(respond::bearer(headers).unwrap_or_default());
    let mut outcome = match admission.refused {
        Some(secs) => Outcome::now(429, refusal(state, secs, admission.by_concurrency)),
        None => admitted(state, dialect, headers, key, found, flat),
    };
    for (name, value) in crate::limits::headers(state.config.limit_headers, &admission.views) {
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            outcome.response.headers_mut().insert(name, v);
        }
    }
    outcome.held = admission.held;
    outcome
}

/// A limit's 429: a Genesys one names the limit (the configured one, else the concurrency cap
/// that refused, as `actions.concurrent.executions.max`).
fn refusal(state: &Shared, secs: u64, by_concurrency: Option<usize>) -> Response {
    match (
        state.config.provider,
        &state.config.genesys_limit,
        by_concurrency,
    ) {
        (Provider::Genesys, None, Some(cap)) => {
            let limit = crate::config::GenesysLimit {
                key: "actions.concurrent.executions.max".into(),
                namespace: "integrations".into(),
                value: cap as u64,
            };
            respond::genesys_retry_after(429, secs, false, Some(&limit))
        }
        _ => retry_after(state, 429, secs, false),
    }
}

/// The pipeline after the limits admitted the request.
fn admitted(
    state: &Shared,
    dialect: Dialect,
    headers: &HeaderMap,
    key: Option<&str>,
    found: Result<&str, &str>,
    flat: bool,
) -> Outcome {
    if !respond::has_content_type(headers, "application/json") {
        return Outcome::now(
            415,
            error(
                state,
                415,
                "unsupported_media_type",
                "the body must be JSON (Content-Type: application/json)",
            ),
        );
    }
    let uuid = match found {
        Ok(uuid) => uuid,
        Err(why) => return Outcome::now(400, error(state, 400, "bad_request", why)),
    };
    if dialect == Dialect::Tutorial && key.is_none() {
        return Outcome::now(
            400,
            error(
                state,
                400,
                "bad_request",
                "the Idempotency-Key header is missing: send the UUID as the key",
            ),
        );
    }
    // The tutorial requires the header; the vendor dialects do not, so key by UUID there.
    let script_key = key.unwrap_or(uuid);
    let step = state.next_execute_step(Some(script_key)).or_else(|| {
        if state.random_failure() {
            Some(Step::Status(state.config.fail_status))
        } else {
            state.config.malformed.map(Step::Malformed)
        }
    });
    answer(state, dialect, step.unwrap_or(Step::Ok), uuid, flat)
}

fn answer(state: &Shared, dialect: Dialect, step: Step, uuid: &str, flat: bool) -> Outcome {
    match step {
        Step::Ok => success(state, dialect, uuid, flat),
        Step::Delay(ms) => Outcome {
            delay_ms: ms,
            ..success(state, dialect, uuid, flat)
        },
        Step::Close => Outcome::now(0, respond::close()),
        Step::Status(s) if dialect == Dialect::GenesysTest && !matches!(s, 401 | 403 | 429) => {
            // The /test variant reports an action failure inside a 200, step by step.
            Outcome::now(200, respond::json_body(200, &genesys_test_failure(s)))
        }
        Step::Status(429) if state.config.provider == Provider::Genesys => {
            // Every Genesys 429 carries Retry-After (the normalized 429 announcement).
            Outcome::now(429, retry_after(state, 429, 1, false))
        }
        Step::Status(s) => Outcome::now(
            s,
            error(state, s, &respond::error_code(s), &status_message(state, s)),
        ),
        Step::RetryAfterSecs(s, secs) => Outcome::now(s, retry_after(state, s, secs, false)),
        Step::RetryAfterDate(s, secs) => Outcome::now(s, retry_after(state, s, secs, true)),
        Step::Malformed(kind) => {
            let contact = state.next_contact_id();
            let normal = success_body(dialect, uuid, contact);
            let other = uuid::Uuid::new_v4().hyphenated().to_string();
            let mismatch = success_body(dialect, &other, contact);
            let wrong_shape = match dialect {
                Dialect::Tutorial => json!({ "output_uuid": uuid, "status": "ok" }),
                _ => json!([{ "name": "uuid", "value": uuid }]),
            };
            Outcome::now(
                200,
                respond::malformed(kind, &normal, &wrong_shape, &mismatch),
            )
        }
    }
}

fn status_message(state: &Shared, status: u16) -> String {
    match status {
        401 => "the bearer token was rejected: fetch a new one".into(),
        403 => match state.config.provider {
            Provider::Tutorial => "missing scope: data-actions:execute".into(),
            Provider::Genesys => "missing any of the permissions: integrations:action:execute, \
                                  bridge:actions:execute"
                .into(),
            Provider::Cxone => {
                "missing permission: the API user's role may not start scripts".into()
            }
        },
        400 => "the request was refused by the action".into(),
        429 => "too many requests".into(),
        s if s >= 500 => format!("scripted server error {s}"),
        s => format!("scripted error {s}"),
    }
}

fn success(state: &Shared, dialect: Dialect, uuid: &str, flat: bool) -> Outcome {
    let contact = state.next_contact_id();
    let status = if dialect == Dialect::Cxone { 202 } else { 200 };
    let mut body = success_body(dialect, uuid, contact);
    if flat {
        match dialect {
            Dialect::GenesysExecute => body = flatten(&body),
            Dialect::GenesysTest => {
                if let Some(fr) = body.get_mut("finalResult") {
                    *fr = flatten(fr);
                }
            }
            Dialect::Tutorial | Dialect::Cxone => {}
        }
    }
    Outcome::now(status, respond::json_body(status, &body))
}

fn success_body(dialect: Dialect, uuid: &str, contact: u64) -> Value {
    match dialect {
        Dialect::Tutorial => json!([
            { "name": "output_uuid", "value": uuid },
            { "name": "status", "value": "ok" },
        ]),
        // A nested `record` so `?flatten=true` has something to flatten.
        Dialect::GenesysExecute => genesys_output(uuid, contact),
        // TestExecutionResult: operations[{step, name, success, result, error}], error,
        // finalResult, success (platform-client-sdk-java build/docs/TestExecutionResult.md).
        Dialect::GenesysTest => json!({
            "operations": [
                { "step": 1, "name": "Resolve request body template", "success": true,
                  "result": { "uuid": uuid } },
                { "step": 2, "name": "Execute request", "success": true,
                  "result": genesys_output(uuid, contact) },
                { "step": 3, "name": "Resolve response translation map", "success": true,
                  "result": genesys_output(uuid, contact) },
            ],
            "success": true,
            "finalResult": genesys_output(uuid, contact),
        }),
        Dialect::Cxone => json!({ "contactId": contact, "uuid": uuid }),
    }
}

fn genesys_output(uuid: &str, contact: u64) -> Value {
    json!({ "uuid": uuid, "status": "ok", "record": { "id": uuid, "contactId": contact } })
}

/// A failing `/test`: the failed step's `error` and the top-level `error` ("the final error
/// encountered during the test") are both `ErrorBody`s.
fn genesys_test_failure(status: u16) -> Value {
    let message = format!("the remote endpoint answered {status}");
    let step_error = respond::genesys_error_body(status, &message, None);
    let final_error = respond::genesys_error_body(
        status,
        &format!("the action failed at step 2 (Execute request): {message}"),
        None,
    );
    json!({
        "operations": [
            { "step": 1, "name": "Resolve request body template", "success": true,
              "result": {} },
            { "step": 2, "name": "Execute request", "success": false, "error": step_error },
        ],
        "error": final_error,
        "success": false,
    })
}
