//! The SQLite sink's sustained rate from an empty trail: `cargo run --release -p
//! cxone-uuid-audit-sqlite --example sustained -- BATCH EVENTS PATH`.
//!
//! Criterion's figure (benches/sqlite.rs) samples a trail that keeps growing between runs; this
//! appends a run's event mix in batches of BATCH, syncing each, until EVENTS, then closes (the
//! last move into the indexed table), and prints events over time with and without that close.
//! It overwrites PATH.
#![allow(missing_docs, clippy::unwrap_used)]
#[path = "../benches/mix/mod.rs"]
mod mix;

use cxone_uuid_audit::{AuditSink, SyncMode};
use cxone_uuid_audit_sqlite::{SqliteOptions, SqliteSink};
use mix::run_mix;
use uuid::Uuid;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch: usize = args[1].parse().unwrap();
    let total: usize = args[2].parse().unwrap();
    let path = std::path::PathBuf::from(&args[3]);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let sink = SqliteSink::open(
        &path,
        SqliteOptions {
            sync: SyncMode::Batch,
            ..Default::default()
        },
    )
    .unwrap();
    let run = Uuid::now_v7();
    let mut carry = Vec::new();
    let mut done = 0usize;
    let mut busy = std::time::Duration::ZERO;
    let mut worst = std::time::Duration::ZERO;
    while done < total {
        let evs = run_mix(run, batch, &mut carry);
        let t = std::time::Instant::now();
        sink.append(&evs).await.unwrap();
        sink.sync().await.unwrap();
        let el = t.elapsed();
        busy += el;
        worst = worst.max(el);
        done += evs.len();
    }
    let t = std::time::Instant::now();
    sink.close().await.unwrap();
    let close = t.elapsed();
    println!("batch {batch} events {done} sustained {:.0} ev/s (close {:.2} s incl.: {:.0} ev/s) worst batch {:.0} ms",
        done as f64 / busy.as_secs_f64(), close.as_secs_f64(), done as f64 / (busy + close).as_secs_f64(), worst.as_secs_f64()*1e3);
}
