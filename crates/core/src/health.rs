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
#[derive(Clone)]
pub struct HealthMonitor {
    counts: Counts,
    failed: Option<HealthError>,
    samples: u64,
}

impl std::fmt::Debug for HealthMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The counts hold bytes the source produced (the last one, the window's reference):
        // they may be part of a UUID not yet handed out, so they are never printed.
        f.debug_struct("HealthMonitor")
            .field("samples", &self.samples)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
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
            counts: Counts::default(),
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
    ///
    /// Most bytes go through a fast path: over a stretch inside one APT window, if no three
    /// neighbouring bytes are equal, no run carries into it and the reference byte's count
    /// stays below the cutoff, the result is known without stepping byte by byte (no run can
    /// reach the cutoff of six; the count only grows). Both checks are branch-free loops the
    /// compiler vectorises. A stretch that fails either check is stepped byte by byte, so a
    /// failure is reported exactly as the byte-wise tests would report it.
    pub fn check(&mut self, bytes: &[u8]) -> Result<(), HealthError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        // A local copy keeps the hot loop in registers; the state is written back once.
        let mut st = self.counts;
        let mut rest = bytes;
        let mut failure = None;
        while !rest.is_empty() {
            if st.aseen == 0 {
                // A window opens on this byte: it is the new reference.
                if let Err(e) = st.step(rest[0]) {
                    failure = Some(e);
                    break;
                }
                rest = &rest[1..];
                continue;
            }
            let n = rest.len().min((APT_WINDOW - st.aseen) as usize);
            let (span, tail) = rest.split_at(n);
            if !st.skip(span) {
                if let Err(e) = span.iter().try_for_each(|&b| st.step(b)) {
                    failure = Some(e);
                    break;
                }
            }
            rest = tail;
        }
        self.samples += bytes.len() as u64;
        self.counts = st;
        match failure {
            Some(err) => {
                self.failed = Some(err.clone());
                Err(err)
            }
            None => Ok(()),
        }
    }
}

/// Both tests' running counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    last: u8,
    run: u32,
    aref: u8,
    acount: u32,
    aseen: u32,
}

impl Counts {
    /// Both tests over one byte, exactly as SP 800-90B words them.
    #[inline]
    fn step(&mut self, b: u8) -> Result<(), HealthError> {
        if self.run > 0 && b == self.last {
            self.run += 1;
            if self.run >= RCT_CUTOFF {
                return Err(HealthError::RepetitionCount {
                    byte: b,
                    run: self.run,
                });
            }
        } else {
            self.last = b;
            self.run = 1;
        }
        if self.aseen == 0 {
            self.aref = b;
            self.acount = 1;
            self.aseen = 1;
        } else {
            self.acount += u32::from(b == self.aref);
            self.aseen += 1;
            if self.acount >= APT_CUTOFF {
                return Err(HealthError::AdaptiveProportion {
                    byte: self.aref,
                    count: self.acount,
                });
            }
            if self.aseen == APT_WINDOW {
                self.aseen = 0;
            }
        }
        Ok(())
    }

    /// The fast path over `span` inside the open window (`aseen > 0` and `span` ends at or
    /// before the window's end): applies it and returns true when no three neighbouring bytes
    /// are equal, the first byte does not continue the run carried in, and the reference
    /// byte's count stays below the cutoff; otherwise changes nothing and returns false.
    /// (Random bytes pass: a pair repeats about four times per window, a triple once in 64.)
    #[inline]
    fn skip(&mut self, span: &[u8]) -> bool {
        let n = span.len();
        if n < 3 {
            return false;
        }
        let joins_run = self.run > 0 && span[0] == self.last;
        let triples = span
            .iter()
            .zip(&span[1..])
            .zip(&span[2..])
            .fold(0u8, |acc, ((a, b), c)| acc | u8::from((a == b) & (b == c)));
        let hits = span
            .iter()
            .fold(0u32, |acc, &b| acc + u32::from(b == self.aref));
        if joins_run || triples != 0 || self.acount + hits >= APT_CUTOFF {
            return false;
        }
        // No run inside the span reaches three: the one it ends with is one or two long.
        self.last = span[n - 1];
        self.run = if span[n - 2] == span[n - 1] { 2 } else { 1 };
        self.acount += hits;
        self.aseen += span.len() as u32;
        if self.aseen == APT_WINDOW {
            self.aseen = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The byte-wise tests as SP 800-90B words them, the fast path's oracle.
    fn bytewise(stream: &[u8]) -> (Result<(), HealthError>, Counts) {
        let mut st = Counts::default();
        let r = stream.iter().try_for_each(|&b| st.step(b));
        (r, st)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]
        /// Streams from small alphabets (so runs and over-represented bytes happen), cut into
        /// calls anywhere: the same verdict, the same failure and the same counts as byte by byte.
        #[test]
        fn the_fast_path_answers_as_the_bytewise_tests(
            alphabet in 2u8..=255,
            seed in proptest::collection::vec(proptest::num::u8::ANY, 1..6000),
            cuts in proptest::collection::vec(0usize..6000, 0..8),
        ) {
            let stream: Vec<u8> = seed.iter().map(|b| b % alphabet).collect();
            let (want, want_counts) = bytewise(&stream);
            let mut m = HealthMonitor::new();
            let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            bounds.push(0);
            bounds.push(stream.len());
            bounds.sort_unstable();
            let mut got = Ok(());
            for w in bounds.windows(2) {
                got = m.check(&stream[w[0]..w[1]]);
                if got.is_err() {
                    break;
                }
            }
            proptest::prop_assert_eq!(&got, &want);
            if want.is_ok() {
                proptest::prop_assert_eq!(m.counts, want_counts);
            }
        }
    }

    #[test]
    fn debug_output_never_shows_the_source_bytes() {
        let mut m = HealthMonitor::new();
        assert!(m.check(&[0xA7, 0xC3, 0x5E, 0xD9]).is_ok());
        let shown = format!("{m:?}");
        assert!(shown.contains("samples: 4"), "{shown}");
        for byte in ["167", "195", "94", "217", "a7", "c3", "5e", "d9"] {
            assert!(!shown.to_lowercase().contains(byte), "{byte} in {shown}");
        }
    }

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
    fn a_run_that_crosses_a_call_or_a_window_boundary_still_counts() {
        // Distinct neighbours everywhere except one run of six 0xEE that ends on the first byte
        // of a later stretch: across two calls, and across the APT window's end in one call.
        let plain = |n: usize| (0..n).map(|i| (i % 200) as u8).collect::<Vec<u8>>();
        let mut m = HealthMonitor::new();
        let mut first = plain(500);
        first.extend([0xEE; 5]);
        assert!(m.check(&first).is_ok());
        let mut second = vec![0xEE];
        second.extend(plain(300));
        assert_eq!(
            m.check(&second),
            Err(HealthError::RepetitionCount { byte: 0xEE, run: 6 })
        );

        for before in [1020, 1022] {
            // Bytes before..before + 6: the window's last four (or two), then the rest.
            let mut stream = plain(before);
            stream.extend([0xEE; 6]);
            stream.extend(plain(300));
            let mut m = HealthMonitor::new();
            assert_eq!(
                m.check(&stream),
                Err(HealthError::RepetitionCount { byte: 0xEE, run: 6 }),
                "{before}"
            );
        }
        // A pair that ends one call, four more that start the next.
        let mut m = HealthMonitor::new();
        let mut first = plain(400);
        first.extend([0xEE; 2]);
        assert!(m.check(&first).is_ok());
        let mut second = vec![0xEE; 4];
        second.extend(plain(300));
        assert_eq!(
            m.check(&second),
            Err(HealthError::RepetitionCount { byte: 0xEE, run: 6 })
        );
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
