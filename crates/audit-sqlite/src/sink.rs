//! The write side: a sink that stages events, commits them in groups, and moves them into the
//! indexed table in bulk.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cxone_uuid_audit::signing::Signing;
use cxone_uuid_audit::{
    AuditError, AuditEvent, AuditSink, BreakReason, EventKind, Sealer, SyncMode,
};
use rusqlite::{params, Connection, OptionalExtension as _};
use uuid::Uuid;

use crate::schema::{last_checkpoint, open_rw, INSERT, INSERT_INDEXED, MERGE};
use crate::{backend, spec};

/// Staged events move into `audit_events` once this many have collected...
///
/// Why stage at all: the `uuid` index is keyed by random v4 UUIDs, so every commit that inserts
/// into it dirties about one index page per UUID and writes each whole page to the WAL again.
/// `run` commits every few milliseconds (the write-ahead rule), so inserting directly rewrote
/// most of the index many times a second. Appending to an unindexed table dirties only its
/// tail, and one bulk move writes each index page once for tens of thousands of events.
///
/// Why this many: a move of tens of thousands of random keys dirties nearly every leaf of the
/// `uuid` index, so its cost grows with the trail, not with the move; the larger the move,
/// the fewer times the index is rewritten. The time bound below is what limits the lag; this
/// count only caps a move's size (and so the writer's pause, and how many staged rows an
/// unindexed lookup scans) when events arrive faster than it per second. At 131,072 a sink
/// appending as fast as it could, up to a trail of two million events, sustained 0.87 and 0.97
/// of the rate it reached at this figure, with pauses of 1.0–1.2 s instead of 1.7 s.
pub const MERGE_EVENTS: u64 = 262_144;

/// ...or once the oldest of them has waited this long, so `audit_events` lags a live run by
/// about a second at most. Every sink open and close merges whatever is staged.
pub const MERGE_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// How a [`SqliteSink`] writes.
// Debug as derived: Signing's own Debug never shows the private key.
#[derive(Clone, Default, Debug)]
pub struct SqliteOptions {
    /// `None` turns SQLite's syncing off (a crash may lose recent events).
    pub sync: SyncMode,
    /// Sign checkpoints (at close, and every `signing.every` events).
    pub signing: Option<Signing>,
}

/// The SQLite sink.
pub struct SqliteSink {
    path: PathBuf,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    conn: Connection,
    sealer: Sealer,
    sealed: Vec<AuditEvent>,
    in_tx: bool,
    closed: bool,
    /// Set by the first failed write or commit (a full disk): the open transaction was rolled
    /// back, so the database holds only committed events, and the sealer is ahead of it, so
    /// nothing more may be written.
    failed: Option<String>,
    /// Events in `audit_events_recent` (committed or not), and when the oldest arrived.
    staged: u64,
    staged_since: Option<std::time::Instant>,
}

impl SqliteSink {
    /// Opens (or creates) the database and resumes the chain from its last event.
    pub fn open(path: impl AsRef<Path>, opts: SqliteOptions) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let conn = open_rw(&path, opts.sync)?;
        let err = backend(&path);
        let head: Option<(u64, String)> = conn
            .query_row(
                "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()
            .map_err(&err)?;
        // A partial copy with no events yet continues from its anchor.
        let head = match head {
            Some(h) => Some(h),
            None => crate::schema::anchor(&conn, &path)?.map(|a| a.head()),
        };
        let checkpoint = match opts.signing {
            Some(_) => last_checkpoint(&conn, &path)?,
            None => None,
        };
        drop(err);
        Ok(Self {
            inner: Arc::new(Mutex::new(Inner {
                conn,
                sealer: Sealer::resume(head, opts.signing.as_ref(), checkpoint.as_ref()),
                sealed: Vec::with_capacity(1024),
                in_tx: false,
                closed: false,
                failed: None,
                staged: 0,
                staged_since: None,
            })),
            path,
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, AuditError> {
        self.inner.lock().map_err(|_| AuditError::Backend {
            sink: self.describe(),
            message: "an earlier write panicked".into(),
        })
    }

    /// `(seq, hash)` of the last event (seq 0 when empty).
    pub fn head(&self) -> (u64, String) {
        // A panic elsewhere does not change the head: read it through a poisoned lock too.
        let g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            g.sealer.chain().last_seq(),
            g.sealer.chain().head_hash().to_string(),
        )
    }

    /// Makes an empty database a partial copy that starts at `first_seq`, continuing the hash
    /// `prev_hash` (an import of part of an archive). Written in the open transaction, so it is
    /// committed with the first events or not at all.
    pub fn set_anchor(
        &self,
        first_seq: u64,
        prev_hash: &str,
        source: &str,
    ) -> Result<(), AuditError> {
        let mut g = self.lock()?;
        let g = &mut *g;
        refuse_if_failed(g, &self.path)?;
        if g.sealer.chain().last_seq() != 0 || first_seq < 2 {
            return Err(AuditError::Config {
                sink: self.describe(),
                message: format!(
                    "a partial copy can only start an empty database, at seq 2 or later (the database ends at seq {}, the copy starts at seq {first_seq})",
                    g.sealer.chain().last_seq()
                ),
            });
        }
        let err = backend(&self.path);
        if !g.in_tx {
            g.conn.execute_batch("BEGIN").map_err(&err)?;
            g.in_tx = true;
        }
        g.conn
            .execute(
                "INSERT INTO audit_anchor (id, seq, prev_hash, source) VALUES (1, ?1, ?2, ?3)",
                rusqlite::params![first_seq as i64, prev_hash, source],
            )
            .map_err(|e| fail(g, err(e)))?;
        let head = (first_seq - 1, prev_hash.to_string());
        g.sealer = Sealer::resume(Some(head), None, None);
        Ok(())
    }

    /// Stores events that are already sealed (an import keeping the source's seq and hashes).
    /// Each must continue the chain at the database's head; call [`AuditSink::sync`] to commit.
    /// They go straight into `audit_events` unless events are already staged (which must stay
    /// the newest).
    pub fn insert_sealed(&self, batch: &[AuditEvent]) -> Result<(), AuditError> {
        let mut g = self.lock()?;
        let g = &mut *g;
        for ev in batch {
            let chain = g.sealer.chain();
            if ev.seq != chain.last_seq() + 1 || ev.prev_hash != chain.head_hash() {
                return Err(AuditError::Chain {
                    seq: ev.seq,
                    reason: BreakReason::NotContinuing {
                        head: chain.last_seq(),
                    },
                    at: None,
                });
            }
            g.sealer.adopt(ev);
            g.sealed.push(ev.clone());
        }
        let indexed = g.staged == 0;
        write_to(g, &self.path, indexed)
    }
}

fn write_sealed(g: &mut Inner, path: &Path) -> Result<(), AuditError> {
    write_to(g, path, false)
}

/// Inserts the sealed events into the staging table, or with `indexed` into `audit_events`.
fn write_to(g: &mut Inner, path: &Path, indexed: bool) -> Result<(), AuditError> {
    let err = backend(path);
    if !g.in_tx {
        g.conn.execute_batch("BEGIN").map_err(&err)?;
        g.in_tx = true;
    }
    let sealed = std::mem::take(&mut g.sealed);
    let result = (|| -> rusqlite::Result<()> {
        let mut stmt = g
            .conn
            .prepare_cached(if indexed { INSERT_INDEXED } else { INSERT })?;
        let mut run_id = Uuid::encode_buffer();
        let mut uuid = Uuid::encode_buffer();
        for ev in &sealed {
            let metadata = match &ev.metadata {
                Some(m) => Some(
                    serde_json::to_string(m)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
                ),
                None => None,
            };
            stmt.execute(params![
                ev.seq as i64,
                ev.schema,
                ev.timestamp,
                cxone_uuid_audit::chain::event_name(ev.event),
                &*ev.run_id.hyphenated().encode_lower(&mut run_id),
                ev.uuid.map(|u| &*u.hyphenated().encode_lower(&mut uuid)),
                ev.action_id,
                ev.attempts,
                ev.http_status,
                ev.error,
                ev.generation_latency_ms,
                ev.execution_latency_ms,
                ev.total_latency_ms,
                ev.uniqueness_rate,
                metadata,
                ev.prev_hash,
                ev.hash,
                ev.correlation_id,
                ev.wait_ms,
                ev.ambiguous_attempts,
            ])?;
            if ev.event == EventKind::Checkpoint {
                let text = serde_json::to_string(ev)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
                g.conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO audit_checkpoint_head (id, event) VALUES (1, ?1)",
                    )?
                    .execute([text])?;
            }
        }
        Ok(())
    })();
    if result.is_ok() && !sealed.is_empty() && !indexed {
        g.staged += sealed.len() as u64;
        g.staged_since.get_or_insert_with(std::time::Instant::now);
    }
    g.sealed = sealed;
    g.sealed.clear();
    result.map_err(&err)
}

/// After a failed insert or commit: rolls the open transaction back (SQLite may already have),
/// so the database keeps exactly its committed events, and refuses every later write.
fn fail(g: &mut Inner, e: AuditError) -> AuditError {
    if g.in_tx {
        // Nothing to do if SQLite rolled back itself; an error here changes nothing committed.
        let _ = g.conn.execute_batch("ROLLBACK");
        g.in_tx = false;
    }
    g.failed = Some(e.to_string());
    e
}

fn refuse_if_failed(g: &Inner, path: &Path) -> Result<(), AuditError> {
    AuditError::refuse_after(spec(path), g.failed.as_deref())
}

/// Commits the open transaction, first moving the staged events into `audit_events` when enough
/// have collected, they have waited long enough, or the sink is closing.
fn commit(g: &mut Inner, path: &Path) -> Result<(), AuditError> {
    let merge = g.staged > 0
        && (g.closed
            || g.staged >= MERGE_EVENTS
            || g.staged_since.is_some_and(|t| t.elapsed() >= MERGE_AFTER));
    if !g.in_tx && !merge {
        return Ok(());
    }
    let err = backend(path);
    if !g.in_tx {
        g.conn.execute_batch("BEGIN").map_err(&err)?;
        g.in_tx = true;
    }
    if merge {
        g.conn.execute_batch(MERGE).map_err(&err)?;
    }
    g.conn.execute_batch("COMMIT").map_err(&err)?;
    g.in_tx = false;
    if merge {
        g.staged = 0;
        g.staged_since = None;
    }
    Ok(())
}

#[async_trait]
impl AuditSink for SqliteSink {
    async fn append(&self, batch: &[AuditEvent]) -> Result<(), AuditError> {
        let mut g = self.lock()?;
        if g.closed {
            return Err(AuditError::Closed {
                sink: self.describe(),
                what: cxone_uuid_audit::Closable::Sink,
            });
        }
        let g = &mut *g;
        refuse_if_failed(g, &self.path)?;
        for ev in batch {
            g.sealer.seal(ev, &mut g.sealed);
        }
        write_sealed(g, &self.path).map_err(|e| fail(g, e))
    }

    async fn sync(&self) -> Result<(), AuditError> {
        let inner = self.inner.clone();
        let path = self.path.clone();
        // COMMIT fsyncs the WAL: off the async threads.
        tokio::task::spawn_blocking(move || -> Result<(), AuditError> {
            let mut g = inner.lock().map_err(|_| AuditError::Backend {
                sink: spec(&path),
                message: "an earlier write panicked".into(),
            })?;
            refuse_if_failed(&g, &path)?;
            commit(&mut g, &path).map_err(|e| fail(&mut g, e))
        })
        .await
        .map_err(|e| AuditError::Backend {
            sink: self.describe(),
            message: format!("commit task failed: {e}"),
        })?
    }

    async fn close(&self) -> Result<(), AuditError> {
        {
            let mut g = self.lock()?;
            if g.closed {
                return Ok(());
            }
            let g = &mut *g;
            g.closed = true;
            // After a failed write the database stays as it was: no closing checkpoint.
            refuse_if_failed(g, &self.path)?;
            if let Some(cp) = g.sealer.finish() {
                g.sealed.push(cp);
                write_sealed(g, &self.path).map_err(|e| fail(g, e))?;
            }
        }
        self.sync().await
    }

    fn describe(&self) -> String {
        spec(&self.path)
    }
}
