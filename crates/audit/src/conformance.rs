//! The sink and source contract as one suite that every audit backend's tests run, so a backend
//! proves itself by passing it rather than by keeping its own copy of the same tests.
//!
//! A backend's test file says how to make a store and open a sink and a source on it with a
//! [`Backend`] and calls [`sink_conformance!`](crate::sink_conformance), which writes one
//! `#[test]` per case:
//!
//! ```ignore
//! struct Jsonl;
//! impl Backend for Jsonl { /* a temp dir per store, JsonlSink::open on a file in it */ }
//! cxone_uuid_audit::sink_conformance!(Jsonl);
//! ```
//!
//! What stays in a backend's own tests is what is its own: file modes, crash recovery, staging,
//! queries. Only built with the `testing` feature: backends enable it as a dev-dependency, and
//! nothing here reaches a release build.

use std::future::Future;
use std::sync::Arc;

use uuid::Uuid;

use crate::signing::{generate_signing_key, Signing};
use crate::{AuditError, AuditEvent, AuditSink, AuditSource, BreakReason, EventKind};

/// How the suite makes one backend's stores and opens sinks and sources on them.
pub trait Backend {
    /// The write side.
    type Sink: AuditSink + 'static;
    /// The read side.
    type Source: AuditSource + 'static;
    /// What keeps a store alive and findable (a temp dir holding the trail).
    type Store: Send + Sync;

    /// Creates an empty store no other case uses.
    fn create(&self) -> Self::Store;

    /// Opens a sink on `store`, continuing whatever it holds, signing checkpoints with `signing`.
    fn open(&self, store: &Self::Store, signing: Option<Signing>) -> Self::Sink;

    /// The trail in `store`, read back.
    fn source(&self, store: &Self::Store) -> Self::Source;
}

/// Runs one case on a multi-threaded runtime, as a sink runs under `run`.
///
/// # Panics
/// When the runtime cannot be built (the test could not run at all).
pub fn block_on<F: Future>(case: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime for the conformance suite")
        .block_on(case)
}

/// Writes the conformance cases as `#[test]` functions in the calling module, each running on
/// [`block_on`] against the backend `$backend` evaluates to (evaluated once per case).
#[macro_export]
macro_rules! sink_conformance {
    ($backend:expr) => {
        $crate::sink_conformance!(@cases $backend;
            appends_resume_the_chain_across_opens,
            pending_is_a_submission_without_an_outcome,
            a_closed_sink_refuses_appends_as_closed,
            a_signed_trail_verifies_with_its_key_and_not_another,
            a_missing_trail_has_nothing_pending
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

fn event(kind: EventKind, run: Uuid, uuid: Option<Uuid>) -> AuditEvent {
    let mut e = AuditEvent::new(kind, run);
    e.uuid = uuid;
    e.action_id = uuid.map(|_| "a-1".to_string());
    e
}

async fn write<S: AuditSink>(sink: &S, batch: &[AuditEvent]) {
    sink.append(batch)
        .await
        .unwrap_or_else(|e| panic!("{}: append: {e}", sink.describe()));
    sink.close()
        .await
        .unwrap_or_else(|e| panic!("{}: close: {e}", sink.describe()));
}

fn read<S: AuditSource>(source: &S) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    source
        .visit(&mut |ev| {
            out.push(ev.clone());
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: visit: {e}", source.describe()));
    out
}

/// A sink reopened on its trail continues the chain: seqs 1.. without a gap, each event linked
/// to the one before, and the trail verifies as one stream read back in seq order.
pub async fn appends_resume_the_chain_across_opens<B: Backend>(backend: &B) {
    let store = backend.create();
    let run = Uuid::now_v7();
    for n in [3, 2] {
        let batch: Vec<_> = (0..n)
            .map(|_| event(EventKind::UuidGenerated, run, Some(Uuid::new_v4())))
            .collect();
        write(&backend.open(&store, None), &batch).await;
    }
    let source = backend.source(&store);
    let events = read(&source);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    for pair in events.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "seq {}", pair[1].seq);
    }
    let summary = source
        .verify(None)
        .unwrap_or_else(|e| panic!("{}: verify: {e}", source.describe()));
    assert_eq!((summary.events, summary.last_seq), (5, 5));
    assert_eq!(Some(&summary.head), events.last().map(|e| &e.hash));
}

/// A UUID is pending when its latest submission-related event is `action_submitted`, in the
/// order of that submission: executed and failed ones are not, a resubmitted one is again.
pub async fn pending_is_a_submission_without_an_outcome<B: Backend>(backend: &B) {
    let store = backend.create();
    let run = Uuid::now_v7();
    let u: Vec<Uuid> = (0..4).map(|_| Uuid::new_v4()).collect();
    let s = |i: usize| event(EventKind::ActionSubmitted, run, Some(u[i]));
    let batch = vec![
        event(EventKind::RunStarted, run, None),
        s(0),
        s(1),
        s(3),
        event(EventKind::ActionExecuted, run, Some(u[0])),
        event(EventKind::ActionFailed, run, Some(u[1])),
        event(EventKind::ActionFailed, run, Some(u[3])),
        s(2),
        s(3),
    ];
    write(&backend.open(&store, None), &batch).await;
    let source = backend.source(&store);
    let pending = source
        .pending()
        .unwrap_or_else(|e| panic!("{}: pending: {e}", source.describe()));
    assert_eq!(
        pending.iter().map(|p| p.uuid).collect::<Vec<_>>(),
        vec![u[2], u[3]]
    );
    assert!(pending
        .iter()
        .all(|p| p.run_id == run && p.action_id.as_deref() == Some("a-1")));
}

/// An append after close is refused as [`AuditError::Closed`], not written.
pub async fn a_closed_sink_refuses_appends_as_closed<B: Backend>(backend: &B) {
    let store = backend.create();
    let run = Uuid::now_v7();
    let sink = backend.open(&store, None);
    write(&sink, &[event(EventKind::RunStarted, run, None)]).await;
    let err = sink
        .append(&[event(EventKind::RunFinished, run, None)])
        .await
        .expect_err("an append after close");
    assert!(matches!(err, AuditError::Closed { .. }), "{err}");
    assert_eq!(read(&backend.source(&store)).len(), 1);
}

/// With a signing key the sink adds chained checkpoints (the last at close) and keeps the latest
/// beside the trail: the trail verifies as signed through its end with that key, and another
/// key's check fails at a checkpoint.
pub async fn a_signed_trail_verifies_with_its_key_and_not_another<B: Backend>(backend: &B) {
    let store = backend.create();
    let run = Uuid::now_v7();
    let key = Arc::new(generate_signing_key().expect("a signing key"));
    let signing = Signing {
        key: key.clone(),
        every: Some(2),
    };
    let batch: Vec<_> = (0..5)
        .map(|_| event(EventKind::UuidGenerated, run, Some(Uuid::new_v4())))
        .collect();
    write(&backend.open(&store, Some(signing)), &batch).await;
    let source = backend.source(&store);
    let anchor = source
        .checkpoint()
        .unwrap_or_else(|e| panic!("{}: checkpoint: {e}", source.describe()));
    assert_eq!(
        anchor.map(|a| a.event),
        Some(EventKind::Checkpoint),
        "the latest checkpoint is kept beside the trail"
    );
    let summary = source
        .verify(Some(key.verifying_key()))
        .unwrap_or_else(|e| panic!("{}: verify: {e}", source.describe()));
    let signed = summary.signed.expect("a signed summary");
    assert!(signed.checkpoints >= 2, "{signed:?}");
    assert_eq!(signed.unsigned_after, 0, "{signed:?}");
    let other = generate_signing_key().expect("a signing key");
    let err = source
        .verify(Some(other.verifying_key()))
        .expect_err("another key");
    assert!(
        matches!(
            err,
            AuditError::Chain {
                reason: BreakReason::Checkpoint(_),
                ..
            }
        ),
        "{err}"
    );
}

/// A trail never written does not exist and has nothing pending (a first `run --resume`).
pub async fn a_missing_trail_has_nothing_pending<B: Backend>(backend: &B) {
    let store = backend.create();
    let source = backend.source(&store);
    assert!(!source
        .exists()
        .unwrap_or_else(|e| panic!("{}: exists: {e}", source.describe())));
    assert_eq!(source.pending().ok(), Some(Vec::new()));
}
