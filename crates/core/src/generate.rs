//! UUID v4 and v7 generation from a health-tested CSPRNG.
//!
//! Random bytes are drawn in blocks of [`BLOCK`] bytes, the whole block passes the continuous
//! health tests, and only then are UUIDs cut from it: a block that fails never yields a UUID.
//! Version and variant bits are written afterwards and read back from every UUID's bytes.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use uuid::Uuid;

use crate::health::{HealthError, HealthMonitor};

/// Bytes drawn from the source at once: a multiple of 16 (v4) and of 10 (v7's random part), so a
/// deterministic test source lines up with UUID boundaries.
pub(crate) const BLOCK: usize = 4080;

/// Which RFC 9562 version to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UuidVersion {
    /// Version 4: 122 random bits.
    #[default]
    V4,
    /// Version 7: 48-bit Unix milliseconds then 74 bits that are random and, within one process,
    /// strictly increasing (RFC 9562 section 6.2, method 2), so UUIDs sort in generation order.
    V7,
}

impl UuidVersion {
    /// The version nibble: 4 or 7.
    pub fn number(self) -> u8 {
        match self {
            UuidVersion::V4 => 4,
            UuidVersion::V7 => 7,
        }
    }

    /// The version for a nibble value, if this crate generates it.
    pub fn from_number(n: u8) -> Option<Self> {
        match n {
            4 => Some(UuidVersion::V4),
            7 => Some(UuidVersion::V7),
            _ => None,
        }
    }
}

impl std::fmt::Display for UuidVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.number())
    }
}

impl std::str::FromStr for UuidVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim_start_matches(['v', 'V']) {
            "4" => Ok(UuidVersion::V4),
            "7" => Ok(UuidVersion::V7),
            _ => Err(format!("unsupported UUID version {s:?}: use 4 or 7")),
        }
    }
}

/// Generates UUIDs from a random source whose every byte passes the health tests first.
pub struct Generator {
    version: UuidVersion,
    source: Box<dyn RngCore + Send>,
    health: HealthMonitor,
    block: Box<[u8; BLOCK]>,
    pos: usize,
    /// v7 state: last millisecond used and the 74-bit counter issued in it.
    last_ms: u64,
    last_counter: u128,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the source or the buffered bytes: they are future UUIDs.
        f.debug_struct("Generator")
            .field("version", &self.version)
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

const V7_COUNTER_BITS: u32 = 74;
const V7_COUNTER_MAX: u128 = (1u128 << V7_COUNTER_BITS) - 1;

impl Generator {
    /// A generator over ChaCha12 (`StdRng`) seeded from the operating system.
    ///
    /// Infallible so callers treat every source alike: if the OS cannot seed it, the first
    /// [`Generator::next_uuid`] returns [`HealthError::Unavailable`] and no UUID is produced.
    pub fn new(version: UuidVersion) -> Self {
        match StdRng::try_from_os_rng() {
            Ok(rng) => Self::from_source(version, Box::new(rng)),
            Err(e) => {
                let mut g = Self::from_source(version, crate::source::unusable());
                g.health = HealthMonitor::failed_with(HealthError::Unavailable(e.to_string()));
                g
            }
        }
    }

    /// A generator over any source, e.g. a [`crate::test_source`] in tests. The health tests
    /// still run: a broken source is caught, not trusted.
    pub fn from_source(version: UuidVersion, source: Box<dyn RngCore + Send>) -> Self {
        Self {
            version,
            source,
            health: HealthMonitor::new(),
            block: Box::new([0; BLOCK]),
            pos: BLOCK,
            last_ms: 0,
            last_counter: 0,
        }
    }

    /// The version this generator produces.
    pub fn version(&self) -> UuidVersion {
        self.version
    }

    /// How many raw bytes have passed the health tests so far.
    pub fn bytes_checked(&self) -> u64 {
        self.health.samples()
    }

    /// Takes `n` health-tested bytes (n divides [`BLOCK`]).
    #[inline]
    fn take(&mut self, n: usize) -> Result<&[u8], HealthError> {
        if self.pos + n > BLOCK {
            self.source.fill_bytes(&mut self.block[..]);
            self.health.check(&self.block[..])?;
            self.pos = 0;
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.block[start..start + n])
    }

    /// The next UUID, or the health failure that stopped the source.
    #[inline]
    pub fn next_uuid(&mut self) -> Result<Uuid, HealthError> {
        let bytes = match self.version {
            UuidVersion::V4 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(self.take(16)?);
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                b
            }
            UuidVersion::V7 => self.next_v7_bytes()?,
        };
        check_layout(&bytes, self.version)?;
        Ok(Uuid::from_bytes(bytes))
    }

    /// Appends `n` UUIDs to `out`. On a health failure the UUIDs produced before it stay in
    /// `out` (they came from blocks that passed) and the error is returned.
    pub fn fill(&mut self, out: &mut Vec<Uuid>, n: usize) -> Result<(), HealthError> {
        out.reserve(n);
        if self.version == UuidVersion::V4 {
            return self.fill_v4(out, n);
        }
        for _ in 0..n {
            out.push(self.next_uuid()?);
        }
        Ok(())
    }

    /// [`Generator::fill`] for v4, a tested block's run of UUIDs at a time: the same bytes,
    /// bits and layout check as [`Generator::next_uuid`], without its bounds check, branch on
    /// the version and capacity check per UUID (`generate -n 10000000` spent 5% of its CPU
    /// in the per-UUID loop, on the thread that also inserts into the registry).
    fn fill_v4(&mut self, out: &mut Vec<Uuid>, n: usize) -> Result<(), HealthError> {
        let mut left = n;
        while left > 0 {
            if self.pos + 16 > BLOCK {
                self.source.fill_bytes(&mut self.block[..]);
                self.health.check(&self.block[..])?;
                self.pos = 0;
            }
            let take = ((BLOCK - self.pos) / 16).min(left);
            let bytes = &self.block[self.pos..self.pos + 16 * take];
            let start = out.len();
            for c in bytes.chunks_exact(16) {
                let mut b = [0u8; 16];
                b.copy_from_slice(c);
                // Version 4 in the top nibble of byte 6, variant 0b10 in the top bits of byte 8.
                let x = u128::from_be_bytes(b) & !(0xf << 76 | 0x3 << 62) | (0x4 << 76 | 0x2 << 62);
                out.push(Uuid::from_u128(x));
            }
            self.pos += 16 * take;
            left -= take;
            // As `next_uuid`: the UUIDs before a bad one stay, the bad one is the error.
            if let Some(at) = out[start..]
                .iter()
                .position(|u| check_layout(u.as_bytes(), UuidVersion::V4).is_err())
            {
                let bad = out[start + at];
                out.truncate(start + at);
                return check_layout(bad.as_bytes(), UuidVersion::V4);
            }
        }
        Ok(())
    }

    fn next_v7_bytes(&mut self) -> Result<[u8; 16], HealthError> {
        let mut r = [0u8; 16];
        r[6..].copy_from_slice(self.take(10)?);
        let random = u128::from_be_bytes(r) & V7_COUNTER_MAX;
        // A clock before 1970 counts as 0: the counter below still keeps the order.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
            & ((1 << 48) - 1);
        let (ms, counter) = if now > self.last_ms {
            // Top counter bit clear leaves at least 2^73 of room for increments in this ms.
            (now, random >> 1)
        } else {
            // Same millisecond or the clock stepped back: keep the last ms and step the counter
            // by a random 1..2^32, so the order holds and each step stays unpredictable.
            let step = 1 + (random & 0xffff_ffff);
            match self.last_counter.checked_add(step) {
                Some(c) if c <= V7_COUNTER_MAX => (self.last_ms, c),
                _ => ((self.last_ms + 1) & ((1 << 48) - 1), random >> 1),
            }
        };
        self.last_ms = ms;
        self.last_counter = counter;
        let rand_a = (counter >> 62) as u16 & 0x0fff;
        let rand_b = (counter as u64) & ((1 << 62) - 1);
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
        b[6..8].copy_from_slice(&(0x7000 | rand_a).to_be_bytes());
        b[8..].copy_from_slice(&((1u64 << 63) | rand_b).to_be_bytes());
        Ok(b)
    }
}

/// Reads the version nibble and variant bits back from the finished bytes.
#[inline]
fn check_layout(b: &[u8; 16], version: UuidVersion) -> Result<(), HealthError> {
    let v = b[6] >> 4;
    let var = b[8] >> 6;
    if v == version.number() && var == 0b10 {
        Ok(())
    } else {
        Err(HealthError::Layout {
            uuid: Uuid::from_bytes(*b).to_string(),
            version: v,
            variant: var,
            expected_version: version.number(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::test_source;

    #[test]
    fn v4_has_version_and_variant() {
        let mut g = Generator::new(UuidVersion::V4);
        for _ in 0..10_000 {
            let u = g.next_uuid().unwrap();
            assert_eq!(u.get_version_num(), 4);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        }
    }

    #[test]
    fn v7_is_strictly_increasing_and_carries_the_time() {
        let mut g = Generator::new(UuidVersion::V7);
        let mut out = Vec::new();
        g.fill(&mut out, 100_000).unwrap();
        assert!(out.windows(2).all(|w| w[0] < w[1]));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let (secs, _) = out[0].get_timestamp().unwrap().to_unix();
        assert!(secs.abs_diff(now / 1000) < 5);
        assert!(out.iter().all(|u| u.get_version_num() == 7));
    }

    #[test]
    fn v7_counter_overflow_moves_to_the_next_millisecond() {
        let mut g = Generator::new(UuidVersion::V7);
        let a = g.next_uuid().unwrap();
        g.last_counter = V7_COUNTER_MAX - 1;
        g.last_ms += 10_000; // far in the future: the clock is "behind"
        let b = g.next_uuid().unwrap();
        assert!(a < b);
        assert_eq!(g.last_ms & 0xffff, (b.as_u128() >> 80) as u64 & 0xffff);
    }

    #[test]
    fn same_seed_same_uuids() {
        let mk = || Generator::from_source(UuidVersion::V4, test_source("repeat:7:1000").unwrap());
        let (mut a, mut b) = (mk(), mk());
        for _ in 0..100 {
            assert_eq!(a.next_uuid().unwrap(), b.next_uuid().unwrap());
        }
    }

    /// The v4 batch path hands out the very UUIDs `next_uuid` would, across block boundaries
    /// and mixed with single calls, and a broken source still fails it.
    #[test]
    fn fill_gives_what_next_uuid_gives() {
        use rand::SeedableRng;
        let mk = || {
            Generator::from_source(
                UuidVersion::V4,
                Box::new(rand::rngs::StdRng::seed_from_u64(7)),
            )
        };
        let (mut batch, mut single) = (mk(), mk());
        let mut got = Vec::new();
        for n in [3, 1, BLOCK / 16 - 5, 7, 3 * BLOCK / 16 + 1, 0, 1000] {
            batch.fill(&mut got, n).unwrap();
            got.push(batch.next_uuid().unwrap());
        }
        let want: Vec<Uuid> = (0..got.len())
            .map(|_| single.next_uuid().unwrap())
            .collect();
        assert_eq!(got, want);
        assert!(got.iter().all(|u| u.get_version_num() == 4));

        let mut stuck = Generator::from_source(UuidVersion::V4, test_source("stuck:0").unwrap());
        let mut none = Vec::new();
        assert!(stuck.fill(&mut none, 10).is_err());
        assert!(none.is_empty());
    }

    #[test]
    fn version_parses_from_cli_spellings() {
        assert_eq!("4".parse::<UuidVersion>().unwrap(), UuidVersion::V4);
        assert_eq!("v7".parse::<UuidVersion>().unwrap(), UuidVersion::V7);
        assert!("5".parse::<UuidVersion>().is_err());
    }
}
