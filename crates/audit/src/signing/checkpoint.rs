//! Checkpoint events: making them (chained signatures) and checking them.

use std::sync::Arc;

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::signed_message;
use crate::{AuditEvent, EventKind};

/// Why a checkpoint does not prove what it claims. Each kind says what was found, so a caller
/// can tell a cut tail ([`CheckpointError::TailCut`]) from a wrong key or a forgery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The checkpoint's metadata lacks a field (`metadata` itself, `head_seq`, `signature`, ...).
    #[error("checkpoint without {0}")]
    Missing(&'static str),
    /// Signed by another key than the one given.
    #[error("signed by another key (public key {public_key}), not the one given")]
    WrongKey {
        /// The public key the checkpoint names.
        public_key: String,
    },
    /// The signature field is not 64 bytes of hex.
    #[error("signature is not 128 hex digits")]
    MalformedSignature,
    /// The signature does not verify: the signed fields were changed.
    #[error("signature does not verify with this public key")]
    BadSignature,
    /// The checkpoint signs a head other than the event just before it.
    #[error("signs head seq {head_seq} but sits after seq {after}")]
    Misplaced {
        /// The head seq it signs.
        head_seq: u64,
        /// The seq it sits after.
        after: u64,
    },
    /// The signed time is not the event's timestamp.
    #[error("signed time differs from the event's timestamp")]
    TimeMismatch,
    /// The signature chain skips or reorders checkpoints.
    #[error("prev_signature is not the previous checkpoint's signature: checkpoints were removed or reordered")]
    Reordered,
    /// The checkpoint kept beside the trail is itself not valid.
    #[error("the checkpoint kept beside the trail: {0}")]
    Anchor(Box<CheckpointError>),
    /// The checkpoint kept beside the trail covers more than the trail holds.
    #[error(
        "the latest signed checkpoint (kept beside the trail, signed {time}) covers seq {anchor_seq}, \
         but the trail's last valid checkpoint covers seq {signed_through}: the tail was cut"
    )]
    TailCut {
        /// When the anchor was signed.
        time: String,
        /// The seq the anchor covers.
        anchor_seq: u64,
        /// The seq the trail's last valid checkpoint covers.
        signed_through: u64,
    },
    /// No checkpoint in the trail is signed by this key.
    #[error("no checkpoint signed by this key: nothing in the trail is proven (was it written with --audit-signing-key?)")]
    NoCheckpoint,
}

/// Makes checkpoint events, chaining each signature to the previous one.
#[derive(Clone)]
pub struct Checkpointer {
    key: Arc<SigningKey>,
    prev_signature: String,
}

impl std::fmt::Debug for Checkpointer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("Checkpointer")
            .field(
                "public_key",
                &hex::encode(self.key.verifying_key().as_bytes()),
            )
            .finish()
    }
}

impl Checkpointer {
    /// A checkpointer continuing after the stored checkpoint `last` (if the trail has one).
    pub fn new(key: Arc<SigningKey>, last: Option<&AuditEvent>) -> Self {
        let prev_signature = last
            .and_then(|ev| Fields::of(ev).ok())
            .map(|f| f.signature)
            .unwrap_or_default();
        Self {
            key,
            prev_signature,
        }
    }

    /// An unsealed checkpoint over the head `(head_seq, head_hash)`; seal it right after that head.
    pub fn make(&mut self, run_id: Uuid, head_seq: u64, head_hash: &str) -> AuditEvent {
        let mut ev = AuditEvent::new(EventKind::Checkpoint, run_id);
        let msg = signed_message(head_seq, head_hash, &ev.timestamp, &self.prev_signature);
        let signature = hex::encode(self.key.sign(&msg).to_bytes());
        let mut md = Map::new();
        md.insert("head_seq".into(), json!(head_seq));
        md.insert("head_hash".into(), json!(head_hash));
        md.insert("time".into(), json!(ev.timestamp));
        md.insert("prev_signature".into(), json!(self.prev_signature));
        md.insert(
            "public_key".into(),
            json!(hex::encode(self.key.verifying_key().as_bytes())),
        );
        md.insert("signature".into(), json!(signature));
        ev.metadata = Some(md);
        self.prev_signature = signature;
        ev
    }
}

struct Fields {
    head_seq: u64,
    head_hash: String,
    time: String,
    prev_signature: String,
    public_key: String,
    signature: String,
}

impl Fields {
    fn of(ev: &AuditEvent) -> Result<Self, CheckpointError> {
        let md = ev
            .metadata
            .as_ref()
            .ok_or(CheckpointError::Missing("metadata"))?;
        let s = |k: &'static str| -> Result<String, CheckpointError> {
            md.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(CheckpointError::Missing(k))
        };
        Ok(Self {
            head_seq: md
                .get("head_seq")
                .and_then(Value::as_u64)
                .ok_or(CheckpointError::Missing("head_seq"))?,
            head_hash: s("head_hash")?,
            time: s("time")?,
            prev_signature: s("prev_signature")?,
            public_key: s("public_key")?,
            signature: s("signature")?,
        })
    }

    fn verify(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        if self.public_key != hex::encode(key.as_bytes()) {
            return Err(CheckpointError::WrongKey {
                public_key: self.public_key.clone(),
            });
        }
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut sig)
            .map_err(|_| CheckpointError::MalformedSignature)?;
        let msg = signed_message(
            self.head_seq,
            &self.head_hash,
            &self.time,
            &self.prev_signature,
        );
        key.verify(&msg, &Signature::from_bytes(&sig))
            .map_err(|_| CheckpointError::BadSignature)
    }
}

/// What a public-key check proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedSummary {
    /// Valid checkpoints seen.
    pub checkpoints: u64,
    /// Every event up to this seq is covered by a valid signature.
    pub signed_through: u64,
    /// The time the last checkpoint was signed.
    pub last_time: String,
    /// Events after the last checkpoint (not covered by any signature).
    pub unsigned_after: u64,
}

/// Checks checkpoint signatures and their chaining, fed by [`crate::chain::Verifier`] after the
/// hash chain has accepted each checkpoint event.
#[derive(Debug)]
pub struct CheckpointVerifier {
    key: VerifyingKey,
    prev_signature: String,
    checkpoints: u64,
    signed_through: u64,
    last_checkpoint_seq: u64,
    last_time: String,
}

impl CheckpointVerifier {
    /// Checks signatures against `key`.
    pub fn new(key: VerifyingKey) -> Self {
        Self {
            key,
            prev_signature: String::new(),
            checkpoints: 0,
            signed_through: 0,
            last_checkpoint_seq: 0,
            last_time: String::new(),
        }
    }

    /// Checks one checkpoint event, already linked into the chain.
    pub fn observe(&mut self, ev: &AuditEvent) -> Result<(), CheckpointError> {
        let f = Fields::of(ev)?;
        f.verify(&self.key)?;
        if f.head_seq + 1 != ev.seq || f.head_hash != ev.prev_hash {
            return Err(CheckpointError::Misplaced {
                head_seq: f.head_seq,
                after: ev.seq.saturating_sub(1),
            });
        }
        if f.time != ev.timestamp {
            return Err(CheckpointError::TimeMismatch);
        }
        if f.prev_signature != self.prev_signature {
            return Err(CheckpointError::Reordered);
        }
        self.prev_signature = f.signature;
        self.checkpoints += 1;
        self.signed_through = f.head_seq;
        self.last_checkpoint_seq = ev.seq;
        self.last_time = f.time;
        Ok(())
    }

    /// Ends the check at `last_seq`. `anchor` is the latest checkpoint kept beside the trail.
    pub fn finish(
        self,
        last_seq: u64,
        anchor: Option<&AuditEvent>,
    ) -> Result<SignedSummary, CheckpointError> {
        if let Some(anchor) = anchor {
            let f = Fields::of(anchor)?;
            f.verify(&self.key)
                .map_err(|e| CheckpointError::Anchor(Box::new(e)))?;
            if f.head_seq > self.signed_through
                || (f.head_seq == self.signed_through && f.signature != self.prev_signature)
            {
                return Err(CheckpointError::TailCut {
                    time: f.time,
                    anchor_seq: f.head_seq,
                    signed_through: self.signed_through,
                });
            }
        }
        if self.checkpoints == 0 {
            return Err(CheckpointError::NoCheckpoint);
        }
        Ok(SignedSummary {
            checkpoints: self.checkpoints,
            signed_through: self.signed_through,
            last_time: self.last_time,
            unsigned_after: last_seq.saturating_sub(self.last_checkpoint_seq),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::chain::{encode_line, hash_event, Verifier};
    use crate::signing::{generate_signing_key, Signing};
    use crate::Sealer;

    fn trail(key: &Arc<SigningKey>, n: usize, every: u64) -> Vec<AuditEvent> {
        let signing = Signing {
            key: key.clone(),
            every: Some(every),
        };
        let mut s = Sealer::resume(None, Some(&signing), None);
        let mut out = Vec::new();
        let run = Uuid::now_v7();
        for _ in 0..n {
            s.seal(&AuditEvent::new(EventKind::UuidGenerated, run), &mut out);
        }
        out.extend(s.finish());
        out
    }

    fn check(
        evs: &[AuditEvent],
        key: &SigningKey,
        anchor: Option<&AuditEvent>,
    ) -> Result<SignedSummary, crate::BreakReason> {
        let mut v = Verifier::new().with_public_key(key.verifying_key());
        for e in evs {
            let mut line = Vec::new();
            encode_line(e, &mut line);
            v.feed_line(&line).map_err(|e| e.reason)?;
        }
        v.finish(anchor)
            .map(|s| s.signed.unwrap())
            .map_err(|e| e.reason)
    }

    #[test]
    fn signed_trail_verifies_and_reports_unsigned_tail() {
        let key = Arc::new(generate_signing_key().unwrap());
        let mut evs = trail(&key, 10, 4);
        // 4 + cp + 4 + cp + 2 + cp
        assert_eq!(evs.len(), 13);
        let s = check(&evs, &key, evs.last()).unwrap();
        assert_eq!(
            (s.checkpoints, s.signed_through, s.unsigned_after),
            (3, 12, 0)
        );
        // Events appended without the key after the last checkpoint are reported as unsigned.
        let mut chain = crate::chain::Chain::resume(Some((13, evs[12].hash.clone())));
        let mut ev = AuditEvent::new(EventKind::RunStarted, Uuid::nil());
        chain.seal(&mut ev);
        evs.push(ev);
        let s = check(&evs, &key, None).unwrap();
        assert_eq!(s.unsigned_after, 1);
    }

    #[test]
    fn a_rewritten_trail_with_a_recomputed_chain_fails() {
        let key = Arc::new(generate_signing_key().unwrap());
        let evs = trail(&key, 6, 3);
        // The forger edits an event and recomputes every hash after it, keeping the checkpoints.
        let mut forged = evs.clone();
        forged[1].error = Some("forged".into());
        let mut prev = crate::chain::GENESIS_HASH.to_string();
        for e in &mut forged {
            e.prev_hash = prev.clone();
            e.hash = hash_event(e);
            prev = e.hash.clone();
        }
        let err = check(&forged, &key, None).unwrap_err();
        assert!(matches!(err, crate::BreakReason::Checkpoint(_)), "{err}");
        // Dropping the checkpoints leaves nothing signed.
        let mut stripped: Vec<AuditEvent> = evs
            .iter()
            .filter(|e| e.event != EventKind::Checkpoint)
            .cloned()
            .collect();
        let mut chain = crate::chain::Chain::default();
        for e in &mut stripped {
            chain.seal(e);
        }
        let err = check(&stripped, &key, None).unwrap_err();
        assert!(
            matches!(
                err,
                crate::BreakReason::Checkpoint(CheckpointError::NoCheckpoint)
            ),
            "{err}"
        );
        // A different key does not verify.
        let other = generate_signing_key().unwrap();
        assert!(check(&evs, &other, None).is_err());
    }

    #[test]
    fn a_tail_cut_before_the_last_checkpoint_fails_against_the_anchor() {
        let key = Arc::new(generate_signing_key().unwrap());
        let evs = trail(&key, 6, 3);
        let anchor = evs.last().unwrap().clone();
        let cut = &evs[..4]; // up to and including the first checkpoint
        let err = check(cut, &key, Some(&anchor)).unwrap_err();
        assert!(
            matches!(
                err,
                crate::BreakReason::Checkpoint(CheckpointError::TailCut { .. })
            ),
            "{err}"
        );
    }
}
