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
///
/// The window's phase is learnt too, when the first period shows it ([`Grid`]): then each
/// window's quota is sent, the client waits for the next opening without asking, and no
/// request is refused after the first window.
#[derive(Debug, Default)]
pub(super) struct Period {
    /// Successes admitted in the last full period.
    learned: Option<u64>,
    sent: u64,
    ok: u64,
    /// The one request allowed past the learned count, or the lone one verifying a predicted
    /// opening, is out, since then.
    probing: Option<Instant>,
    /// Paused: answers still coming in belong to the period just closed.
    closing: bool,
    /// When the run's first request was sent, and the first answer's round trip.
    first: Option<(Instant, Option<Duration>)>,
    /// When the windows open, once learnt.
    grid: Option<Grid>,
    /// A predicted opening was refused: no grid for the rest of the run.
    no_grid: bool,
    /// Reopened at a predicted opening: one request goes alone until one is admitted.
    verifying: bool,
    /// When this period's first request left.
    began: Option<Instant>,
}

/// When a fixed window opens, learnt from the first one: windows of whole seconds (Retry-After
/// cannot say less) that start with the first request a window sees and follow each other
/// without a gap, as the stand-in's and a counter kept per `floor(now / width)` do.
///
/// The first window's refusal asks for `ceil(opening − t)` seconds, where `t` is when the
/// server refused. If that refusal comes back within a second of the run's first request, `t`
/// is less than a second into the window, so the Retry-After is the width itself; the window
/// began when the server saw the first request, between its sending and its answer. Openings
/// are then `first sent + first round trip + k · width`: never early by the server's clock,
/// late by at most that round trip. On the stand-in's `window:300/10s` this took the last
/// window's start from up to a second late (a Retry-After rounds up) to a round trip late.
///
/// A prediction is checked before it is trusted: at each predicted opening one request goes
/// alone, and the rest follow when it is admitted. A refusal of it (the model was wrong: a
/// window aligned to the clock, a width not in whole seconds) costs that one request, and the
/// run goes back to probing for good. A refusal arriving later than a second, or a period
/// already known not to fit, teaches nothing.
#[derive(Debug, Clone, Copy)]
struct Grid {
    /// The first window's opening as the client can be sure of it.
    origin: Instant,
    width: Duration,
}

impl Grid {
    /// The first opening after `t`.
    fn next_after(&self, t: Instant) -> Instant {
        let since = t.saturating_duration_since(self.origin).as_secs_f64();
        let k = (since / self.width.as_secs_f64()).floor() + 1.0;
        self.origin + self.width.mul_f64(k)
    }
}

/// Why a request may not leave yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// A lone request is out: ask again shortly (its answer decides).
    Poll,
    /// This window's quota is sent: everyone waits for the next opening.
    Until(Instant),
}

impl Period {
    /// The first long refusal of a period, answered at `now`, asking for `retry_after`: what
    /// this period admitted is the quota. Returns the predicted opening when the grid knows
    /// it (sooner than the Retry-After, which rounds up).
    pub(super) fn closed(&mut self, retry_after: Duration, now: Instant) -> Option<Instant> {
        self.learned = (self.ok > 0).then_some(self.ok);
        self.probing = None;
        self.closing = true;
        if self.grid.is_some() {
            // Refused where the grid said the window was open (a refusal of the lone request
            // checking an opening never gets here: the caller drops the grid for it first):
            // the model is wrong.
            self.missed();
            return None;
        }
        if self.no_grid {
            return None;
        }
        let (sent, Some(rtt)) = self.first? else {
            return None;
        };
        let whole = retry_after.subsec_nanos() == 0 && retry_after.as_secs() > 0;
        if !whole || now.saturating_duration_since(sent) >= Duration::from_secs(1) {
            self.no_grid = true;
            return None;
        }
        let grid = Grid {
            origin: sent + rtt,
            width: retry_after,
        };
        self.grid = Some(grid);
        Some(grid.next_after(now))
    }

    /// Whether a period's quota is known: each window then gets that many and no more.
    pub(super) fn learned(&self) -> bool {
        self.learned.is_some()
    }

    /// A predicted opening was wrong: back to probing for the rest of the run.
    pub(super) fn missed(&mut self) {
        self.grid = None;
        self.no_grid = true;
        self.verifying = false;
        self.probing = None;
    }

    /// Whether a lone request is verifying a predicted opening (its refusal is the grid's).
    pub(super) fn verifying(&self) -> bool {
        self.verifying
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
        self.verifying = self.grid.is_some();
        self.began = None;
    }

    /// Whether one more may leave now, and if not, until when it waits.
    pub(super) fn admits(&mut self, now: Instant) -> Result<(), Wait> {
        self.first.get_or_insert((now, None));
        let began = *self.began.get_or_insert(now);
        let probe_out = self
            .probing
            .is_some_and(|t| now.saturating_duration_since(t) < PROBE_EXPIRY);
        if self.verifying {
            // A probe that never reports back (cancelled) stops blocking after a while.
            if probe_out {
                return Err(Wait::Poll);
            }
            self.probing = Some(now);
        } else {
            match (self.learned, self.grid) {
                (Some(q), Some(grid)) if self.sent >= q => {
                    // The opening after this window's, which may have passed already if its
                    // quota took longer than a window to send.
                    return Err(Wait::Until(grid.next_after(began)));
                }
                (Some(q), None) if self.sent >= q => {
                    if probe_out {
                        return Err(Wait::Poll);
                    }
                    self.probing = Some(now);
                }
                _ => {}
            }
        }
        self.sent += 1;
        Ok(())
    }

    /// A success, `rtt` after its request left (when known).
    pub(super) fn succeeded(&mut self, rtt: Option<Duration>) {
        if let Some((_, first_rtt @ None)) = &mut self.first {
            *first_rtt = rtt;
        }
        if self.verifying {
            self.verifying = false;
            self.probing = None;
        }
        if self.closing {
            // Admitted before the window closed, answered after the first refusal.
            self.learned = Some(self.learned.unwrap_or(0) + 1);
            return;
        }
        self.ok += 1;
        if self.learned.is_some_and(|q| self.ok > q) {
            self.learned = None;
            if self.grid.is_some() {
                self.missed();
            }
        }
        if self.learned.is_none() {
            self.probing = None;
        }
    }
}
