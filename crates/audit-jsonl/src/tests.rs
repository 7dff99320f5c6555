//! The sink, its recovery and rotation, and verify, on real files.

#![allow(clippy::unwrap_used)]
use std::fs::OpenOptions;
use std::io::Write as _;
use std::sync::Arc;

use cxone_uuid_audit::signing::Signing;
use cxone_uuid_audit::{
    AuditError, AuditEvent, AuditSink, BreakReason, CheckpointError, EventKind, SyncMode,
};
use uuid::Uuid;

use super::*;

fn ev(i: u64) -> AuditEvent {
    let mut e = AuditEvent::new(EventKind::UuidGenerated, Uuid::nil());
    e.uuid = Some(Uuid::new_v4());
    e.attempts = Some(i as u32);
    e
}

async fn write(path: &Path, opts: JsonlOptions, n: u64) {
    let sink = JsonlSink::open(path, opts).unwrap();
    let batch: Vec<_> = (0..n).map(ev).collect();
    sink.append(&batch).await.unwrap();
    sink.close().await.unwrap();
}

/// A resumed chain is the conformance suite's (tests/conformance.rs); the file mode is JSONL's.
#[tokio::test]
async fn a_trail_file_is_0600() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.jsonl");
    write(&p, JsonlOptions::default(), 3).await;
    write(&p, JsonlOptions::default(), 2).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_partial_last_line_is_moved_aside_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.jsonl");
    write(&p, JsonlOptions::default(), 3).await;
    // A kill -9 in the middle of a write.
    let mut f = OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"{\"schema\":1,\"seq\":4,\"times").unwrap();
    drop(f);
    assert!(
        verify(&p, None).is_err(),
        "the partial line is not an event"
    );
    let sink = JsonlSink::open(&p, JsonlOptions::default()).unwrap();
    let aside = sink.recovered().unwrap().to_path_buf();
    assert!(aside.to_string_lossy().contains(".corrupt-"));
    assert_eq!(
        std::fs::read(&aside).unwrap(),
        b"{\"schema\":1,\"seq\":4,\"times"
    );
    sink.append(&[ev(9)]).await.unwrap();
    sink.close().await.unwrap();
    let s = verify(&p, None).unwrap();
    assert_eq!(s.events, 4);
}

#[tokio::test]
async fn rotation_keeps_one_chain_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r.jsonl");
    let opts = JsonlOptions {
        rotate_mb: Some(1),
        ..Default::default()
    };
    // ~250 bytes an event: 10k events make two or three segments.
    write(&p, opts.clone(), 6000).await;
    write(&p, opts, 4000).await;
    let segs = segments(&p).unwrap();
    assert!(segs.len() >= 2, "{segs:?}");
    assert_eq!(segs[0].0, Some(1));
    let s = verify(&p, None).unwrap();
    assert_eq!(s.events, 10_000);
    // Deleting a middle or first segment is a gap.
    std::fs::remove_file(segment_path(&p, 1)).unwrap();
    let err = verify(&p, None).unwrap_err();
    assert!(matches!(err, AuditError::Chain { .. }), "{err}");
}

#[tokio::test]
async fn signed_trail_checkpoints_and_anchor() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.jsonl");
    let key = Arc::new(cxone_uuid_audit::signing::generate_signing_key().unwrap());
    let opts = JsonlOptions {
        signing: Some(Signing {
            key: key.clone(),
            every: Some(4),
        }),
        ..Default::default()
    };
    write(&p, opts.clone(), 10).await;
    write(&p, opts, 3).await;
    let s = verify(&p, Some(key.verifying_key())).unwrap();
    let signed = s.signed.unwrap();
    assert_eq!(signed.unsigned_after, 0);
    assert_eq!(signed.checkpoints, 4); // 4, 8, close(10), close(13)
                                       // Cut the tail before the last checkpoint: the anchor exposes it.
    let text = std::fs::read_to_string(&p).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines[..lines.len() - 4].join("\n") + "\n";
    std::fs::write(&p, cut).unwrap();
    assert!(verify(&p, None).is_ok(), "a bare chain cannot see the cut");
    let err = verify(&p, Some(key.verifying_key())).unwrap_err();
    assert!(
        matches!(
            err,
            AuditError::Chain {
                reason: BreakReason::Checkpoint(CheckpointError::TailCut { .. }),
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn record_durable_returns_with_the_line_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.jsonl");
    let sink = JsonlSink::open(&p, JsonlOptions::default()).unwrap();
    let w = cxone_uuid_audit::AuditWriter::spawn(Box::new(sink), SyncMode::Batch);
    for i in 0..100 {
        w.record(ev(i)).await.unwrap();
    }
    let mut submitted = ev(7);
    submitted.event = EventKind::ActionSubmitted;
    w.record_durable(submitted).await.unwrap();
    // Before close: everything recorded so far is in the file, in order, verifiable.
    assert_eq!(verify(&p, None).unwrap().events, 101);
    let last: AuditEvent =
        serde_json::from_str(std::fs::read_to_string(&p).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(last.event, EventKind::ActionSubmitted);
    w.close().await.unwrap();
}

#[tokio::test]
async fn reader_streams_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a.jsonl");
    write(&p, JsonlOptions::default(), 5).await;
    let seqs: Vec<u64> = JsonlReader::open(&p)
        .unwrap()
        .map(|e| e.unwrap().seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
}
