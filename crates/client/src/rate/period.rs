//! What a fixed window that sends no quota headers shows of itself: a long pause (its
//! Retry-After) after the same number of successes each time.

use std::time::Duration;

use tokio::time::Instant;

/// A probe past the learned quota unanswered this long no longer holds the others.
pub(super) const PROBE_EXPIRY: Duration = Duration::from_secs(30);

/// A fixed window that sends no quota headers still shows its shape: a long pause (its
/// Retry-After) after the same number of successes each time. After one such period the
/// client sends that many and then one request at a time until the refusal that says when the
/// next window opens: one 429 per window instead of every request in flight when it closed.
/// A success past the learned count means the model was wrong (the quota grew, or the limit
/// is not a window): it is dropped and sending goes on as before.
#[derive(Debug, Default)]
pub(super) struct Period {
    /// Successes admitted in the last full period.
    learned: Option<u64>,
    sent: u64,
    ok: u64,
    /// The one request allowed past the learned count is out, since then.
    probing: Option<Instant>,
    /// Paused: answers still coming in belong to the period just closed.
    closing: bool,
}

impl Period {
    /// A long pause begins: what this period admitted is the quota.
    pub(super) fn closed(&mut self) {
        self.learned = (self.ok > 0).then_some(self.ok);
        self.probing = None;
        self.closing = true;
    }

    /// The probe came back without a long pause (refused briefly, or no answer): another may
    /// go.
    pub(super) fn probe_back(&mut self) {
        self.probing = None;
    }

    /// Sending resumes after a pause.
    pub(super) fn reopened(&mut self) {
        self.sent = 0;
        self.ok = 0;
        self.probing = None;
        self.closing = false;
    }

    /// Whether one more may leave now.
    pub(super) fn admits(&mut self, now: Instant) -> bool {
        match self.learned {
            Some(q) if self.sent >= q => {
                // A probe that never reports back (cancelled) stops blocking after a while.
                if self
                    .probing
                    .is_some_and(|t| now.saturating_duration_since(t) < PROBE_EXPIRY)
                {
                    return false;
                }
                self.probing = Some(now);
            }
            _ => {}
        }
        self.sent += 1;
        true
    }

    pub(super) fn succeeded(&mut self) {
        if self.closing {
            // Admitted before the window closed, answered after the first refusal.
            self.learned = Some(self.learned.unwrap_or(0) + 1);
            return;
        }
        self.ok += 1;
        if self.learned.is_some_and(|q| self.ok > q) {
            self.learned = None;
        }
        if self.learned.is_none() {
            self.probing = None;
        }
    }
}
