//! S3 archive audit sink with a durable local spool.
//!
//! Key design decision: S3 is never on the write-ahead path. Events are sealed into the chain
//! and fsynced to a local spool (the durability point `sync` promises), and a background
//! uploader ships sealed spool segments as gzip JSONL objects keyed
//! `PREFIX/YYYY/MM/DD/RUN_ID/FIRSTSEQ-LASTSEQ.jsonl.gz`. A segment is deleted only after S3
//! confirms its SHA-256 checksum. Keys derive from segment content, so retries and re-runs after
//! a crash overwrite the same object rather than adding another: nothing is lost and nothing is
//! stored twice. When S3 is down the run continues, warns once, and `flush` (or the next run)
//! uploads the rest. `verify` lists, downloads and checks the chain across objects and names
//! missing ranges as gaps.
//!
//! Files: [`config`] (what and how), `spool` (local segments), [`upload`] (the S3 transport),
//! `sink` ([`S3Sink`], [`flush`], [`verify`]), `archive` ([`Archive`]: reading objects back).
#![deny(missing_docs)]

mod archive;
pub mod config;
mod sink;
mod spool;
pub mod upload;

use std::path::Path;

pub use archive::{first_event, Archive, Selection};
pub use config::{S3Config, Sse};
pub use cxone_uuid_audit::signing::Signing;
pub use sink::{flush, verify, verify_signed, Broken, FlushReport, Gap, S3Sink, VerifyReport};

use cxone_uuid_audit::AuditError;

/// Why an S3 sink operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3Error {
    /// The settings are unusable; the message says which flag to fix.
    #[error("{0}")]
    Config(String),
    /// HeadBucket said the bucket does not exist.
    #[error(
        "bucket {bucket:?} does not exist at {endpoint}: create it (with Object Lock if you use \
         --s3-object-lock-days) or fix the s3://BUCKET/PREFIX address"
    )]
    BucketMissing {
        /// The bucket asked for.
        bucket: String,
        /// The endpoint asked (or "AWS S3").
        endpoint: String,
    },
    /// The local spool could not be read or written.
    #[error("audit spool {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An S3 request failed.
    #[error("S3 {op} {target}: {message}")]
    S3 {
        /// The operation (PutObject, ...).
        op: &'static str,
        /// The bucket or key.
        target: String,
        /// What S3 or the connection said.
        message: String,
        /// Whether retrying later could succeed (connection, timeout, 5xx, throttling).
        transient: bool,
    },
    /// An object under the prefix is not a readable trail segment.
    #[error("object {key}: {message}")]
    Corrupt {
        /// The object key.
        key: String,
        /// Why.
        message: String,
    },
}

impl S3Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// Whether a later attempt could succeed (S3 unreachable, slow or overloaded).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::S3 {
                transient: true,
                ..
            }
        )
    }

    /// As the audit crate's error, for callers that speak [`AuditError`].
    pub fn into_audit(self, sink: &str) -> AuditError {
        match self {
            Self::Io { source, .. } => AuditError::Io {
                sink: sink.to_string(),
                source,
            },
            e @ (Self::Config(_) | Self::BucketMissing { .. }) => AuditError::Config {
                sink: sink.to_string(),
                message: e.to_string(),
            },
            e => AuditError::Store {
                sink: sink.to_string(),
                source: Box::new(e),
            },
        }
    }
}
