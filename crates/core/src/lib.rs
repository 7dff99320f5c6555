//! Generation, validation and uniqueness of the UUIDs cxone-uuid hands out.
//!
//! Key design decision: every UUID passes three independent checks before it leaves this crate:
//! the raw random bytes pass the NIST SP 800-90B continuous health tests (before the version and
//! variant bits are fixed, which would skew them), the finished bytes are checked for version and
//! variant, and a [`Registry`] confirms it was never handed out before. No network, no runtime:
//! the registry trait is async so remote registries fit behind it, but this crate never spawns.
//!
//! Entry points: [`UniqueGenerator`] (generator + registry + duplicate limit) for handing UUIDs
//! out, [`parse`] for validation with exact reasons, [`collision_probability`] for metrics.
#![deny(missing_docs)]

mod collision;
#[cfg(feature = "testing")]
pub mod conformance;
mod generate;
pub mod health;
mod hexfmt;
mod memory;
pub mod registry;
mod source;
mod unique;
mod validate;

pub use collision::collision_probability;
pub use generate::{Generator, UuidVersion};
pub use health::HealthError;
pub use memory::MemoryRegistry;
pub use registry::{Novelty, Registry, RegistryError};
pub use source::{test_source, TestSourceError};
pub use unique::{GenerateError, UniqueGenerator, UniquenessStats, DEFAULT_DUPLICATE_LIMIT};
pub use uuid::Uuid;
pub use validate::{parse, parse_with_format, ParseOptions, UuidFormat, ValidationError};
