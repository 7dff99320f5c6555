//! The verifier's fast path: recognises a line that is already in the stored form (the canonical
//! form plus `,"hash":"…"}`, see [`encode_line`](super::encode_line)) without building a
//! `serde_json::Value`, so its own bytes can be hashed.
//!
//! Hashing a line's own bytes is only the documented definition (parse, drop `hash`, write the
//! canonical form, hash; then read it as an [`AuditEvent`](crate::AuditEvent)) when those bytes
//! *are* the canonical form of an event that reads back. So [`fast_parse`] accepts a line only
//! when it is certain of that:
//!
//! - the top-level keys are known fields, in strictly ascending byte order (the order
//!   `write_canonical` writes, which is also `write_value`'s sorted order; strictly, so no key
//!   repeats), every field the event needs is present, and `hash` appears only as the final key;
//! - no byte lies outside a token (no whitespace);
//! - each value has the type its field reads as (`seq`, `schema`, `attempts`, ... integers in
//!   range; `run_id`, `uuid` lowercase hyphenated UUIDs; `event` a known name; `metadata` an
//!   object);
//! - every number is written as serde_json writes the number it reads as (digits for integers,
//!   the shortest round-trip text for floats);
//! - every string holds no raw control character and only the escapes serde_json writes, and is
//!   valid UTF-8;
//! - every nested object (inside `metadata`) has strictly ascending keys, recursively.
//!
//! Anything else, even if valid, gives `None` and the line goes through the full parse
//! (`Verifier::feed_parsed`), which stays the one judge of lines in any other layout. Hand-written
//! rather than a JSON crate's tokenizer because it checks the *form* of the text, which parsers
//! throw away, and must stay within a small cost per line (the verifier's throughput target).

use crate::EventKind;

/// A line in the stored form, split into what the verifier needs.
pub(super) struct Fast<'a> {
    /// The line without `,"hash":"…"}`.
    pub(super) body: &'a [u8],
    /// The stored hash (only trusted once the body hashes to it).
    pub(super) hash: &'a [u8; 64],
    pub(super) seq: u64,
    /// The text of `prev_hash` (it holds no escape, so this is also its value).
    pub(super) prev_hash: &'a [u8],
    pub(super) is_checkpoint: bool,
}

/// How a top-level field's value must look.
#[derive(Clone, Copy)]
enum Kind {
    /// Any string.
    Str,
    /// A string without escapes (its text is its value).
    Plain,
    /// A lowercase hyphenated UUID.
    Uuid,
    /// A known event name.
    Event,
    /// An unsigned integer up to this maximum.
    Uint(u64),
    /// Any number (an `f64` field reads integers too).
    Num,
    /// An object (`metadata`).
    Object,
}

/// The fields of [`AuditEvent`](crate::AuditEvent) in the order the canonical form writes them
/// (byte order of the names), without `hash`. A test checks the order.
const FIELDS: [(&str, Kind); 19] = [
    ("action_id", Kind::Str),
    ("ambiguous_attempts", Kind::Uint(u32::MAX as u64)),
    ("attempts", Kind::Uint(u32::MAX as u64)),
    ("correlation_id", Kind::Str),
    ("error", Kind::Str),
    ("event", Kind::Event),
    ("execution_latency_ms", Kind::Num),
    ("generation_latency_ms", Kind::Num),
    ("http_status", Kind::Uint(u16::MAX as u64)),
    ("metadata", Kind::Object),
    ("prev_hash", Kind::Plain),
    ("run_id", Kind::Uuid),
    ("schema", Kind::Uint(u32::MAX as u64)),
    ("seq", Kind::Uint(u64::MAX)),
    ("timestamp", Kind::Str),
    ("total_latency_ms", Kind::Num),
    ("uniqueness_rate", Kind::Num),
    ("uuid", Kind::Uuid),
    ("wait_ms", Kind::Num),
];

const EVENT: usize = 5;
const PREV_HASH: usize = 10;
const RUN_ID: usize = 11;
const SCHEMA: usize = 12;
const SEQ: usize = 13;
const TIMESTAMP: usize = 14;
/// The fields [`AuditEvent`](crate::AuditEvent) cannot read without, and the two the verifier
/// links by (which have defaults there, but a stored line always has them).
const REQUIRED: u32 =
    1 << EVENT | 1 << PREV_HASH | 1 << RUN_ID | 1 << SCHEMA | 1 << SEQ | 1 << TIMESTAMP;

/// Nesting allowed inside `metadata` before giving the line to the full parse (serde_json's own
/// limit is 128).
const MAX_DEPTH: u32 = 32;

fn field_index(key: &[u8]) -> Option<usize> {
    Some(match key {
        b"action_id" => 0,
        b"ambiguous_attempts" => 1,
        b"attempts" => 2,
        b"correlation_id" => 3,
        b"error" => 4,
        b"event" => 5,
        b"execution_latency_ms" => 6,
        b"generation_latency_ms" => 7,
        b"http_status" => 8,
        b"metadata" => 9,
        b"prev_hash" => 10,
        b"run_id" => 11,
        b"schema" => 12,
        b"seq" => 13,
        b"timestamp" => 14,
        b"total_latency_ms" => 15,
        b"uniqueness_rate" => 16,
        b"uuid" => 17,
        b"wait_ms" => 18,
        _ => return None,
    })
}

/// Splits a line in the stored form (see the module docs) or gives `None` for the full parse.
/// Only trusted once its hash matches: a matching hash over canonical bytes proves they are what
/// the sealer wrote.
pub(super) fn fast_parse(line: &[u8]) -> Option<Fast<'_>> {
    const SUFFIX_LEN: usize = 9 + 64 + 2; // ,"hash":" + hex + "}
    if line.len() < SUFFIX_LEN + 2 {
        return None;
    }
    let (body, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    if !suffix.starts_with(b",\"hash\":\"") || !suffix.ends_with(b"\"}") {
        return None;
    }
    let hash: &[u8; 64] = suffix[9..73].try_into().ok()?;

    let mut s = Scanner { buf: body, pos: 0 };
    s.eat(b'{')?;
    let mut next_field = 0;
    let mut seen = 0u32;
    let (mut seq, mut prev_hash, mut kind) = (0, &body[..0], EventKind::RunStarted);
    loop {
        let key = s.plain_string()?;
        s.eat(b':')?;
        let i = field_index(key)?;
        if i < next_field {
            return None; // out of order or repeated
        }
        next_field = i + 1;
        seen |= 1 << i;
        match FIELDS[i].1 {
            Kind::Str => {
                s.string()?;
            }
            Kind::Plain => prev_hash = s.plain_string()?,
            Kind::Uuid => s.uuid()?,
            Kind::Event => {
                kind = EventKind::from_name(std::str::from_utf8(s.plain_string()?).ok()?)?
            }
            Kind::Uint(max) => {
                let v = s.uint()?;
                if v > max {
                    return None;
                }
                if i == SEQ {
                    seq = v;
                }
            }
            Kind::Num => s.number()?,
            Kind::Object => s.object(1)?,
        }
        match s.buf.get(s.pos) {
            Some(b',') => s.pos += 1,
            None => break,
            Some(_) => return None,
        }
    }
    if seen & REQUIRED != REQUIRED {
        return None;
    }
    Some(Fast {
        body,
        hash,
        seq,
        prev_hash,
        is_checkpoint: kind == EventKind::Checkpoint,
    })
}

/// A cursor over the body; every method gives `None` on text that is not canonical.
struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn eat(&mut self, b: u8) -> Option<()> {
        if *self.buf.get(self.pos)? != b {
            return None;
        }
        self.pos += 1;
        Some(())
    }

    /// A string as serde_json writes it: returns its text and whether it holds an escape.
    fn string_text(&mut self) -> Option<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let start = self.pos;
        let (mut escaped, mut ascii) = (false, true);
        loop {
            match *self.buf.get(self.pos)? {
                b'"' => break,
                b'\\' => {
                    self.pos += escape_len(&self.buf[self.pos..])?;
                    escaped = true;
                }
                0..=0x1f => return None, // serde_json escapes these
                b => {
                    ascii &= b < 0x80;
                    self.pos += 1;
                }
            }
        }
        let text = &self.buf[start..self.pos];
        self.pos += 1;
        if !ascii {
            std::str::from_utf8(text).ok()?;
        }
        Some((text, escaped))
    }

    fn string(&mut self) -> Option<()> {
        self.string_text().map(drop)
    }

    /// A string without escapes, whose text is therefore its value.
    fn plain_string(&mut self) -> Option<&'a [u8]> {
        match self.string_text()? {
            (text, false) => Some(text),
            (_, true) => None,
        }
    }

    fn uuid(&mut self) -> Option<()> {
        let text = self.plain_string()?;
        let ok = text.len() == 36
            && text.iter().enumerate().all(|(i, &b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => matches!(b, b'0'..=b'9' | b'a'..=b'f'),
            });
        ok.then_some(())
    }

    fn token(&mut self) -> &'a [u8] {
        let start = self.pos;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = self.buf.get(self.pos) {
            self.pos += 1;
        }
        &self.buf[start..self.pos]
    }

    /// Digits without a leading zero, at most 19 of them (so the value fits a `u64`).
    fn uint(&mut self) -> Option<u64> {
        let tok = self.token();
        let canonical = !tok.is_empty()
            && tok.len() <= 19
            && tok.iter().all(u8::is_ascii_digit)
            && (tok[0] != b'0' || tok.len() == 1);
        if !canonical {
            return None;
        }
        Some(tok.iter().fold(0, |v, &d| v * 10 + u64::from(d - b'0')))
    }

    /// Any number, in the text serde_json writes for the number it reads as.
    fn number(&mut self) -> Option<()> {
        let tok = self.token();
        canonical_number(tok).then_some(())
    }

    fn value(&mut self, depth: u32) -> Option<()> {
        match *self.buf.get(self.pos)? {
            b'"' => self.string(),
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number(),
        }
    }

    fn literal(&mut self, lit: &[u8]) -> Option<()> {
        if !self.buf[self.pos..].starts_with(lit) {
            return None;
        }
        self.pos += lit.len();
        Some(())
    }

    /// An object whose keys (escape-free, so their text is their value) strictly ascend.
    fn object(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'{')?;
        if self.eat(b'}').is_some() {
            return Some(());
        }
        let mut last: Option<&[u8]> = None;
        loop {
            let key = self.plain_string()?;
            if last.is_some_and(|last| key <= last) {
                return None;
            }
            last = Some(key);
            self.eat(b':')?;
            self.value(depth)?;
            match *self.buf.get(self.pos)? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.eat(b'[')?;
        if self.eat(b']').is_some() {
            return Some(());
        }
        loop {
            self.value(depth)?;
            match *self.buf.get(self.pos)? {
                b',' => self.pos += 1,
                b']' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// The length of the escape `esc` starts with, if serde_json writes it: `\"`, `\\`, `\b`, `\f`,
/// `\n`, `\r`, `\t`, and `\u00xx` (lowercase hex) for the other control characters only.
fn escape_len(esc: &[u8]) -> Option<usize> {
    match *esc.get(1)? {
        b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => Some(2),
        b'u' => {
            let hex = esc.get(2..6)?;
            let low = match hex[3] {
                d @ b'0'..=b'9' => d - b'0',
                d @ b'a'..=b'f' => d - b'a' + 10,
                _ => return None,
            };
            let c = match (hex[0], hex[1], hex[2]) {
                (b'0', b'0', b'0') => low,
                (b'0', b'0', b'1') => 0x10 + low,
                _ => return None,
            };
            // These have the short escapes above.
            (!matches!(c, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d)).then_some(6)
        }
        _ => None,
    }
}

/// Whether `tok` is the text serde_json writes for the number it reads `tok` as: a `u64` or
/// `i64` prints as its digits, a float as its shortest round-trip text.
fn canonical_number(tok: &[u8]) -> bool {
    let digits = tok.strip_prefix(b"-").unwrap_or(tok);
    if digits.iter().all(u8::is_ascii_digit) {
        return match (digits.first(), tok.len() == digits.len()) {
            // "0", or up to 19 digits (always a u64).
            (Some(b'0'), true) => digits.len() == 1,
            (Some(_), true) => digits.len() <= 19,
            // Negative: up to 18 digits (always an i64), not "-0" (read as the float -0.0).
            (Some(b'0'), false) | (None, _) => false,
            (Some(_), false) => digits.len() <= 18,
        };
    }
    // A float: read and written back by serde_json itself, as the full parse does.
    let Ok(value) = serde_json::from_slice::<f64>(tok) else {
        return false;
    };
    let mut buf = [0u8; 40];
    let mut out = &mut buf[..];
    if serde_json::to_writer(&mut out, &value).is_err() {
        return false;
    }
    let written = 40 - out.len();
    buf[..written] == *tok
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::Value;
    use uuid::Uuid;

    use super::*;
    use crate::chain::canonical::hex_digest;
    use crate::chain::{encode_line, Chain, ChainBreak, Verifier};
    use crate::AuditEvent;

    /// A sealed first event with every optional field, as stored (without the newline).
    fn full_line() -> String {
        let mut ev = AuditEvent::new(EventKind::ActionFailed, Uuid::now_v7());
        ev.uuid = Some(Uuid::new_v4());
        ev.action_id = Some("custom_-_abc".into());
        ev.attempts = Some(3);
        ev.ambiguous_attempts = Some(1);
        ev.http_status = Some(429);
        ev.error = Some("rate limited (429)".into());
        ev.correlation_id = Some("7f1c6c1e".into());
        ev.generation_latency_ms = Some(0.125);
        ev.execution_latency_ms = Some(12.5);
        ev.total_latency_ms = Some(12.625);
        ev.wait_ms = Some(48.25);
        ev.uniqueness_rate = Some(1.0);
        let mut md = serde_json::Map::new();
        md.insert("variant".into(), "RFC4122".into());
        md.insert("version".into(), 4.into());
        ev.metadata = Some(md);
        Chain::default().seal(&mut ev);
        let mut line = Vec::new();
        encode_line(&ev, &mut line);
        line.pop();
        String::from_utf8(line).unwrap()
    }

    /// The line's canonical form: itself without `,"hash":"…"`.
    fn body_of(line: &str) -> String {
        format!("{}}}", &line[..line.len() - 75])
    }

    /// `body` (an event's JSON without `hash`) stored with the hash of its own bytes, as a forger
    /// who hashes exactly what he writes would store it.
    fn hashed_as_is(body: &[u8]) -> Vec<u8> {
        let mut line = body[..body.len() - 1].to_vec();
        line.extend_from_slice(b",\"hash\":\"");
        line.extend_from_slice(&hex_digest(&[body]));
        line.extend_from_slice(b"\"}");
        line
    }

    /// Feeds `line` as the first line of a stream both ways; asserts they agree on the verdict
    /// and on what they then hold.
    fn both_ways(line: &[u8]) -> Result<(), ChainBreak> {
        let (mut fast, mut slow) = (Verifier::new(), Verifier::new());
        let verdict = fast.feed_line(line);
        assert_eq!(
            verdict,
            slow.feed_line_parsed(line),
            "{}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(fast.head(), slow.head());
        assert_eq!(fast.count(), slow.count());
        verdict
    }

    #[test]
    fn both_ways_accept_exactly_the_same_lines() {
        let line = full_line();
        let body = body_of(&line);
        let edit = |from: &str, to: &str| {
            assert!(body.contains(from), "{from} not in {body}");
            hashed_as_is(body.replacen(from, to, 1).as_bytes())
        };
        let run_id = &body[body.find("\"run_id\":\"").unwrap() + 10..][..36];
        let pretty = {
            let v: Value = serde_json::from_str(&line).unwrap();
            serde_json::to_vec_pretty(&v).unwrap()
        };
        // (what, the line, accepted, by the fast path)
        let cases: Vec<(&str, Vec<u8>, bool, bool)> = vec![
            ("as stored", line.clone().into_bytes(), true, true),
            (
                "as stored, CRLF",
                format!("{line}\r\n").into_bytes(),
                true,
                true,
            ),
            (
                "hashed as is: canonical",
                hashed_as_is(body.as_bytes()),
                true,
                true,
            ),
            (
                "keys out of order",
                edit(
                    r#""action_id":"custom_-_abc","ambiguous_attempts":1"#,
                    r#""ambiguous_attempts":1,"action_id":"custom_-_abc""#,
                ),
                false,
                false,
            ),
            (
                "hash key first",
                edit(r#"{"action_id""#, r#"{"hash":"x","action_id""#),
                false,
                false,
            ),
            (
                "repeated key",
                edit(r#""schema":1,"#, r#""schema":1,"schema":1,"#),
                false,
                false,
            ),
            (
                "whitespace after a colon",
                edit(r#""schema":1"#, r#""schema": 1"#),
                false,
                false,
            ),
            ("whitespace after the brace", edit("{", "{ "), false, false),
            (
                "1.00",
                edit(r#""uniqueness_rate":1.0"#, r#""uniqueness_rate":1.00"#),
                false,
                false,
            ),
            (
                "1e0",
                edit(r#""uniqueness_rate":1.0"#, r#""uniqueness_rate":1e0"#),
                false,
                false,
            ),
            (
                "4.825e1",
                edit(r#""wait_ms":48.25"#, r#""wait_ms":4.825e1"#),
                false,
                false,
            ),
            (
                "metadata keys out of order",
                edit(
                    r#"{"variant":"RFC4122","version":4}"#,
                    r#"{"version":4,"variant":"RFC4122"}"#,
                ),
                false,
                false,
            ),
            (
                "nested keys out of order",
                edit(r#""version":4}"#, r#""version":4,"z":{"y":1,"x":2}}"#),
                false,
                false,
            ),
            (
                "unknown event",
                edit(r#""event":"action_failed""#, r#""event":"action_exploded""#),
                false,
                false,
            ),
            (
                "\\u0061",
                edit("rate limited", r"r\u0061te limited"),
                false,
                false,
            ),
            (
                "\\/",
                edit("rate limited (429)", r"rate limited (429\/)"),
                false,
                false,
            ),
            (
                "\\u000a for \\n",
                edit("rate limited", r"rate\u000alimited"),
                false,
                false,
            ),
            (
                "uppercase \\u001F",
                edit("rate limited", r"rate\u001Flimited"),
                false,
                false,
            ),
            (
                "raw tab in a string",
                edit("rate limited", "rate\tlimited"),
                false,
                false,
            ),
            (
                "attempts over u32",
                edit(r#""attempts":3"#, r#""attempts":4294967296"#),
                false,
                false,
            ),
            (
                "schema as a string",
                edit(r#""schema":1"#, r#""schema":"1""#),
                false,
                false,
            ),
            (
                "leading zero",
                edit(r#""attempts":3"#, r#""attempts":03"#),
                false,
                false,
            ),
            (
                "-0",
                edit(r#""wait_ms":48.25"#, r#""wait_ms":-0"#),
                false,
                false,
            ),
            (
                "metadata an array",
                edit(r#"{"variant":"RFC4122","version":4}"#, "[1]"),
                false,
                false,
            ),
            // Not the stored form, yet an event whose hash is its canonical form's: accepted
            // through the full parse, as before.
            ("pretty-printed", pretty, true, false),
            (
                "uppercase run_id",
                edit(run_id, &run_id.to_uppercase()),
                true,
                run_id == run_id.to_uppercase(),
            ),
            (
                "an unknown key",
                edit(r#""wait_ms":48.25}"#, r#""wait_ms":48.25,"zzz":1}"#),
                true,
                false,
            ),
            (
                "null uuid",
                edit(
                    &body[body.find("\"uuid\":").unwrap()..][..45],
                    r#""uuid":null"#,
                ),
                true,
                false,
            ),
            // Canonical variants the fast path takes.
            (
                "escapes serde_json writes",
                edit("rate limited", r#"r\"a\\t\n\u0001\u001f\b\f\r\te ünï ✓"#),
                true,
                true,
            ),
            (
                "an integer in a float field",
                edit(r#""uniqueness_rate":1.0"#, r#""uniqueness_rate":1"#),
                true,
                true,
            ),
            (
                "-0.0",
                edit(r#""wait_ms":48.25"#, r#""wait_ms":-0.0"#),
                true,
                true,
            ),
            (
                "1e-7",
                edit(r#""wait_ms":48.25"#, r#""wait_ms":1e-7"#),
                true,
                true,
            ),
            (
                "nested values",
                edit(
                    r#""version":4}"#,
                    r#""version":4,"z":{"a":[1.5,-2,true,false,null,"s",{}],"b":[]}}"#,
                ),
                true,
                true,
            ),
        ];
        for (what, line, accepted, fast) in &cases {
            let verdict = both_ways(line);
            assert_eq!(verdict.is_ok(), *accepted, "{what}: {verdict:?}");
            assert_eq!(
                fast_parse(line.strip_suffix(b"\r\n").unwrap_or(line)).is_some(),
                *fast,
                "{what}"
            );
        }
        // Not UTF-8.
        let mut bad = body.clone().into_bytes();
        let at = bad.windows(4).position(|w| w == b"rate").unwrap();
        bad[at] = 0xff;
        assert!(both_ways(&hashed_as_is(&bad)).is_err());
    }

    #[test]
    fn what_the_sealer_writes_takes_the_fast_path() {
        let mut chain = Chain::default();
        let run = Uuid::now_v7();
        let mut lines = Vec::new();
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            let i = i as f64;
            let mut ev = AuditEvent::new(kind, run);
            ev.error = Some(format!("said \"no\"\n\\ {i} \u{1}\u{7f} ✓"));
            ev.execution_latency_ms = Some(1.234_567 * 10f64.powf(i * 3.0 - 9.0));
            ev.uniqueness_rate = Some(1.0 / (i + 3.0));
            ev.wait_ms = Some(-i);
            ev.metadata = Some(
                serde_json::json!({"b": [1, -1, 0.5, 1e300, "x\ty"], "a": {"z": null, "y": {}}})
                    .as_object()
                    .unwrap()
                    .clone(),
            );
            let mut line = Vec::new();
            chain.seal_line(&ev, &mut line);
            lines.push(line);
        }
        let (mut fast, mut slow) = (Verifier::new(), Verifier::new());
        for line in &lines {
            let text = String::from_utf8_lossy(line);
            assert!(
                fast_parse(line.strip_suffix(b"\n").unwrap()).is_some(),
                "{text}"
            );
            fast.feed_line(line).unwrap();
            slow.feed_line_parsed(line).unwrap();
        }
        assert_eq!(fast.head(), slow.head());
    }

    #[test]
    fn the_field_table_is_every_field_in_canonical_order() {
        let ev = AuditEvent {
            uuid: Some(Uuid::nil()),
            action_id: Some(String::new()),
            attempts: Some(0),
            ambiguous_attempts: Some(0),
            http_status: Some(0),
            error: Some(String::new()),
            correlation_id: Some(String::new()),
            generation_latency_ms: Some(0.0),
            execution_latency_ms: Some(0.0),
            total_latency_ms: Some(0.0),
            wait_ms: Some(0.0),
            uniqueness_rate: Some(0.0),
            metadata: Some(serde_json::Map::new()),
            ..AuditEvent::new(EventKind::RunStarted, Uuid::nil())
        };
        let value = serde_json::to_value(&ev).unwrap();
        let mut names: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.retain(|n| *n != "hash");
        names.sort_unstable();
        let table: Vec<&str> = FIELDS.iter().map(|f| f.0).collect();
        assert_eq!(table, names);
        for (i, (name, _)) in FIELDS.iter().enumerate() {
            assert_eq!(field_index(name.as_bytes()), Some(i));
        }
        let at = |i: usize| FIELDS[i].0;
        let named = [
            at(EVENT),
            at(PREV_HASH),
            at(RUN_ID),
            at(SCHEMA),
            at(SEQ),
            at(TIMESTAMP),
        ];
        assert_eq!(
            named,
            ["event", "prev_hash", "run_id", "schema", "seq", "timestamp"]
        );
    }

    #[test]
    fn a_number_passes_only_if_serde_json_writes_it_back_the_same() {
        for tok in [
            "0",
            "1",
            "-1",
            "-0",
            "00",
            "01",
            "1.0",
            "1.00",
            "1e0",
            "1E0",
            "1e5",
            "100000.0",
            "1e16",
            "1e+16",
            "1.5e-7",
            "0.004",
            "-0.0",
            "0.1",
            "0.30000000000000004",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "-9223372036854775808",
            "-9223372036854775809",
            "123456789012345678",
            "1234567890123456789",
            "12345678901234567890",
            "1e400",
            "-",
            "",
            "+1",
            ".5",
            "1.",
            "5e-324",
            "1.7976931348623157e308",
            "1.5.3",
            "--1",
            "1e-7",
            "1.0e-7",
        ] {
            let by_serde = serde_json::from_str::<Value>(tok)
                .is_ok_and(|v| v.is_number() && serde_json::to_string(&v).unwrap() == tok);
            // Never more than serde_json; less only for integers too long to bother with.
            let ours = canonical_number(tok.as_bytes());
            if ours {
                assert!(by_serde, "{tok}");
            } else if by_serde {
                assert!(tok.trim_start_matches('-').len() >= 19, "{tok}");
            }
        }
    }
}
