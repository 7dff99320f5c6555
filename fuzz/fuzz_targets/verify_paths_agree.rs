//! The verifier's two ways must accept exactly the same lines: the fast path (a line whose bytes
//! are the stored form is hashed as it stands) and the documented full parse
//! (`Verifier::feed_line_parsed`). Each input is tried as it is and, so that the fast path's hash
//! check passes and its check of the form is what decides, as the body of a line stored with the
//! hash of its own bytes (what a forger who hashes exactly what he writes would store).
#![no_main]

use cxone_uuid_audit::chain::Verifier;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// Feeds `line` to a fresh verifier each way; both must give the same verdict (the same
/// `ChainBreak`, message included) and hold the same head and count afterwards.
fn agree(line: &[u8]) {
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
}

fuzz_target!(|data: &[u8]| {
    agree(data);
    // `data` + `}` as an event's text without `hash`, stored with the hash of those bytes:
    // `data` + `,"hash":"<hex>"}`.
    let mut body = data.to_vec();
    body.push(b'}');
    let mut line = data.to_vec();
    line.extend_from_slice(b",\"hash\":\"");
    line.extend_from_slice(hex::encode(Sha256::digest(&body)).as_bytes());
    line.extend_from_slice(b"\"}");
    agree(&line);
});
