//! SQLite sink throughput with group commit (target: at least 100,000 events/s with batch sync):
//! one transaction per batch, committed (WAL, synchronous=FULL) by `sync`. The sink moves its
//! staged events into the indexed table every 262,144 events or second, inside a `sync`, so the
//! figure is the sustained rate with those moves included.
//!
//! `batch` appends the events a run writes, in the order it writes them: each UUID's
//! `uuid_generated` and `action_submitted` in one batch and its `action_executed` in the next
//! (a UUID's events share one `uuid` index entry page, so the index sees about two random inserts
//! per three events). `distinct_uuids` is the worst case, a new random UUID on every event.
#![allow(missing_docs, clippy::unwrap_used)]

mod mix;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cxone_uuid_audit::{AuditSink, EventKind, SyncMode};
use cxone_uuid_audit_sqlite::{SqliteOptions, SqliteSink};
use mix::{event, run_mix};
use uuid::Uuid;

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
