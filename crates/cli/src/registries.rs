//! `--registry SPEC` to a [`Registry`]: one explicit match, one arm per backend.
//!
//! Owned by the registry work (issue 6); `memory` is always available.

use std::sync::Arc;

use cxone_uuid_core::Registry;

/// Opens the registry named by `spec` (`memory`, `sqlite:PATH`, `redis://…`, `rediss://…`).
/// `expected` is how many UUIDs this run will hold, so the memory registry can size itself once.
pub(crate) async fn open(spec: &str, expected: u64) -> anyhow::Result<Arc<dyn Registry>> {
    match spec {
        "memory" => Ok(Arc::new(cxone_uuid_core::MemoryRegistry::with_capacity(
            usize::try_from(expected).unwrap_or(usize::MAX),
        ))),
        other => Err(crate::exit::usage(format!(
            "unknown registry {other:?}: use memory, sqlite:PATH or redis://HOST:PORT/DB"
        ))),
    }
}
