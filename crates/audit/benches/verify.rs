//! Streaming verification throughput (target: at least 1,000,000 events/s) and sealing cost.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use cxone_uuid_audit::chain::encode_line;
use cxone_uuid_audit::{AuditEvent, Chain, EventKind, Verifier};
use uuid::Uuid;

/// A typical `uuid_generated` event (about 330 bytes stored).
pub fn event(run: Uuid) -> AuditEvent {
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
    const N: usize = 100_000;
    let run = Uuid::now_v7();
    let mut chain = Chain::default();
    let mut lines = Vec::with_capacity(N);
    for _ in 0..N {
        let mut e = event(run);
        chain.seal(&mut e);
        let mut l = Vec::new();
        encode_line(&e, &mut l);
        lines.push(l);
    }
    let mut group = c.benchmark_group("chain");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("verify_lines", |b| {
        b.iter(|| {
            let mut v = Verifier::new();
            for l in &lines {
                v.feed_line(l).unwrap();
            }
            v.finish(None).unwrap()
        })
    });
    let events: Vec<AuditEvent> = (0..N).map(|_| event(run)).collect();
    group.bench_function("seal_and_encode", |b| {
        b.iter(|| {
            let mut chain = Chain::default();
            let mut out = Vec::with_capacity(400 * N);
            for e in &events {
                let mut e = e.clone();
                chain.seal(&mut e);
                encode_line(&e, &mut out);
            }
            out.len()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
