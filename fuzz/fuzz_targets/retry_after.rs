//! A server's Retry-After header is untrusted input: parsing must never panic, and a wait it
//! yields is never absurd relative to the clock it was read against.
#![no_main]

use std::time::{Duration, SystemTime};

use cxone_uuid_client::retry::parse_retry_after;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let _ = parse_retry_after(text, now);
});
