//! The audit-trail contract: one event type, one hash chain, a sink trait (write) and a source
//! trait (read).
//!
//! Key design decision: a sink receives *unsealed* events and seals them itself (seq, prev_hash,
//! hash) with a [`chain::Chain`] resumed from its own stored head, because the chain is a property
//! of the stored stream (a file or a database continues across runs), not of a run. Fan-out to
//! several sinks therefore gives each its own gapless, independently verifiable stream. This crate
//! never depends on a backend; backends depend on it.
#![deny(missing_docs)]

pub mod chain;
#[cfg(feature = "testing")]
pub mod conformance;
mod event;
mod sealer;
pub mod signing;
mod sink;
mod source;
mod writer;

pub use chain::{
    hash_event, BreakReason, Chain, ChainBreak, Verifier, VerifySummary, GENESIS_HASH,
};
pub use event::{now_rfc3339_micros, AuditEvent, EventKind, SCHEMA_VERSION};
pub use sealer::Sealer;
pub use signing::{CheckpointError, Checkpointer, SignedSummary};
pub use sink::{AuditError, AuditSink, Closable, Fanout, SyncMode};
pub use source::{AuditSource, Pending, PendingTracker};
pub use writer::{AuditWriter, GroupCommit};
