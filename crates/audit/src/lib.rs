//! The audit-trail contract: one event type, one hash chain, one sink trait.
//!
//! Key design decision: a sink receives *unsealed* events and seals them itself (seq, prev_hash,
//! hash) with a [`chain::Chain`] resumed from its own stored head, because the chain is a property
//! of the stored stream (a file or a database continues across runs), not of a run. Fan-out to
//! several sinks therefore gives each its own gapless, independently verifiable stream. This crate
//! never depends on a backend; backends depend on it.
#![deny(missing_docs)]

mod event;
mod sink;

pub use event::{AuditEvent, EventKind, SCHEMA_VERSION};
pub use sink::{AuditError, AuditSink, Fanout, SyncMode};
