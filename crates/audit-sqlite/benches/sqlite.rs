//! SQLite sink throughput with group commit (target: at least 100,000 events/s with batch sync):
//! one transaction per batch, committed (WAL, synchronous=FULL) by `sync`.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cxone_uuid_audit::{AuditEvent, AuditSink, EventKind, SyncMode};
use cxone_uuid_audit_sqlite::{SqliteOptions, SqliteSink};
use uuid::Uuid;

fn event(run: Uuid) -> AuditEvent {
    let mut e = AuditEvent::new(EventKind::UuidGenerated, run);
    e.uuid = Some(Uuid::new_v4());
    e.generation_latency_ms = Some(0.004);
    e.uniqueness_rate = Some(1.0);
    let mut md = serde_json::Map::new();
    md.insert("version".into(), 4.into());
    md.insert("variant".into(), "RFC4122".into());
    e.metadata = Some(md);
    e
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
    for (mode, sync) in [("batch", SyncMode::Batch), ("none", SyncMode::None)] {
        for batch in [1024usize, 8192] {
            let sink = SqliteSink::open(
                dir.path().join(format!("{mode}-{batch}.db")),
                SqliteOptions {
                    sync,
                    ..Default::default()
                },
            )
            .unwrap();
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new(mode, batch), &batch, |b, _| {
                // Fresh events each time, as a run produces them.
                b.iter_batched(
                    || (0..batch).map(|_| event(run)).collect::<Vec<_>>(),
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
