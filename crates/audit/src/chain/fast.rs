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
//!   range; `run_id`, `uuid` UUIDs the `uuid` crate reads; `event` a known name; `metadata` an
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
    /// A UUID (the stored form is hyphenated lowercase).
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

fn event_kind(name: &[u8]) -> Option<EventKind> {
    EventKind::ALL
        .into_iter()
        .find(|&k| super::event_name(k).as_bytes() == name)
}

/// The position of the first `"` or `\` in `s`, eight bytes at a time. Hand-written rather
/// than `memchr::memchr2`: most strings here are short keys, where the call cost more than the
/// search (measured on the verify bench).
fn quote_or_backslash(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Nonzero where `x` has a zero byte; its lowest set bit marks the first one exactly
    // (only bits above a zero byte can be set by the borrow).
    let zero_bytes = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut at = 0;
    while let Some(chunk) = s.get(at..at + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
        let x = u64::from_le_bytes(chunk);
        let found =
            zero_bytes(x ^ (ONES * u64::from(b'"'))) | zero_bytes(x ^ (ONES * u64::from(b'\\')));
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    s[at..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\')
        .map(|p| at + p)
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

    // One pass over the body, which compilers vectorise: canonical text holds no control
    // character, in a string (serde_json escapes them) or between tokens (no whitespace), so
    // strings need only be searched for their end; and it is UTF-8 (checked once here, which is
    // the same as checking each string, as a `"` cannot be part of a multi-byte character).
    // (`min` and `max` compile to SIMD; `is_ascii` here did not.)
    let (lowest, highest) = (body.iter().copied().min(), body.iter().copied().max());
    if lowest.is_some_and(|b| b < 0x20)
        || (highest.is_some_and(|b| b >= 0x80) && std::str::from_utf8(body).is_err())
    {
        return None;
    }
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
            Kind::Event => kind = event_kind(s.plain_string()?)?,
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
    /// (Control characters and invalid UTF-8 were ruled out for the whole body at once.)
    fn string_text(&mut self) -> Option<(&'a [u8], bool)> {
        self.eat(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.pos += quote_or_backslash(&self.buf[self.pos..])?;
            if self.buf[self.pos] == b'"' {
                break;
            }
            self.pos += escape_len(&self.buf[self.pos..])?;
            escaped = true;
        }
        let text = &self.buf[start..self.pos];
        self.pos += 1;
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

    /// A UUID as the `uuid` crate reads it (the same text is its value: no escapes).
    fn uuid(&mut self) -> Option<()> {
        // The stored, hyphenated form first: its 36 characters cannot hold a `"` or `\`, so
        // the string's end need not be searched for.
        if let Some(text) = self.buf.get(self.pos + 1..self.pos + 37) {
            if self.buf[self.pos] == b'"'
                && self.buf.get(self.pos + 37) == Some(&b'"')
                && uuid::Uuid::try_parse_ascii(text).is_ok()
            {
                self.pos += 38;
                return Some(());
            }
        }
        uuid::Uuid::try_parse_ascii(self.plain_string()?)
            .ok()
            .map(drop)
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
    if let Some(canonical) = plain_decimal(tok) {
        return canonical;
    }
    // Any other float: read and written back by serde_json itself, as the full parse does.
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

/// Decides, without converting it, a float like `0.004` or `-12.625`: digits, a point, digits,
/// with at most 15 significant digits and a value from 0.00001 to below 10^15 (or zero); `None`
/// for any other text. Such a decimal reads as the double nearest to it (its digits make an
/// integer below 2^53, divided by a power of ten no larger than 10^22: one exactly rounded
/// division in serde_json), and that double's shortest round-trip text is these digits again,
/// as no two decimals of 15 significant digits read as the same double; serde_json writes it
/// in this plain form in this range. So the text is canonical unless its fraction ends in a
/// `0` that is not its only digit (`1.50`), or its integer part has a leading zero (`01.5`,
/// not JSON at all). A test compares this with serde_json's own round trip.
fn plain_decimal(tok: &[u8]) -> Option<bool> {
    let unsigned = tok.strip_prefix(b"-").unwrap_or(tok);
    let dot = unsigned.iter().position(|&b| b == b'.')?;
    let (int, frac) = (&unsigned[..dot], &unsigned[dot + 1..]);
    if int.is_empty()
        || frac.is_empty()
        || int.len() > 15
        || !int.iter().all(u8::is_ascii_digit)
        || !frac.iter().all(u8::is_ascii_digit)
    {
        return None;
    }
    if (int[0] == b'0' && int.len() > 1) || (frac.len() > 1 && frac.ends_with(b"0")) {
        return Some(false);
    }
    let significant = if int == b"0" {
        let zeros = frac.iter().take_while(|&&b| b == b'0').count();
        if zeros == frac.len() {
            return Some(true); // 0.0 or -0.0
        }
        if zeros > 4 {
            return None;
        }
        frac.len() - zeros
    } else {
        int.len() + frac.len()
    };
    (significant <= 15).then_some(true)
}

#[cfg(test)]
mod tests;
