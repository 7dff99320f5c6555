//! Criterion benchmarks: generation, validation and memory-registry insert, plus a
//! bytes-per-UUID report for the memory registry (printed to stdout).
//!
//! `cargo bench -p cxone-uuid-core --bench core` (add a filter such as `registry` to pick).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use cxone_uuid_core::{
    parse, Generator, MemoryRegistry, ParseOptions, UniqueGenerator, Uuid, UuidFormat, UuidVersion,
};

const BATCH: usize = 4096;

fn generation(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group.throughput(Throughput::Elements(BATCH as u64));
    for version in [UuidVersion::V4, UuidVersion::V7] {
        let mut g = Generator::new(version);
        let mut out = Vec::with_capacity(BATCH);
        group.bench_function(format!("v{version}/health-tested"), |b| {
            b.iter(|| {
                out.clear();
                g.fill(&mut out, BATCH).unwrap();
                black_box(&out);
            })
        });
    }
    // The anchor: the uuid crate's own v4 (OS randomness per call, no health tests).
    group.bench_function("v4/uuid-crate-new_v4", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                black_box(Uuid::new_v4());
            }
        })
    });
    // Generator + registry + formatting: what `generate` does per UUID, minus the write.
    group.bench_function("v4/unique+memory-registry+format", |b| {
        let registry = Arc::new(MemoryRegistry::new());
        let mut unique = UniqueGenerator::new(Generator::new(UuidVersion::V4), registry, 100);
        let mut buf = Uuid::encode_buffer();
        b.iter(|| {
            let ids = futures::executor::block_on(unique.next_batch(BATCH)).unwrap();
            for id in &ids {
                black_box(UuidFormat::Hyphenated.encode(id, &mut buf).len());
            }
        })
    });
    group.finish();
}

fn validation(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate");
    let mut g = Generator::new(UuidVersion::V4);
    let mut ids = Vec::new();
    g.fill(&mut ids, 1024).unwrap();
    let strict = ParseOptions {
        strict: true,
        version: Some(UuidVersion::V4),
    };
    for form in UuidFormat::ALL {
        let texts: Vec<String> = ids.iter().map(|u| form.format(u)).collect();
        group.throughput(Throughput::Elements(texts.len() as u64));
        group.bench_function(form.name(), |b| {
            b.iter(|| {
                for t in &texts {
                    black_box(parse(t, &ParseOptions::default()).ok());
                }
            })
        });
    }
    let texts: Vec<String> = ids.iter().map(|u| u.to_string()).collect();
    group.bench_function("hyphenated-strict-v4", |b| {
        b.iter(|| {
            for t in &texts {
                black_box(parse(t, &strict).ok());
            }
        })
    });
    let bad = "a1b2c3d4-e5f6-4789-a012-3456789abcdef0";
    group.throughput(Throughput::Elements(1));
    group.bench_function("invalid-with-reason", |b| {
        b.iter(|| black_box(parse(black_box(bad), &ParseOptions::default()).unwrap_err()))
    });
    group.finish();
}

fn fresh_ids(n: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    Generator::new(UuidVersion::V4).fill(&mut ids, n).unwrap();
    ids
}

fn registry(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry-memory-insert");
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    for n in [1_000_000usize, 10_000_000] {
        let ids = fresh_ids(n);
        group.throughput(Throughput::Elements(n as u64));
        group.measurement_time(Duration::from_secs(if n > 1_000_000 { 30 } else { 10 }));
        group.bench_function(format!("{n}"), |b| {
            b.iter_batched(
                || MemoryRegistry::with_capacity(n),
                |reg| {
                    for chunk in ids.chunks(BATCH) {
                        black_box(reg.insert_batch(chunk));
                    }
                    reg
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
    memory_report();
}

/// The budget the memory registry is designed to (see `memory.rs`): ≤ 24 bytes per UUID held at
/// 10 million, below the 28.5 (peak 42) a `HashSet<u128>` needs there.
fn memory_report() {
    let n = 10_000_000;
    let ids = fresh_ids(n);
    let sized = MemoryRegistry::with_capacity(n);
    let grown = MemoryRegistry::new();
    let mut peak_grown = 0usize;
    for chunk in ids.chunks(BATCH) {
        sized.insert_batch(chunk);
        grown.insert_batch(chunk);
        peak_grown = peak_grown.max(grown.heap_bytes());
    }
    println!("memory registry at {n} UUIDs (16-byte keys; HashSet<u128> needs ~28.5, peak ~42):");
    println!(
        "  with_capacity({n}): {:.2} bytes/UUID ({} MiB)",
        sized.bytes_per_uuid(),
        sized.heap_bytes() >> 20
    );
    println!(
        "  grown from empty:       {:.2} bytes/UUID ({} MiB; a growth step adds 1/64 of that)",
        grown.bytes_per_uuid(),
        peak_grown >> 20
    );
}

criterion_group!(benches, generation, validation, registry);
criterion_main!(benches);
