//! Streaming verification of a stored stream.

use serde_json::Value;

use super::canonical::{hex_digest, write_value};
use super::fast::fast_parse;
use super::{write_canonical, BreakReason, Chain, ChainBreak};
use crate::{AuditEvent, EventKind};

/// Streaming verification: feed events (or stored lines) in order; the first error is the first
/// bad seq. Cheap per event (one scan and one SHA-256, no parse, for lines in the stored form),
/// so verifying runs at well over a million events a second.
#[derive(Debug)]
pub struct Verifier {
    chain: Chain,
    count: u64,
    checkpoints: u64,
    signatures: Option<crate::signing::CheckpointVerifier>,
    scratch: Vec<u8>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

/// What a verified stream holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// Events verified.
    pub events: u64,
    /// The last seq (0 for an empty stream).
    pub last_seq: u64,
    /// The head hash ([`GENESIS_HASH`](super::GENESIS_HASH) for an empty stream).
    pub head: String,
    /// Checkpoint events seen.
    pub checkpoints: u64,
    /// The signature check, when a public key was given.
    pub signed: Option<crate::signing::SignedSummary>,
}

impl Verifier {
    /// Verifies a stream from seq 1.
    pub fn new() -> Self {
        Self {
            chain: Chain::default(),
            count: 0,
            checkpoints: 0,
            signatures: None,
            scratch: Vec::with_capacity(512),
        }
    }

    /// Verifies a stream that continues after `head` (`(seq, hash)` already verified).
    pub fn resume(head: Option<(u64, String)>) -> Self {
        Self {
            chain: Chain::resume(head),
            ..Self::new()
        }
    }

    /// Also checks every checkpoint's signature with `key` (see [`crate::signing`]).
    pub fn with_public_key(mut self, key: ed25519_dalek::VerifyingKey) -> Self {
        self.signatures = Some(crate::signing::CheckpointVerifier::new(key));
        self
    }

    /// Events verified so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `(seq, hash)` of the last verified event.
    pub fn head(&self) -> (u64, &str) {
        (self.chain.last_seq, &self.chain.head_hash)
    }

    fn brk(&self, reason: BreakReason) -> ChainBreak {
        ChainBreak {
            seq: self.chain.last_seq + 1,
            reason,
        }
    }

    /// Verifies one stored line (trailing newline optional). A line in the stored form (checked
    /// byte by byte, see the `fast` module) is verified by hashing its own bytes; any other line
    /// goes through the full parse, so both ways accept exactly the same lines.
    pub fn feed_line(&mut self, line: &[u8]) -> Result<(), ChainBreak> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(fast) = fast_parse(line) {
            if hex_digest(&[fast.body, b"}"]) == *fast.hash {
                if fast.is_checkpoint {
                    // Rare: parse fully so the signature can be checked.
                    return self.feed_parsed(line);
                }
                return self.advance(fast.seq, fast.prev_hash, fast.hash);
            }
        }
        self.feed_parsed(line)
    }

    /// Verifies one stored line by the documented definition alone (a full parse, see
    /// [`super`]), never the fast path. [`Verifier::feed_line`] gives the same verdict on every
    /// line, faster; this is what cross-checks (the `verify_paths_agree` fuzz target, the tests)
    /// compare it against.
    pub fn feed_line_parsed(&mut self, line: &[u8]) -> Result<(), ChainBreak> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.feed_parsed(line)
    }

    /// The documented definition, literally: parse, drop `hash`, sort keys, hash. Unknown keys
    /// count, so a key added to a stored line is a hash mismatch, as in the Python script.
    fn feed_parsed(&mut self, line: &[u8]) -> Result<(), ChainBreak> {
        let mut value: Value = match serde_json::from_slice(line) {
            Ok(v) => v,
            Err(e) => return Err(self.brk(BreakReason::Unparseable(e.to_string()))),
        };
        let stored = match value.as_object_mut().and_then(|m| m.remove("hash")) {
            Some(Value::String(h)) => h,
            _ => {
                return Err(self.brk(BreakReason::Unparseable(
                    "no \"hash\" string field".to_string(),
                )))
            }
        };
        self.scratch.clear();
        write_value(&mut self.scratch, &value);
        let computed = String::from_utf8_lossy(&hex_digest(&[&self.scratch])).into_owned();
        let mut ev: AuditEvent = match serde_json::from_value(value) {
            Ok(ev) => ev,
            Err(e) => return Err(self.brk(BreakReason::Unparseable(e.to_string()))),
        };
        if computed != stored {
            return Err(ChainBreak {
                seq: ev.seq,
                reason: BreakReason::HashMismatch { computed, stored },
            });
        }
        ev.hash = stored;
        self.check_linked(&ev)
    }

    /// Verifies one event.
    pub fn feed_event(&mut self, ev: &AuditEvent) -> Result<(), ChainBreak> {
        self.scratch.clear();
        write_canonical(ev, &mut self.scratch);
        let computed = hex_digest(&[&self.scratch]);
        if computed[..] != *ev.hash.as_bytes() {
            return Err(ChainBreak {
                seq: ev.seq,
                reason: BreakReason::HashMismatch {
                    computed: String::from_utf8_lossy(&computed).into_owned(),
                    stored: ev.hash.clone(),
                },
            });
        }
        self.check_linked(ev)
    }

    fn check_linked(&mut self, ev: &AuditEvent) -> Result<(), ChainBreak> {
        self.advance(ev.seq, ev.prev_hash.as_bytes(), ev.hash.as_bytes())?;
        if ev.event == EventKind::Checkpoint {
            self.checkpoints += 1;
            if let Some(sig) = &mut self.signatures {
                sig.observe(ev).map_err(|why| ChainBreak {
                    seq: ev.seq,
                    reason: BreakReason::Checkpoint(why),
                })?;
            }
        }
        Ok(())
    }

    fn advance(&mut self, seq: u64, prev_hash: &[u8], hash: &[u8]) -> Result<(), ChainBreak> {
        let expected = self.chain.last_seq + 1;
        if seq != expected {
            return Err(ChainBreak {
                seq,
                reason: BreakReason::SeqGap {
                    expected,
                    found: seq,
                },
            });
        }
        if prev_hash != self.chain.head_hash.as_bytes() {
            return Err(ChainBreak {
                seq,
                reason: BreakReason::PrevHashMismatch {
                    expected: self.chain.head_hash.clone(),
                    found: String::from_utf8_lossy(prev_hash).into_owned(),
                },
            });
        }
        self.chain.last_seq = seq;
        self.chain.head_hash.clear();
        self.chain
            .head_hash
            .push_str(std::str::from_utf8(hash).unwrap_or_default());
        self.count += 1;
        Ok(())
    }

    /// Ends the stream. `anchor` is the latest checkpoint kept beside the trail (e.g.
    /// `PATH.checkpoint`), which lets a public-key check notice a tail cut before it.
    pub fn finish(self, anchor: Option<&AuditEvent>) -> Result<VerifySummary, ChainBreak> {
        let last_seq = self.chain.last_seq;
        let signed = match self.signatures {
            Some(sig) => Some(sig.finish(last_seq, anchor).map_err(|why| ChainBreak {
                seq: last_seq,
                reason: BreakReason::Checkpoint(why),
            })?),
            None => None,
        };
        Ok(VerifySummary {
            events: self.count,
            last_seq,
            head: self.chain.head_hash,
            checkpoints: self.checkpoints,
            signed,
        })
    }
}
