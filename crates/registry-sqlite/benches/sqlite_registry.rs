//! Check-and-insert throughput of the SQLite registry (target: at least 100,000 checks/s).
//!
//! Each iteration offers one batch of fresh random UUIDs to a registry that already holds the
//! earlier iterations' UUIDs, as a long `generate` run does.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cxone_uuid_core::Registry;
use cxone_uuid_registry_sqlite::{Durability, SqliteRegistry};
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut group = c.benchmark_group("sqlite_registry");
    for (name, durability) in [("full", Durability::Full), ("normal", Durability::Normal)] {
        for batch in [256usize, 1024, 4096] {
            let path = dir.path().join(format!("{name}-{batch}.db"));
            let reg = rt
                .block_on(
                    SqliteRegistry::builder(&path)
                        .with_durability(durability)
                        .open(),
                )
                .unwrap();
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, &batch| {
                b.iter_batched(
                    || (0..batch).map(|_| Uuid::new_v4()).collect::<Vec<_>>(),
                    |ids| rt.block_on(reg.check_and_insert(&ids)).unwrap(),
                    criterion::BatchSize::LargeInput,
                );
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
