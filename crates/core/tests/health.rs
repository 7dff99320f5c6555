//! The continuous health tests against broken sources and against the real one.
#![allow(clippy::unwrap_used)]

use cxone_uuid_core::{test_source, Generator, HealthError, UuidVersion};

/// Generates from `spec` until the generator stops; returns the error and how many UUIDs got out.
fn run_until_failure(spec: &str, version: UuidVersion) -> (HealthError, usize) {
    let mut g = Generator::from_source(version, test_source(spec).unwrap());
    for produced in 0..1_000_000 {
        if let Err(e) = g.next_uuid() {
            return (e, produced);
        }
    }
    panic!("{spec}: a million UUIDs and no alarm");
}

#[test]
fn constant_bytes_are_caught_by_the_repetition_count_test_before_any_uuid() {
    for spec in ["constant:0", "constant:255", "constant:7", "cycle:1"] {
        for version in [UuidVersion::V4, UuidVersion::V7] {
            let (err, produced) = run_until_failure(spec, version);
            assert!(
                matches!(err, HealthError::RepetitionCount { run: 6, .. }),
                "{spec}: {err}"
            );
            assert_eq!(produced, 0, "{spec}");
            assert!(err.to_string().contains("entropy source is suspect"));
        }
    }
}

#[test]
fn short_cycles_are_caught_by_the_adaptive_proportion_test() {
    // A value recurring every N bytes shows 1024 / N times in a window: 27 or more for N <= 37.
    for n in [2, 3, 16, 37] {
        let (err, produced) = run_until_failure(&format!("cycle:{n}"), UuidVersion::V4);
        assert!(
            matches!(err, HealthError::AdaptiveProportion { count: 27, .. }),
            "cycle:{n}: {err}"
        );
        assert_eq!(produced, 0, "cycle:{n}");
    }
}

#[test]
fn a_stuck_byte_is_caught_by_the_adaptive_proportion_test() {
    let (err, produced) = run_until_failure("stuck:171", UuidVersion::V4);
    assert_eq!(produced, 0, "caught in the first block");
    assert_eq!(
        err,
        HealthError::AdaptiveProportion {
            byte: 171,
            count: 27
        }
    );
}

#[test]
fn a_failed_generator_stays_failed() {
    let mut g = Generator::from_source(UuidVersion::V4, test_source("constant:1").unwrap());
    let first = g.next_uuid().unwrap_err();
    let mut out = Vec::new();
    assert_eq!(g.fill(&mut out, 10).unwrap_err(), first);
    assert!(out.is_empty());
}

fn healthy(count: u64, version: UuidVersion) {
    let mut g = Generator::new(version);
    let mut out = Vec::with_capacity(1 << 16);
    let mut left = count;
    while left > 0 {
        let n = left.min(1 << 16);
        out.clear();
        if let Err(e) = g.fill(&mut out, n as usize) {
            panic!("false alarm after {} UUIDs: {e}", count - left);
        }
        left -= n;
    }
    assert!(g.bytes_checked() >= count * 10);
}

#[test]
fn two_million_healthy_uuids_raise_no_alarm() {
    healthy(2_000_000, UuidVersion::V4);
    healthy(500_000, UuidVersion::V7);
}

/// A false alarm stops a real run, so the cutoffs must stay quiet over a long one: 100 million
/// healthy UUIDs. Run with
/// `cargo test -p cxone-uuid-core --release --test health -- --ignored`.
#[test]
#[ignore = "100 million UUIDs: about 3 s in release, minutes in a debug build"]
fn health_100_million_uuids_raise_no_alarm() {
    healthy(100_000_000, UuidVersion::V4);
}
