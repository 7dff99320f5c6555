//! `audit verify` reads files an attacker may have edited: feeding any bytes as trail lines must
//! give a verdict, never a panic.
#![no_main]

use cxone_uuid_audit::chain::Verifier;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut v = Verifier::new();
    for line in data.split(|b| *b == b'\n') {
        if v.feed_line(line).is_err() {
            break;
        }
    }
});
