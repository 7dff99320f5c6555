//! The sink trait, its error, and fan-out.

use async_trait::async_trait;

use crate::{AuditEvent, BreakReason};

/// When a sink makes appended events durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Group commit: one fsync/commit covers every event queued since the last one. Default.
    #[default]
    Batch,
    /// One fsync/commit per event.
    Always,
    /// Never sync before close: a crash may lose recent events. For users who accept that.
    None,
}

/// Why an audit operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Reading or writing the store failed.
    #[error("audit sink {sink}: {source}")]
    Io {
        /// The sink's description.
        sink: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The store is not usable as given (bad spec, wrong schema, unknown bucket, ...).
    #[error("audit sink {sink}: {message}")]
    Config {
        /// The sink's description.
        sink: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The backend reported an error.
    #[error("audit sink {sink}: {message}")]
    Backend {
        /// The sink's description.
        sink: String,
        /// The backend's message.
        message: String,
    },
    /// A stored record cannot be read as an event, so the trail cannot be read back (run
    /// `audit verify` to see where). The message names the file and what to do.
    #[error("{message}")]
    Damaged {
        /// The trail's description.
        sink: String,
        /// What is wrong and how to check it.
        message: String,
    },
    /// The stored trail is not a valid chain.
    #[error("audit chain broken at seq {seq}: {reason}{}", place(.at))]
    Chain {
        /// The first bad sequence number.
        seq: u64,
        /// Why it is bad.
        reason: BreakReason,
        /// Where, when the trail spans several files or objects (`in PATH.2`, `object KEY`).
        at: Option<String>,
    },
    /// The sink (or the writer in front of it) was closed before this call.
    #[error("audit sink {sink}: {what} is closed")]
    Closed {
        /// The sink's description.
        sink: String,
        /// What was closed.
        what: Closable,
    },
    /// The store's driver failed (SQLite, ...).
    #[error("audit sink {sink}: {source}")]
    Store {
        /// The sink's description.
        sink: String,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A write through an [`crate::AuditWriter`] failed, now or `earlier`, with `cause`.
    ///
    /// `cause` is shared by every caller waiting on the failed batch. It is not a `#[source]`:
    /// its text is already part of this message, and a renderer walking sources would print
    /// it twice.
    #[error("audit sink {sink}: {}{cause}", if *.earlier { "an earlier write failed: " } else { "" })]
    Writer {
        /// The writer's sink description.
        sink: String,
        /// Whether `cause` failed an earlier batch (this call's event was not written).
        earlier: bool,
        /// What failed.
        cause: std::sync::Arc<AuditError>,
    },
}

impl AuditError {
    /// What a sink answers once a write of it has failed (`failed` holds why): its store was
    /// cut back to what is whole and its sealer is ahead of it, so nothing more may be written.
    /// Shared by every local sink so the refusal reads the same whichever failed.
    pub fn refuse_after(sink: impl Into<String>, failed: Option<&str>) -> Result<(), AuditError> {
        match failed {
            Some(why) => Err(AuditError::Backend {
                sink: sink.into(),
                message: format!("an earlier write failed ({why}); nothing more is written"),
            }),
            None => Ok(()),
        }
    }
}

/// What [`AuditError::Closed`] found closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Closable {
    /// The sink itself.
    Sink,
    /// The [`crate::AuditWriter`] in front of it.
    Writer,
}

impl std::fmt::Display for Closable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sink => "the sink",
            Self::Writer => "the audit writer",
        })
    }
}

fn place(at: &Option<String>) -> String {
    at.as_ref().map(|a| format!(" ({a})")).unwrap_or_default()
}

impl From<crate::ChainBreak> for AuditError {
    /// A verifier's break as the error every `verify` reports (the seq and the reason in words).
    fn from(b: crate::ChainBreak) -> Self {
        AuditError::Chain {
            seq: b.seq,
            reason: b.reason,
            at: None,
        }
    }
}

/// A place audit events are kept.
///
/// Sinks seal events into their own chain (see the crate docs), so `append` takes unsealed
/// events. `append` may buffer; an event counts as written only once `sync` has returned.
#[async_trait]
pub trait AuditSink: Send + Sync {
    /// Seals and appends `batch` in order. May buffer.
    async fn append(&self, batch: &[AuditEvent]) -> Result<(), AuditError>;

    /// Makes everything appended so far durable (fsync, commit, spool). Idempotent.
    async fn sync(&self) -> Result<(), AuditError>;

    /// Writes any closing records (e.g. a final signed checkpoint), syncs, and releases the store.
    async fn close(&self) -> Result<(), AuditError> {
        self.sync().await
    }

    /// A description without secrets, e.g. `jsonl:cxone_uuid_audit.jsonl`.
    fn describe(&self) -> String;
}

/// Implements [`AuditSink`] for the pointer types given, forwarding every method (`close` too,
/// so a sink's own closing records are not replaced by the default behind a `Box`).
macro_rules! forward_sink {
    ($([$($gen:tt)*] $ty:ty),* $(,)?) => {$(
        #[async_trait]
        impl<$($gen)* S: AuditSink + ?Sized> AuditSink for $ty {
            async fn append(&self, batch: &[AuditEvent]) -> Result<(), AuditError> {
                (**self).append(batch).await
            }
            async fn sync(&self) -> Result<(), AuditError> {
                (**self).sync().await
            }
            async fn close(&self) -> Result<(), AuditError> {
                (**self).close().await
            }
            fn describe(&self) -> String {
                (**self).describe()
            }
        }
    )*};
}

forward_sink!([] Box<S>, [] std::sync::Arc<S>, ['a,] &'a S);

/// Several sinks as one: an event is written when every sink has made it durable.
/// An empty fan-out is the `none` sink.
pub struct Fanout(pub Vec<Box<dyn AuditSink>>);

#[async_trait]
impl AuditSink for Fanout {
    async fn append(&self, batch: &[AuditEvent]) -> Result<(), AuditError> {
        for sink in &self.0 {
            sink.append(batch).await?;
        }
        Ok(())
    }
    async fn sync(&self) -> Result<(), AuditError> {
        // Sync concurrently: the slowest sink bounds the latency, not the sum.
        let results = futures::future::join_all(self.0.iter().map(|s| s.sync())).await;
        results.into_iter().collect()
    }
    async fn close(&self) -> Result<(), AuditError> {
        let mut first_err = None;
        for sink in &self.0 {
            if let Err(e) = sink.close().await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
    fn describe(&self) -> String {
        if self.0.is_empty() {
            "none".to_string()
        } else {
            self.0
                .iter()
                .map(|s| s.describe())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}
