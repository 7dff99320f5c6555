//! NIST SP 800-90B continuous health tests (section 4.4) over the raw random bytes.
//!
//! They run on the bytes exactly as the source produced them, before the version and variant
//! bits are written: those fixed bits would make every UUID repeat the same nibbles and skew both
//! counts. Each byte is one sample; we claim H = 8 bits of min-entropy per sample (a CSPRNG).
//!
//! # Choosing the false-positive rate
//! SP 800-90B suggests alpha between 2^-20 and 2^-40. At alpha = 2^-20 the Repetition Count Test
//! cutoff is 1 + ceil(20 / 8) = 4: three repeats of a byte happen every 2^24 bytes, a false alarm
//! about every million UUIDs, useless at this volume. We take alpha = 2^-40:
//!
//! * RCT cutoff: C = 1 + ceil(-log2(alpha) / H) = 1 + ceil(40 / 8) = 6. A run of 6 equal bytes
//!   (5 repeats of the first) has probability 2^-40 at any position: over 100 million UUIDs
//!   (1.6e9 bytes) about 0.0015 expected false alarms.
//! * APT cutoff, window W = 1024: the test counts B = 1 (the reference sample) + X, where X is how
//!   often the reference recurs among the W - 1 following samples, X ~ Binomial(W - 1, 2^-H).
//!   The formula printed in SP 800-90B, C = 1 + CRITBINOM(W, 2^-H, 1 - alpha), forgets that B
//!   already counts the reference; corrected, C = 2 + CRITBINOM(W - 1, 2^-H, 1 - alpha).
//!   CRITBINOM(1023, 1/256, 1 - 2^-40) = 25 (the smallest k with P(X <= k) >= 1 - 2^-40;
//!   P(X >= 26) = 1.9e-13 ~ 2^-42.3), so C = 27. About 1.6e6 windows in 100 million UUIDs give
//!   3e-7 expected false alarms.
//!
//! A failure is sticky: per SP 800-90B a source that failed is not used again.

/// Repetition Count Test cutoff for H = 8, alpha = 2^-40 (derivation in the module docs).
pub const RCT_CUTOFF: u32 = 6;
/// Adaptive Proportion Test window, in samples (bytes).
pub const APT_WINDOW: u32 = 1024;
/// Adaptive Proportion Test cutoff for H = 8, W = 1024, alpha = 2^-40 (derivation above).
pub const APT_CUTOFF: u32 = 27;

/// Why generation stopped before a UUID left the generator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// The Repetition Count Test saw one byte value too many times in a row.
    #[error(
        "entropy health test failed: repetition count test saw byte 0x{byte:02x} {run} times in \
         a row (cutoff {RCT_CUTOFF}); the entropy source is suspect, stop and check it"
    )]
    RepetitionCount {
        /// The repeated byte.
        byte: u8,
        /// How many times in a row it was seen.
        run: u32,
    },
    /// The Adaptive Proportion Test saw one byte value too often within a window.
    #[error(
        "entropy health test failed: adaptive proportion test saw byte 0x{byte:02x} {count} \
         times in a window of {APT_WINDOW} bytes (cutoff {APT_CUTOFF}); the entropy source is \
         suspect, stop and check it"
    )]
    AdaptiveProportion {
        /// The over-represented byte.
        byte: u8,
        /// How often it was seen in the window.
        count: u32,
    },
    /// A produced UUID did not carry the version or variant it should (a bug, never expected).
    #[error("generated UUID {uuid} has version {version} and variant bits {variant:02b}: expected {expected_version} and 10")]
    Layout {
        /// The faulty UUID, hyphenated.
        uuid: String,
        /// The version nibble it carries.
        version: u8,
        /// Its two top variant bits.
        variant: u8,
        /// The version it should carry.
        expected_version: u8,
    },
    /// The operating system's random source could not seed the generator.
    #[error("cannot seed the random generator from the operating system: {0}")]
    Unavailable(String),
}

/// The running state of both tests across every byte the source has produced.
#[derive(Debug, Clone)]
pub struct HealthMonitor {
    rct_last: u8,
    rct_run: u32,
    apt_ref: u8,
    apt_count: u32,
    apt_seen: u32,
    failed: Option<HealthError>,
    samples: u64,
}

impl Default for HealthMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthMonitor {
    /// A monitor that has seen no sample yet.
    pub fn new() -> Self {
        Self {
            rct_last: 0,
            rct_run: 0,
            apt_ref: 0,
            apt_count: 0,
            apt_seen: 0,
            failed: None,
            samples: 0,
        }
    }

    /// A monitor that has already failed with `err`: every check returns it.
    pub(crate) fn failed_with(err: HealthError) -> Self {
        Self {
            failed: Some(err),
            ..Self::new()
        }
    }

    /// How many bytes the monitor has checked.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Runs both tests over `bytes`, in order. Once a test failed every later call fails too.
    pub fn check(&mut self, bytes: &[u8]) -> Result<(), HealthError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        // Locals keep the hot loop in registers; the state is written back once.
        let (mut last, mut run) = (self.rct_last, self.rct_run);
        let (mut aref, mut acount, mut aseen) = (self.apt_ref, self.apt_count, self.apt_seen);
        let mut failure = None;
        for &b in bytes {
            if run > 0 && b == last {
                run += 1;
                if run >= RCT_CUTOFF {
                    failure = Some(HealthError::RepetitionCount { byte: b, run });
                    break;
                }
            } else {
                last = b;
                run = 1;
            }
            if aseen == 0 {
                aref = b;
                acount = 1;
                aseen = 1;
            } else {
                acount += u32::from(b == aref);
                aseen += 1;
                if acount >= APT_CUTOFF {
                    failure = Some(HealthError::AdaptiveProportion {
                        byte: aref,
                        count: acount,
                    });
                    break;
                }
                if aseen == APT_WINDOW {
                    aseen = 0;
                }
            }
        }
        self.samples += bytes.len() as u64;
        (self.rct_last, self.rct_run) = (last, run);
        (self.apt_ref, self.apt_count, self.apt_seen) = (aref, acount, aseen);
        match failure {
            Some(err) => {
                self.failed = Some(err.clone());
                Err(err)
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rct_fires_on_the_sixth_equal_byte_not_the_fifth() {
        let mut m = HealthMonitor::new();
        assert!(m.check(&[1, 7, 7, 7, 7, 7, 2]).is_ok());
        let mut m = HealthMonitor::new();
        let err = m.check(&[1, 7, 7, 7, 7, 7, 7, 2]).unwrap_err();
        assert_eq!(err, HealthError::RepetitionCount { byte: 7, run: 6 });
        // Sticky: a failed source stays failed.
        assert!(m.check(&[1, 2, 3]).is_err());
    }

    #[test]
    fn rct_run_carries_across_calls() {
        let mut m = HealthMonitor::new();
        assert!(m.check(&[9, 9, 9]).is_ok());
        assert!(m.check(&[9, 9, 9]).is_err());
    }

    #[test]
    fn apt_fires_at_27_occurrences_in_a_window() {
        // Reference byte 0xAA, then 25 more in the window: 26 in all, below the cutoff.
        let mut window = vec![0u8; 1024];
        for (i, b) in window.iter_mut().enumerate() {
            *b = (i % 100 + 1) as u8; // no RCT runs, never 0xAA
        }
        window[0] = 0xAA;
        for k in 1..26 {
            window[k * 30] = 0xAA;
        }
        let mut m = HealthMonitor::new();
        assert!(m.check(&window).is_ok());
        window[26 * 30] = 0xAA;
        let mut m = HealthMonitor::new();
        let err = m.check(&window).unwrap_err();
        assert_eq!(
            err,
            HealthError::AdaptiveProportion {
                byte: 0xAA,
                count: 27
            }
        );
    }
}
