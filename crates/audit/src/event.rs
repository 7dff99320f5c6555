//! The one versioned event type every sink stores.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The schema version written in every event's `schema` field.
pub const SCHEMA_VERSION: u32 = 1;

/// What happened. Serialised in snake_case, the names the tutorial's users already query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A run began; `metadata` carries its settings (never secrets).
    RunStarted,
    /// A UUID was generated, validated and registered as unique.
    UuidGenerated,
    /// A UUID is about to leave the machine; durable before the request is sent.
    ActionSubmitted,
    /// The data action accepted the UUID.
    ActionExecuted,
    /// The data action did not accept the UUID after every allowed attempt.
    ActionFailed,
    /// A run ended (normally, aborted, or stopped by an error in `error`).
    RunFinished,
    /// A signed statement over the chain head (see the signing module).
    Checkpoint,
}

impl EventKind {
    /// Every kind, for readers that map stored names back without a JSON round trip.
    pub const ALL: [EventKind; 7] = [
        EventKind::RunStarted,
        EventKind::UuidGenerated,
        EventKind::ActionSubmitted,
        EventKind::ActionExecuted,
        EventKind::ActionFailed,
        EventKind::RunFinished,
        EventKind::Checkpoint,
    ];

    /// The kind stored under `name` (its snake_case name), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| crate::chain::event_name(*k) == name)
    }
}

/// One audit record. Optional fields are absent from the serialised form when not applicable.
///
/// `seq`, `prev_hash` and `hash` are filled by the sink when it seals the event into its stream;
/// producers leave them at their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Schema version, [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Position in the stream, gapless from 1.
    #[serde(default)]
    pub seq: u64,
    /// RFC 3339 UTC with microseconds, e.g. `2026-11-24T16:17:58.123456Z`.
    pub timestamp: String,
    /// What happened.
    pub event: EventKind,
    /// The run this event belongs to (a UUID v7, so runs sort by start time).
    pub run_id: Uuid,
    /// The UUID concerned, for per-UUID events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
    /// The data action the UUID was submitted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_id: Option<String>,
    /// HTTP attempts made for this UUID so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Attempts whose outcome is unknown (a timeout or reset after the request was written, 500,
    /// 502, 504): neither platform honours an idempotency key, so each may have run the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ambiguous_attempts: Option<u32>,
    /// The last HTTP status seen, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why it failed, in words (never containing secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The platform's id for the request that gave the outcome (Genesys's
    /// `ININ-Correlation-Id`, else the error body's `contextId`; `X-Request-Id` or
    /// `X-Correlation-Id` elsewhere), so a failure can be traced with the vendor's support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// Time to generate, validate and register the UUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_latency_ms: Option<f64>,
    /// Time from first attempt to final answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_latency_ms: Option<f64>,
    /// Generation plus execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_latency_ms: Option<f64>,
    /// Time the request was held back by the client's own pacing and concurrency limit, apart
    /// from the server latency in `execution_latency_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<f64>,
    /// Share of generated candidates that were unique, 0..=1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uniqueness_rate: Option<f64>,
    /// Free-form details: UUID version and variant, run settings, checkpoint signature, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    /// The previous event's `hash` in this stream (64 zeros for the first).
    #[serde(default)]
    pub prev_hash: String,
    /// SHA-256 over the canonical form of this event without `hash`.
    #[serde(default)]
    pub hash: String,
}

impl AuditEvent {
    /// A new unsealed event of `kind` for `run_id`, stamped now.
    pub fn new(kind: EventKind, run_id: Uuid) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            seq: 0,
            timestamp: now_rfc3339_micros(),
            event: kind,
            run_id,
            uuid: None,
            action_id: None,
            attempts: None,
            http_status: None,
            error: None,
            generation_latency_ms: None,
            execution_latency_ms: None,
            total_latency_ms: None,
            uniqueness_rate: None,
            correlation_id: None,
            ambiguous_attempts: None,
            wait_ms: None,
            metadata: None,
            prev_hash: String::new(),
            hash: String::new(),
        }
    }
}

/// The current time as RFC 3339 UTC with microseconds.
pub fn now_rfc3339_micros() -> String {
    rfc3339_micros(chrono::Utc::now())
}

/// `t` as chrono's `to_rfc3339_opts(Micros, true)` writes it, with the date and time of day
/// formatted once per second per thread: every event takes a timestamp (three per UUID), and
/// chrono's general formatter cost about 1% of the client's CPU in a profile.
fn rfc3339_micros(t: chrono::DateTime<chrono::Utc>) -> String {
    use std::cell::RefCell;
    use std::fmt::Write;
    thread_local! {
        /// The last second formatted, and its `YYYY-MM-DDTHH:MM:SS`.
        static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
    }
    let micros = t.timestamp_subsec_micros();
    if micros >= 1_000_000 {
        // A leap second (chrono's nanoseconds past a billion): its own way.
        return t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    }
    SECOND.with(|cell| {
        let mut cell = cell.borrow_mut();
        let (second, prefix) = &mut *cell;
        if *second != t.timestamp() {
            *second = t.timestamp();
            prefix.clear();
            let _ = write!(prefix, "{}", t.format("%Y-%m-%dT%H:%M:%S"));
        }
        let mut out = String::with_capacity(prefix.len() + 8);
        out.push_str(prefix);
        let _ = write!(out, ".{micros:06}Z");
        out
    })
}

#[cfg(test)]
mod timestamp_tests {
    use chrono::{DateTime, TimeZone, Utc};

    use super::rfc3339_micros;

    fn chrono_way(t: DateTime<Utc>) -> String {
        t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    #[test]
    fn writes_what_chrono_writes() {
        let mut t = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 58).unwrap();
        // Across seconds, a day, a year; the same second twice (the cached prefix); odd micros.
        for step_us in [0, 1, 999_999, 1, 400_001, 3_600_000_000, 86_399_999_999, 7] {
            t += chrono::Duration::microseconds(step_us);
            assert_eq!(rfc3339_micros(t), chrono_way(t));
        }
        for t in [
            Utc.timestamp_opt(0, 0).unwrap(),
            Utc.timestamp_opt(-1, 999_999_000).unwrap(),
            Utc.timestamp_opt(253_402_300_799, 999_999_999).unwrap(),
            Utc::now(),
        ] {
            assert_eq!(rfc3339_micros(t), chrono_way(t));
        }
        // A leap second, as chrono represents it.
        let leap = Utc.timestamp_opt(1_483_228_799, 1_500_000_000).unwrap();
        assert_eq!(rfc3339_micros(leap), chrono_way(leap));
    }
}
