//! Append-only JSONL audit sink: one sealed event a line, group commit, crash recovery, rotation.
//!
//! Key design decision: the file is the chain. Nothing else is needed to resume it: on open the
//! sink reads only the last whole line to continue `seq` and `prev_hash`, and a partial last
//! line (a kill -9 mid-write) is moved aside to `PATH.corrupt-<timestamp>` rather than repaired,
//! so no byte anyone wrote is ever silently dropped. Lines are the canonical form plus `hash`
//! ([`cxone_uuid_audit::chain::encode_line`]), so verifying hashes the stored bytes directly.
//!
//! A write that fails (a full disk, an I/O error) leaves no partial record: the sink drops what
//! it had buffered, cuts the file back to its last complete line, syncs it and refuses further
//! appends, so the trail verifies exactly as the failed run left it and `--resume` continues it.
//!
//! Rotation (`rotate_mb`) renames the full file to the next free `PATH.N` (so `PATH.1` is the
//! oldest segment) and starts a new `PATH`; the chain continues across segments. With a signing
//! key, the latest checkpoint is also kept in `PATH.checkpoint` (written only after the trail
//! holding it is durable) so a tail cut before it is detectable.
#![deny(missing_docs)]

mod files;
mod sink;
mod source;

use std::path::Path;

use cxone_uuid_audit::AuditError;

pub use files::{anchor_path, read_anchor, recover_partial_line, segment_path, segments};
pub use sink::{JsonlOptions, JsonlSink};
pub use source::{verify, JsonlReader, JsonlSource};

pub(crate) fn io_err(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        sink: format!("jsonl:{}", path.display()),
        source,
    }
}

#[cfg(test)]
mod tests;
