//! Genesys Cloud's answer bodies that the client reads beyond the outputs: the `ErrorBody` of
//! every error (with the `limit` that refused a 429) and the `/test` variant's
//! `TestExecutionResult`. Untrusted input: every field is optional, unknown fields are
//! ignored, and a body of the wrong shape parses to `None` (serde_json's recursion limit bounds
//! the nested `errors`). Fuzzed by `fuzz/fuzz_targets/genesys_body.rs`.
//!
//! Field lists from the SDK models (MyPureCloud/platform-client-sdk-java, `build/docs/`):
//! `ErrorBody.md` (message, code, status, entityId, entityName, messageWithParams,
//! messageParams, contextId, details, errors, limit), `Limit.java` (key, namespace, value; the
//! namespace is an open enum, so a string here), `TestExecutionResult.md` (operations, error,
//! finalResult, success) and `TestExecutionOperationResult.md` (step, name, success, result,
//! error).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A Genesys `ErrorBody`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct ErrorBody {
    /// Human-readable message.
    pub message: Option<String>,
    /// Dotted code, e.g. `too.many.requests.retry.after`.
    pub code: Option<String>,
    /// The HTTP status.
    pub status: Option<i64>,
    /// Entity the error is about.
    pub entity_id: Option<String>,
    /// Name of that entity.
    pub entity_name: Option<String>,
    /// Message template.
    pub message_with_params: Option<String>,
    /// Template parameters.
    pub message_params: Option<BTreeMap<String, String>>,
    /// The request's correlation id (the `ININ-Correlation-Id` value).
    pub context_id: Option<String>,
    /// Details (left unparsed: shape varies).
    pub details: Option<Vec<Value>>,
    /// Nested errors.
    pub errors: Option<Vec<ErrorBody>>,
    /// The limit that refused the request, on some 429s.
    pub limit: Option<Limit>,
}

/// The limit a Genesys 429 names.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
#[non_exhaustive]
pub struct Limit {
    /// The limit's name, e.g. `client.credentials.token.rate.per.minute`.
    pub key: Option<String>,
    /// Its namespace, e.g. `platform.api` (an open set).
    pub namespace: Option<String>,
    /// Its value.
    pub value: Option<u64>,
}

impl Limit {
    /// `key = value`, or the key alone; `None` without a key.
    pub fn describe(&self) -> Option<String> {
        let key = self.key.as_deref().filter(|k| !k.trim().is_empty())?;
        let key = printable(key, 100);
        Some(match self.value {
            Some(v) => format!("{key} = {v}"),
            None => key,
        })
    }
}

impl ErrorBody {
    /// Parses a body; `None` when it is not a JSON object of this shape.
    pub fn parse(body: &[u8]) -> Option<ErrorBody> {
        match serde_json::from_slice::<Value>(body).ok()? {
            v @ Value::Object(_) => serde_json::from_value(v).ok(),
            _ => None,
        }
    }
}

/// One step of a `/test` run.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
#[non_exhaustive]
pub struct Operation {
    /// The step's order.
    pub step: Option<i64>,
    /// What the step does.
    pub name: Option<String>,
    /// Whether it succeeded.
    pub success: Option<bool>,
    /// Its result.
    pub result: Option<Value>,
    /// Its error: an `ErrorBody`, or (from older or stand-in servers) a plain string.
    pub error: Option<Value>,
}

impl Operation {
    /// The error's message: the string itself, an ErrorBody's `message`, else the JSON.
    pub fn error_message(&self) -> Option<String> {
        self.error.as_ref().map(message_of)
    }
}

/// A Genesys `TestExecutionResult`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct TestExecutionResult {
    /// The steps in order.
    pub operations: Option<Vec<Operation>>,
    /// The final error that failed the test.
    pub error: Option<Value>,
    /// What a normal execution would have returned.
    pub final_result: Option<Value>,
    /// Whether the test succeeded.
    pub success: Option<bool>,
}

impl TestExecutionResult {
    /// Parses a body; `None` when it is not a JSON object of this shape.
    pub fn parse(body: &[u8]) -> Option<TestExecutionResult> {
        Self::from_value(&serde_json::from_slice::<Value>(body).ok()?)
    }

    /// Reads an already parsed value.
    pub fn from_value(v: &Value) -> Option<TestExecutionResult> {
        match v {
            Value::Object(_) => serde_json::from_value(v.clone()).ok(),
            _ => None,
        }
    }

    /// The top-level error's message.
    pub fn error_message(&self) -> Option<String> {
        self.error.as_ref().map(message_of)
    }

    /// One line: "step 1 name: ok; step 2 name: failed: message; error: final message".
    pub fn describe(&self) -> Option<String> {
        let ops = self.operations.as_ref()?;
        let mut parts: Vec<String> = ops
            .iter()
            .map(|op| {
                let step = op.step.map(|s| s.to_string()).unwrap_or_default();
                let name = printable(op.name.as_deref().unwrap_or(""), 100);
                let ok = op.success == Some(true);
                let err = op
                    .error_message()
                    .map(|e| format!(": {}", printable(&e, 200)))
                    .unwrap_or_default();
                format!(
                    "step {step} {name}: {}{err}",
                    if ok { "ok" } else { "failed" }
                )
            })
            .collect();
        if let Some(e) = self.error_message() {
            parts.push(format!("error: {}", printable(&e, 200)));
        }
        Some(format!("test steps: {}", parts.join("; ")))
    }
}

fn message_of(e: &Value) -> String {
    match e {
        Value::String(s) => s.clone(),
        other => other
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| other.to_string()),
    }
}

/// At most `max` characters, control characters replaced: server text goes into messages.
pub(crate) fn printable(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > max {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reads_the_normalized_429() {
        let body = br#"{"message":"Rate limit exceeded the maximum. Retry the request in [42] seconds","code":"too.many.requests.retry.after","status":429,"contextId":"c-1","details":[],"errors":[],"limit":{"key":"client.credentials.token.rate.per.minute","namespace":"platform.api","value":300}}"#;
        let e = ErrorBody::parse(body).unwrap();
        assert_eq!(e.context_id.as_deref(), Some("c-1"));
        assert_eq!(
            e.limit.unwrap().describe().unwrap(),
            "client.credentials.token.rate.per.minute = 300"
        );
        for other in [&b"[]"[..], b"null", b"{\"status\":\"x\"}", b"<html>"] {
            assert!(ErrorBody::parse(other).is_none_or(|e| e.limit.is_none()));
        }
    }

    #[test]
    fn describes_test_results_with_the_final_error() {
        let t = TestExecutionResult::parse(
            br#"{"operations":[{"step":1,"name":"a","success":true},{"step":2,"name":"b","success":false,"error":{"message":"boom"}}],"error":{"message":"final"},"success":false}"#,
        )
        .unwrap();
        assert_eq!(
            t.describe().unwrap(),
            "test steps: step 1 a: ok; step 2 b: failed: boom; error: final"
        );
    }
}
