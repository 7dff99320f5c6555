//! Generation, validation and uniqueness of the UUIDs cxone-uuid hands out.
//!
//! Key design decision: every UUID passes three independent checks before it leaves this crate:
//! the raw random bytes pass the NIST SP 800-90B continuous health tests (before the version and
//! variant bits are fixed, which would skew them), the finished bytes are checked for version and
//! variant, and a [`Registry`] confirms it was never handed out before. No network, no runtime:
//! the registry trait is async so remote registries fit behind it, but this crate never spawns.
#![deny(missing_docs)]

pub mod registry;

pub use registry::{Novelty, Registry, RegistryError};
