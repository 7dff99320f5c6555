//! Sealing for sinks: the chain and, with a key, its checkpoints.

use uuid::Uuid;

use crate::signing::{Checkpointer, Signing};
use crate::{AuditEvent, EventKind};

/// Seals events for a sink: the chain plus, with a signing key, checkpoints every N events
/// and at close. Sinks store what [`Sealer::seal`] and [`Sealer::finish`] return, in order.
#[derive(Debug)]
pub struct Sealer {
    chain: crate::chain::Chain,
    checkpointer: Option<Checkpointer>,
    every: Option<u64>,
    since_checkpoint: u64,
    last_run_id: Uuid,
}

impl Sealer {
    /// A sealer continuing the stored chain after `head` (`(seq, hash)` of the last stored
    /// event, `None` for an empty trail). With `signing`, it adds checkpoints every
    /// `signing.every` events and at close, chained to `checkpoint`: the latest checkpoint the
    /// trail holds (read only when signing, since finding it may mean reading the trail).
    pub fn resume(
        head: Option<(u64, String)>,
        signing: Option<&Signing>,
        checkpoint: Option<&AuditEvent>,
    ) -> Self {
        Self {
            chain: crate::chain::Chain::resume(head),
            checkpointer: signing.map(|s| Checkpointer::new(s.key.clone(), checkpoint)),
            every: signing.and_then(|s| s.every),
            since_checkpoint: 0,
            last_run_id: Uuid::nil(),
        }
    }

    /// Seals `event` (and a checkpoint after it when one is due) onto `out`.
    pub fn seal(&mut self, event: &AuditEvent, out: &mut Vec<AuditEvent>) {
        let mut ev = event.clone();
        self.chain.seal(&mut ev);
        self.last_run_id = ev.run_id;
        out.push(ev);
        self.since_checkpoint += 1;
        if self
            .every
            .is_some_and(|n| n > 0 && self.since_checkpoint >= n)
        {
            if let Some(cp) = self.checkpoint() {
                out.push(cp);
            }
        }
    }

    /// Seals `event` straight into its stored line on `out` (and a checkpoint's line after it
    /// when one is due, which is also returned, sealed, for the sink's anchor).
    pub fn seal_line(&mut self, event: &AuditEvent, out: &mut Vec<u8>) -> Option<AuditEvent> {
        self.chain.seal_line(event, out);
        self.last_run_id = event.run_id;
        self.since_checkpoint += 1;
        if self
            .every
            .is_some_and(|n| n > 0 && self.since_checkpoint >= n)
        {
            if let Some(cp) = self.checkpoint() {
                crate::chain::encode_line(&cp, out);
                return Some(cp);
            }
        }
        None
    }

    /// The closing checkpoint, if signing and anything was sealed since the last one.
    pub fn finish(&mut self) -> Option<AuditEvent> {
        if self.since_checkpoint == 0 {
            return None;
        }
        self.checkpoint()
    }

    fn checkpoint(&mut self) -> Option<AuditEvent> {
        let cp = self.checkpointer.as_mut()?;
        let mut ev = cp.make(
            self.last_run_id,
            self.chain.last_seq(),
            self.chain.head_hash(),
        );
        self.chain.seal(&mut ev);
        self.since_checkpoint = 0;
        Some(ev)
    }

    /// Takes an already sealed `event` (an import that keeps the source's seq and hashes) as the
    /// new head. The caller has verified that it continues the chain.
    pub fn adopt(&mut self, event: &AuditEvent) {
        self.chain = crate::chain::Chain::resume(Some((event.seq, event.hash.clone())));
        self.last_run_id = event.run_id;
        if event.event == EventKind::Checkpoint {
            self.since_checkpoint = 0;
        } else {
            self.since_checkpoint += 1;
        }
    }

    /// The chain's state.
    pub fn chain(&self) -> &crate::chain::Chain {
        &self.chain
    }
}
