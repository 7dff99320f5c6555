//! The read side of a trail: [`AuditSource`], and which UUIDs a trail shows as pending.
//!
//! A backend writes the few methods that are truly its own (visit its events in seq order, read
//! the checkpoint it keeps beside the trail); verifying and finding pending UUIDs are built on
//! those as default methods, which a backend may override when it can do them faster (SQLite
//! verifies seq ranges on several threads and finds pending UUIDs with one query).

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;
use uuid::Uuid;

use crate::{AuditError, AuditEvent, EventKind, Verifier, VerifySummary};

/// A UUID the trail shows as submitted without an outcome: what `run --resume` sends again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The UUID.
    pub uuid: Uuid,
    /// The data action it was submitted to.
    pub action_id: Option<String>,
    /// The run that submitted it.
    pub run_id: Uuid,
}

/// Follows the latest submission state of each UUID while a trail streams past in seq order.
///
/// Memory follows the number of UUIDs still open, not the length of the trail.
#[derive(Debug, Default)]
pub struct PendingTracker {
    open: HashMap<Uuid, (u64, Pending)>,
}

impl PendingTracker {
    /// Takes the next event of the trail.
    pub fn feed(&mut self, ev: &AuditEvent) {
        let Some(uuid) = ev.uuid else { return };
        match ev.event {
            EventKind::ActionSubmitted => {
                self.open.insert(
                    uuid,
                    (
                        ev.seq,
                        Pending {
                            uuid,
                            action_id: ev.action_id.clone(),
                            run_id: ev.run_id,
                        },
                    ),
                );
            }
            EventKind::ActionExecuted | EventKind::ActionFailed => {
                self.open.remove(&uuid);
            }
            _ => {}
        }
    }

    /// The UUIDs still pending, in submission order.
    pub fn finish(self) -> Vec<Pending> {
        let mut v: Vec<(u64, Pending)> = self.open.into_values().collect();
        v.sort_by_key(|(seq, _)| *seq);
        v.into_iter().map(|(_, p)| p).collect()
    }
}

/// A stored trail, read back: for `audit verify` and `run --resume`.
///
/// Reading is blocking (files, SQLite); async callers run it on a blocking thread.
pub trait AuditSource: Send + Sync {
    /// A description without secrets, e.g. `jsonl:cxone_uuid_audit.jsonl`.
    fn describe(&self) -> String;

    /// Whether anything has been written there yet (a missing trail has nothing pending).
    fn exists(&self) -> Result<bool, AuditError>;

    /// Calls `f` with every event in seq order, stopping at the first error (its own or `f`'s).
    fn visit(
        &self,
        f: &mut dyn FnMut(&AuditEvent) -> Result<(), AuditError>,
    ) -> Result<(), AuditError>;

    /// The latest signed checkpoint kept beside the trail (see [`crate::signing`]), if any.
    fn checkpoint(&self) -> Result<Option<AuditEvent>, AuditError>;

    /// Verifies the chain (and, with `public_key`, every checkpoint and the one kept beside the
    /// trail). A broken chain is [`AuditError::Chain`] with the first bad seq.
    fn verify(&self, public_key: Option<VerifyingKey>) -> Result<VerifySummary, AuditError> {
        let anchor = self.checkpoint()?;
        let mut verifier = Verifier::new();
        if let Some(key) = public_key {
            verifier = verifier.with_public_key(key);
        }
        self.visit(&mut |ev| Ok(verifier.feed_event(ev)?))?;
        Ok(verifier.finish(anchor.as_ref())?)
    }

    /// UUIDs whose latest submission-related event is `action_submitted`, in submission order.
    fn pending(&self) -> Result<Vec<Pending>, AuditError> {
        if !self.exists()? {
            return Ok(Vec::new());
        }
        let mut tracker = PendingTracker::default();
        self.visit(&mut |ev| {
            tracker.feed(ev);
            Ok(())
        })?;
        Ok(tracker.finish())
    }
}

/// Implements [`AuditSource`] for the pointer types given, forwarding every method (the
/// overridable ones too, so a backend's faster override is not lost behind a `Box`).
macro_rules! forward_source {
    ($([$($gen:tt)*] $ty:ty),* $(,)?) => {$(
        impl<$($gen)* S: AuditSource + ?Sized> AuditSource for $ty {
            fn describe(&self) -> String {
                (**self).describe()
            }
            fn exists(&self) -> Result<bool, AuditError> {
                (**self).exists()
            }
            fn visit(
                &self,
                f: &mut dyn FnMut(&AuditEvent) -> Result<(), AuditError>,
            ) -> Result<(), AuditError> {
                (**self).visit(f)
            }
            fn checkpoint(&self) -> Result<Option<AuditEvent>, AuditError> {
                (**self).checkpoint()
            }
            fn verify(&self, public_key: Option<VerifyingKey>) -> Result<VerifySummary, AuditError> {
                (**self).verify(public_key)
            }
            fn pending(&self) -> Result<Vec<Pending>, AuditError> {
                (**self).pending()
            }
        }
    )*};
}

forward_source!([] Box<S>, [] std::sync::Arc<S>, ['a,] &'a S);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pending_tracks_the_latest_state() {
        let run = Uuid::now_v7();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut t = PendingTracker::default();
        for (seq, kind, u) in [
            (1, EventKind::ActionSubmitted, a),
            (2, EventKind::ActionSubmitted, b),
            (3, EventKind::ActionFailed, a),
            (4, EventKind::ActionSubmitted, a),
            (5, EventKind::ActionExecuted, b),
        ] {
            let mut e = AuditEvent::new(kind, run);
            e.seq = seq;
            e.uuid = Some(u);
            t.feed(&e);
        }
        assert_eq!(
            t.finish().iter().map(|p| p.uuid).collect::<Vec<_>>(),
            vec![a]
        );
    }
}
