//! JSONL sink throughput with group commit (target: at least 500,000 events/s with batch sync):
//! batches as the audit writer forms them under load, one fsync per batch.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cxone_uuid_audit::{AuditEvent, AuditSink, EventKind};
use cxone_uuid_audit_jsonl::{JsonlOptions, JsonlSink};
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
    let mut group = c.benchmark_group("jsonl_sink");
    for batch in [1024usize, 8192] {
        let sink = JsonlSink::open(
            dir.path().join(format!("b{batch}.jsonl")),
            JsonlOptions::default(),
        )
        .unwrap();
        let events: Vec<AuditEvent> = (0..batch).map(|_| event(run)).collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("append_sync", batch), &batch, |b, _| {
            b.iter(|| {
                rt.block_on(async {
                    sink.append(&events).await.unwrap();
                    sink.sync().await.unwrap();
                })
            })
        });
    }
    group.finish();

    // Verify from disk, through the reader.
    let path = dir.path().join("b8192.jsonl");
    let n = cxone_uuid_audit_jsonl::verify(&path, None).unwrap().events;
    let mut group = c.benchmark_group("jsonl_verify");
    group.throughput(Throughput::Elements(n));
    group.bench_function("verify_file", |b| {
        b.iter(|| cxone_uuid_audit_jsonl::verify(&path, None).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
