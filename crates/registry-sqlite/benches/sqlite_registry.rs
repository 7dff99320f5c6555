//! Check-and-insert throughput of the SQLite registry (target: at least 100,000 checks/s).
//!
//! Each iteration offers one batch of fresh random UUIDs to a registry that keeps the earlier
//! iterations' UUIDs, as a long `generate` run does (in batches of 32,768, the registry's
//! `preferred_batch`; 4,096 shows what a smaller batch costs). Random keys touch leaf pages all
//! over the B-tree, so the rate falls as the table grows: `holding_1m` measures a file that
//! already holds a million UUIDs, `fresh` an empty one. Default durability
//! (`synchronous = FULL`) throughout, plus one `normal` case to show what the fsync costs.
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
    let open = |name: &str, durability| {
        rt.block_on(
            SqliteRegistry::builder(dir.path().join(format!("{name}.db")))
                .with_durability(durability)
                .open(),
        )
        .unwrap()
    };
    let fresh = |n: usize| (0..n).map(|_| Uuid::new_v4()).collect::<Vec<_>>();

    let mut group = c.benchmark_group("sqlite_registry");
    let mut cases = vec![
        ("fresh", 256, open("fresh-256", Durability::Full)),
        ("fresh", 4096, open("fresh-4096", Durability::Full)),
        (
            "fresh_normal",
            4096,
            open("normal-4096", Durability::Normal),
        ),
    ];
    let big = open("holding-1m", Durability::Full);
    for _ in 0..(1_000_000 / 8192) {
        rt.block_on(big.check_and_insert(&fresh(8192))).unwrap();
    }
    cases.push(("holding_1m", 4096, big.clone()));
    // The batch `generate` offers this registry (`Registry::preferred_batch`).
    cases.push(("holding_1m", 32_768, big));

    for (name, batch, reg) in &cases {
        group.throughput(Throughput::Elements(*batch as u64));
        group.bench_with_input(BenchmarkId::new(*name, batch), batch, |b, &batch| {
            b.iter_batched(
                || fresh(batch),
                |ids| rt.block_on(reg.check_and_insert(&ids)).unwrap(),
                criterion::BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // Few iterations: every one grows the table, and the figure is meant at about the size named.
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
