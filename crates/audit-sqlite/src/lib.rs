//! Queryable SQLite audit sink.
//!
//! Key design decision: one column per event field (not a JSON blob), so compliance questions are
//! plain indexed SQL, and the hash chain is checked by rebuilding each event from its columns:
//! the database is a full copy of the trail, not an index of one. Durability is SQLite's own:
//! WAL with `synchronous=FULL`, events appended inside an open transaction that `sync` commits
//! (group commit). The schema is versioned with `PRAGMA user_version`.
//!
//! Throughput note: the `uuid` index is the cost. Random v4 UUIDs scatter its inserts over the
//! whole index, so a commit rewrites about one index page per UUID in it, and the write-ahead
//! rule has `run` commit every few milliseconds. Events are therefore appended to an unindexed
//! staging table (`audit_events_recent`) and moved into `audit_events` in bulk (see
//! [`MERGE_EVENTS`]), which writes each index page once per move instead of once per commit.
//! Readers see both through the view `audit_events_all`; `uuid_status` covers both.
//!
//! Example compliance queries (see also the README):
//!
//! ```sql
//! -- every failure in the last 7 days, with its error
//! SELECT timestamp, uuid, http_status, error FROM audit_events
//!  WHERE event = 'action_failed' AND timestamp >= strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '-7 days');
//! -- the state of one UUID
//! SELECT * FROM uuid_status WHERE uuid = '0192…';
//! -- daily counts by outcome
//! SELECT substr(timestamp, 1, 10) AS day, event, count(*) FROM audit_events
//!  WHERE event IN ('action_executed', 'action_failed') GROUP BY day, event ORDER BY day;
//! ```
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cxone_uuid_audit::signing::Signing;
use cxone_uuid_audit::{
    AuditError, AuditEvent, AuditSink, AuditSource, BreakReason, EventKind, Pending, Sealer,
    SyncMode, Verifier, VerifySummary,
};
use ed25519_dalek::VerifyingKey;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension as _};
use uuid::Uuid;

/// The schema version this build writes (`PRAGMA user_version`). Version 1 had no
/// `audit_events_recent`; opening it for writing migrates it, and readers accept both.
pub const SCHEMA_VERSION: i64 = 2;

const MIGRATION_1: &str = "
CREATE TABLE audit_events (
    seq                   INTEGER PRIMARY KEY,
    schema                INTEGER NOT NULL,
    timestamp             TEXT    NOT NULL,
    event                 TEXT    NOT NULL,
    run_id                TEXT    NOT NULL,
    uuid                  TEXT,
    action_id             TEXT,
    attempts              INTEGER,
    http_status           INTEGER,
    error                 TEXT,
    generation_latency_ms REAL,
    execution_latency_ms  REAL,
    total_latency_ms      REAL,
    uniqueness_rate       REAL,
    metadata              TEXT,
    prev_hash             TEXT    NOT NULL,
    hash                  TEXT    NOT NULL
);
CREATE INDEX audit_events_uuid ON audit_events(uuid);
CREATE INDEX audit_events_timestamp ON audit_events(timestamp);
CREATE INDEX audit_events_run_id ON audit_events(run_id);
CREATE INDEX audit_events_event_timestamp ON audit_events(event, timestamp);
-- The latest signed checkpoint, kept beside the trail so a cut tail is detectable.
CREATE TABLE audit_checkpoint_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    event TEXT NOT NULL
);
-- The latest state of each UUID.
CREATE VIEW uuid_status AS
SELECT e.uuid AS uuid,
       e.run_id AS run_id,
       CASE e.event WHEN 'action_executed' THEN 'succeeded'
                    WHEN 'action_failed' THEN 'failed'
                    ELSE 'pending' END AS status,
       e.attempts AS attempts,
       e.timestamp AS last_timestamp
  FROM audit_events e
  JOIN (SELECT uuid, MAX(seq) AS seq FROM audit_events
         WHERE uuid IS NOT NULL GROUP BY uuid) latest
    ON e.seq = latest.seq;
";

/// Version 2: new events land in an unindexed staging table and move into `audit_events` in
/// bulk (see [`MERGE_EVENTS`]); `audit_events_all` is both, for readers that must see everything.
const MIGRATION_2: &str = "
CREATE TABLE audit_events_recent (
    seq                   INTEGER PRIMARY KEY,
    schema                INTEGER NOT NULL,
    timestamp             TEXT    NOT NULL,
    event                 TEXT    NOT NULL,
    run_id                TEXT    NOT NULL,
    uuid                  TEXT,
    action_id             TEXT,
    attempts              INTEGER,
    http_status           INTEGER,
    error                 TEXT,
    generation_latency_ms REAL,
    execution_latency_ms  REAL,
    total_latency_ms      REAL,
    uniqueness_rate       REAL,
    metadata              TEXT,
    prev_hash             TEXT    NOT NULL,
    hash                  TEXT    NOT NULL
);
CREATE VIEW audit_events_all AS
SELECT * FROM audit_events UNION ALL SELECT * FROM audit_events_recent;
-- The latest state of each UUID, staged events included: a UUID with staged events takes its
-- state from them (they are newer than anything merged). `uuid` comes from the grouped
-- subquery so that `WHERE uuid = ?` reaches the index (version 1 scanned the whole index).
DROP VIEW uuid_status;
CREATE VIEW uuid_status AS
SELECT latest.uuid AS uuid,
       e.run_id AS run_id,
       CASE e.event WHEN 'action_executed' THEN 'succeeded'
                    WHEN 'action_failed' THEN 'failed'
                    ELSE 'pending' END AS status,
       e.attempts AS attempts,
       e.timestamp AS last_timestamp
  FROM (SELECT uuid, MAX(seq) AS seq FROM audit_events_recent
         WHERE uuid IS NOT NULL GROUP BY uuid) latest
  JOIN audit_events_recent e ON e.seq = latest.seq
UNION ALL
SELECT latest.uuid,
       e.run_id,
       CASE e.event WHEN 'action_executed' THEN 'succeeded'
                    WHEN 'action_failed' THEN 'failed'
                    ELSE 'pending' END,
       e.attempts,
       e.timestamp
  FROM (SELECT uuid, MAX(seq) AS seq FROM audit_events
         WHERE uuid IS NOT NULL GROUP BY uuid) latest
  JOIN audit_events e ON e.seq = latest.seq
 WHERE latest.uuid NOT IN (SELECT uuid FROM audit_events_recent WHERE uuid IS NOT NULL);
";

/// The page size of a database this sink creates (see `open_rw`).
pub const PAGE_SIZE: i64 = 16_384;

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

const MERGE: &str = "INSERT INTO audit_events SELECT * FROM audit_events_recent ORDER BY seq; \
    DELETE FROM audit_events_recent;";

const COLUMNS: &str = "seq, schema, timestamp, event, run_id, uuid, action_id, attempts, \
    http_status, error, generation_latency_ms, execution_latency_ms, total_latency_ms, \
    uniqueness_rate, metadata, prev_hash, hash";

/// One event row into `$table`, binding the columns in [`COLUMNS`] order.
macro_rules! insert_into {
    ($table:literal) => {
        concat!(
            "INSERT INTO ",
            $table,
            " (seq, schema, timestamp, event, run_id, uuid, action_id, attempts, http_status, \
             error, generation_latency_ms, execution_latency_ms, total_latency_ms, \
             uniqueness_rate, metadata, prev_hash, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
        )
    };
}

/// Appends to the staging table, as a live sink does.
const INSERT: &str = insert_into!("audit_events_recent");

/// Inserts straight into the indexed table, as an import does: it commits once at the end, so
/// staging would only copy every row twice.
const INSERT_INDEXED: &str = insert_into!("audit_events");

/// How a [`SqliteSink`] writes.
#[derive(Clone, Default)]
pub struct SqliteOptions {
    /// `None` turns SQLite's syncing off (a crash may lose recent events).
    pub sync: SyncMode,
    /// Sign checkpoints (at close, and every `signing.every` events).
    pub signing: Option<Signing>,
}

impl std::fmt::Debug for SqliteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOptions")
            .field("sync", &self.sync)
            .field("signing", &self.signing)
            .finish()
    }
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
    /// Events in `audit_events_recent` (committed or not), and when the oldest arrived.
    staged: u64,
    staged_since: Option<std::time::Instant>,
}

/// The sink spec naming the database at `path`, as errors and `describe` show it.
fn spec(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

fn backend(path: &Path) -> impl Fn(rusqlite::Error) -> AuditError + '_ {
    move |e| AuditError::Store {
        sink: spec(path),
        source: Box::new(e),
    }
}

/// Opens (creating, mode 0600, and migrating) the database at `path` for writing.
fn open_rw(path: &Path, sync: SyncMode) -> Result<Connection, AuditError> {
    let err = backend(path);
    let existed = path.exists();
    let conn = Connection::open(path).map_err(&err)?;
    #[cfg(unix)]
    if !existed {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = existed;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(&err)?;
    // 16 KiB pages instead of SQLite's 4 KiB: a move into `audit_events` dirties nearly every
    // leaf of the random-keyed `uuid` index whatever the page size, and larger pages mean a
    // quarter as many pages to find, split, checksum and write for the same bytes, and a
    // shallower tree to descend for each insert. The small, frequent commits of a live run touch
    // only the staging table's tail, so they do not pay for the larger page. SQLite applies
    // this to a new database only (in WAL mode the size is fixed); older ones keep theirs.
    conn.pragma_update(None, "page_size", PAGE_SIZE)
        .map_err(&err)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(&err)?;
    conn.pragma_update(None, "synchronous", sync_level(sync))
        .map_err(&err)?;
    // Each move inserts tens of thousands of random keys into the `uuid` index; when the index
    // does not stay in SQLite's cache between moves, every move reads it back from the file.
    // 256 MiB holds the index of a trail of about five million events. The cache grows only
    // as pages are used, so a small trail costs no more memory than before.
    conn.pragma_update(None, "cache_size", -262_144)
        .map_err(&err)?;
    // Checkpoint every 64 MiB of WAL (SQLite's default is 1,000 pages): one copy of
    // a page in the WAL then absorbs many commits' changes before it is written back into the
    // database file. Counted in pages, so derived from the file's actual page size.
    let page_size: i64 = conn
        .pragma_query_value(None, "page_size", |r| r.get(0))
        .map_err(&err)?;
    conn.pragma_update(None, "wal_autocheckpoint", (64 << 20) / page_size.max(512))
        .map_err(&err)?;
    migrate(&conn, path)?;
    Ok(conn)
}

fn sync_level(sync: SyncMode) -> &'static str {
    if sync == SyncMode::None {
        "OFF"
    } else {
        "FULL"
    }
}

fn migrate(conn: &Connection, path: &Path) -> Result<(), AuditError> {
    let err = backend(path);
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(&err)?;
    if version > SCHEMA_VERSION {
        return Err(AuditError::Config {
            sink: spec(path),
            message: format!(
                "schema version {version} was written by a newer cxone-uuid (this one knows {SCHEMA_VERSION}); upgrade"
            ),
        });
    }
    if version < 1 {
        conn.execute_batch(&format!(
            "BEGIN; {MIGRATION_1} PRAGMA user_version = 1; COMMIT;"
        ))
        .map_err(&err)?;
    }
    if version < 2 {
        conn.execute_batch(&format!(
            "BEGIN; {MIGRATION_2} PRAGMA user_version = 2; COMMIT;"
        ))
        .map_err(&err)?;
    }
    // Events staged by a writer that crashed: move them now, so that `audit_events` is whole
    // again before anything new is written. Checked first: even an empty move commits a page.
    let staged: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM audit_events_recent)",
            [],
            |r| r.get(0),
        )
        .map_err(&err)?;
    if staged {
        conn.execute_batch(&format!("BEGIN; {MERGE} COMMIT;"))
            .map_err(&err)?;
    }
    Ok(())
}

/// Opens an existing database read-only (for verify, query and resume). Readers read the view
/// `audit_events_all` and the table `audit_events_recent`, which a version 1 database lacks
/// (its `audit_events` was the whole trail): there they are made temporary and empty.
pub fn open_read(path: &Path) -> Result<Connection, AuditError> {
    let err = backend(path);
    if !path.exists() {
        return Err(AuditError::Config {
            sink: spec(path),
            message: "no such database".into(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(&err)?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(&err)?;
    if !(1..=SCHEMA_VERSION).contains(&version) {
        return Err(AuditError::Config {
            sink: spec(path),
            message: format!(
                "not a cxone-uuid audit database of schema 1 to {SCHEMA_VERSION} (user_version {version})"
            ),
        });
    }
    if version == 1 {
        conn.execute_batch(
            "CREATE TEMP TABLE audit_events_recent AS SELECT * FROM main.audit_events WHERE 0; \
             CREATE TEMP VIEW audit_events_all AS \
             SELECT * FROM main.audit_events UNION ALL SELECT * FROM temp.audit_events_recent;",
        )
        .map_err(&err)?;
    }
    Ok(conn)
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
        match self.inner.lock() {
            Ok(g) => (
                g.sealer.chain().last_seq(),
                g.sealer.chain().head_hash().to_string(),
            ),
            Err(_) => (0, String::new()),
        }
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
        for ev in batch {
            g.sealer.seal(ev, &mut g.sealed);
        }
        write_sealed(g, &self.path)
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
            commit(&mut g, &path)
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
            if let Some(cp) = g.sealer.finish() {
                g.sealed.push(cp);
                write_sealed(g, &self.path)?;
            }
            g.closed = true;
        }
        self.sync().await
    }

    fn describe(&self) -> String {
        spec(&self.path)
    }
}

fn last_checkpoint(conn: &Connection, path: &Path) -> Result<Option<AuditEvent>, AuditError> {
    let text: Option<String> = conn
        .query_row(
            "SELECT event FROM audit_checkpoint_head WHERE id = 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend(path))?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEvent> {
    let mut ev = AuditEvent::new(EventKind::RunStarted, Uuid::nil());
    fill_event(r, &mut ev)?;
    Ok(ev)
}

/// Overwrites `ev` with the row, reusing its strings' buffers: a verify pass decodes every row,
/// and five fresh allocations a row cost as much as the SQLite step itself.
fn fill_event(r: &rusqlite::Row<'_>, ev: &mut AuditEvent) -> rusqlite::Result<()> {
    fn conv<E: std::error::Error + Send + Sync + 'static>(i: usize, e: E) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    }
    fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Option<&'r str>> {
        Ok(r.get_ref(i)?.as_str_or_null()?)
    }
    fn set(dst: &mut String, src: &str) {
        dst.clear();
        dst.push_str(src);
    }
    fn set_opt(dst: &mut Option<String>, src: Option<&str>) {
        match (dst.as_mut(), src) {
            (Some(d), Some(s)) => set(d, s),
            (_, s) => *dst = s.map(str::to_owned),
        }
    }
    fn required<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
        Ok(r.get_ref(i)?.as_str()?)
    }
    ev.seq = r.get::<_, i64>(0)? as u64;
    ev.schema = r.get(1)?;
    set(&mut ev.timestamp, required(r, 2)?);
    let event = required(r, 3)?;
    ev.event = EventKind::from_name(event)
        .ok_or_else(|| conv(3, std::io::Error::other(format!("unknown event {event:?}"))))?;
    ev.run_id = Uuid::parse_str(required(r, 4)?).map_err(|e| conv(4, e))?;
    ev.uuid = text(r, 5)?
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|e| conv(5, e))?;
    set_opt(&mut ev.action_id, text(r, 6)?);
    ev.attempts = r.get(7)?;
    ev.http_status = r.get(8)?;
    set_opt(&mut ev.error, text(r, 9)?);
    ev.generation_latency_ms = r.get(10)?;
    ev.execution_latency_ms = r.get(11)?;
    ev.total_latency_ms = r.get(12)?;
    ev.uniqueness_rate = r.get(13)?;
    ev.metadata = text(r, 14)?
        .map(serde_json::from_str)
        .transpose()
        .map_err(|e| conv(14, e))?;
    set(&mut ev.prev_hash, required(r, 15)?);
    set(&mut ev.hash, required(r, 16)?);
    Ok(())
}

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

fn verify_split(
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
        let mut verifier = Verifier::new();
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

/// UUIDs whose latest submission-related event is `action_submitted`, in submission order.
///
/// One pass in seq order, keeping only the UUIDs still open: memory follows the number pending,
/// not the trail, and staged events are read as easily as merged ones (a per-UUID lookup would
/// scan the unindexed staging table once per candidate).
pub fn pending(path: &Path) -> Result<Vec<Pending>, AuditError> {
    let conn = open_read(path)?;
    let err = backend(path);
    // `+event` keeps SQLite on the rowid order instead of the event index and a sort.
    let mut stmt = conn
        .prepare(
            "SELECT seq, event, uuid, action_id, run_id FROM audit_events_all
              WHERE +event IN ('action_submitted', 'action_executed', 'action_failed')
                AND uuid IS NOT NULL
              ORDER BY seq",
        )
        .map_err(&err)?;
    let mut rows = stmt.query([]).map_err(&err)?;
    let parse = |s: &str| {
        Uuid::parse_str(s).map_err(|e| AuditError::Backend {
            sink: spec(path),
            message: format!("stored UUID {s:?} does not parse: {e}"),
        })
    };
    let mut open: std::collections::HashMap<Uuid, i64> = std::collections::HashMap::new();
    let mut by_seq: std::collections::BTreeMap<i64, Pending> = std::collections::BTreeMap::new();
    while let Some(r) = rows.next().map_err(&err)? {
        let seq: i64 = r.get(0).map_err(&err)?;
        let event: String = r.get(1).map_err(&err)?;
        let uuid = parse(&r.get::<_, String>(2).map_err(&err)?)?;
        if let Some(old) = open.remove(&uuid) {
            by_seq.remove(&old);
        }
        if event == "action_submitted" {
            let run_id = parse(&r.get::<_, String>(4).map_err(&err)?)?;
            let action_id: Option<String> = r.get(3).map_err(&err)?;
            open.insert(uuid, seq);
            by_seq.insert(
                seq,
                Pending {
                    uuid,
                    action_id,
                    run_id,
                },
            );
        }
    }
    Ok(by_seq.into_values().collect())
}

/// Filters for [`query`]. Every value is bound as a parameter, never spliced into SQL.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Events of this UUID.
    pub uuid: Option<String>,
    /// Events of this kind (`action_failed`, …).
    pub event: Option<String>,
    /// Events of this run.
    pub run_id: Option<String>,
    /// Events of UUIDs whose latest status (view `uuid_status`) is this.
    pub status: Option<String>,
    /// Events at or after this time (RFC 3339, or a prefix such as `2026-11-24`).
    pub since: Option<String>,
    /// Events before this time.
    pub until: Option<String>,
    /// At most this many events.
    pub limit: Option<u64>,
}

/// Events matching `q`, in seq order.
pub fn query(path: &Path, q: &Query) -> Result<Vec<AuditEvent>, AuditError> {
    let conn = open_read(path)?;
    let err = backend(path);
    let mut sql = format!("SELECT {COLUMNS} FROM audit_events_all WHERE 1 = 1");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    let mut filter = |clause: &str, v: &Option<String>| {
        if let Some(v) = v {
            sql.push_str(clause);
            args.push(rusqlite::types::Value::Text(v.clone()));
        }
    };
    filter(" AND uuid = ?", &q.uuid);
    filter(" AND event = ?", &q.event);
    filter(" AND run_id = ?", &q.run_id);
    filter(
        " AND uuid IN (SELECT uuid FROM uuid_status WHERE status = ?)",
        &q.status,
    );
    filter(" AND timestamp >= ?", &q.since);
    filter(" AND timestamp < ?", &q.until);
    sql.push_str(" ORDER BY seq LIMIT ?");
    args.push(rusqlite::types::Value::Integer(
        q.limit.map_or(-1, |l| l.min(i64::MAX as u64) as i64),
    ));
    let mut stmt = conn.prepare(&sql).map_err(&err)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args), row_to_event)
        .map_err(&err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(&err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn run_events(run: Uuid, uuids: &[Uuid]) -> Vec<AuditEvent> {
        let mut out = vec![AuditEvent::new(EventKind::RunStarted, run)];
        for (i, u) in uuids.iter().enumerate() {
            for kind in [EventKind::UuidGenerated, EventKind::ActionSubmitted] {
                let mut e = AuditEvent::new(kind, run);
                e.uuid = Some(*u);
                e.action_id = Some("a-1".into());
                out.push(e);
            }
            if i % 3 != 2 {
                let kind = if i % 3 == 0 {
                    EventKind::ActionExecuted
                } else {
                    EventKind::ActionFailed
                };
                let mut e = AuditEvent::new(kind, run);
                e.uuid = Some(*u);
                e.attempts = Some(2);
                e.http_status = Some(if i % 3 == 0 { 200 } else { 500 });
                e.execution_latency_ms = Some(12.345_678);
                let mut md = serde_json::Map::new();
                md.insert("version".into(), 4.into());
                e.metadata = Some(md);
                out.push(e);
            }
        }
        out
    }

    #[tokio::test]
    async fn writes_verify_resume_pending_and_status() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let uuids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
        let run = Uuid::now_v7();
        for half in [&uuids[..3], &uuids[3..]] {
            let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
            sink.append(&run_events(run, half)).await.unwrap();
            sink.close().await.unwrap();
        }
        let s = verify(&p, None).unwrap();
        assert_eq!(s.events, 2 + 6 * 2 + 4);
        let pend = pending(&p).unwrap();
        assert_eq!(
            pend.iter().map(|p| p.uuid).collect::<Vec<_>>(),
            vec![uuids[2], uuids[5]]
        );
        let failed = query(
            &p,
            &Query {
                status: Some("failed".into()),
                event: Some("action_failed".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(failed.len(), 2);
        assert_eq!(failed[0].http_status, Some(500));
        assert_eq!(failed[0].execution_latency_ms, Some(12.346));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    fn count(p: &Path, table: &str) -> i64 {
        Connection::open(p)
            .unwrap()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn staged_events_are_read_before_their_merge_and_merged_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let uuids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
        let run = Uuid::now_v7();
        let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
        sink.append(&run_events(run, &uuids)).await.unwrap();
        sink.sync().await.unwrap();
        // Committed but not merged yet: a live run, or a crash right now.
        let total = 1 + 6 * 2 + 4;
        assert_eq!(count(&p, "audit_events"), 0);
        assert_eq!(count(&p, "audit_events_recent"), total);
        assert_eq!(count(&p, "audit_events_all"), total);
        assert_eq!(verify(&p, None).unwrap().events, total as u64);
        let pend = pending(&p).unwrap();
        assert_eq!(
            pend.iter().map(|p| p.uuid).collect::<Vec<_>>(),
            vec![uuids[2], uuids[5]]
        );
        let failed = query(
            &p,
            &Query {
                status: Some("failed".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(failed.len(), 2 * 3, "both failed UUIDs, three events each");
        let state: String = Connection::open(&p)
            .unwrap()
            .query_row(
                "SELECT status FROM uuid_status WHERE uuid = ?1",
                [uuids[0].to_string()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(state, "succeeded");

        // The process dies without closing: the next writer merges before it appends.
        drop(sink);
        let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
        assert_eq!(count(&p, "audit_events"), total);
        assert_eq!(count(&p, "audit_events_recent"), 0);
        assert_eq!(sink.head().0, total as u64);
        sink.append(&run_events(Uuid::now_v7(), &[Uuid::new_v4()]))
            .await
            .unwrap();
        sink.close().await.unwrap();
        assert_eq!(count(&p, "audit_events_recent"), 0, "close merges");
        assert_eq!(verify(&p, None).unwrap().events, total as u64 + 4);

        // A copy of an old event planted in the staging table breaks the chain where it sits.
        Connection::open(&p)
            .unwrap()
            .execute(
                "INSERT INTO audit_events_recent SELECT * FROM audit_events WHERE seq = 3",
                [],
            )
            .unwrap();
        let err = verify(&p, None).unwrap_err();
        assert!(matches!(err, AuditError::Chain { seq: 3, .. }), "{err}");
    }

    #[tokio::test]
    async fn a_live_sink_merges_once_its_oldest_staged_event_has_waited() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
        let run = Uuid::now_v7();
        sink.append(&run_events(run, &[Uuid::new_v4()]))
            .await
            .unwrap();
        sink.sync().await.unwrap();
        assert_eq!(count(&p, "audit_events"), 0);
        tokio::time::sleep(MERGE_AFTER + std::time::Duration::from_millis(100)).await;
        sink.append(&run_events(run, &[Uuid::new_v4()]))
            .await
            .unwrap();
        sink.sync().await.unwrap();
        assert_eq!(count(&p, "audit_events"), 8);
        assert_eq!(count(&p, "audit_events_recent"), 0);
        sink.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_version_1_database_is_read_as_it_is_and_migrated_by_the_next_writer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let uuids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
        sink.append(&run_events(Uuid::now_v7(), &uuids))
            .await
            .unwrap();
        sink.close().await.unwrap();
        // Turn it back into what version 1 wrote.
        let v1_view = &MIGRATION_1[MIGRATION_1.find("CREATE VIEW uuid_status").unwrap()..];
        Connection::open(&p)
            .unwrap()
            .execute_batch(&format!(
                "DROP VIEW uuid_status; DROP VIEW audit_events_all; \
                 DROP TABLE audit_events_recent; {v1_view} PRAGMA user_version = 1;"
            ))
            .unwrap();
        assert_eq!(verify(&p, None).unwrap().events, 9);
        assert_eq!(pending(&p).unwrap().len(), 1);
        assert_eq!(query(&p, &Query::default()).unwrap().len(), 9);

        let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
        sink.append(&run_events(Uuid::now_v7(), &[Uuid::new_v4()]))
            .await
            .unwrap();
        sink.close().await.unwrap();
        let conn = Connection::open(&p).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(verify(&p, None).unwrap().events, 13);
        assert_eq!(pending(&p).unwrap().len(), 1);
    }

    fn page_size(p: &Path) -> i64 {
        Connection::open(p)
            .unwrap()
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap()
    }

    #[tokio::test]
    async fn a_new_database_gets_large_pages_and_an_older_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
        sink.append(&run_events(Uuid::now_v7(), &[Uuid::new_v4()]))
            .await
            .unwrap();
        sink.close().await.unwrap();
        drop(sink);
        assert_eq!(page_size(&p), PAGE_SIZE);

        // A trail written before the change (SQLite's 4 KiB pages) is appended to as it is.
        Connection::open(&p)
            .unwrap()
            .execute_batch(
                "PRAGMA journal_mode = DELETE; PRAGMA page_size = 4096; VACUUM; \
                 PRAGMA journal_mode = WAL;",
            )
            .unwrap();
        assert_eq!(page_size(&p), 4096);
        let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
        sink.append(&run_events(Uuid::now_v7(), &[Uuid::new_v4()]))
            .await
            .unwrap();
        sink.close().await.unwrap();
        drop(sink);
        assert_eq!(page_size(&p), 4096);
        assert_eq!(verify(&p, None).unwrap().events, 8);
    }

    #[tokio::test]
    async fn sql_injection_in_filters_is_inert() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
        sink.append(&run_events(Uuid::now_v7(), &[Uuid::new_v4()]))
            .await
            .unwrap();
        sink.close().await.unwrap();
        let evil = [
            "' OR '1'='1",
            "x'; DROP TABLE audit_events; --",
            "\" OR 1=1 --",
            "1) OR (1=1",
        ];
        for e in evil {
            for q in [
                Query {
                    uuid: Some(e.into()),
                    ..Default::default()
                },
                Query {
                    event: Some(e.into()),
                    ..Default::default()
                },
                Query {
                    run_id: Some(e.into()),
                    ..Default::default()
                },
                Query {
                    status: Some(e.into()),
                    ..Default::default()
                },
                Query {
                    until: Some(e.into()),
                    since: Some(e.into()),
                    ..Default::default()
                },
            ] {
                assert!(query(&p, &q).unwrap().is_empty(), "{q:?}");
            }
        }
        assert_eq!(verify(&p, None).unwrap().events, 4, "table intact");
    }

    #[tokio::test]
    async fn an_edited_row_is_found_and_a_signed_tail_cut_fails() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let key = Arc::new(cxone_uuid_audit::signing::generate_signing_key().unwrap());
        let opts = SqliteOptions {
            signing: Some(Signing {
                key: key.clone(),
                every: Some(2),
            }),
            ..Default::default()
        };
        let sink = SqliteSink::open(&p, opts).unwrap();
        sink.append(&run_events(
            Uuid::now_v7(),
            &[Uuid::new_v4(), Uuid::new_v4()],
        ))
        .await
        .unwrap();
        sink.close().await.unwrap();
        verify(&p, Some(key.verifying_key())).unwrap();
        let conn = Connection::open(&p).unwrap();
        conn.execute("DELETE FROM audit_events WHERE seq > 4", [])
            .unwrap();
        let err = verify(&p, Some(key.verifying_key())).unwrap_err();
        assert!(
            matches!(
                err,
                AuditError::Chain {
                    reason: BreakReason::Checkpoint(
                        cxone_uuid_audit::CheckpointError::TailCut { .. }
                    ),
                    ..
                }
            ),
            "{err}"
        );
        conn.execute("UPDATE audit_events SET error = 'x' WHERE seq = 2", [])
            .unwrap();
        let err = verify(&p, None).unwrap_err();
        assert!(matches!(err, AuditError::Chain { seq: 2, .. }), "{err}");
    }

    #[tokio::test]
    async fn a_split_verify_finds_exactly_what_one_pass_finds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.db");
        let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
        let uuids: Vec<Uuid> = (0..40).map(|_| Uuid::new_v4()).collect();
        sink.append(&run_events(Uuid::now_v7(), &uuids))
            .await
            .unwrap();
        sink.close().await.unwrap();
        let one_pass = verify_split(&p, None, 1, 0).unwrap();
        assert_eq!(one_pass.events, 1 + 40 * 2 + 27);
        for threads in [2, 3, 4] {
            assert_eq!(verify_split(&p, None, threads, 0).unwrap(), one_pass);
        }

        let conn = Connection::open(&p).unwrap();
        let total = i64::try_from(one_pass.events).unwrap();
        // With 3 ranges of 36 the boundaries sit after seq 36 and 72: damage in the first
        // range, on the row a later range starts from, inside a later range, and a gap.
        for (seq, damage) in [
            (5, "UPDATE audit_events SET error = 'edited' WHERE seq = ?1"),
            (36, "UPDATE audit_events SET timestamp = 'x' WHERE seq = ?1"),
            (
                37,
                "UPDATE audit_events SET prev_hash = hash WHERE seq = ?1",
            ),
            (
                80,
                "UPDATE audit_events SET http_status = 201 WHERE seq = ?1",
            ),
            (total, "DELETE FROM audit_events WHERE seq = ?1 - 1"),
        ] {
            let copy = dir.path().join(format!("damaged-{seq}.db"));
            conn.execute("VACUUM INTO ?1", [copy.to_str().unwrap()])
                .unwrap();
            Connection::open(&copy)
                .unwrap()
                .execute(damage, [seq])
                .unwrap();
            let expected = verify_split(&copy, None, 1, 0).unwrap_err().to_string();
            for threads in [2, 3] {
                let got = verify_split(&copy, None, threads, 0)
                    .unwrap_err()
                    .to_string();
                assert_eq!(got, expected, "damage at seq {seq}, {threads} threads");
            }
            assert!(
                expected.contains(&format!("{}", seq.min(total))),
                "{expected}"
            );
        }
    }
}
