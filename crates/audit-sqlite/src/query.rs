//! Questions asked of a trail: which UUIDs are pending, and a filtered query.

use std::path::Path;

use cxone_uuid_audit::{AuditError, AuditEvent, Pending};
use uuid::Uuid;

use crate::schema::{open_read, row_to_event, COLUMNS};
use crate::{backend, spec};

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
