//! A persistent uniqueness registry in one SQLite file: a UUID handed out by any earlier run (or
//! any process on this machine sharing the file) is a duplicate.
//!
//! Key design decisions:
//! - Each UUID is a 16-byte BLOB primary key of a `WITHOUT ROWID` table, so the B-tree *is* the
//!   set: no second index, no text form (a hyphenated string would double the file).
//! - A batch is checked and inserted in one `BEGIN IMMEDIATE` transaction with one prepared
//!   `INSERT OR IGNORE` per UUID; `changes()` says whether the row was new. The write lock is
//!   taken up front so two processes on one file queue on `busy_timeout` instead of failing a
//!   read-to-write upgrade, and one commit (one fsync) is paid per batch, not per UUID.
//! - WAL journal: readers never block the writer and commits are sequential appends.
//! - rusqlite is blocking, so every call runs on tokio's blocking pool (`spawn_blocking`) and the
//!   async executor never stalls on disk I/O.
//!
//! Throughput: a batch is inserted in key order, but v4 keys are uniformly random, so once the
//! table holds a few hundred thousand UUIDs nearly every insert dirties its own leaf page and the
//! commit (writing those pages to the WAL) dominates. Expect hundreds of thousands of checks per
//! second on a small file, falling as it grows (see `benches/`); version 7 UUIDs are
//! time-ordered and append to the end of the tree, which stays fast. Several processes may share
//! one file: the write lock makes their batches take turns.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cxone_uuid_core::{Novelty, Registry, RegistryError};
use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};
use uuid::Uuid;

/// How hard a commit pushes the batch to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = FULL`: a committed batch survives power loss. The default, because a
    /// forgotten batch is a UUID a later run could hand out again.
    #[default]
    Full,
    /// `synchronous = NORMAL`: survives a process crash; the last batches may be lost on power
    /// loss. For scratch files and benchmarks.
    Normal,
}

/// Settings for [`SqliteRegistry`]; build with [`SqliteRegistry::builder`].
#[derive(Debug, Clone)]
pub struct SqliteRegistryBuilder {
    path: PathBuf,
    durability: Durability,
    busy_timeout: Duration,
}

impl SqliteRegistryBuilder {
    /// Sets how hard each commit is flushed (default [`Durability::Full`]).
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// How long to wait for another process holding the write lock (default 30 s).
    #[must_use]
    pub fn with_busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// Opens (creating if needed) the file and its table.
    ///
    /// # Errors
    /// [`RegistryError::Unavailable`] when the file cannot be opened or created, and
    /// [`RegistryError::Protocol`] when it is not a registry database (or is corrupt).
    pub async fn open(self) -> Result<SqliteRegistry, RegistryError> {
        let describe = format!("sqlite:{}", self.path.display());
        let d = describe.clone();
        let conn = tokio::task::spawn_blocking(move || open_connection(&self, &d))
            .await
            .map_err(|e| unavailable(&describe, format!("the opening task failed: {e}")))??;
        Ok(SqliteRegistry {
            conn: Arc::new(Mutex::new(conn)),
            describe,
        })
    }
}

/// A uniqueness registry backed by one SQLite file. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct SqliteRegistry {
    // One connection behind a mutex: SQLite serialises writers anyway, and one connection keeps
    // the prepared statement cached across batches.
    conn: Arc<Mutex<Connection>>,
    describe: String,
}

impl std::fmt::Debug for SqliteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteRegistry")
            .field("file", &self.describe)
            .finish_non_exhaustive()
    }
}

impl SqliteRegistry {
    /// Starts building a registry stored at `path`.
    pub fn builder(path: impl AsRef<Path>) -> SqliteRegistryBuilder {
        SqliteRegistryBuilder {
            path: path.as_ref().to_path_buf(),
            durability: Durability::default(),
            busy_timeout: Duration::from_secs(30),
        }
    }

    /// Opens the registry at `path` with the default settings.
    ///
    /// # Errors
    /// As [`SqliteRegistryBuilder::open`].
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, RegistryError> {
        Self::builder(path).open().await
    }

    async fn with_conn<T, F>(&self, work: F) -> Result<T, RegistryError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection, &str) -> Result<T, RegistryError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let describe = self.describe.clone();
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a half-done batch committed (the
            // transaction rolls back on drop), so a poisoned lock is safe to reuse.
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut guard, &describe)
        })
        .await
        .map_err(|e| unavailable(&self.describe, format!("the registry task failed: {e}")))?
    }
}

/// Page cache (KiB). Random 16-byte keys touch leaf pages all over the B-tree, so once the table
/// outgrows SQLite's 2 MiB default every insert pays a read; 64 MiB holds the working set of
/// about two million UUIDs, and is only allocated as it fills.
const CACHE_KIB: u32 = 64 * 1024;

/// WAL pages before a checkpoint copies them into the database (SQLite's default is 1000).
/// A batch of random keys dirties thousands of distinct leaves; checkpointing rarely lets one
/// copy of a leaf absorb many batches' inserts instead of rewriting it after every commit.
const CHECKPOINT_PAGES: u32 = 16_384;

/// Pages are read through a memory map up to this size, without a system call each: the
/// leaves a batch of random keys touches are scattered over the whole file.
const MMAP_BYTES: u64 = 256 << 20;

const INSERT: &str = "INSERT OR IGNORE INTO uuids (id) VALUES (?1)";

fn open_connection(
    settings: &SqliteRegistryBuilder,
    describe: &str,
) -> Result<Connection, RegistryError> {
    let conn = Connection::open_with_flags(
        &settings.path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| map_err(describe, &e))?;
    conn.busy_timeout(settings.busy_timeout)
        .map_err(|e| map_err(describe, &e))?;
    let sync = match settings.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {sync};
         PRAGMA cache_size = -{CACHE_KIB};
         PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES};
         PRAGMA mmap_size = {MMAP_BYTES};
         CREATE TABLE IF NOT EXISTS uuids (id BLOB PRIMARY KEY NOT NULL) WITHOUT ROWID;"
    ))
    .map_err(|e| map_err(describe, &e))?;
    // A file made by something else could have a `uuids` table of another shape: check the
    // column, so we never answer "new" for a UUID stored as text by another tool.
    let shape: Vec<(String, String)> = conn
        .prepare("SELECT name, type FROM pragma_table_info('uuids')")
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| map_err(describe, &e))?;
    if shape != [("id".to_string(), "BLOB".to_string())] {
        return Err(RegistryError::Protocol {
            registry: describe.to_string(),
            message: format!(
                "table `uuids` has columns {shape:?}, expected one BLOB column `id`: \
                 point --registry at a file made by cxone-uuid"
            ),
        });
    }
    conn.set_prepared_statement_cache_capacity(4);
    Ok(conn)
}

fn check_and_insert_blocking(
    conn: &mut Connection,
    describe: &str,
    ids: &[[u8; 16]],
) -> Result<Vec<Novelty>, RegistryError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| map_err(describe, &e))?;
    // Insert in key order so consecutive inserts land on the same or neighbouring leaves (one
    // page walk instead of many); the answers go back in the caller's order. The sort is
    // stable, so of two equal keys the earlier one is inserted first and is the `New` one.
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i]);
    let mut out = vec![Novelty::Duplicate; ids.len()];
    {
        let mut stmt = tx
            .prepare_cached(INSERT)
            .map_err(|e| map_err(describe, &e))?;
        for i in order {
            let changed = stmt
                .execute([&ids[i][..]])
                .map_err(|e| map_err(describe, &e))?;
            if changed == 1 {
                out[i] = Novelty::New;
            }
        }
    }
    tx.commit().map_err(|e| map_err(describe, &e))?;
    Ok(out)
}

#[async_trait]
impl Registry for SqliteRegistry {
    async fn check_and_insert(&self, ids: &[Uuid]) -> Result<Vec<Novelty>, RegistryError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<[u8; 16]> = ids.iter().map(|u| *u.as_bytes()).collect();
        self.with_conn(move |conn, describe| check_and_insert_blocking(conn, describe, &keys))
            .await
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    /// A batch's commit writes every B-tree page the batch touched, and random keys touch pages
    /// all over the tree: with a million UUIDs held (about 6,700 leaf pages), 4,096 keys dirty
    /// about 3,000 pages and 32,768 nearly all 6,700, so eight times the UUIDs cost about twice
    /// the writing. Measured in `benches/`.
    fn preferred_batch(&self) -> usize {
        32_768
    }

    /// Counts the rows: a scan of the B-tree, milliseconds per million rows.
    async fn len(&self) -> Result<Option<u64>, RegistryError> {
        self.with_conn(|conn, describe| {
            conn.query_row("SELECT COUNT(*) FROM uuids", [], |r| r.get::<_, u64>(0))
                .map(Some)
                .map_err(|e| map_err(describe, &e))
        })
        .await
    }
}

fn unavailable(describe: &str, message: String) -> RegistryError {
    RegistryError::Unavailable {
        registry: describe.to_string(),
        message,
    }
}

/// A corrupt or foreign file is a protocol error (retrying will not help); anything else (I/O,
/// permissions, a lock held too long) means the store is unavailable.
fn map_err(describe: &str, err: &rusqlite::Error) -> RegistryError {
    match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => RegistryError::Protocol {
            registry: describe.to_string(),
            message: format!("{err}: the file is not a usable SQLite registry"),
        },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => unavailable(
            describe,
            format!("{err}: another process held the file's write lock too long"),
        ),
        _ => unavailable(describe, err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn foreign_table_shape_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE uuids (id TEXT PRIMARY KEY, note TEXT)")
            .unwrap();
        let err = SqliteRegistry::open(&path).await.unwrap_err();
        assert!(matches!(err, RegistryError::Protocol { .. }), "{err}");
        assert!(err.to_string().contains("uuids"), "{err}");
    }
}
