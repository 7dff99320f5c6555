//! Deterministic, deliberately weak random sources. FOR TESTS ONLY.
//!
//! They exist so tests (and the hidden `--test-entropy` flag of `generate`) can show that the
//! health tests and the duplicate limit catch what they should. Never generate real UUIDs from
//! them: their output is predictable from the spec string.
//!
//! Specs:
//! * `repeat:SEED:PERIOD` — seeded pseudo-random bytes that start over every `PERIOD` v4 UUIDs
//!   (16 × PERIOD bytes): UUID number `PERIOD + i` equals UUID number `i`. A period below 64
//!   UUIDs repeats inside one 1024-byte health window and is caught by the adaptive proportion
//!   test before any duplicate reaches the registry.
//! * `dup:SEED:EVERY` — seeded pseudo-random v4 UUIDs where every `EVERY`-th one (EVERY >= 2) is a
//!   copy of the one before: an occasional duplicate the registry must catch and regeneration
//!   must get past.
//! * `constant:BYTE` — every byte is `BYTE` (0..=255): caught by the repetition count test.
//! * `cycle:N` — a cycle of N distinct bytes (1..=256): caught by the adaptive proportion test.
//! * `stuck:BYTE` — pseudo-random bytes, but every 7th is `BYTE`: caught by the adaptive
//!   proportion test.

use rand::RngCore;

/// A test source spec that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid test entropy spec {spec:?}: {reason}; use repeat:SEED:PERIOD, dup:SEED:EVERY, constant:BYTE, cycle:N or stuck:BYTE")]
#[non_exhaustive]
pub struct TestSourceError {
    /// The spec as given.
    pub spec: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Builds a deterministic test source from `spec` (see the module docs). FOR TESTS ONLY.
pub fn test_source(spec: &str) -> Result<Box<dyn RngCore + Send>, TestSourceError> {
    let err = |reason: &str| TestSourceError {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let num = |s: &str, what: &str| -> Result<u64, TestSourceError> {
        s.parse::<u64>()
            .map_err(|_| err(&format!("{what} must be a non-negative integer, got {s:?}")))
    };
    let byte = |s: &str| -> Result<u8, TestSourceError> {
        s.parse::<u8>()
            .map_err(|_| err(&format!("BYTE must be 0..=255, got {s:?}")))
    };
    let source: Box<dyn RngCore + Send> = match parts.as_slice() {
        ["repeat", seed, period] => {
            let period = num(period, "PERIOD")?;
            if period == 0 {
                return Err(err("PERIOD must be at least 1"));
            }
            Box::new(Pattern::new(Kind::Repeat {
                seed: num(seed, "SEED")?,
                period_bytes: period.saturating_mul(16),
            }))
        }
        ["dup", seed, every] => {
            let every = num(every, "EVERY")?;
            if every < 2 {
                return Err(err("EVERY must be at least 2"));
            }
            Box::new(Pattern::new(Kind::Dup {
                seed: num(seed, "SEED")?,
                every,
            }))
        }
        ["constant", b] => Box::new(Pattern::new(Kind::Constant(byte(b)?))),
        ["cycle", n] => {
            let n = num(n, "N")?;
            if !(1..=256).contains(&n) {
                return Err(err("N must be 1..=256"));
            }
            Box::new(Pattern::new(Kind::Cycle(n)))
        }
        ["stuck", b] => Box::new(Pattern::new(Kind::Stuck(byte(b)?))),
        _ => return Err(err("unknown form")),
    };
    Ok(source)
}

/// A stand-in for a source that could not be created; its bytes are never used because the
/// generator holding it has already failed.
pub(crate) fn unusable() -> Box<dyn RngCore + Send> {
    Box::new(Pattern::new(Kind::Constant(0)))
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Repeat { seed: u64, period_bytes: u64 },
    Dup { seed: u64, every: u64 },
    Constant(u8),
    Cycle(u64),
    Stuck(u8),
}

/// A counter-based source: byte `i` is a pure function of the spec and `i`, so the output does
/// not depend on how callers split their reads.
#[derive(Debug)]
struct Pattern {
    kind: Kind,
    pos: u64,
}

/// SplitMix64's finalizer: a statistically good 64-bit mix of a counter.
fn mix(seed: u64, counter: u64) -> u64 {
    let mut z = seed
        .wrapping_add(counter.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x6A09_E667_F3BC_C909);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn stream_byte(seed: u64, i: u64) -> u8 {
    mix(seed, i / 8).to_le_bytes()[(i % 8) as usize]
}

impl Pattern {
    fn new(kind: Kind) -> Self {
        Self { kind, pos: 0 }
    }

    fn byte(&self, i: u64) -> u8 {
        match self.kind {
            Kind::Repeat { seed, period_bytes } => stream_byte(seed, i % period_bytes),
            Kind::Dup { seed, every } => {
                // Block b is fresh block b - floor((b + 1) / every): the last of every group of
                // `every` blocks reuses the fresh index of the block before it.
                let b = i / 16;
                let fresh = b - (b + 1) / every;
                stream_byte(seed, fresh * 16 + i % 16)
            }
            Kind::Constant(b) => b,
            // 97 is odd, so i * 97 mod 256 is distinct for the N <= 256 positions.
            Kind::Cycle(n) => ((i % n) * 97 + 13) as u8,
            // Every 7th byte: 7 does not divide the 1024-byte health window, so the stuck
            // positions drift through the window starts (the APT's reference samples).
            Kind::Stuck(b) => {
                if i.is_multiple_of(7) {
                    b
                } else {
                    stream_byte(0x5EED, i)
                }
            }
        }
    }
}

impl RngCore for Pattern {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for d in dst {
            *d = self.byte(self.pos);
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn repeat_repeats_after_the_period() {
        let mut s = test_source("repeat:1:3").unwrap();
        let mut b = [0u8; 96];
        s.fill_bytes(&mut b);
        assert_eq!(b[..48], b[48..]);
        assert_ne!(b[..16], b[16..32]);
    }

    #[test]
    fn dup_copies_every_nth_block() {
        let mut s = test_source("dup:1:3").unwrap();
        let mut b = [0u8; 96];
        s.fill_bytes(&mut b);
        assert_eq!(b[16..32], b[32..48]);
        assert_ne!(b[0..16], b[16..32]);
        assert_eq!(b[64..80], b[80..96]);
    }

    #[test]
    fn bad_specs_are_explained() {
        for spec in [
            "",
            "repeat:1",
            "repeat:x:2",
            "repeat:1:0",
            "constant:256",
            "cycle:0",
            "dup:1:1",
            "nope:1",
        ] {
            let e = test_source(spec).err().unwrap();
            assert!(e.to_string().contains("invalid test entropy spec"), "{e}");
        }
    }
}
