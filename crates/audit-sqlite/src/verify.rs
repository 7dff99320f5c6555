//! The read side: visiting events in seq order, and verifying a trail on several threads.

use std::path::{Path, PathBuf};

use cxone_uuid_audit::{
    AuditError, AuditEvent, AuditSource, BreakReason, EventKind, Pending, Verifier, VerifySummary,
};
use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, OptionalExtension as _};
use uuid::Uuid;

use crate::schema::{fill_event, last_checkpoint, open_read, Anchor, COLUMNS};
use crate::{backend, pending, spec};

/// Calls `f` with every event whose seq lies in `range` (all of them for `None`), in seq order,
/// lending one reused event instead of handing out a new one per row.
///
/// The merged events come first, then the staged ones: every staged event is newer than every
/// merged one, and reading the tables one after the other spares SQLite merging two streams.
/// A row planted out of order in either table shows up as a break in the chain.
fn visit_in(
    conn: &Connection,
    path: &Path,
    range: Option<(i64, i64)>,
    f: &mut dyn FnMut(&AuditEvent) -> Result<(), AuditError>,
) -> Result<(), AuditError> {
    let err = backend(path);
    let (lo, hi) = range.unwrap_or((i64::MIN, i64::MAX));
    let mut ev = AuditEvent::new(EventKind::RunStarted, Uuid::nil());
    for table in ["audit_events", "audit_events_recent"] {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM {table} WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq"
            ))
            .map_err(&err)?;
        let mut rows = stmt.query([lo, hi]).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            match fill_event(row, &mut ev) {
                Ok(()) => f(&ev)?,
                Err(e) => {
                    let seq = row.get::<_, i64>(0).unwrap_or_default() as u64;
                    return Err(AuditError::Chain {
                        seq,
                        reason: BreakReason::UnparseableRow(e.to_string()),
                        at: None,
                    });
                }
            }
        }
    }
    Ok(())
}

/// Below this many events one thread verifies the whole trail: splitting costs more than it saves.
const PARALLEL_MIN_EVENTS: i64 = 50_000;

/// Verifies the chain stored in the database (and, with `public_key`, its checkpoints).
///
/// Re-hashing every event is the cost, and each event's hash depends only on its own row, so a
/// large trail is cut into seq ranges verified on separate threads, each with its own
/// connection. Range *k* starts from the stored hash of the row before it; range *k − 1* proves
/// that row's hash, so together they check exactly what one pass would, and the first range
/// with a break reports the lowest bad seq, as one pass would. Checkpoint signatures chain from
/// one checkpoint to the next, so with a public key one thread does it all.
pub fn verify(path: &Path, public_key: Option<VerifyingKey>) -> Result<VerifySummary, AuditError> {
    SqliteSource::new(path).verify(public_key)
}

/// Where the database starts when it is a partial copy of an archive; `None` for a whole trail.
pub fn anchor(path: &Path) -> Result<Option<Anchor>, AuditError> {
    crate::schema::anchor(&open_read(path)?, path)
}

/// The database at a path, read back (read-only; schema 1 and 2).
#[derive(Debug, Clone)]
pub struct SqliteSource {
    path: PathBuf,
}

impl SqliteSource {
    /// The database at `path`; nothing is opened until it is read.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
        }
    }
}

impl AuditSource for SqliteSource {
    fn describe(&self) -> String {
        spec(&self.path)
    }

    fn exists(&self) -> Result<bool, AuditError> {
        Ok(self.path.exists())
    }

    fn visit(
        &self,
        f: &mut dyn FnMut(&AuditEvent) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        let conn = open_read(&self.path)?;
        visit_in(&conn, &self.path, None, f)
    }

    fn checkpoint(&self) -> Result<Option<AuditEvent>, AuditError> {
        last_checkpoint(&open_read(&self.path)?, &self.path)
    }

    /// Verifies seq ranges on up to four threads (see [`verify`]).
    fn verify(&self, public_key: Option<VerifyingKey>) -> Result<VerifySummary, AuditError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        verify_split(&self.path, public_key, threads, PARALLEL_MIN_EVENTS)
    }

    /// One query over the submission-related events (see [`pending`]).
    fn pending(&self) -> Result<Vec<Pending>, AuditError> {
        if !self.exists()? {
            return Ok(Vec::new());
        }
        pending(&self.path)
    }
}

pub(crate) fn verify_split(
    path: &Path,
    public_key: Option<VerifyingKey>,
    threads: usize,
    parallel_min_events: i64,
) -> Result<VerifySummary, AuditError> {
    let conn = open_read(path)?;
    let anchor = last_checkpoint(&conn, path)?;
    let (first, last): (Option<i64>, Option<i64>) = conn
        .query_row(
            // Per table, so each is a rowid lookup rather than a scan of the view.
            "SELECT MIN(lo), MAX(hi) FROM \
               (SELECT MIN(seq) AS lo, MAX(seq) AS hi FROM audit_events \
                UNION ALL SELECT MIN(seq), MAX(seq) FROM audit_events_recent)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(backend(path))?;
    let ranges = match (first, last) {
        (Some(1), Some(last))
            if public_key.is_none() && threads > 1 && last >= parallel_min_events =>
        {
            split(&conn, path, last, threads)?
        }
        _ => None,
    };
    let Some(ranges) = ranges else {
        // A partial copy's chain starts from its anchor instead of the genesis hash.
        let start = crate::schema::anchor(&conn, path)?.map(|a| a.head());
        let mut verifier = Verifier::resume(start);
        if let Some(key) = public_key {
            verifier = verifier.with_public_key(key);
        }
        visit_in(&conn, path, None, &mut |ev| Ok(verifier.feed_event(ev)?))?;
        return Ok(verifier.finish(anchor.as_ref())?);
    };
    drop(conn);
    let results: Vec<Result<Verifier, AuditError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .into_iter()
            .map(|(lo, hi, head)| {
                scope.spawn(move || -> Result<Verifier, AuditError> {
                    let conn = open_read(path)?;
                    let mut verifier = Verifier::resume(head);
                    visit_in(&conn, path, Some((lo, hi)), &mut |ev| {
                        Ok(verifier.feed_event(ev)?)
                    })?;
                    Ok(verifier)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(AuditError::Backend {
                        sink: spec(path),
                        message: "a verifying thread panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut events = 0;
    let mut checkpoints = 0;
    let mut tail = None;
    for result in results {
        // In seq order: the first error is the lowest bad seq.
        let verifier = result?;
        let part = verifier.finish(None)?;
        events += part.events;
        checkpoints += part.checkpoints;
        tail = Some(part);
    }
    let mut summary = tail.ok_or_else(|| AuditError::Backend {
        sink: spec(path),
        message: "no range was verified".into(),
    })?;
    summary.events = events;
    summary.checkpoints = checkpoints;
    Ok(summary)
}

/// Cuts seq 1..=`last` into `parts` ranges, each with the `(seq, hash)` stored just before it.
/// `None` when a boundary row is missing: a gap, which one pass reports properly.
#[allow(clippy::type_complexity)]
fn split(
    conn: &Connection,
    path: &Path,
    last: i64,
    parts: usize,
) -> Result<Option<Vec<(i64, i64, Option<(u64, String)>)>>, AuditError> {
    let parts = i64::try_from(parts).unwrap_or(1).max(1);
    let size = (last + parts - 1) / parts;
    let mut ranges = Vec::new();
    let mut lo = 1;
    while lo <= last {
        // The last range is open-ended so that nothing after `last` escapes the check.
        let hi = if lo + size > last {
            i64::MAX
        } else {
            lo + size - 1
        };
        let head = if lo == 1 {
            None
        } else {
            let hash: Option<String> = conn
                .query_row(
                    "SELECT hash FROM audit_events_all WHERE seq = ?1",
                    [lo - 1],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend(path))?;
            match hash {
                Some(h) => Some(((lo - 1) as u64, h)),
                None => return Ok(None),
            }
        };
        ranges.push((lo, hi, head));
        if hi == i64::MAX {
            break;
        }
        lo = hi + 1;
    }
    Ok(Some(ranges))
}
