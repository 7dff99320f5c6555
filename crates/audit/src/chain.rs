//! The hash chain: canonical form, sealing, and streaming verification.
//!
//! # Canonical form
//!
//! `hash` is the lowercase hex SHA-256 of the event's *canonical form*: the event's JSON
//! **without the `hash` key**, with
//!
//! - object keys sorted by code point, recursively (inside `metadata` too),
//! - no whitespace between tokens,
//! - strings escaped as serde_json and Python's `json.dumps(ensure_ascii=False)` both do
//!   (`\"`, `\\`, `\b \f \n \r \t`, other control characters as `\u00xx`, everything else
//!   as UTF-8),
//! - integers as digits, floats as the shortest text that reads back to the same `f64`
//!   (serde_json / ryu; the same text as Python's `repr` in the range the trail uses),
//! - absent optional fields omitted (never `null`).
//!
//! The sealer normalises numbers before hashing so the stored text *is* the hashed text: the
//! latency fields (milliseconds, `wait_ms` too) are rounded to microseconds (3 decimals), `uniqueness_rate` to
//! 9 decimals, and non-finite floats are dropped. Sorting is done here, key by key, not by
//! relying on serde_json's `Map` order (another crate may turn on `preserve_order`).
//!
//! Every sink stores the canonical form with `,"hash":"…"` inserted before the closing brace
//! ([`encode_line`]), so the verifier's fast path, once it has checked that a line's bytes are
//! in exactly that form, hashes them without parsing them. A line in any other layout goes
//! through a full parse by the definition above, which alone decides it: an equivalent layout of
//! a sealed event is accepted, and bytes hashed as they stand but not canonical (keys out of
//! order, whitespace, `1.00`, `\u0041`, an unknown `event`) are rejected either way.
//!
//! `prev_hash` is the previous event's `hash` in the same stream ([`GENESIS_HASH`], 64 zeros,
//! for seq 1); `seq` counts from 1 without gaps.
//!
//! # Verifying without this tool
//!
//! ```python
//! import hashlib, json, sys
//! prev, seq = "0" * 64, 0
//! for n, line in enumerate(open(sys.argv[1], encoding="utf-8"), 1):
//!     ev = json.loads(line); h = ev.pop("hash"); seq += 1
//!     canon = json.dumps(ev, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
//!     assert hashlib.sha256(canon.encode()).hexdigest() == h, f"line {n}: hash mismatch"
//!     assert ev["seq"] == seq, f"line {n}: seq gap (expected {seq})"
//!     assert ev["prev_hash"] == prev, f"line {n}: prev_hash mismatch"
//!     prev = h
//! print(f"ok: {seq} events, chain intact, head {prev}")
//! ```
//!
//! (For a rotated trail, concatenate `PATH.1`, `PATH.2`, …, then `PATH`.)

mod canonical;
mod fast;
mod verify;

use std::fmt;

use crate::AuditEvent;
use canonical::{hex_digest, write_canonical_parts};

pub use canonical::{
    canonical_json, encode_line, event_name, hash_event, normalize, write_canonical,
};
pub use verify::{Verifier, VerifySummary};

/// `prev_hash` of the first event of a stream.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Seals events into one stream: assigns `seq`, `prev_hash` and `hash`.
#[derive(Debug, Clone)]
pub struct Chain {
    last_seq: u64,
    head_hash: String,
}

impl Default for Chain {
    fn default() -> Self {
        Self::resume(None)
    }
}

impl Chain {
    /// A chain continuing after `head` (`(seq, hash)` of the last stored event), or a new one.
    pub fn resume(head: Option<(u64, String)>) -> Self {
        match head {
            Some((last_seq, head_hash)) => Self {
                last_seq,
                head_hash,
            },
            None => Self {
                last_seq: 0,
                head_hash: GENESIS_HASH.to_string(),
            },
        }
    }

    /// Normalises `event` and gives it the next seq, the head as `prev_hash`, and its hash.
    pub fn seal(&mut self, event: &mut AuditEvent) {
        normalize(event);
        self.last_seq += 1;
        event.seq = self.last_seq;
        event.prev_hash.clone_from(&self.head_hash);
        event.hash = hash_event(event);
        self.head_hash.clone_from(&event.hash);
    }

    /// Seals a copy of `event` straight into its stored line (what [`Chain::seal`] then
    /// [`encode_line`] would write, without copying the event or serialising it twice).
    pub fn seal_line(&mut self, event: &AuditEvent, out: &mut Vec<u8>) {
        let start = out.len();
        let seq = self.last_seq + 1;
        write_canonical_parts(event, seq, &self.head_hash, true, out);
        let hash = hex_digest(&[&out[start..]]);
        out.pop(); // the closing brace
        out.extend_from_slice(b",\"hash\":\"");
        out.extend_from_slice(&hash);
        out.extend_from_slice(b"\"}\n");
        self.last_seq = seq;
        self.head_hash.clear();
        self.head_hash
            .push_str(std::str::from_utf8(&hash).unwrap_or_default());
    }

    /// The seq of the last sealed event (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The hash of the last sealed event ([`GENESIS_HASH`] before the first).
    pub fn head_hash(&self) -> &str {
        &self.head_hash
    }
}

/// Why a stream stops verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BreakReason {
    /// The stored `hash` is not the hash of the event's content: the event was edited.
    HashMismatch {
        /// The hash the content has.
        computed: String,
        /// The hash stored with it.
        stored: String,
    },
    /// `prev_hash` is not the previous event's hash: an event was replaced or forged.
    PrevHashMismatch {
        /// The previous event's hash.
        expected: String,
        /// The `prev_hash` stored.
        found: String,
    },
    /// `seq` is not the next number: events were deleted, reordered or duplicated.
    SeqGap {
        /// The seq that should come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// The line is not an audit event.
    Unparseable(String),
    /// A checkpoint's signature or linkage does not hold (only with a public key).
    Checkpoint(crate::signing::CheckpointError),
    /// A stored row is not an audit event (a database backend).
    UnparseableRow(String),
    /// An already sealed event does not continue the stored chain (an import).
    NotContinuing {
        /// The seq of the stored head.
        head: u64,
    },
    /// Objects of an archive are missing, so seqs are missing.
    Gaps {
        /// How many ranges are missing.
        count: usize,
        /// The first seq of the first missing range.
        first_missing: u64,
        /// The last seq of the first missing range.
        last_missing: u64,
        /// The object right after the first missing range.
        before: String,
    },
    /// An archive object repeats seqs another object holds.
    Duplicate {
        /// The object.
        key: String,
    },
    /// A backend's own finding, in its words (e.g. an archive object that does not decompress).
    Other(String),
}

impl fmt::Display for BreakReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HashMismatch { computed, stored } => write!(
                f,
                "hash mismatch (content hashes to {computed}, stored hash {stored}): the event was edited"
            ),
            Self::PrevHashMismatch { expected, found } => write!(
                f,
                "prev_hash mismatch (previous event's hash {expected}, stored prev_hash {found})"
            ),
            Self::SeqGap { expected, found } => write!(
                f,
                "seq gap (expected seq {expected}, found {found}): events deleted or reordered"
            ),
            Self::Unparseable(why) => write!(f, "unparseable line: {why}"),
            Self::Checkpoint(why) => write!(f, "bad checkpoint: {why}"),
            Self::UnparseableRow(why) => write!(f, "unparseable row: {why}"),
            Self::NotContinuing { head } => write!(
                f,
                "does not continue the database's chain (its head is seq {head}); import into an empty database"
            ),
            Self::Gaps {
                count,
                first_missing,
                last_missing,
                before,
            } => write!(
                f,
                "{count} gap(s); the first: seq {first_missing}..={last_missing} missing (object before it: {before})"
            ),
            Self::Duplicate { key } => write!(f, "object {key} duplicates seqs already verified"),
            Self::Other(why) => f.write_str(why),
        }
    }
}

/// The first place a stream stops verifying.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("chain broken at seq {seq}: {reason}")]
pub struct ChainBreak {
    /// The first bad seq (for an unparseable line: the seq it should have had).
    pub seq: u64,
    /// Why.
    pub reason: BreakReason,
}
#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::Value;

    use super::canonical::write_str;
    use super::*;
    use crate::EventKind;
    use uuid::Uuid;

    #[test]
    fn strings_are_escaped_exactly_as_serde_json_does() {
        // The fast path (no escaping needed) and the escaping path must both match the
        // documented canonical form, or stored hashes stop verifying.
        for s in [
            "",
            "plain",
            "2026-11-24T16:17:58.123456Z",
            "quote \" inside",
            "back\\slash",
            "tab\tnew\nline",
            "\u{0}\u{1f}",
            "\u{7f} del is not escaped",
            "ünïcödé ✓",
        ] {
            let mut ours = Vec::new();
            write_str(&mut ours, s);
            assert_eq!(ours, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }

    fn sample(n: usize) -> Vec<Vec<u8>> {
        let mut chain = Chain::default();
        let run = Uuid::now_v7();
        (0..n)
            .map(|i| {
                let mut ev = AuditEvent::new(EventKind::UuidGenerated, run);
                ev.uuid = Some(Uuid::new_v4());
                ev.generation_latency_ms = Some(0.0123456 * i as f64);
                let mut md = serde_json::Map::new();
                md.insert("variant".into(), "RFC4122".into());
                md.insert("version".into(), 4.into());
                md.insert("seq".into(), "nested \"seq\":1".into());
                ev.metadata = Some(md);
                chain.seal(&mut ev);
                let mut line = Vec::new();
                encode_line(&ev, &mut line);
                line
            })
            .collect()
    }

    fn verify(lines: &[Vec<u8>]) -> Result<u64, ChainBreak> {
        let mut v = Verifier::new();
        for l in lines {
            v.feed_line(l)?;
        }
        Ok(v.finish(None)?.events)
    }

    #[test]
    fn stored_line_is_canonical_plus_hash_and_parses_back() {
        let lines = sample(3);
        let ev: AuditEvent = serde_json::from_slice(&lines[1]).unwrap();
        assert_eq!(hash_event(&ev), ev.hash);
        let mut again = Vec::new();
        encode_line(&ev, &mut again);
        assert_eq!(again, lines[1]);
        assert_eq!(verify(&lines).unwrap(), 3);
    }

    #[test]
    fn canonical_sorts_keys_itself() {
        let mut ev = AuditEvent::new(EventKind::RunStarted, Uuid::nil());
        let mut md = serde_json::Map::new();
        md.insert(
            "z".into(),
            serde_json::json!({"b": 1, "a": [1.5, {"y": 0, "x": null}]}),
        );
        md.insert("a".into(), "\u{1}\n é".into());
        ev.metadata = Some(md);
        ev.timestamp = "2026-01-01T00:00:00.000000Z".into();
        let text = String::from_utf8(canonical_json(&ev)).unwrap();
        assert_eq!(
            text,
            r#"{"event":"run_started","metadata":{"a":"\u0001\n é","z":{"a":[1.5,{"x":null,"y":0}],"b":1}},"prev_hash":"","run_id":"00000000-0000-0000-0000-000000000000","schema":1,"seq":0,"timestamp":"2026-01-01T00:00:00.000000Z"}"#
        );
    }

    #[test]
    fn every_field_is_in_the_canonical_form_in_sorted_order() {
        // serde_json's Map sorts keys (no preserve_order here), so its compact text of the
        // serialised event is the documented canonical form: each field, correlation_id and
        // wait_ms included, must be written and in its place.
        let mut ev = AuditEvent::new(EventKind::ActionFailed, Uuid::now_v7());
        ev.uuid = Some(Uuid::new_v4());
        ev.action_id = Some("custom_-_abc".into());
        ev.attempts = Some(3);
        ev.ambiguous_attempts = Some(1);
        ev.http_status = Some(429);
        ev.error = Some("rate limited (429)".into());
        ev.correlation_id = Some("7f1c6c1e-0b51-4a0e-9d3e-cc1b5f0a2e11".into());
        ev.generation_latency_ms = Some(0.125);
        ev.execution_latency_ms = Some(12.5);
        ev.total_latency_ms = Some(12.625);
        ev.wait_ms = Some(48.25);
        ev.uniqueness_rate = Some(1.0);
        ev.metadata = Some(serde_json::Map::new());
        let mut chain = Chain::default();
        chain.seal(&mut ev);
        let mut value = serde_json::to_value(&ev).unwrap();
        value.as_object_mut().unwrap().remove("hash");
        let text = String::from_utf8(canonical_json(&ev)).unwrap();
        assert_eq!(text, serde_json::to_string(&value).unwrap());
        assert!(text.contains(r#""correlation_id":"7f1c6c1e-"#), "{text}");
        assert!(text.ends_with(r#","wait_ms":48.25}"#), "{text}");
        let mut line = Vec::new();
        encode_line(&ev, &mut line);
        assert_eq!(verify(&[line]).unwrap(), 1);
    }

    #[test]
    fn reformatted_but_equivalent_line_still_verifies() {
        let lines = sample(2);
        let v: Value = serde_json::from_slice(&lines[0]).unwrap();
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        let mut ver = Verifier::new();
        ver.feed_line(&pretty).unwrap();
        ver.feed_line(&lines[1]).unwrap();
    }

    #[test]
    fn an_edited_byte_is_a_hash_mismatch() {
        let mut lines = sample(5);
        let pos = lines[2].iter().position(|&b| b == b'R').unwrap();
        lines[2][pos] = b'X';
        let err = verify(&lines).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(
            matches!(err.reason, BreakReason::HashMismatch { .. }),
            "{err}"
        );
    }

    #[test]
    fn a_deleted_line_is_a_seq_gap() {
        let mut lines = sample(5);
        lines.remove(2);
        let err = verify(&lines).unwrap_err();
        assert_eq!(err.seq, 4);
        assert_eq!(
            err.reason,
            BreakReason::SeqGap {
                expected: 3,
                found: 4
            }
        );
    }

    #[test]
    fn a_reordered_pair_is_caught() {
        let mut lines = sample(5);
        lines.swap(1, 2);
        let err = verify(&lines).unwrap_err();
        assert_eq!(err.seq, 3);
        assert!(matches!(err.reason, BreakReason::SeqGap { .. }));
    }

    #[test]
    fn a_forged_prev_hash_is_caught_even_with_a_recomputed_hash() {
        let mut lines = sample(5);
        let mut ev: AuditEvent = serde_json::from_slice(&lines[3]).unwrap();
        ev.prev_hash = "ab".repeat(32);
        ev.hash = hash_event(&ev);
        let mut line = Vec::new();
        encode_line(&ev, &mut line);
        lines[3] = line;
        let err = verify(&lines).unwrap_err();
        assert_eq!(err.seq, 4);
        assert!(matches!(err.reason, BreakReason::PrevHashMismatch { .. }));
    }

    #[test]
    fn a_garbage_line_is_unparseable_at_the_expected_seq() {
        let mut lines = sample(3);
        lines[1] = b"{\"schema\":1,\"seq\":2,".to_vec();
        let err = verify(&lines).unwrap_err();
        assert_eq!(err.seq, 2);
        assert!(matches!(err.reason, BreakReason::Unparseable(_)));
    }

    #[test]
    fn seal_line_writes_what_seal_and_encode_write() {
        let mut a = Chain::default();
        let mut b = Chain::default();
        for i in 0..5 {
            let mut ev = AuditEvent::new(EventKind::ActionExecuted, Uuid::now_v7());
            ev.execution_latency_ms = Some(1.234_567_8 * f64::from(i));
            ev.uniqueness_rate = Some(0.999_999_999_9);
            ev.total_latency_ms = Some(f64::INFINITY);
            let mut line = Vec::new();
            a.seal_line(&ev, &mut line);
            b.seal(&mut ev);
            let mut expected = Vec::new();
            encode_line(&ev, &mut expected);
            assert_eq!(
                String::from_utf8(line).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
        assert_eq!(a.head_hash(), b.head_hash());
    }

    #[test]
    fn latencies_are_rounded_to_microseconds_before_hashing() {
        let mut ev = AuditEvent::new(EventKind::ActionExecuted, Uuid::nil());
        ev.execution_latency_ms = Some(1.234_567_8);
        ev.total_latency_ms = Some(f64::NAN);
        Chain::default().seal(&mut ev);
        assert_eq!(ev.execution_latency_ms, Some(1.235));
        assert_eq!(ev.total_latency_ms, None);
    }
}
