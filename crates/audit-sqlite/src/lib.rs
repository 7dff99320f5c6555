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

mod query;
mod report;
mod schema;
mod sink;
mod verify;

use std::path::Path;

use cxone_uuid_audit::AuditError;

pub use query::{pending, query, Query};
pub use report::{figures, Day, Figures, Quantiles, Reason, ReportFilter, RunRow, Totals};
pub use schema::{open_read, Anchor, PAGE_SIZE, SCHEMA_VERSION};
pub use sink::{SqliteOptions, SqliteSink, MERGE_AFTER, MERGE_EVENTS};
pub use verify::{anchor, verify, SqliteSource};

/// The sink spec naming the database at `path`, as errors and `describe` show it.
pub(crate) fn spec(path: &Path) -> String {
    format!("sqlite:{}", path.display())
}

pub(crate) fn backend(path: &Path) -> impl Fn(rusqlite::Error) -> AuditError + '_ {
    move |e| AuditError::Store {
        sink: spec(path),
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests;
