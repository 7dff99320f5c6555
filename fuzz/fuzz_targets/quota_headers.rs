//! A server's quota headers (IETF `RateLimit`/`RateLimit-Policy`, `X-RateLimit-*`) are untrusted
//! input: parsing must never panic, and what it yields is never more than the input said.
#![no_main]

use std::time::{Duration, SystemTime};

use cxone_uuid_client::quota::{concurrency_cap, parse_ietf, parse_x, Quota, QuotaHeaders};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Up to five fields separated by newlines: policy, ratelimit, limit, remaining, reset.
    let mut parts = text.splitn(5, '\n');
    let policy = parts.next().unwrap_or_default();
    let ratelimit = parts.next().unwrap_or_default();
    let limit = parts.next();
    let remaining = parts.next();
    let reset = parts.next();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let _ = parse_ietf(&[policy], &[ratelimit]);
    let _ = parse_ietf(&[policy, ratelimit], &[ratelimit, policy]);
    // A cap is never zero (that would stop every request).
    assert_ne!(concurrency_cap(&[policy, ratelimit]), Some(0));
    if let Some(q) = parse_x(limit, remaining, reset, now) {
        // A reset never reaches further than the largest delta the input could name.
        assert!(q.reset.is_none_or(|r| r <= Duration::from_secs_f64(1e15)));
    }
    let h = QuotaHeaders {
        policy: &[policy],
        ratelimit: &[ratelimit],
        x_limit: limit,
        x_remaining: remaining,
        x_reset: reset,
    };
    let _ = Quota::read(&h, now);
});
