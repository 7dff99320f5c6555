//! SQLite sink throughput with group commit (target: at least 100,000 events/s with batch sync):
//! one transaction per batch, committed (WAL, synchronous=FULL) by `sync`. The sink moves its
//! staged events into the indexed table every 131,072 events or second, inside a `sync`, so the
//! figure is the sustained rate with those moves included.
//!
//! `batch` appends the events a run writes, in the order it writes them: each UUID's
//! `uuid_generated` and `action_submitted` in one batch and its `action_executed` in the next
//! (a UUID's events share one `uuid` index entry page, so the index sees about two random inserts
//! per three events). `distinct_uuids` is the worst case, a new random UUID on every event.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cxone_uuid_audit::{AuditEvent, AuditSink, EventKind, SyncMode};
use cxone_uuid_audit_sqlite::{SqliteOptions, SqliteSink};
use uuid::Uuid;

fn event(kind: EventKind, run: Uuid, uuid: Uuid) -> AuditEvent {
    let mut e = AuditEvent::new(kind, run);
    e.uuid = Some(uuid);
    match kind {
        EventKind::UuidGenerated => {
            e.generation_latency_ms = Some(0.004);
            e.uniqueness_rate = Some(1.0);
            let mut md = serde_json::Map::new();
            md.insert("version".into(), 4.into());
            md.insert("variant".into(), "RFC4122".into());
            e.metadata = Some(md);
        }
        EventKind::ActionSubmitted => e.action_id = Some("bench".into()),
        _ => {
            e.action_id = Some("bench".into());
            e.attempts = Some(1);
            e.http_status = Some(200);
            e.execution_latency_ms = Some(0.731);
            e.generation_latency_ms = Some(0.004);
            e.total_latency_ms = Some(0.735);
        }
    }
    e
}

/// `batch` events as a run writes them; `carry` holds the UUIDs whose outcome is still due.
fn run_mix(run: Uuid, batch: usize, carry: &mut Vec<Uuid>) -> Vec<AuditEvent> {
    let mut out: Vec<AuditEvent> = carry
        .drain(..)
        .map(|u| event(EventKind::ActionExecuted, run, u))
        .collect();
    while out.len() + 2 <= batch {
        let u = Uuid::new_v4();
        out.push(event(EventKind::UuidGenerated, run, u));
        out.push(event(EventKind::ActionSubmitted, run, u));
        carry.push(u);
    }
    out
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = Uuid::now_v7();
    let mut group = c.benchmark_group("sqlite_sink");
    // The sink moves its staged events into the indexed table about once a second, so one
    // iteration in many carries a move. Flat sampling makes the reported figure the mean over
    // every iteration (total events over total time, the rate a long run sustains); linear
    // sampling's regression slope would treat those iterations as outliers. 8 s holds several.
    group
        .sampling_mode(criterion::SamplingMode::Flat)
        .measurement_time(std::time::Duration::from_secs(8));
    for (mode, sync, distinct) in [
        ("batch", SyncMode::Batch, false),
        ("none", SyncMode::None, false),
        ("distinct_uuids", SyncMode::Batch, true),
    ] {
        for batch in [1024usize, 8192] {
            let sink = SqliteSink::open(
                dir.path().join(format!("{mode}-{batch}.db")),
                SqliteOptions {
                    sync,
                    ..Default::default()
                },
            )
            .unwrap();
            let mut carry = Vec::new();
            // Steady state: a third of each batch is the previous batch's outcomes.
            let warm = run_mix(run, batch, &mut carry);
            rt.block_on(async {
                sink.append(&warm).await.unwrap();
                sink.sync().await.unwrap();
            });
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new(mode, batch), &batch, |b, _| {
                b.iter_batched(
                    || {
                        if distinct {
                            (0..batch)
                                .map(|_| event(EventKind::UuidGenerated, run, Uuid::new_v4()))
                                .collect::<Vec<_>>()
                        } else {
                            run_mix(run, batch, &mut carry)
                        }
                    },
                    |events| {
                        rt.block_on(async {
                            sink.append(&events).await.unwrap();
                            sink.sync().await.unwrap();
                        })
                    },
                    criterion::BatchSize::LargeInput,
                )
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
