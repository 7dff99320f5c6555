//! Check-and-insert throughput of the Redis registry on loopback (target: at least 50,000
//! checks/s with pipelining).
//!
//! Uses `CXONE_UUID_TEST_REDIS_URL` when set, else starts `redis-server` on a free port (the
//! same rules as the tests: no server, no benchmark, with a message saying how to get one).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cxone_uuid_core::Registry;
use cxone_uuid_registry_redis::RedisRegistry;
use uuid::Uuid;

fn bench(c: &mut Criterion) {
    let server = support::TestRedis::shared();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let reg = rt
        .block_on(
            RedisRegistry::builder(server.url())
                .with_prefix(support::unique_prefix("bench"))
                .connect(),
        )
        .unwrap();
    let mut group = c.benchmark_group("redis_registry");
    for batch in [1usize, 256, 1024, 4096] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter_batched(
                || (0..batch).map(|_| Uuid::new_v4()).collect::<Vec<_>>(),
                |ids| rt.block_on(reg.check_and_insert(&ids)).unwrap(),
                criterion::BatchSize::LargeInput,
            );
        });
    }
    group.finish();
    // A server started here dies with `server`; a shared one keeps the uniquely prefixed keys.
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
