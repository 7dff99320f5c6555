//! The uniqueness contract every registry (memory, SQLite, Redis) keeps.
//!
//! The trait is batch-first and async so that a remote registry pays one network round trip per
//! batch rather than per UUID; an in-memory registry simply answers at once. It is fallible
//! because a registry that cannot be reached must stop generation, never be skipped.

use async_trait::async_trait;
use uuid::Uuid;

/// What a registry says of one UUID offered to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Novelty {
    /// Not seen before; it is now recorded and may be handed out.
    New,
    /// Seen before (in this batch, this run, or anywhere the registry remembers): regenerate.
    Duplicate,
}

/// Why a registry could not answer. Generation stops on any of these.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The backing store could not be reached or refused the operation.
    #[error("uniqueness registry {registry} is unavailable: {message}")]
    Unavailable {
        /// The registry's description (no credentials), e.g. `redis://127.0.0.1:6379/0`.
        registry: String,
        /// What went wrong, as the backend said it.
        message: String,
    },
    /// The registry answered with something it should not have (a bug or a corrupt store).
    #[error("uniqueness registry {registry} answered inconsistently: {message}")]
    Protocol {
        /// The registry's description.
        registry: String,
        /// What was inconsistent.
        message: String,
    },
}

/// Atomic check-and-insert over a set of UUIDs.
///
/// Implementations must be atomic per UUID across every process sharing the store: of two
/// callers offering the same UUID, exactly one is told [`Novelty::New`]. Within one batch a UUID
/// that appears twice is `New` at its first position and `Duplicate` after.
// `len` is async and may be unknown (`None`), so an `is_empty` would add nothing.
#[allow(clippy::len_without_is_empty)]
#[async_trait]
pub trait Registry: Send + Sync {
    /// Offers `ids` in order and answers, for each, whether it was new (and is now recorded).
    /// The answer has the same length and order as `ids`.
    async fn check_and_insert(&self, ids: &[Uuid]) -> Result<Vec<Novelty>, RegistryError>;

    /// A human-readable description without secrets, for logs and the audit's `run_started`.
    fn describe(&self) -> String;

    /// How many UUIDs the registry holds, when it can say cheaply.
    async fn len(&self) -> Result<Option<u64>, RegistryError> {
        Ok(None)
    }

    /// How many UUIDs a bulk caller (`generate`) should offer per call. A registry whose cost
    /// is per call (a commit, a round trip) rather than per UUID says so with a larger number.
    fn preferred_batch(&self) -> usize {
        4096
    }
}

#[async_trait]
impl<R: Registry + ?Sized> Registry for Box<R> {
    async fn check_and_insert(&self, ids: &[Uuid]) -> Result<Vec<Novelty>, RegistryError> {
        (**self).check_and_insert(ids).await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    async fn len(&self) -> Result<Option<u64>, RegistryError> {
        (**self).len().await
    }
    fn preferred_batch(&self) -> usize {
        (**self).preferred_batch()
    }
}

#[async_trait]
impl<R: Registry + ?Sized> Registry for std::sync::Arc<R> {
    async fn check_and_insert(&self, ids: &[Uuid]) -> Result<Vec<Novelty>, RegistryError> {
        (**self).check_and_insert(ids).await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    async fn len(&self) -> Result<Option<u64>, RegistryError> {
        (**self).len().await
    }
    fn preferred_batch(&self) -> usize {
        (**self).preferred_batch()
    }
}
