//! Scenario tests of the sink, its staging, migrations, verify and query.

#![allow(clippy::unwrap_used)]
use std::path::Path;
use std::sync::Arc;

use cxone_uuid_audit::signing::Signing;
use cxone_uuid_audit::{
    AuditError, AuditEvent, AuditSink, AuditSource as _, BreakReason, EventKind,
};
use rusqlite::Connection;
use uuid::Uuid;

use super::*;
use crate::schema::MIGRATION_1;
use crate::verify::verify_split;

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
            e.wait_ms = Some(0.5);
            e.correlation_id = Some(format!("corr-{i}"));
            e.ambiguous_attempts = Some(1);
            let mut md = serde_json::Map::new();
            md.insert("version".into(), 4.into());
            e.metadata = Some(md);
            out.push(e);
        }
    }
    out
}

/// Resuming, verifying and pending are the conformance suite's (tests/conformance.rs); queries
/// over a resumed database and the file mode are SQLite's own.
#[tokio::test]
async fn a_resumed_database_answers_queries_and_is_0600() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.db");
    let uuids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    let run = Uuid::now_v7();
    for half in [&uuids[..3], &uuids[3..]] {
        let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
        sink.append(&run_events(run, half)).await.unwrap();
        sink.close().await.unwrap();
    }
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

/// Events as versions 1 and 2 could hold them: without the fields version 3 added.
fn version_2_events(mut evs: Vec<AuditEvent>) -> Vec<AuditEvent> {
    for e in &mut evs {
        e.correlation_id = None;
        e.wait_ms = None;
        e.ambiguous_attempts = None;
    }
    evs
}

#[tokio::test]
async fn a_version_1_database_is_read_as_it_is_and_migrated_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.db");
    let uuids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
    sink.append(&version_2_events(run_events(Uuid::now_v7(), &uuids)))
        .await
        .unwrap();
    sink.close().await.unwrap();
    // Turn it back into what version 1 wrote.
    let v1_view = &MIGRATION_1[MIGRATION_1.find("CREATE VIEW uuid_status").unwrap()..];
    Connection::open(&p)
        .unwrap()
        .execute_batch(&format!(
            "DROP VIEW uuid_status; DROP VIEW audit_events_all; DROP TABLE audit_anchor; \
             DROP TABLE audit_events_recent; {v1_view} \
             ALTER TABLE audit_events DROP COLUMN correlation_id; \
             ALTER TABLE audit_events DROP COLUMN wait_ms; \
             ALTER TABLE audit_events DROP COLUMN ambiguous_attempts; PRAGMA user_version = 1;"
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

#[tokio::test]
async fn a_version_2_database_is_read_as_it_is_and_migrated_by_the_next_writer() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.db");
    let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
    let uuids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    sink.append(&version_2_events(run_events(Uuid::now_v7(), &uuids)))
        .await
        .unwrap();
    sink.close().await.unwrap();
    drop(sink);
    Connection::open(&p)
        .unwrap()
        .execute_batch(
            "DROP VIEW audit_events_all; DROP TABLE audit_anchor; \
             ALTER TABLE audit_events DROP COLUMN correlation_id; \
             ALTER TABLE audit_events DROP COLUMN wait_ms; \
             ALTER TABLE audit_events_recent DROP COLUMN correlation_id; \
             ALTER TABLE audit_events_recent DROP COLUMN wait_ms; \
             ALTER TABLE audit_events DROP COLUMN ambiguous_attempts; \
             ALTER TABLE audit_events_recent DROP COLUMN ambiguous_attempts; \
             CREATE VIEW audit_events_all AS \
             SELECT * FROM audit_events UNION ALL SELECT * FROM audit_events_recent; \
             PRAGMA user_version = 2;",
        )
        .unwrap();
    assert_eq!(verify(&p, None).unwrap().events, 9);
    assert_eq!(pending(&p).unwrap().len(), 1);
    assert_eq!(query(&p, &Query::default()).unwrap().len(), 9);

    let sink = SqliteSink::open(&p, SqliteOptions::default()).unwrap();
    let u = Uuid::new_v4();
    sink.append(&run_events(Uuid::now_v7(), &[u]))
        .await
        .unwrap();
    sink.close().await.unwrap();
    let conn = Connection::open(&p).unwrap();
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let (corr, wait): (String, f64) = conn
        .query_row(
            "SELECT correlation_id, wait_ms FROM audit_events_all \
             WHERE uuid = ?1 AND event = 'action_executed'",
            [u.to_string()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((corr.as_str(), wait), ("corr-0", 0.5));
    assert_eq!(verify(&p, None).unwrap().events, 13);
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
                reason: BreakReason::Checkpoint(cxone_uuid_audit::CheckpointError::TailCut { .. }),
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

/// A partial copy (an archive read from its middle) verifies from its anchor, keeps it across
/// reopening, and a break inside it is still found; the anchor commits with the events only.
#[tokio::test]
async fn a_partial_copy_verifies_from_its_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.db");
    let sink = SqliteSink::open(&whole, SqliteOptions::default()).unwrap();
    let uuids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
    sink.append(&run_events(Uuid::now_v7(), &uuids))
        .await
        .unwrap();
    sink.close().await.unwrap();
    let sealed = SqliteSource::new(&whole);
    let mut events = Vec::new();
    sealed
        .visit(&mut |e| {
            events.push(e.clone());
            Ok(())
        })
        .unwrap();
    let tail = &events[5..];

    let part = dir.path().join("part.db");
    let copy = SqliteSink::open(&part, SqliteOptions::default()).unwrap();
    copy.set_anchor(tail[0].seq, &tail[0].prev_hash, "s3://b/p")
        .unwrap();
    copy.insert_sealed(tail).unwrap();
    copy.sync().await.unwrap();
    drop(copy);
    let summary = verify(&part, None).unwrap();
    assert_eq!(summary.events, tail.len() as u64);
    assert_eq!(summary.head, events.last().unwrap().hash);
    let a = anchor(&part).unwrap().unwrap();
    assert_eq!((a.first_seq, a.source.as_str()), (6, "s3://b/p"));
    let reopened = SqliteSink::open(&part, SqliteOptions::default()).unwrap();
    assert_eq!(
        reopened.head(),
        (events.len() as u64, events.last().unwrap().hash.clone())
    );
    // A second anchor is refused: the copy already has events.
    assert!(reopened.set_anchor(2, "x", "s3://b/p").is_err());
    drop(reopened);

    // An edited row inside the copy is a break, as in a whole trail.
    let conn = Connection::open(&part).unwrap();
    conn.execute(
        "UPDATE audit_events SET attempts = 9 WHERE seq = ?1",
        [tail[3].seq as i64],
    )
    .unwrap();
    drop(conn);
    let err = verify(&part, None).unwrap_err();
    assert!(
        matches!(err, AuditError::Chain { seq, .. } if seq == tail[3].seq),
        "{err}"
    );

    // Anchored but never committed: nothing stays.
    let left = dir.path().join("left.db");
    let copy = SqliteSink::open(&left, SqliteOptions::default()).unwrap();
    copy.set_anchor(6, &tail[0].prev_hash, "s3://b/p").unwrap();
    drop(copy);
    assert_eq!(anchor(&left).unwrap(), None);
}
