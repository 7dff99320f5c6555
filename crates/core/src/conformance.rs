//! The [`Registry`] contract as one suite that every registry backend's tests run, so a backend
//! proves itself by passing it rather than by keeping its own copy of the same tests.
//!
//! A backend's test file describes how to make and open its store with a [`Backend`] and calls
//! [`registry_conformance!`](crate::registry_conformance), which writes one `#[test]` per case:
//!
//! ```ignore
//! struct Sqlite;
//! impl Backend for Sqlite { /* a temp dir per store, SqliteRegistry::open on its file */ }
//! cxone_uuid_core::registry_conformance!(Sqlite; persistent);
//! ```
//!
//! Each case runs on its own multi-threaded runtime ([`block_on`]), so concurrency cases race
//! on real threads. Only built with the `testing` feature: backends enable it as a
//! dev-dependency, and nothing here reaches a release build.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use uuid::Uuid;

use crate::registry::{Novelty, Registry};

use Novelty::{Duplicate as D, New as N};

/// How the suite makes and opens one backend's stores.
///
/// A *store* is what outlives a handle: a SQLite file, a key prefix on a Redis server, a shared
/// in-memory table. Each case creates its own, so cases never see each other's UUIDs.
pub trait Backend {
    /// A handle on a store. Clones share the handle (its connection), as tasks in one process do.
    type Registry: Registry + Clone + 'static;
    /// What keeps a store alive and findable (a temp dir, a prefix).
    type Store: Send + Sync;

    /// Creates an empty store no other case uses.
    fn create(&self) -> impl Future<Output = Self::Store> + Send;

    /// Opens a new handle on `store`: for a backend with connections, a connection of its own,
    /// as another process would have.
    fn open(&self, store: &Self::Store) -> impl Future<Output = Self::Registry> + Send;

    /// How many UUIDs `reg`'s store holds. The default asks [`Registry::len`]; a backend that
    /// cannot say cheaply there (Redis) counts another way.
    fn count(&self, reg: &Self::Registry) -> impl Future<Output = u64> + Send {
        async move {
            match reg.len().await {
                Ok(Some(n)) => n,
                Ok(None) => panic!(
                    "{}: Registry::len is unknown; override Backend::count",
                    reg.describe()
                ),
                Err(e) => panic!("counting {}: {e}", reg.describe()),
            }
        }
    }
}

/// Runs one case on a multi-threaded runtime of four workers, as the backends' own racing tests
/// did, so tasks really run in parallel.
///
/// # Panics
/// When the runtime cannot be built (the test could not run at all).
pub fn block_on<F: Future>(case: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime for the conformance suite")
        .block_on(case)
}

/// Writes the conformance cases as `#[test]` functions in the calling module, each running on
/// [`block_on`] against the backend `$backend` evaluates to (evaluated once per case).
///
/// `registry_conformance!(B)` writes the cases every registry must pass;
/// `registry_conformance!(B; persistent)` adds the ones for a store that outlives its handles
/// (a file, a server).
#[macro_export]
macro_rules! registry_conformance {
    ($backend:expr) => {
        $crate::registry_conformance!(@cases $backend;
            new_uuids_are_new_and_offered_again_are_duplicates,
            duplicates_within_a_batch_are_new_once_then_duplicate,
            duplicates_within_and_across_batches_in_one_batch,
            answers_follow_the_callers_order,
            an_empty_batch_is_an_empty_answer,
            racing_tasks_and_handles_get_exactly_one_new_per_uuid
        );
    };
    ($backend:expr; persistent) => {
        $crate::registry_conformance!($backend);
        $crate::registry_conformance!(@cases $backend;
            a_reopened_store_remembers_earlier_runs
        );
    };
    (@cases $backend:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                let backend = $backend;
                $crate::conformance::block_on($crate::conformance::$case(&backend));
            }
        )+
    };
}

fn fresh(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::new_v4()).collect()
}

async fn offer<R: Registry>(reg: &R, ids: &[Uuid]) -> Vec<Novelty> {
    let answer = reg
        .check_and_insert(ids)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", reg.describe()));
    assert_eq!(answer.len(), ids.len(), "one answer per UUID offered");
    answer
}

/// A UUID never offered is new; offered again, in a later batch, it is a duplicate.
pub async fn new_uuids_are_new_and_offered_again_are_duplicates<B: Backend>(backend: &B) {
    let store = backend.create().await;
    let reg = backend.open(&store).await;
    let ids = fresh(500);
    assert!(offer(&reg, &ids).await.iter().all(|n| *n == N));
    assert!(offer(&reg, &ids).await.iter().all(|n| *n == D));
    assert_eq!(backend.count(&reg).await, 500);
}

/// A UUID repeated inside one batch is new at its first position and a duplicate after.
pub async fn duplicates_within_a_batch_are_new_once_then_duplicate<B: Backend>(backend: &B) {
    let store = backend.create().await;
    let reg = backend.open(&store).await;
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    assert_eq!(offer(&reg, &[a, b, a, a, b]).await, vec![N, N, D, D, D]);
    assert_eq!(offer(&reg, &[b, a]).await, vec![D, D]);
    assert_eq!(offer(&reg, &[b]).await, vec![D]);
    assert_eq!(backend.count(&reg).await, 2);
}

/// One batch holding a UUID from an earlier batch and a UUID repeated inside it.
pub async fn duplicates_within_and_across_batches_in_one_batch<B: Backend>(backend: &B) {
    let store = backend.create().await;
    let reg = backend.open(&store).await;
    let a = Uuid::new_v4();
    let c = Uuid::new_v4();
    assert_eq!(offer(&reg, &[a]).await, vec![N]);
    assert_eq!(offer(&reg, &[c, a, c, a]).await, vec![N, D, D, D]);
    assert_eq!(backend.count(&reg).await, 2);
}

/// Answers come back in the caller's order whatever order the backend works in (SQLite sorts
/// by key): checked against a `HashSet` over a batch mixing new, repeated and earlier UUIDs.
pub async fn answers_follow_the_callers_order<B: Backend>(backend: &B) {
    let store = backend.create().await;
    let reg = backend.open(&store).await;
    let earlier = fresh(300);
    assert!(offer(&reg, &earlier).await.iter().all(|n| *n == N));
    let new = fresh(300);
    // New and earlier UUIDs interleaved, then the new ones again backwards, so duplicates sit
    // both before and after their first occurrence in key order.
    let mut batch = Vec::new();
    for (n, e) in new.iter().zip(&earlier) {
        batch.push(*n);
        batch.push(*e);
    }
    batch.extend(new.iter().rev());
    let mut model: HashSet<Uuid> = earlier.iter().copied().collect();
    let expected: Vec<Novelty> = batch
        .iter()
        .map(|id| if model.insert(*id) { N } else { D })
        .collect();
    assert_eq!(offer(&reg, &batch).await, expected);
    assert_eq!(backend.count(&reg).await, 600);
}

/// An empty batch is answered with nothing and records nothing.
pub async fn an_empty_batch_is_an_empty_answer<B: Backend>(backend: &B) {
    let store = backend.create().await;
    let reg = backend.open(&store).await;
    assert!(offer(&reg, &[]).await.is_empty());
    assert_eq!(backend.count(&reg).await, 0);
}

/// Eight tasks on four handles (separate connections standing in for processes, each shared by
/// two tasks as in one process) offer overlapping windows of one pool, in their own orders and
/// batch sizes: every UUID offered is new exactly once, and the store holds each.
pub async fn racing_tasks_and_handles_get_exactly_one_new_per_uuid<B: Backend>(backend: &B) {
    let store = backend.create().await;
    let mut handles = Vec::new();
    for _ in 0..4 {
        handles.push(backend.open(&store).await);
    }
    let pool = fresh(3_000);
    let mut tasks = Vec::new();
    for t in 0..8usize {
        let reg = handles[t % handles.len()].clone();
        let mut mine: Vec<Uuid> = pool[t * 200..t * 200 + 1_500].to_vec();
        if t % 2 == 1 {
            mine.reverse();
        }
        let chunk = if t % 3 == 0 { 97 } else { 101 };
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for ids in mine.chunks(chunk) {
                let got = offer(&reg, ids).await;
                answers.extend(ids.iter().copied().zip(got));
            }
            answers
        }));
    }
    let mut news: HashMap<Uuid, usize> = HashMap::new();
    let mut offered = HashSet::new();
    for task in tasks {
        let answers = task
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        for (id, n) in answers {
            offered.insert(id);
            if n == N {
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
    drop(handles);
    let reg = backend.open(&store).await;
    assert_eq!(backend.count(&reg).await, offered.len() as u64);
}

/// A store reopened after every handle on it was dropped (a later run) still knows the earlier
/// run's UUIDs.
pub async fn a_reopened_store_remembers_earlier_runs<B: Backend>(backend: &B) {
    let store = backend.create().await;
    let earlier = fresh(500);
    {
        let reg = backend.open(&store).await;
        assert!(offer(&reg, &earlier).await.iter().all(|n| *n == N));
    }
    let reg = backend.open(&store).await;
    let mut batch = vec![Uuid::new_v4()];
    batch.extend_from_slice(&earlier[..10]);
    let got = offer(&reg, &batch).await;
    assert_eq!(got[0], N);
    assert!(got[1..].iter().all(|n| *n == D));
    assert_eq!(backend.count(&reg).await, 501);
}
