//! Generation with a uniqueness guarantee: a [`Generator`] checked against a [`Registry`].
//!
//! A duplicate from a 122-bit CSPRNG is, for any realistic volume, a sign that the source is
//! broken (see [`crate::collision_probability`]), not bad luck. So a duplicate is regenerated and
//! counted, and once one UUID took `duplicate_limit` duplicates in a row generation stops.

use std::sync::Arc;

use uuid::Uuid;

use crate::generate::Generator;
use crate::health::HealthError;
use crate::registry::{Novelty, Registry, RegistryError};

/// The tutorial's limit on consecutive duplicates while producing one UUID.
pub const DEFAULT_DUPLICATE_LIMIT: u32 = 100;

/// Most duplicates kept for [`UniqueGenerator::take_duplicates`] between two calls.
const KEPT_DUPLICATES: usize = 10_000;

/// Why a batch could not be produced. No UUID of a failed batch may be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The random source failed a health test (or could not be seeded).
    #[error(transparent)]
    Health(#[from] HealthError),
    /// The registry could not answer: uniqueness cannot be confirmed, so nothing is handed out.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// One UUID met `limit` duplicates in a row.
    #[error(
        "{limit} consecutive duplicate UUIDs from registry {registry}: the entropy source is \
         suspect; stop and check the random number generator (a working one gives a duplicate \
         far less than once in 10^18 UUIDs)"
    )]
    DuplicateLimit {
        /// The configured limit.
        limit: u32,
        /// The registry's description.
        registry: String,
    },
}

/// Counters over the life of a [`UniqueGenerator`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UniquenessStats {
    /// UUIDs generated and offered to the registry, duplicates included.
    pub candidates: u64,
    /// Candidates the registry had seen before.
    pub duplicates: u64,
    /// UUIDs handed out (new in the registry).
    pub unique: u64,
}

impl UniquenessStats {
    /// Share of candidates that were new: 1.0 when nothing has been generated yet.
    pub fn uniqueness_rate(&self) -> f64 {
        if self.candidates == 0 {
            1.0
        } else {
            (self.candidates - self.duplicates) as f64 / self.candidates as f64
        }
    }
}

/// A [`Generator`] whose output the registry has confirmed as never seen before.
pub struct UniqueGenerator {
    generator: Generator,
    registry: Arc<dyn Registry>,
    duplicate_limit: u32,
    stats: UniquenessStats,
    recent_duplicates: Vec<Uuid>,
}

impl std::fmt::Debug for UniqueGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UniqueGenerator")
            .field("generator", &self.generator)
            .field("registry", &self.registry.describe())
            .field("duplicate_limit", &self.duplicate_limit)
            .field("stats", &self.stats)
            .finish()
    }
}

impl UniqueGenerator {
    /// Wraps `generator` and `registry`. `duplicate_limit` is how many duplicates in a row one
    /// UUID may meet before generation stops ([`DEFAULT_DUPLICATE_LIMIT`] = 100, as the
    /// tutorial; 0 is taken as 1).
    pub fn new(generator: Generator, registry: Arc<dyn Registry>, duplicate_limit: u32) -> Self {
        Self {
            generator,
            registry,
            duplicate_limit: duplicate_limit.max(1),
            stats: UniquenessStats::default(),
            recent_duplicates: Vec::new(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> UniquenessStats {
        self.stats
    }

    /// Share of candidates that were new so far (see [`UniquenessStats::uniqueness_rate`]).
    pub fn uniqueness_rate(&self) -> f64 {
        self.stats.uniqueness_rate()
    }

    /// The registry this generator checks against.
    pub fn registry(&self) -> &Arc<dyn Registry> {
        &self.registry
    }

    /// The duplicates met since the last call (at most the last 10,000), for audit trails.
    pub fn take_duplicates(&mut self) -> Vec<Uuid> {
        std::mem::take(&mut self.recent_duplicates)
    }

    /// `n` UUIDs, each new in the registry, in generation order (duplicates replaced in place).
    pub async fn next_batch(&mut self, n: usize) -> Result<Vec<Uuid>, GenerateError> {
        let mut out = Vec::with_capacity(n);
        self.generator.fill(&mut out, n)?;
        let answers = self.offer(&out).await?;
        let mut pending: Vec<usize> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| **a == Novelty::Duplicate)
            .map(|(i, _)| i)
            .collect();
        self.record_duplicates(pending.iter().map(|&i| out[i]));
        let mut in_a_row = 0u32;
        let mut candidates = Vec::new();
        while !pending.is_empty() {
            // Every pending slot has now met one more duplicate in a row.
            in_a_row += 1;
            if in_a_row >= self.duplicate_limit {
                // The batch is dropped: its new UUIDs stay recorded in the registry (burned, never
                // handed out), so they are not counted as unique.
                return Err(GenerateError::DuplicateLimit {
                    limit: self.duplicate_limit,
                    registry: self.registry.describe(),
                });
            }
            candidates.clear();
            self.generator.fill(&mut candidates, pending.len())?;
            let answers = self.offer(&candidates).await?;
            let mut still = Vec::new();
            for ((&slot, &candidate), answer) in pending.iter().zip(&candidates).zip(answers) {
                match answer {
                    Novelty::New => out[slot] = candidate,
                    Novelty::Duplicate => {
                        still.push(slot);
                        self.record_duplicates(std::iter::once(candidate));
                    }
                }
            }
            pending = still;
        }
        self.stats.unique += n as u64;
        Ok(out)
    }

    async fn offer(&mut self, ids: &[Uuid]) -> Result<Vec<Novelty>, GenerateError> {
        let answers = self.registry.check_and_insert(ids).await?;
        if answers.len() != ids.len() {
            return Err(RegistryError::Protocol {
                registry: self.registry.describe(),
                message: format!("{} answers for {} UUIDs", answers.len(), ids.len()),
            }
            .into());
        }
        self.stats.candidates += ids.len() as u64;
        self.stats.duplicates +=
            answers.iter().filter(|a| **a == Novelty::Duplicate).count() as u64;
        Ok(answers)
    }

    fn record_duplicates(&mut self, dups: impl Iterator<Item = Uuid>) {
        for d in dups {
            if self.recent_duplicates.len() < KEPT_DUPLICATES {
                self.recent_duplicates.push(d);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{test_source, MemoryRegistry, UuidVersion};
    use futures::executor::block_on;
    use std::collections::HashSet;

    fn unique(spec: &str, limit: u32) -> UniqueGenerator {
        let g = Generator::from_source(UuidVersion::V4, test_source(spec).unwrap());
        UniqueGenerator::new(g, Arc::new(MemoryRegistry::new()), limit)
    }

    #[test]
    fn healthy_batches_are_unique_and_counted() {
        let g = Generator::new(UuidVersion::V4);
        let mut u = UniqueGenerator::new(g, Arc::new(MemoryRegistry::new()), 100);
        let mut all = HashSet::new();
        for _ in 0..10 {
            for id in block_on(u.next_batch(1000)).unwrap() {
                assert!(all.insert(id));
            }
        }
        let s = u.stats();
        assert_eq!((s.candidates, s.duplicates, s.unique), (10_000, 0, 10_000));
        assert_eq!(s.uniqueness_rate(), 1.0);
    }

    #[test]
    fn occasional_duplicates_are_regenerated_and_counted() {
        let mut u = unique("dup:3:10", 100);
        let ids = block_on(u.next_batch(1000)).unwrap();
        assert_eq!(ids.len(), 1000);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 1000);
        let s = u.stats();
        assert!(s.duplicates >= 100, "{s:?}");
        assert_eq!(s.candidates, 1000 + s.duplicates);
        assert_eq!(u.take_duplicates().len() as u64, s.duplicates);
        assert!(s.uniqueness_rate() < 1.0);
    }

    #[test]
    fn a_repeating_source_stops_at_the_duplicate_limit() {
        let mut u = unique("repeat:5:100", 100);
        assert_eq!(block_on(u.next_batch(100)).unwrap().len(), 100);
        let err = block_on(u.next_batch(1)).unwrap_err();
        assert!(matches!(
            err,
            GenerateError::DuplicateLimit { limit: 100, .. }
        ));
        assert!(
            err.to_string().contains("entropy source is suspect"),
            "{err}"
        );
        // The first candidate plus 99 regenerations: 100 duplicates in a row.
        assert_eq!(u.stats().duplicates, 100);
    }

    #[test]
    fn a_constant_source_stops_with_a_health_error() {
        let mut u = unique("constant:0", 100);
        let err = block_on(u.next_batch(1)).unwrap_err();
        assert!(matches!(
            err,
            GenerateError::Health(HealthError::RepetitionCount { byte: 0, .. })
        ));
    }
}
