//! The schema and its migrations, opening a database to write or to read, and rows as events.

use std::path::Path;

use cxone_uuid_audit::{AuditError, AuditEvent, EventKind, SyncMode};
use rusqlite::{Connection, OpenFlags, OptionalExtension as _};
use uuid::Uuid;

use crate::{backend, spec};

/// The schema version this build writes (`PRAGMA user_version`). Version 1 had no
/// `audit_events_recent`, version 2 no `correlation_id`, `wait_ms` and `ambiguous_attempts`,
/// version 3 no `audit_anchor`; opening an older database for writing migrates it, and readers
/// accept every version as it is.
pub const SCHEMA_VERSION: i64 = 4;

pub(crate) const MIGRATION_1: &str = "
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

/// Version 3: the events' `correlation_id`, `wait_ms` and `ambiguous_attempts`, added at the end of both tables so that
/// the move (`INSERT ... SELECT *`) still lines the columns up; `audit_events_all` is made again
/// so its `*` takes them in.
const MIGRATION_3: &str = "
ALTER TABLE audit_events ADD COLUMN correlation_id TEXT;
ALTER TABLE audit_events ADD COLUMN wait_ms REAL;
ALTER TABLE audit_events ADD COLUMN ambiguous_attempts INTEGER;
ALTER TABLE audit_events_recent ADD COLUMN correlation_id TEXT;
ALTER TABLE audit_events_recent ADD COLUMN wait_ms REAL;
ALTER TABLE audit_events_recent ADD COLUMN ambiguous_attempts INTEGER;
DROP VIEW audit_events_all;
CREATE VIEW audit_events_all AS
SELECT * FROM audit_events UNION ALL SELECT * FROM audit_events_recent;
";

/// Version 4: where a partial copy starts. An import of part of an S3 archive (`--since`,
/// `--run-id`) holds seqs from the middle of a chain; the row records the first seq and the
/// hash it continues, so that verify and later imports resume the chain there instead of
/// calling the copy broken. A whole trail has no row. A temporary table stands in for older
/// versions read read-only.
const MIGRATION_4: &str = "
CREATE TABLE audit_anchor (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    seq       INTEGER NOT NULL,
    prev_hash TEXT NOT NULL,
    source    TEXT NOT NULL
);
";

const ANCHOR_STAND_IN: &str =
    "CREATE TEMP TABLE audit_anchor (id INTEGER, seq INTEGER, prev_hash TEXT, source TEXT);";

/// The columns version 3 added, as a read-only reader of an older database supplies them.
const V3_COLUMNS_AS_NULL: &str =
    "NULL AS correlation_id, NULL AS wait_ms, NULL AS ambiguous_attempts";

/// The page size of a database this sink creates (see `open_rw`).
pub const PAGE_SIZE: i64 = 16_384;

pub(crate) const MERGE: &str =
    "INSERT INTO audit_events SELECT * FROM audit_events_recent ORDER BY seq; \
    DELETE FROM audit_events_recent;";

pub(crate) const COLUMNS: &str =
    "seq, schema, timestamp, event, run_id, uuid, action_id, attempts, \
    http_status, error, generation_latency_ms, execution_latency_ms, total_latency_ms, \
    uniqueness_rate, metadata, prev_hash, hash, correlation_id, wait_ms, ambiguous_attempts";

/// One event row into `$table`, binding the columns in [`COLUMNS`] order.
macro_rules! insert_into {
    ($table:literal) => {
        concat!(
            "INSERT INTO ",
            $table,
            " (seq, schema, timestamp, event, run_id, uuid, action_id, attempts, http_status, \
             error, generation_latency_ms, execution_latency_ms, total_latency_ms, \
             uniqueness_rate, metadata, prev_hash, hash, correlation_id, wait_ms, \
             ambiguous_attempts) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
             ?18, ?19, ?20)"
        )
    };
}

/// Appends to the staging table, as a live sink does.
pub(crate) const INSERT: &str = insert_into!("audit_events_recent");

/// Inserts straight into the indexed table, as an import does: it commits once at the end, so
/// staging would only copy every row twice.
pub(crate) const INSERT_INDEXED: &str = insert_into!("audit_events");

/// Opens (creating, mode 0600, and migrating) the database at `path` for writing.
pub(crate) fn open_rw(path: &Path, sync: SyncMode) -> Result<Connection, AuditError> {
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
    if version < 3 {
        conn.execute_batch(&format!(
            "BEGIN; {MIGRATION_3} PRAGMA user_version = 3; COMMIT;"
        ))
        .map_err(&err)?;
    }
    if version < 4 {
        conn.execute_batch(&format!(
            "BEGIN; {MIGRATION_4} PRAGMA user_version = 4; COMMIT;"
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
    // Older schemas cannot be migrated through a read-only handle: temporary views of the same
    // names (the temp schema is searched first) give readers the current columns, those a
    // version lacks as NULL.
    let views = match version {
        1 => format!(
            "CREATE TEMP VIEW audit_events AS SELECT *, {V3_COLUMNS_AS_NULL} FROM main.audit_events; \
             CREATE TEMP TABLE audit_events_recent AS SELECT * FROM temp.audit_events WHERE 0; \
             CREATE TEMP VIEW audit_events_all AS \
             SELECT * FROM temp.audit_events UNION ALL SELECT * FROM temp.audit_events_recent; \
             {ANCHOR_STAND_IN}"
        ),
        2 => format!(
            "CREATE TEMP VIEW audit_events AS SELECT *, {V3_COLUMNS_AS_NULL} FROM main.audit_events; \
             CREATE TEMP VIEW audit_events_recent AS \
             SELECT *, {V3_COLUMNS_AS_NULL} FROM main.audit_events_recent; \
             CREATE TEMP VIEW audit_events_all AS \
             SELECT * FROM temp.audit_events UNION ALL SELECT * FROM temp.audit_events_recent; \
             {ANCHOR_STAND_IN}"
        ),
        3 => ANCHOR_STAND_IN.to_string(),
        _ => String::new(),
    };
    conn.execute_batch(&views).map_err(&err)?;
    Ok(conn)
}

pub(crate) fn last_checkpoint(
    conn: &Connection,
    path: &Path,
) -> Result<Option<AuditEvent>, AuditError> {
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

pub(crate) fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEvent> {
    let mut ev = AuditEvent::new(EventKind::RunStarted, Uuid::nil());
    fill_event(r, &mut ev)?;
    Ok(ev)
}

/// Overwrites `ev` with the row, reusing its strings' buffers: a verify pass decodes every row,
/// and five fresh allocations a row cost as much as the SQLite step itself.
pub(crate) fn fill_event(r: &rusqlite::Row<'_>, ev: &mut AuditEvent) -> rusqlite::Result<()> {
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
    set_opt(&mut ev.correlation_id, text(r, 17)?);
    ev.wait_ms = r.get(18)?;
    ev.ambiguous_attempts = r.get(19)?;
    Ok(())
}

/// Where a partial copy of a trail starts (see the `audit_anchor` table): its first seq, the
/// hash of the event before it, and the archive it was copied from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Anchor {
    /// The first seq the database holds.
    pub first_seq: u64,
    /// The hash of the event before it, which the first event's `prev_hash` must be.
    pub prev_hash: String,
    /// The archive the copy was made from (`s3://BUCKET/PREFIX`).
    pub source: String,
}

impl Anchor {
    /// The chain head a verifier or sealer resumes from: the seq and hash just before the copy.
    pub fn head(&self) -> (u64, String) {
        (self.first_seq.saturating_sub(1), self.prev_hash.clone())
    }
}

pub(crate) fn anchor(conn: &Connection, path: &Path) -> Result<Option<Anchor>, AuditError> {
    conn.query_row(
        "SELECT seq, prev_hash, source FROM audit_anchor WHERE id = 1",
        [],
        |r| {
            Ok(Anchor {
                first_seq: r.get::<_, i64>(0)? as u64,
                prev_hash: r.get(1)?,
                source: r.get(2)?,
            })
        },
    )
    .optional()
    .map_err(backend(path))
}
