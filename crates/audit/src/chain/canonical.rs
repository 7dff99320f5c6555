//! The canonical form, its hash, and the stored line (see the [`super`] module for the rules).

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{AuditEvent, EventKind};

/// Rounds latency and rate fields and drops non-finite floats, so that the stored number text
/// reads back to exactly the hashed value (see the module docs).
pub fn normalize(event: &mut AuditEvent) {
    event.generation_latency_ms = normalized(event.generation_latency_ms, 1e3);
    event.execution_latency_ms = normalized(event.execution_latency_ms, 1e3);
    event.total_latency_ms = normalized(event.total_latency_ms, 1e3);
    event.uniqueness_rate = normalized(event.uniqueness_rate, 1e9);
    event.wait_ms = normalized(event.wait_ms, 1e3);
}

/// Appends the canonical form of `event` (without `hash`) to `out`.
pub fn write_canonical(event: &AuditEvent, out: &mut Vec<u8>) {
    write_canonical_parts(event, event.seq, &event.prev_hash, false, out);
}

/// Latency fields are kept to microseconds (ms with 3 decimals), the rate to 9 decimals.
fn normalized(v: Option<f64>, scale: f64) -> Option<f64> {
    v.filter(|x| x.is_finite()).map(|x| {
        let r = (x * scale).round() / scale;
        // -0.0 prints as "-0.0": keep the canonical text simple.
        if r == 0.0 {
            0.0
        } else {
            r
        }
    })
}

/// The canonical form with `seq` and `prev_hash` given, optionally normalising numbers as
/// sealing does (so sealing needs no copy of the event).
pub(super) fn write_canonical_parts(
    event: &AuditEvent,
    seq: u64,
    prev_hash: &str,
    normalize: bool,
    out: &mut Vec<u8>,
) {
    let num = |v: Option<f64>, scale: f64| {
        if normalize {
            normalized(v, scale)
        } else {
            v
        }
    };
    out.push(b'{');
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, k: &str| {
        if !first {
            out.push(b',');
        }
        first = false;
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
    };
    // Keys in sorted order; all top-level names are ASCII.
    if let Some(v) = &event.action_id {
        key(out, "action_id");
        write_str(out, v);
    }
    if let Some(v) = event.ambiguous_attempts {
        key(out, "ambiguous_attempts");
        write_int(out, u64::from(v));
    }
    if let Some(v) = event.attempts {
        key(out, "attempts");
        write_int(out, u64::from(v));
    }
    if let Some(v) = &event.correlation_id {
        key(out, "correlation_id");
        write_str(out, v);
    }
    if let Some(v) = &event.error {
        key(out, "error");
        write_str(out, v);
    }
    key(out, "event");
    write_str(out, event_name(event.event));
    if let Some(v) = num(event.execution_latency_ms, 1e3) {
        key(out, "execution_latency_ms");
        write_f64(out, v);
    }
    if let Some(v) = num(event.generation_latency_ms, 1e3) {
        key(out, "generation_latency_ms");
        write_f64(out, v);
    }
    if let Some(v) = event.http_status {
        key(out, "http_status");
        write_int(out, u64::from(v));
    }
    if let Some(m) = &event.metadata {
        key(out, "metadata");
        write_map(out, m);
    }
    key(out, "prev_hash");
    write_str(out, prev_hash);
    key(out, "run_id");
    write_uuid(out, &event.run_id);
    key(out, "schema");
    write_int(out, u64::from(event.schema));
    key(out, "seq");
    write_int(out, seq);
    key(out, "timestamp");
    write_str(out, &event.timestamp);
    if let Some(v) = num(event.total_latency_ms, 1e3) {
        key(out, "total_latency_ms");
        write_f64(out, v);
    }
    if let Some(v) = num(event.uniqueness_rate, 1e9) {
        key(out, "uniqueness_rate");
        write_f64(out, v);
    }
    if let Some(v) = &event.uuid {
        key(out, "uuid");
        write_uuid(out, v);
    }
    if let Some(v) = num(event.wait_ms, 1e3) {
        key(out, "wait_ms");
        write_f64(out, v);
    }
    out.push(b'}');
}

/// The canonical form of `event` without `hash` (what [`hash_event`] hashes).
pub fn canonical_json(event: &AuditEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    write_canonical(event, &mut out);
    out
}

/// The lowercase hex SHA-256 of the canonical form of `event` (its `hash` field is ignored).
pub fn hash_event(event: &AuditEvent) -> String {
    let mut buf = Vec::with_capacity(512);
    write_canonical(event, &mut buf);
    String::from_utf8_lossy(&hex_digest(&[&buf])).into_owned()
}

/// Lowercase hex SHA-256 of `parts` concatenated, on the stack: `hex::encode` builds its
/// `String` a char at a time, which cost more than the hash itself on the verify path.
pub(super) fn hex_digest(parts: &[&[u8]]) -> [u8; 64] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    let mut out = [0u8; 64];
    // Only fails on a wrong output length, and 32 bytes are always 64 hex digits.
    let _ = hex::encode_to_slice(hasher.finalize(), &mut out);
    out
}

/// Appends the stored form of a sealed event to `out`: the canonical form with `"hash"` as the
/// last key, and a newline. Every sink that stores lines uses this, so every stored line takes
/// the verifier's fast path.
pub fn encode_line(event: &AuditEvent, out: &mut Vec<u8>) {
    write_canonical(event, out);
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"hash\":");
    write_str(out, &event.hash);
    out.extend_from_slice(b"}\n");
}

/// The snake_case name of a kind, as serialised.
pub fn event_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::RunStarted => "run_started",
        EventKind::UuidGenerated => "uuid_generated",
        EventKind::ActionSubmitted => "action_submitted",
        EventKind::ActionExecuted => "action_executed",
        EventKind::ActionFailed => "action_failed",
        EventKind::RunFinished => "run_finished",
        EventKind::Checkpoint => "checkpoint",
    }
}

pub(super) fn write_str(out: &mut Vec<u8>, s: &str) {
    // Nearly every string here (hashes, timestamps, names) needs no escaping: copy those
    // straight, which gives byte-for-byte what serde_json writes for them.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    // serde_json's escaping into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

fn write_int(out: &mut Vec<u8>, v: u64) {
    let _ = serde_json::to_writer(&mut *out, &v);
}

fn write_f64(out: &mut Vec<u8>, v: f64) {
    let _ = serde_json::to_writer(&mut *out, &v);
}

fn write_uuid(out: &mut Vec<u8>, u: &uuid::Uuid) {
    out.push(b'"');
    let mut buf = uuid::Uuid::encode_buffer();
    out.extend_from_slice(u.hyphenated().encode_lower(&mut buf).as_bytes());
    out.push(b'"');
}

fn write_map(out: &mut Vec<u8>, m: &serde_json::Map<String, Value>) {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort_unstable();
    out.push(b'{');
    for (i, k) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        if let Some(v) = m.get(k) {
            write_value(out, v);
        }
    }
    out.push(b'}');
}

pub(super) fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Object(m) => write_map(out, m),
        Value::Array(a) => {
            out.push(b'[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, x);
            }
            out.push(b']');
        }
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}
