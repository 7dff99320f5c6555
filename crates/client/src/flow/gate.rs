//! The quota gate: when the server advertises its quota (RateLimit or X-RateLimit headers),
//! send at most what is left before the reset, then wait for the reset.
//!
//! Accounting: each answer says `r` left as the server counted when it handled that request.
//! The gate keeps the least reading of the window (what is left only goes down within one, so
//! the least is the server's latest state, in whatever order requests reached it) and lets
//! through `r` minus every request still unanswered. That never overspends: whatever the server
//! counted after the reading is among the unanswered. It strands nothing either: the
//! unanswered the server had already counted leave the sum as their answers come in, so once
//! everything is answered what the gate allows is exactly what the server said is left. (An
//! earlier version let the balance only go down within a window; a transient undercount then
//! stood for the rest of the window, and one request stranded per window costs a whole extra
//! window at the end of a run.)
//!
//! Windows: an answer whose reset is a second or more later than the gate's starts a new one;
//! one a second or more earlier is stale and ignored. Resets come in whole seconds, rounded up
//! (IETF `t`, Retry-After, epoch seconds), so the earliest reset any answer of a window implies
//! is the best estimate of the true one. It is still an estimate: a token bucket reports the
//! time until it is full, which moves later with every request spent after the first answer
//! (seen: a bucket of 40 that the gate refilled to 40 at the earliest such time refused 7), and
//! an epoch reset (`X-RateLimit-Reset`) is as early as the server's clock is ahead. So after
//! the reset the gate lets one request through and spends what its answer says is left, not
//! the advertised limit: a round trip per window instead of a refusal for every request the
//! estimate was early by.
//!
//! A 429 whose quota shows nothing left closes the gate until its `Retry-After` (it wins over
//! the quota fields); a 429 while quota is left is some other limit's (the concurrency
//! window's, [`Verdict::OtherRefusal`]).
//!
//! A quota whose readings prove that it refills between resets (a token bucket) is paced by
//! its refill rate instead of spent and waited for: see `flow::refill`.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::refill::{self, Refill};
use crate::quota::{Quota, QuotaStyle};

/// The policy the server advertised, for the run's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Advertised {
    /// Header style.
    pub style: QuotaStyle,
    /// IETF policy name.
    pub policy: Option<String>,
    /// Requests per window.
    pub limit: Option<u64>,
    /// Window width.
    pub window: Option<Duration>,
    /// Requests per second the quota regains between resets, once its readings proved it
    /// does (a token bucket); `None`: a window that resets at once, or not yet known.
    pub refill_per_s: Option<f64>,
}

/// What one answer told the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No quota headers: the gate learned nothing.
    NoQuota,
    /// Quota read; nothing refused.
    Read,
    /// A 429 while the quota ran out: a quota refusal (wait for the reset).
    QuotaRefusal,
    /// A 429 while the headers still showed quota: some other limit (concurrency) refused.
    OtherRefusal,
}

#[derive(Debug, Default)]
struct State {
    /// The least `r` read in this window; `None`: not counting.
    remaining: Option<u64>,
    reset_at: Option<Instant>,
    /// A quota refusal's Retry-After: nothing leaves before it.
    closed_until: Option<Instant>,
    /// Requests sent and not answered.
    unanswered: u64,
    /// The reset has passed and the new window is unread: one request reads it.
    reopening: bool,
    /// That request is out.
    reader_out: bool,
    advertised: Option<Advertised>,
    /// Quota readings taken so far (each pass carries the count at its sending).
    seq: u64,
    /// When the reading that set `remaining` came back.
    remaining_at: Option<Instant>,
    /// The longest reset read in this window (the X- style's stand-in for a fill time).
    longest_reset: Duration,
    /// Whether the quota refills between resets, as far as the gate knows.
    shape: Shape,
}

/// What the gate knows of how the quota comes back.
#[derive(Debug, Default)]
enum Shape {
    /// Not tested yet: a window's last request is held to find out.
    #[default]
    Unknown,
    /// It resets at once (the held request came back showing nothing left, or pacing by a
    /// refill met a quota refusal): windows for the rest of the run.
    Windows,
    /// It refills (a token bucket): paced by the model.
    Bucket(Refill),
}

/// The quota gate shared by every request of one client.
#[derive(Debug, Default)]
pub struct Gate {
    state: Mutex<State>,
    changed: Notify,
}

/// A request let through: it counts as unanswered until it is handed back, once, with its
/// answer ([`Gate::observe`]) or without one ([`Gate::forget`]).
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// The one request that reads a window after its reset.
    reader: bool,
    /// Quota readings the gate had taken when it let this request through.
    seq: u64,
    /// The window's last request, held until a refill would show (see [`super::refill`]).
    probe: bool,
}

impl Gate {
    /// A gate that lets everything through until an answer carries quota headers.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the quota allows one more request.
    pub async fn acquire(&self) -> Pass {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            match self.try_acquire(Instant::now()) {
                Ok(pass) => return pass,
                Err(until) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {}
                        _ = &mut changed => {}
                    }
                }
            }
        }
    }

    /// Lets one request through now, or says until when to wait.
    pub fn try_acquire(&self, now: Instant) -> Result<Pass, Instant> {
        let mut s = self.lock();
        if let Some(until) = s.closed_until {
            if until > now {
                return Err(until);
            }
            s.closed_until = None;
        }
        if let Shape::Bucket(refill) = &s.shape {
            refill.admit(s.unanswered, now)?;
            s.unanswered += 1;
            return Ok(Pass {
                reader: false,
                seq: s.seq,
                probe: false,
            });
        }
        if let Some(reset) = s.reset_at {
            if reset <= now {
                // A new window, unread until an answer tells what is left in it.
                s.reset_at = None;
                s.remaining = None;
                s.reopening = true;
            }
        }
        if s.reopening {
            if s.reader_out {
                // Its answer (or its loss) wakes the waiters; this is a fallback.
                return Err(now + Duration::from_secs(1));
            }
            s.reader_out = true;
            s.unanswered += 1;
            return Ok(Pass {
                reader: true,
                seq: s.seq,
                probe: false,
            });
        }
        let mut probe = false;
        if let Some(r) = s.remaining {
            let reset = s.reset_at.unwrap_or(now + Duration::from_secs(1));
            if r <= s.unanswered {
                return Err(reset);
            }
            if r == s.unanswered + 1 && matches!(s.shape, Shape::Unknown) {
                // The window's last, once nothing else is out: held until a refill, if any,
                // would show in its answer.
                if let Some(until) = Self::hold_until(&s) {
                    if s.unanswered > 0 {
                        return Err(reset);
                    }
                    if now < until {
                        return Err(until);
                    }
                    probe = true;
                }
            }
        }
        s.unanswered += 1;
        Ok(Pass {
            reader: false,
            seq: s.seq,
            probe,
        })
    }

    /// Reads one answer: its status, its Retry-After and its quota headers.
    pub fn observe(
        &self,
        pass: Pass,
        status: Option<u16>,
        retry_after: Option<Duration>,
        quota: Option<&Quota>,
        now: Instant,
    ) -> Verdict {
        let verdict = {
            let mut s = self.lock();
            s.unanswered = s.unanswered.saturating_sub(1);
            if pass.reader {
                // Read: what it says is left (or, without quota fields, no count until an
                // answer has them, as before the first).
                s.reader_out = false;
                s.reopening = false;
            }
            match quota {
                None => Verdict::NoQuota,
                Some(q) => {
                    s.reopening = false;
                    s.seq += 1;
                    let refused = status == Some(429);
                    if matches!(s.shape, Shape::Bucket(_)) && refused && q.remaining == 0 {
                        // Not a bucket after all (or not at the rate assumed): back to
                        // windows, starting with this refusal's.
                        s.shape = Shape::Windows;
                        s.reset_at = None;
                        s.remaining = None;
                    }
                    s.advertised = Some(Advertised {
                        style: q.style,
                        policy: q.policy.clone(),
                        limit: q.limit.or(s.advertised.as_ref().and_then(|a| a.limit)),
                        window: q.window.or(s.advertised.as_ref().and_then(|a| a.window)),
                        // Filled in from the gate's shape when read.
                        refill_per_s: None,
                    });
                    let seq = s.seq;
                    if let Shape::Bucket(refill) = &mut s.shape {
                        if !refused {
                            refill.read(q, pass.seq, seq, now);
                        }
                    } else {
                        Self::read_window(&mut s, pass, q, refused, now);
                    }
                    if refused && q.remaining == 0 {
                        // Retry-After wins over the quota's own reset.
                        if let Some(ra) = retry_after {
                            let until = now + ra;
                            s.closed_until = Some(s.closed_until.map_or(until, |c| c.max(until)));
                            s.reset_at = Some(until);
                        }
                        if let Some(r) = s.remaining.as_mut() {
                            *r = 0;
                        }
                    }
                    match (refused, q.remaining) {
                        (false, _) => Verdict::Read,
                        (true, 0) => Verdict::QuotaRefusal,
                        (true, _) => Verdict::OtherRefusal,
                    }
                }
            }
        };
        self.changed.notify_waiters();
        verdict
    }

    /// The quota's size and fill time, for a bucket model: the advertised size, and the
    /// advertised window or else the longest reset read in this window.
    fn model(s: &State) -> Option<(u64, Duration)> {
        let a = s.advertised.as_ref()?;
        Some((a.limit?, a.window.unwrap_or(s.longest_reset)))
    }

    /// Until when to hold the window's last request, when a bucket model can be made.
    fn hold_until(s: &State) -> Option<Instant> {
        let (limit, fill) = Self::model(s)?;
        refill::hold_until(limit, fill, s.remaining_at?)
    }

    /// Reads one answer's quota into the window the gate is spending; the held request's
    /// answer says whether the quota refills.
    fn read_window(s: &mut State, pass: Pass, q: &Quota, refused: bool, now: Instant) {
        let reset_at = now + q.reset.or(q.window).unwrap_or(Duration::from_secs(1));
        let second = Duration::from_secs(1);
        match s.reset_at {
            Some(current) if reset_at + second <= current => {
                // From a window already over: stale.
            }
            Some(current) if reset_at < current + second => {
                s.reset_at = Some(current.min(reset_at));
                // Within a window what is left only goes down as the server counts: the
                // least reading is its latest state, whichever order the requests reached
                // it in.
                let before = s.remaining;
                s.remaining = Some(s.remaining.map_or(q.remaining, |r| r.min(q.remaining)));
                s.longest_reset = s.longest_reset.max(q.reset.unwrap_or_default());
                if s.remaining != before {
                    s.remaining_at = Some(now);
                }
                if pass.probe && !refused && matches!(s.shape, Shape::Unknown) {
                    if let Some((limit, fill)) = Self::model(s) {
                        s.shape = refill::probe(limit, fill, q, s.seq, now)
                            .map_or(Shape::Windows, Shape::Bucket);
                    }
                }
            }
            _ => {
                s.reset_at = Some(reset_at);
                s.remaining = Some(q.remaining);
                s.remaining_at = Some(now);
                s.longest_reset = q.reset.unwrap_or_default();
            }
        }
    }

    /// Forgets a request that got no answer (transport error, cancelled).
    pub fn forget(&self, pass: Pass) {
        {
            let mut s = self.lock();
            s.unanswered = s.unanswered.saturating_sub(1);
            if pass.reader {
                // Another request reads the window.
                s.reader_out = false;
            }
        }
        self.changed.notify_waiters();
    }

    /// The policy the server advertised, if any answer carried one.
    pub fn advertised(&self) -> Option<Advertised> {
        let s = self.lock();
        let refill_per_s = match &s.shape {
            Shape::Bucket(refill) => Some(refill.per_sec()),
            _ => None,
        };
        s.advertised
            .clone()
            .map(|a| Advertised { refill_per_s, ..a })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn quota(remaining: u64, reset: u64) -> Quota {
        Quota {
            remaining,
            reset: Some(Duration::from_secs(reset)),
            limit: Some(10),
            window: Some(Duration::from_secs(10)),
            policy: Some("default".into()),
            style: QuotaStyle::Ietf,
        }
    }

    /// A gate that already knows its quota resets at once (the hold of a window's last
    /// request, which tells a bucket from a window, is tested in refill.rs).
    fn windows() -> Gate {
        let g = Gate::new();
        g.lock().shape = Shape::Windows;
        g
    }

    #[test]
    fn unthrottled_until_headers_then_spends_what_is_left() {
        let g = windows();
        let t0 = Instant::now();
        let passes: Vec<Pass> = (0..5).map(|_| g.try_acquire(t0).unwrap()).collect();
        // The first answer says 7 left; the 4 sent after it and unanswered may not be counted.
        assert_eq!(
            g.observe(passes[0], Some(200), None, Some(&quota(7, 5)), t0),
            Verdict::Read
        );
        let three: Vec<Pass> = (0..3).map(|_| g.try_acquire(t0).unwrap()).collect();
        assert_eq!(g.try_acquire(t0).unwrap_err(), t0 + Duration::from_secs(5));
        // The last of the batch says 3 left: the server had counted the others.
        for p in &passes[1..4] {
            g.forget(*p);
        }
        g.observe(passes[4], Some(200), None, Some(&quota(3, 5)), t0);
        assert!(g.try_acquire(t0).is_err(), "3 left, 3 unanswered");
        for p in three {
            g.forget(p);
        }
        // Nothing in flight: exactly what the server said, none stranded.
        let last: Vec<Pass> = (0..3).map(|_| g.try_acquire(t0).unwrap()).collect();
        assert!(g.try_acquire(t0).is_err());
        // After the reset one request reads the new window; the rest wait for its answer...
        let t1 = t0 + Duration::from_secs(5);
        let reader = g.try_acquire(t1).unwrap();
        assert!(g.try_acquire(t1).is_err(), "the new window is unread");
        // ...and spend what it says is left, less what is still unanswered (the server may
        // count those in the new window)...
        g.observe(reader, Some(200), None, Some(&quota(9, 5)), t1);
        for _ in 0..6 {
            g.try_acquire(t1).unwrap();
        }
        assert!(g.try_acquire(t1).is_err());
        // ...given back as their answers come in.
        for p in last {
            g.forget(p);
        }
        for _ in 0..3 {
            g.try_acquire(t1).unwrap();
        }
        assert!(g.try_acquire(t1).is_err());
        let a = g.advertised().unwrap();
        assert_eq!((a.limit, a.policy.as_deref()), (Some(10), Some("default")));
    }

    /// A reset estimate can be early (a bucket's time until full moves later as it is spent):
    /// after it the gate spends what the first answer says is left, not the advertised limit.
    /// A reader that gets no answer is replaced; one answered without quota fields ends the
    /// wait (nothing to count by, as before the first answer with them).
    #[test]
    fn after_a_reset_one_request_reads_the_window() {
        let g = windows();
        let t0 = Instant::now();
        let p = g.try_acquire(t0).unwrap();
        g.observe(p, Some(200), None, Some(&quota(0, 1)), t0);
        let t1 = t0 + Duration::from_secs(1);
        let reader = g.try_acquire(t1).unwrap();
        assert!(g.try_acquire(t1).is_err());
        g.forget(reader);
        let reader = g.try_acquire(t1).unwrap();
        assert!(g.try_acquire(t1).is_err(), "one reader at a time");
        // The bucket was not full yet: 3 left of the advertised 10.
        g.observe(reader, Some(200), None, Some(&quota(3, 1)), t1);
        for _ in 0..3 {
            g.try_acquire(t1).unwrap();
        }
        assert!(g.try_acquire(t1).is_err(), "3, not the advertised 10");

        let g = Gate::new();
        let p = g.try_acquire(t0).unwrap();
        g.observe(p, Some(200), None, Some(&quota(0, 1)), t0);
        let reader = g.try_acquire(t1).unwrap();
        g.observe(reader, Some(200), None, None, t1);
        for _ in 0..20 {
            g.try_acquire(t1).unwrap();
        }
    }

    /// Answers that come back out of order lower the count only for as long as their requests
    /// are unanswered: once all are in, the gate allows exactly what the server last said.
    #[test]
    fn answers_out_of_order_strand_nothing() {
        let g = windows();
        let t0 = Instant::now();
        let passes: Vec<Pass> = (0..5).map(|_| g.try_acquire(t0).unwrap()).collect();
        // The server handled them in order; the last one's answer (5 left) comes in first.
        g.observe(passes[4], Some(200), None, Some(&quota(5, 5)), t0);
        // Four unanswered may or may not have been counted: 1 is surely free.
        g.try_acquire(t0).map(|p| g.forget(p)).unwrap();
        for (i, p) in passes[..4].iter().enumerate() {
            // Older requests, handled earlier, report more left: they lower nothing.
            g.observe(*p, Some(200), None, Some(&quota(9 - i as u64, 5)), t0);
        }
        for _ in 0..5 {
            g.try_acquire(t0).unwrap();
        }
        assert!(g.try_acquire(t0).is_err(), "no more than the server said");
    }

    #[test]
    fn retry_after_wins_and_other_refusals_are_told_apart() {
        let g = Gate::new();
        let t0 = Instant::now();
        let p = g.try_acquire(t0).unwrap();
        let v = g.observe(
            p,
            Some(429),
            Some(Duration::from_secs(3)),
            Some(&quota(0, 9)),
            t0,
        );
        assert_eq!(v, Verdict::QuotaRefusal);
        assert_eq!(g.try_acquire(t0).unwrap_err(), t0 + Duration::from_secs(3));
        let t1 = t0 + Duration::from_secs(3);
        let p = g.try_acquire(t1).unwrap();
        let v = g.observe(
            p,
            Some(429),
            Some(Duration::from_secs(1)),
            Some(&quota(4, 7)),
            t1,
        );
        assert_eq!(v, Verdict::OtherRefusal);
        let p = g.try_acquire(t1).unwrap();
        assert_eq!(g.observe(p, Some(429), None, None, t1), Verdict::NoQuota);
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_waits_for_the_reset() {
        let g = Gate::new();
        let t0 = Instant::now();
        let p = g.acquire().await;
        g.observe(p, Some(200), None, Some(&quota(0, 2)), t0);
        let _ = g.acquire().await;
        assert!(Instant::now() >= t0 + Duration::from_secs(2));
    }
}
