//! The fast path against the documented one: the same verdict on every line.
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
            true,
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
fn the_first_quote_or_backslash_is_found_at_any_offset() {
    for len in 0..40 {
        for at in 0..=len {
            for (c, other) in [(b'"', b'\\'), (b'\\', b'"'), (b'"', b'"')] {
                let mut s: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                s.extend_from_slice(&[0x80, 0xff, b'!', b'#', b'[', b']']);
                if at < len {
                    s[at] = c;
                    if let Some(later) = s.get_mut(at + 1 + at % 3) {
                        *later = other;
                    }
                }
                let expected = s.iter().position(|&b| b == b'"' || b == b'\\');
                assert_eq!(quote_or_backslash(&s), expected, "{len} {at}");
            }
        }
    }
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

/// Whether serde_json reads `tok` as a number and writes it back as `tok`.
fn serde_round_trips(tok: &str) -> bool {
    serde_json::from_str::<Value>(tok)
        .is_ok_and(|v| v.is_number() && serde_json::to_string(&v).unwrap() == tok)
}

#[test]
fn plain_decimals_are_judged_as_serde_json_judges_them() {
    // Digits drawn from a fixed xorshift, weighted to zeros (leading, trailing, inside) and
    // to the edges of the plain range.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let digits = |len: u64, next: &mut dyn FnMut(u64) -> u64| -> String {
        (0..len)
            .map(|_| match next(3) {
                0 => '0',
                _ => char::from(b'0' + next(10) as u8),
            })
            .collect()
    };
    let mut decided = 0;
    for _ in 0..100_000 {
        let int_len = next(18);
        let mut int = digits(int_len, &mut next);
        if int.is_empty() || next(3) == 0 {
            int = "0".into();
        }
        let frac = digits(1 + next(20), &mut next);
        let sign = if next(4) == 0 { "-" } else { "" };
        let tok = format!("{sign}{int}.{frac}");
        if let Some(ours) = plain_decimal(tok.as_bytes()) {
            decided += 1;
            assert_eq!(ours, serde_round_trips(&tok), "{tok}");
        }
    }
    assert!(decided > 30_000, "{decided}");
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
        let by_serde = serde_round_trips(tok);
        // Never more than serde_json; less only for integers too long to bother with.
        let ours = canonical_number(tok.as_bytes());
        if ours {
            assert!(by_serde, "{tok}");
        } else if by_serde {
            assert!(tok.trim_start_matches('-').len() >= 19, "{tok}");
        }
    }
}
