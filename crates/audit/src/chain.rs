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
//! latency fields (milliseconds) are rounded to microseconds (3 decimals), `uniqueness_rate` to
//! 9 decimals, and non-finite floats are dropped. Sorting is done here, key by key, not by
//! relying on serde_json's `Map` order (another crate may turn on `preserve_order`).
//!
//! Every sink stores the canonical form with `,"hash":"…"` inserted before the closing brace
//! ([`encode_line`]), so the verifier's fast path hashes the stored bytes without parsing them;
//! a line in any other (but equivalent) JSON layout is still accepted through a full parse.
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

use std::fmt;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{AuditEvent, EventKind};

/// `prev_hash` of the first event of a stream.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Rounds latency and rate fields and drops non-finite floats, so that the stored number text
/// reads back to exactly the hashed value (see the module docs).
pub fn normalize(event: &mut AuditEvent) {
    event.generation_latency_ms = normalized(event.generation_latency_ms, 1e3);
    event.execution_latency_ms = normalized(event.execution_latency_ms, 1e3);
    event.total_latency_ms = normalized(event.total_latency_ms, 1e3);
    event.uniqueness_rate = normalized(event.uniqueness_rate, 1e9);
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
fn write_canonical_parts(
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
    if let Some(v) = event.attempts {
        key(out, "attempts");
        write_int(out, u64::from(v));
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
fn hex_digest(parts: &[&[u8]]) -> [u8; 64] {
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

fn write_str(out: &mut Vec<u8>, s: &str) {
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

fn write_value(out: &mut Vec<u8>, v: &Value) {
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

/// Streaming verification: feed events (or stored lines) in order; the first error is the first
/// bad seq. Cheap per event (one SHA-256, no parse for lines in the stored form), so verifying
/// runs at well over a million events a second.
#[derive(Debug)]
pub struct Verifier {
    chain: Chain,
    count: u64,
    checkpoints: u64,
    signatures: Option<crate::signing::CheckpointVerifier>,
    scratch: Vec<u8>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

/// What a verified stream holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// Events verified.
    pub events: u64,
    /// The last seq (0 for an empty stream).
    pub last_seq: u64,
    /// The head hash ([`GENESIS_HASH`] for an empty stream).
    pub head: String,
    /// Checkpoint events seen.
    pub checkpoints: u64,
    /// The signature check, when a public key was given.
    pub signed: Option<crate::signing::SignedSummary>,
}

impl Verifier {
    /// Verifies a stream from seq 1.
    pub fn new() -> Self {
        Self {
            chain: Chain::default(),
            count: 0,
            checkpoints: 0,
            signatures: None,
            scratch: Vec::with_capacity(512),
        }
    }

    /// Verifies a stream that continues after `head` (`(seq, hash)` already verified).
    pub fn resume(head: Option<(u64, String)>) -> Self {
        Self {
            chain: Chain::resume(head),
            ..Self::new()
        }
    }

    /// Also checks every checkpoint's signature with `key` (see [`crate::signing`]).
    pub fn with_public_key(mut self, key: ed25519_dalek::VerifyingKey) -> Self {
        self.signatures = Some(crate::signing::CheckpointVerifier::new(key));
        self
    }

    /// Events verified so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `(seq, hash)` of the last verified event.
    pub fn head(&self) -> (u64, &str) {
        (self.chain.last_seq, &self.chain.head_hash)
    }

    fn brk(&self, reason: BreakReason) -> ChainBreak {
        ChainBreak {
            seq: self.chain.last_seq + 1,
            reason,
        }
    }

    /// Verifies one stored line (trailing newline optional).
    pub fn feed_line(&mut self, line: &[u8]) -> Result<(), ChainBreak> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(fast) = fast_parse(line) {
            if hex_digest(&[fast.body, b"}"]) == *fast.hash {
                if fast.is_checkpoint {
                    // Rare: parse fully so the signature can be checked.
                    return self.feed_parsed(line);
                }
                return self.advance(fast.seq, fast.prev_hash, fast.hash);
            }
        }
        self.feed_parsed(line)
    }

    /// The documented definition, literally: parse, drop `hash`, sort keys, hash. Unknown keys
    /// count, so a key added to a stored line is a hash mismatch, as in the Python script.
    fn feed_parsed(&mut self, line: &[u8]) -> Result<(), ChainBreak> {
        let mut value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => return Err(self.brk(BreakReason::Unparseable(e.to_string()))),
        };
        let stored = match value.as_object_mut().and_then(|m| m.remove("hash")) {
            Some(Value::String(h)) => h,
            _ => {
                return Err(self.brk(BreakReason::Unparseable(
                    "no \"hash\" string field".to_string(),
                )))
            }
        };
        self.scratch.clear();
        write_value(&mut self.scratch, &value);
        let computed = String::from_utf8_lossy(&hex_digest(&[&self.scratch])).into_owned();
        let mut ev: AuditEvent = match serde_json::from_value(value) {
            Ok(ev) => ev,
            Err(e) => return Err(self.brk(BreakReason::Unparseable(e.to_string()))),
        };
        if computed != stored {
            return Err(ChainBreak {
                seq: ev.seq,
                reason: BreakReason::HashMismatch { computed, stored },
            });
        }
        ev.hash = stored;
        self.check_linked(&ev)
    }

    /// Verifies one event.
    pub fn feed_event(&mut self, ev: &AuditEvent) -> Result<(), ChainBreak> {
        self.scratch.clear();
        write_canonical(ev, &mut self.scratch);
        let computed = hex_digest(&[&self.scratch]);
        if computed[..] != *ev.hash.as_bytes() {
            return Err(ChainBreak {
                seq: ev.seq,
                reason: BreakReason::HashMismatch {
                    computed: String::from_utf8_lossy(&computed).into_owned(),
                    stored: ev.hash.clone(),
                },
            });
        }
        self.check_linked(ev)
    }

    fn check_linked(&mut self, ev: &AuditEvent) -> Result<(), ChainBreak> {
        self.advance(ev.seq, ev.prev_hash.as_bytes(), ev.hash.as_bytes())?;
        if ev.event == EventKind::Checkpoint {
            self.checkpoints += 1;
            if let Some(sig) = &mut self.signatures {
                sig.observe(ev).map_err(|why| ChainBreak {
                    seq: ev.seq,
                    reason: BreakReason::Checkpoint(why),
                })?;
            }
        }
        Ok(())
    }

    fn advance(&mut self, seq: u64, prev_hash: &[u8], hash: &[u8]) -> Result<(), ChainBreak> {
        let expected = self.chain.last_seq + 1;
        if seq != expected {
            return Err(ChainBreak {
                seq,
                reason: BreakReason::SeqGap {
                    expected,
                    found: seq,
                },
            });
        }
        if prev_hash != self.chain.head_hash.as_bytes() {
            return Err(ChainBreak {
                seq,
                reason: BreakReason::PrevHashMismatch {
                    expected: self.chain.head_hash.clone(),
                    found: String::from_utf8_lossy(prev_hash).into_owned(),
                },
            });
        }
        self.chain.last_seq = seq;
        self.chain.head_hash.clear();
        self.chain
            .head_hash
            .push_str(std::str::from_utf8(hash).unwrap_or_default());
        self.count += 1;
        Ok(())
    }

    /// Ends the stream. `anchor` is the latest checkpoint kept beside the trail (e.g.
    /// `PATH.checkpoint`), which lets a public-key check notice a tail cut before it.
    pub fn finish(self, anchor: Option<&AuditEvent>) -> Result<VerifySummary, ChainBreak> {
        let last_seq = self.chain.last_seq;
        let signed = match self.signatures {
            Some(sig) => Some(sig.finish(last_seq, anchor).map_err(|why| ChainBreak {
                seq: last_seq,
                reason: BreakReason::Checkpoint(why),
            })?),
            None => None,
        };
        Ok(VerifySummary {
            events: self.count,
            last_seq,
            head: self.chain.head_hash,
            checkpoints: self.checkpoints,
            signed,
        })
    }
}

struct Fast<'a> {
    /// The line without `,"hash":"…"}`.
    body: &'a [u8],
    hash: &'a [u8; 64],
    seq: u64,
    prev_hash: &'a [u8],
    is_checkpoint: bool,
}

/// Splits a line in the stored form (see [`encode_line`]) without parsing it. Only trusted once
/// its hash matches: a matching hash proves the bytes are what the sealer wrote.
fn fast_parse(line: &[u8]) -> Option<Fast<'_>> {
    const SUFFIX_LEN: usize = 9 + 64 + 2; // ,"hash":" + hex + "}
    if line.len() < SUFFIX_LEN + 2 {
        return None;
    }
    let (body, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    if !suffix.starts_with(b",\"hash\":\"") || !suffix.ends_with(b"\"}") {
        return None;
    }
    let hash: &[u8; 64] = suffix[9..73].try_into().ok()?;
    // Keys after `seq` and `prev_hash` are strings or numbers, whose text cannot hold a bare `"`,
    // so the last occurrence is the top-level key (metadata, which may nest keys, sorts before).
    let seq_at = rfind(body, b",\"seq\":")? + 7;
    let digits = body[seq_at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let seq = std::str::from_utf8(&body[seq_at..seq_at + digits])
        .ok()?
        .parse()
        .ok()?;
    let prev_at = rfind(body, b",\"prev_hash\":\"")? + 14;
    let prev_hash = body.get(prev_at..prev_at + 64)?;
    // `event` is preceded only by action_id, attempts and error (no nested keys).
    let event_at = find(body, b"\"event\":\"")? + 9;
    let is_checkpoint = body[event_at..].starts_with(b"checkpoint\"");
    Some(Fast {
        body,
        hash,
        seq,
        prev_hash,
        is_checkpoint,
    })
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut i = hay.len().checked_sub(needle.len())?;
    loop {
        if hay[i] == first && hay[i..].starts_with(needle) {
            return Some(i);
        }
        i = i.checked_sub(1)?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let last = hay.len().checked_sub(needle.len())?;
    (0..=last).find(|&i| hay[i] == first && hay[i..].starts_with(needle))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
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
