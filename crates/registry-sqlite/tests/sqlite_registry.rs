//! Behaviour a user relies on: one answer "new" per UUID however many callers race, duplicates
//! inside a batch caught, and the file remembering across runs.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;

use cxone_uuid_core::{Novelty, Registry, RegistryError};
use cxone_uuid_registry_sqlite::SqliteRegistry;
use uuid::Uuid;

fn ids(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::new_v4()).collect()
}

#[tokio::test]
async fn duplicates_within_a_batch_are_new_once_then_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let reg = SqliteRegistry::open(dir.path().join("r.db")).await.unwrap();
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    let answer = reg.check_and_insert(&[a, b, a, a, b]).await.unwrap();
    use Novelty::{Duplicate as D, New as N};
    assert_eq!(answer, vec![N, N, D, D, D]);
    assert_eq!(reg.check_and_insert(&[b, a]).await.unwrap(), vec![D, D]);
    assert_eq!(reg.len().await.unwrap(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_tasks_and_connections_get_exactly_one_new_per_uuid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let pool = ids(2_000);
    // Two independent registries on one file stand in for two processes; clones of each share a
    // connection, as tasks in one process do.
    let first = SqliteRegistry::open(&path).await.unwrap();
    let second = SqliteRegistry::open(&path).await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..8usize {
        let reg = if t % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        // Every task offers an overlapping window of the pool, in its own order.
        let mut mine: Vec<Uuid> = pool[t * 100..t * 100 + 1_200].to_vec();
        if t % 3 == 0 {
            mine.reverse();
        }
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for chunk in mine.chunks(97) {
                let got = reg.check_and_insert(chunk).await.unwrap();
                answers.extend(chunk.iter().copied().zip(got));
            }
            answers
        }));
    }
    let mut news: HashMap<Uuid, usize> = HashMap::new();
    let mut offered = std::collections::HashSet::new();
    for task in tasks {
        for (id, n) in task.await.unwrap() {
            offered.insert(id);
            if n == Novelty::New {
                *news.entry(id).or_default() += 1;
            }
        }
    }
    assert_eq!(
        news.len(),
        offered.len(),
        "every offered UUID is new somewhere"
    );
    assert!(news.values().all(|&c| c == 1), "no UUID is new twice");
    assert_eq!(first.len().await.unwrap(), Some(offered.len() as u64));
}

#[tokio::test]
async fn a_reopened_file_remembers_earlier_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("persist.db");
    let earlier = ids(500);
    {
        let reg = SqliteRegistry::open(&path).await.unwrap();
        let got = reg.check_and_insert(&earlier).await.unwrap();
        assert!(got.iter().all(|n| *n == Novelty::New));
    }
    let reg = SqliteRegistry::open(&path).await.unwrap();
    let fresh = Uuid::new_v4();
    let mut offer = vec![fresh];
    offer.extend_from_slice(&earlier[..10]);
    let got = reg.check_and_insert(&offer).await.unwrap();
    assert_eq!(got[0], Novelty::New);
    assert!(got[1..].iter().all(|n| *n == Novelty::Duplicate));
    assert_eq!(reg.len().await.unwrap(), Some(501));
}

#[tokio::test]
async fn an_unopenable_path_is_unavailable_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("r.db");
    let err = SqliteRegistry::open(&path).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.db");
    std::fs::write(&path, vec![b'x'; 4096]).unwrap();
    let err = SqliteRegistry::open(&path).await.unwrap_err();
    assert!(matches!(err, RegistryError::Protocol { .. }), "{err}");
}
