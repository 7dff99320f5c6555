//! The adaptive limiter (`--rate auto`): additive increase, multiplicative decrease on 429s.
//!
//! It starts unthrottled. The first 429 sets a target from the rate of
//! *accepted* requests over the last half second (the send rate of an initial burst says nothing
//! about the server's limit), then grows it faster than TCP slow start
//! (+[`Aimd::SLOW_START_STEP`] per success: the target grows by that many times the rate it is
//! sent at, per second) until the next 429, which cuts by [`Aimd::SLOW_START_EXIT`] (slow
//! start overshoots by more than one ordinary step takes back). From then on
//! it is plain AIMD: each 429 from a request sent *after* the last cut, and answered at least
//! half a second after it, multiplies the target by the lower of [`Aimd::DECREASE`] and the
//! accepted rate (one cut per round: a burst of 429s from requests already in flight, or sent
//! while the server's bucket is still empty from the overshoot, counts once); sooner than
//! that, a 429 among successes of requests sent since the cut, past its first
//! [`Aimd::ECHO_SLOTS`] slots, steps the target down by [`Aimd::DECREASE`] (the pace is
//! still above the limit), of the accepted rate once [`Aimd::MIN_WINDOW`] of it has been
//! counted since the first cut, which later cuts do not restart: above the limit the server
//! admits at its own rate whatever the pace, and against the stand-in's `bucket:40:40` steps
//! of 0.95 from slow start's overshoot came down one refusal at a time while each cut
//! restarted the count. That cut also marks the accepted rate, not the pace, as the level to
//! climb back to fast. Refusals after the first burst, three runs each: 10-11 before, 8-10
//! with the count kept across cuts, 7-8 with it also trusted from 150 ms rather than 500, and
//! 10 with that but the pace kept as the level.
//! Each success adds a little:
//! [`Aimd::RECOVERY`] of the target per second while it is below [`Aimd::RECOVER_BELOW`] of
//! the target it was last cut from (a cut to the accepted rate of a disturbed second can land
//! far below what the server took moments before), about 5% a second near it, and
//! [`Aimd::PLATEAU_MAX`] times slower at most up to just past it once cuts keep landing at the
//! same limit (each cut within [`Aimd::SAME_LIMIT`] of the last halves the growth there, as TCP
//! CUBIC's plateau lengthens, RFC 9438 §4.2): a fixed limit is probed ever more rarely, each
//! probe costing a 429 (against the stand-in's `bucket:40:40`, 11 refusals after the first
//! second and a half of a 22 s run fell to 3-6).
//! The request told to wait honours its Retry-After (the retry policy does that); the others
//! keep going at the reduced target, because a rate limiter that answers in whole seconds would
//! otherwise stall every sender for a second per 429 and waste most of the server's capacity.
//! A Retry-After longer than [`Aimd::GLOBAL_PAUSE`] is the server asking for a break, not a
//! slower pace: that one pauses every sender.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::period::{Period, Wait};
use super::Ticket;

/// Additive-increase, multiplicative-decrease pacing.
#[derive(Debug)]
pub struct Aimd {
    state: Mutex<AimdState>,
    /// Waiters queue here in arrival order (tokio's mutex is fair), so a request sent again
    /// after a 429 waits behind at most one round of others instead of losing every race.
    gate: tokio::sync::Mutex<()>,
    /// What is left of the run: no probing above the last cut near its end.
    backlog: crate::flow::Backlog,
}

#[derive(Debug)]
struct AimdState {
    /// `None` until the first 429: unthrottled.
    target: Option<f64>,
    /// Increments at every decrease; 429s for tickets of older rounds are ignored.
    epoch: u64,
    /// Successes of requests sent since the last decrease.
    ok_since_cut: u64,
    next_slot: Instant,
    paused_until: Option<Instant>,
    /// Successes of the last [`Aimd::ACCEPTED_WINDOW`], to estimate the rate the server
    /// accepts.
    successes: VecDeque<Instant>,
    /// When sending last (re)started: the start, or the end of the last pause.
    resumed_at: Instant,
    /// Where the accepted rate's count may start: the first cut (the end of the unthrottled
    /// start, whose burst says nothing of the limit) or the end of the last pause. Later cuts
    /// leave it: above the limit the server accepts at its own rate whatever the client's
    /// pace, so successes counted across a cut still measure it.
    measured_from: Instant,
    /// Between the first and the second cut: exponential growth.
    slow_start: bool,
    /// The target when it was last cut: well below it the pace climbs back fast (the server
    /// took that much moments ago), near it slowly.
    last_cut: Option<f64>,
    /// What a period between long pauses admitted (a window without headers).
    period: Period,
    /// How many times slower the pace grows near the last cut: doubles at each cut that
    /// lands within [`Aimd::SAME_LIMIT`] of the one before (a fixed limit, found again), up to
    /// [`Aimd::PLATEAU_MAX`]; back to one when a cut lands elsewhere.
    plateau: f64,
}

impl AimdState {
    /// Sending starts again at `at` after a pause: both the pace's restart and the accepted
    /// rate's count begin there.
    fn resumed(&mut self, at: Instant) {
        self.resumed_at = at;
        self.measured_from = at;
    }
}

impl Default for Aimd {
    fn default() -> Self {
        Self::new()
    }
}

impl Aimd {
    /// Factor applied to the target on a 429.
    pub const DECREASE: f64 = 0.95;
    /// Growth per success between the first and second cut: the first estimate comes from a
    /// start-up burst and is usually far below the limit, so climb back quickly.
    pub const SLOW_START_STEP: f64 = 3.0;
    /// A Retry-After above this pauses every sender, not only the request that got it.
    pub const GLOBAL_PAUSE: Duration = Duration::from_secs(2);
    /// Below this share of the target at the last cut, the pace climbs back fast.
    pub const RECOVER_BELOW: f64 = 0.9;
    /// Growth per success while recovering: `RECOVERY` × the target per second, +20% a
    /// second (successes arrive at the target's rate).
    pub const RECOVERY: f64 = 0.2;
    /// How often a sender asks again while the learned quota's probe is out.
    const PROBE_POLL: Duration = Duration::from_millis(5);
    /// Whether a refusal asking for `retry_after` holds every sender (a window spent, a break)
    /// rather than only the refused request: the one test the pause and the flow's routing share.
    pub fn holds_everyone(retry_after: Option<Duration>) -> bool {
        retry_after.is_some_and(|ra| ra > Self::GLOBAL_PAUSE)
    }

    /// The cut that ends slow start: the pace grew by [`Aimd::SLOW_START_STEP`] a success
    /// since the last refusal, so it overshot by more than one step of [`Aimd::DECREASE`]
    /// can take back (TCP halves its window there, RFC 5681 §3.1). Against the stand-in's
    /// `bucket:40:40`, slow start reached 55 and 0.95 steps took a second and about ten
    /// refusals to come down to 40.
    pub const SLOW_START_EXIT: f64 = 0.8;
    /// Two cuts from targets this close (a share of the earlier) meet the same limit.
    pub const SAME_LIMIT: f64 = 0.05;
    /// The most the growth near the last cut slows after repeated cuts at one limit.
    pub const PLATEAU_MAX: f64 = 8.0;
    /// Slots at the new pace after a cut whose refusals are still the overshoot's echo.
    pub const ECHO_SLOTS: f64 = 2.0;
    /// Lowest target, requests/s.
    pub const MIN_RATE: f64 = 0.5;
    /// How long after a cut a refusal may still be the echo of the pace before it.
    pub const SETTLE: Duration = Duration::from_millis(500);
    /// Shortest sending window since the first cut whose success count is trusted as a rate
    /// (the first cut itself needs [`Aimd::SETTLE`]: before it the count takes in the start-up
    /// burst, and a third of a second's count read 150/s against a `bucket:40:40`).
    pub const MIN_WINDOW: Duration = Duration::from_millis(150);
    /// The accepted rate is counted over this much of the latest sending. Half a second, not
    /// one: while the pace climbs (slow start, recovery) a longer window reaches back to when
    /// it was lower, and a cut to that figure landed at 0.7 of a 200/s limit.
    const ACCEPTED_WINDOW: Duration = Duration::from_millis(500);

    /// An unthrottled limiter.
    pub fn new() -> Self {
        Aimd {
            state: Mutex::new(AimdState {
                target: None,
                epoch: 0,
                ok_since_cut: 0,
                next_slot: Instant::now(),
                paused_until: None,
                successes: VecDeque::new(),
                resumed_at: Instant::now(),
                measured_from: Instant::now(),
                slow_start: false,
                last_cut: None,
                period: Period::default(),
                plateau: 1.0,
            }),
            gate: tokio::sync::Mutex::new(()),
            backlog: crate::flow::Backlog::default(),
        }
    }

    /// Shares the run's [`Backlog`](crate::flow::Backlog).
    pub fn with_backlog(mut self, backlog: crate::flow::Backlog) -> Self {
        self.backlog = backlog;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AimdState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a send slot at the target in force when the slot comes, not when the wait
    /// began: a waiter that reserved far ahead at a low rate would otherwise keep its late slot
    /// after the rate has grown, and a queue of such waiters wastes the server's capacity.
    pub async fn acquire(&self) -> Ticket {
        let _turn = self.gate.lock().await;
        loop {
            match self.try_take(Instant::now()) {
                Ok(ticket) => return ticket,
                Err(due) => tokio::time::sleep_until(due).await,
            }
        }
    }

    /// Takes the current slot if it is due, else says when to ask again.
    fn try_take(&self, now: Instant) -> Result<Ticket, Instant> {
        let mut s = self.lock();
        if let Some(p) = s.paused_until {
            if p > now {
                return Err(p);
            }
            s.paused_until = None;
            s.resumed(p);
            s.period.reopened();
        }
        if s.target.is_some() && s.next_slot > now {
            return Err(s.next_slot);
        }
        match s.period.admits(now) {
            Ok(()) => {}
            // The learned quota is spent and its probe is out, or a lone request is checking
            // a predicted opening: ask again shortly (an answer either pauses everyone or
            // lets everyone go).
            Err(Wait::Poll) => return Err(now + Self::PROBE_POLL),
            // This window's quota is sent: everyone waits for the next opening.
            Err(Wait::Until(t)) => {
                s.paused_until = Some(t);
                return Err(t);
            }
        }
        if let Some(rate) = s.target {
            s.next_slot = Self::next_after(s.next_slot, now, rate);
        }
        Ok(Ticket {
            epoch: s.epoch,
            at: now,
        })
    }

    /// The slot after one taken at `now` that was due at `due`: one interval after the due
    /// time, not after `now`. A waiter wakes after its slot (tokio's timer fires on the next
    /// whole millisecond, later under load), and pacing from the wake-up would lose that
    /// lateness on every request: at a 5 ms interval, about a fifth of the rate, so the pace
    /// actually sent stayed well below the target and the limit. Lateness is absorbed only up
    /// to one interval: a sender idle for longer earns no burst beyond one request.
    fn next_after(due: Instant, now: Instant, rate: f64) -> Instant {
        let interval = Duration::from_secs_f64(1.0 / rate);
        due.max(now.checked_sub(interval).unwrap_or(now)) + interval
    }

    /// Books the next slot at or after `now`, however far ahead, for the tests of the pacing
    /// and the pauses ([`acquire`](Self::acquire) waits instead, and also applies the learned
    /// quota of a window without headers).
    #[cfg(test)]
    fn reserve(&self, now: Instant) -> (Instant, Ticket) {
        let mut s = self.lock();
        let mut slot = now;
        if let Some(p) = s.paused_until {
            if p > slot {
                slot = p;
            } else {
                s.paused_until = None;
                s.resumed(p);
            }
        }
        if let Some(rate) = s.target {
            slot = slot.max(s.next_slot);
            s.next_slot = slot + Duration::from_secs_f64(1.0 / rate);
        }
        (
            slot,
            Ticket {
                epoch: s.epoch,
                at: slot,
            },
        )
    }

    /// A success whose ticket the test does not track (the run reports each with
    /// [`on_success_of`](Self::on_success_of)).
    #[cfg(test)]
    fn on_success(&self, now: Instant) {
        self.succeeded(&mut self.lock(), now, None);
    }

    /// A success of the request sent with `ticket`: the pace grows (see `succeeded`), and one
    /// more request sent since the last cut was taken (see [`on_throttled`](Self::on_throttled)).
    pub fn on_success_of(&self, ticket: Ticket, now: Instant) {
        let mut s = self.lock();
        if ticket.epoch == s.epoch {
            s.ok_since_cut += 1;
        }
        self.succeeded(&mut s, now, Some(now.saturating_duration_since(ticket.at)));
    }

    /// A success: +[`Aimd::SLOW_START_STEP`] per success in slow start, +[`Aimd::RECOVERY`] of
    /// the target per second well below the last cut, else about `max(1, target/20)` requests/s
    /// per second.
    fn succeeded(&self, s: &mut AimdState, now: Instant, rtt: Option<Duration>) {
        s.period.succeeded(rtt);
        s.successes.push_back(now);
        while s
            .successes
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > Self::ACCEPTED_WINDOW)
        {
            s.successes.pop_front();
        }
        if let Some(rate) = s.target {
            let next = if s.slow_start {
                rate + Self::SLOW_START_STEP
            } else if s.last_cut.is_some_and(|c| rate < Self::RECOVER_BELOW * c) {
                // Far below where the server last refused: +RECOVERY per second.
                rate + Self::RECOVERY
            } else if self.backlog.ending(rate) {
                // Near the end of the run a probe's refusal costs more than it can win.
                rate
            } else {
                // `rate` successes arrive per second, so each adds step/rate; up to just past
                // the last cut, slower after each refusal at the same limit, as TCP CUBIC's
                // plateau lengthens with each loss at one W_max (RFC 9438 §4.2): each probe
                // there costs a 429. Past it, a limit that went up is found at the usual pace.
                let near = s
                    .last_cut
                    .is_some_and(|c| rate < c * (1.0 + Self::SAME_LIMIT));
                let slow = if near { s.plateau } else { 1.0 };
                rate + (rate / 20.0).max(1.0) / rate / slow
            };
            s.target = Some(next);
        }
    }

    /// Accepted requests per second over the last [`Aimd::ACCEPTED_WINDOW`] of sending, when
    /// that is long enough to mean something.
    fn accepted_rate(s: &AimdState, now: Instant, shortest: Duration) -> Option<f64> {
        let since = now
            .saturating_duration_since(s.measured_from)
            .min(Self::ACCEPTED_WINDOW);
        if since < shortest {
            return None;
        }
        let n = s
            .successes
            .iter()
            .filter(|t| now.saturating_duration_since(**t) < since)
            .count();
        Some(n as f64 / since.as_secs_f64())
    }

    /// Pauses every sender until `now + retry_after` when that is longer than
    /// [`Self::GLOBAL_PAUSE`]: a short one is the refused request's alone.
    ///
    /// Refusals of one episode (their ends within a second of each other) each bound the
    /// server's true reset from above: Retry-After is rounded up to whole seconds and counted
    /// from when the server handled the request, before the answer came back. The earliest
    /// such end is the tightest bound that is still never early, so the pause ends there; a
    /// refusal whose end is a second or more later starts a new, longer pause.
    fn pause_for(s: &mut AimdState, retry_after: Option<Duration>, now: Instant) {
        if s.period.verifying() {
            // The lone request sent at a predicted opening was refused: the window is not
            // open yet. Everyone waits as long as it was told to, and the prediction is
            // dropped (see `Period`).
            s.period.missed();
            let until = now + retry_after.unwrap_or(Self::GLOBAL_PAUSE);
            s.paused_until = Some(s.paused_until.map_or(until, |p| p.max(until)));
            return;
        }
        let Some(ra) = retry_after.filter(|_| Self::holds_everyone(retry_after)) else {
            // The refused request's own wait: the probe past a learned quota is back.
            s.period.probe_back();
            return;
        };
        let until = now + ra;
        let second = Duration::from_secs(1);
        if s.paused_until.is_none_or(|p| p <= now) {
            if let Some(opening) = s.period.closed(ra, now) {
                // Sooner than the Retry-After, which rounds up; checked by one request.
                s.paused_until = Some(opening.min(until));
                return;
            }
        }
        s.paused_until = Some(match s.paused_until.filter(|p| *p > now) {
            Some(p) if until < p + second && p < until + second => p.min(until),
            Some(p) => p.max(until),
            None => until,
        });
    }

    /// A 429 the window answered for: no cut in the rate, only the pause a long Retry-After
    /// asks of everyone.
    pub fn hold(&self, retry_after: Option<Duration>, now: Instant) {
        Self::pause_for(&mut self.lock(), retry_after, now);
    }

    /// A 429: one multiplicative decrease per round, and a global pause for a long Retry-After.
    pub fn on_throttled(&self, ticket: Ticket, retry_after: Option<Duration>, now: Instant) {
        let mut s = self.lock();
        Self::pause_for(&mut s, retry_after, now);
        if ticket.epoch != s.epoch {
            return;
        }
        let first = s.target.is_none();
        // Before the first cut the count would take in the start-up burst: only a longer
        // sending says something.
        let shortest = if first {
            Self::SETTLE
        } else {
            Self::MIN_WINDOW
        };
        let measured = Self::accepted_rate(&s, now, shortest);
        let next = match s.target {
            None => {
                // First 429: start from what the server accepted and probe upwards fast.
                s.slow_start = true;
                measured.unwrap_or(s.successes.len() as f64)
            }
            Some(rate) if now.saturating_duration_since(s.resumed_at) < Self::SETTLE => {
                // Requests sent right after a cut meet a bucket the overshoot emptied: their
                // refusals say nothing about the new pace. Ending slow start on one would leave
                // the target stuck far below the limit, and a cut to the accepted rate of so
                // short a time would also lower the mark that recovery climbs back to (seen:
                // two cuts in 0.1 s left the pace at 0.7 of a 200/s limit for eight seconds).
                // Once the bucket has had [`Aimd::ECHO_SLOTS`] slots to refill, though, a
                // refusal among successes of requests sent since the cut says the new pace is
                // still above the limit (a cut from slow start counts the bucket's burst in the
                // accepted rate: seen 1.2 times a 100/s limit, one request in five refused for
                // half a second): one step down from there. A run of refusals with no success
                // in between is a quota spent, not a pace: it waits as before.
                let echo = Duration::from_secs_f64(Self::ECHO_SLOTS / rate);
                if s.ok_since_cut == 0 || ticket.at < s.resumed_at + echo {
                    return;
                }
                let decrease = Self::decrease(s.slow_start);
                s.slow_start = false;
                // What the server took, not the pace that overshot it: the level that recovery
                // climbs back to fast.
                let base = measured.map_or(rate, |m| rate.min(m));
                s.last_cut = Some(base);
                base * decrease
            }
            Some(rate) => {
                let decrease = Self::decrease(s.slow_start);
                s.slow_start = false;
                s.plateau = match s.last_cut {
                    Some(c) if (rate - c).abs() <= Self::SAME_LIMIT * c => {
                        (s.plateau * 2.0).min(Self::PLATEAU_MAX)
                    }
                    _ => 1.0,
                };
                s.last_cut = Some(rate);
                measured.map_or(rate, |m| rate.min(m)) * decrease
            }
        };
        s.target = Some(next.max(Self::MIN_RATE));
        s.epoch += 1;
        s.ok_since_cut = 0;
        // Restart pacing from now (or after the pause) at the new rate.
        let restart = s.paused_until.unwrap_or(now).max(now);
        s.next_slot = restart;
        if first {
            // The count starts here too: the start-up burst is behind it.
            s.resumed(restart);
        } else {
            s.resumed_at = restart;
        }
    }

    /// The cut for a refusal: [`Aimd::DECREASE`], or [`Aimd::SLOW_START_EXIT`] for the one that
    /// ends slow start.
    fn decrease(slow_start: bool) -> f64 {
        if slow_start {
            Self::SLOW_START_EXIT
        } else {
            Self::DECREASE
        }
    }

    /// A limiter that starts at `rate` requests/s instead of unthrottled.
    pub fn starting_at(rate: f64) -> Self {
        let aimd = Self::new();
        aimd.lock().target = Some(rate.max(Self::MIN_RATE));
        aimd
    }

    /// A request that got no answer: a probe past a learned quota must not hold the others.
    pub fn on_no_answer(&self) {
        self.lock().period.probe_back();
    }

    /// Whether a fixed window without headers has shown its quota (see `Period`): from then
    /// on no more than that goes out per window.
    pub fn quota_learned(&self) -> bool {
        self.lock().period.learned()
    }

    /// The current target rate, `None` while unthrottled.
    pub fn target(&self) -> Option<f64> {
        self.lock().target
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn starts_unthrottled() {
        let a = Aimd::new();
        let now = Instant::now();
        for _ in 0..100 {
            let (slot, _) = a.reserve(now);
            assert_eq!(slot, now);
        }
        assert_eq!(a.target(), None);
    }

    #[test]
    fn first_cut_uses_accepted_rate_then_slow_start_then_aimd() {
        let a = Aimd::new();
        let t0 = Instant::now();
        // one second at 20 accepted/s (sent much faster: the send rate must not matter)
        let mut tickets = Vec::new();
        for i in 0..20u64 {
            tickets.push(a.reserve(t0).1);
            a.on_success(t0 + Duration::from_millis(i * 50 + 50));
        }
        let now = t0 + Duration::from_secs(1);
        a.on_throttled(tickets[18], None, now);
        let r1 = a.target().unwrap();
        assert!((r1 - 20.0).abs() < 1.5, "{r1}");
        // more 429s from requests sent before the cut do not cut again
        a.on_throttled(tickets[19], None, now);
        assert_eq!(a.target().unwrap(), r1);
        // slow start: +SLOW_START_STEP per success
        for _ in 0..10 {
            a.on_success(now + Duration::from_millis(200));
        }
        assert!((a.target().unwrap() - (r1 + 10.0 * Aimd::SLOW_START_STEP)).abs() < 1e-9);
        // a 429 right after the cut is the start-up burst's echo: ignored
        let soon = now + Duration::from_millis(100);
        let (_, t) = a.reserve(soon);
        a.on_throttled(t, None, soon);
        assert!((a.target().unwrap() - (r1 + 10.0 * Aimd::SLOW_START_STEP)).abs() < 1e-9);
        // a 429 from a request sent after the cut cuts multiplicatively and ends slow start
        let later = now + Duration::from_millis(600);
        let (_, t) = a.reserve(later);
        a.on_throttled(t, None, later);
        let r2 = a.target().unwrap();
        // (the accepted rate of the last half second, 10 / 0.5 s, is below the target: it wins;
        // the cut that ends slow start takes SLOW_START_EXIT of it)
        assert!(
            (r2 - 10.0 / 0.5 * Aimd::SLOW_START_EXIT).abs() < 1e-6,
            "{r2}"
        );
        // far below the target it was cut from: +RECOVERY of the target per second
        let n = r2.round() as usize;
        for _ in 0..n {
            a.on_success(later);
        }
        let r3 = a.target().unwrap();
        assert!(
            (r3 - (r2 + n as f64 * Aimd::RECOVERY)).abs() < 1e-9,
            "{r2} -> {r3}"
        );
        let cut_from = a.lock().last_cut.unwrap();
        while a.target().unwrap() < Aimd::RECOVER_BELOW * cut_from {
            a.on_success(later);
        }
        // near it, additive increase: about max(1, target/20) req/s per second's successes
        let r3 = a.target().unwrap();
        let n = r3.round() as usize;
        for _ in 0..n {
            a.on_success(later);
        }
        let r4 = a.target().unwrap();
        let step = (r3 / 20.0).max(1.0);
        assert!(r4 > r3 + 0.8 * step && r4 < r3 + 1.2 * step, "{r3} -> {r4}");
        // a 429 within SETTLE of that cut, with no success since it, cuts nothing
        let (_, t) = a.reserve(later);
        a.on_throttled(t, None, later + Duration::from_millis(100));
        assert_eq!(a.target().unwrap(), r4);
        // floor
        let mut at = later;
        for _ in 0..100 {
            at += Duration::from_millis(600);
            let (_, t) = a.reserve(at);
            a.on_throttled(t, None, at);
        }
        assert!(a.target().unwrap() >= Aimd::MIN_RATE);
    }

    /// The first cut counts the start-up burst as one second's worth, however short the
    /// sending was; a cut soon after it takes the rate accepted since it, which no burst is
    /// in. Against the stand-in's `bucket:40:40` the burst gave 45 and slow start 60, and
    /// without that count three steps of 0.95 came down one refusal at a time.
    #[test]
    fn a_cut_soon_after_the_first_takes_the_rate_accepted_since_it() {
        let a = Aimd::new();
        let t0 = Instant::now();
        // 45 admitted within 100 ms (a bucket's burst), the first refusal at 300 ms: the
        // count over those 300 ms (150/s) is not the limit.
        let mut burst = Vec::new();
        for i in 0..46u64 {
            let (_, t) = a.reserve(t0);
            burst.push(t);
            if i < 45 {
                a.on_success_of(t, t0 + Duration::from_millis(20 + i * 2));
            }
        }
        let cut1 = t0 + Duration::from_millis(300);
        a.on_throttled(burst[45], None, cut1);
        assert_eq!(a.target(), Some(45.0));
        // Slow start above the limit: the bucket admits 40/s, 25 ms apart, for 200 ms.
        let mut at = cut1;
        for _ in 0..8 {
            at += Duration::from_millis(25);
            let (_, t) = a.reserve(at - Duration::from_millis(20));
            a.on_success_of(t, at);
        }
        let rate = a.target().unwrap();
        assert!(
            (rate - (45.0 + 8.0 * Aimd::SLOW_START_STEP)).abs() < 1e-9,
            "{rate}"
        );
        // A refusal among those successes ends slow start from what was accepted since the
        // first cut (8 in 220 ms), not from the pace that overshot it.
        let (_, t) = a.reserve(at);
        a.on_throttled(t, None, at + Duration::from_millis(20));
        let r2 = a.target().unwrap();
        let accepted = 8.0 / 0.22;
        assert!(
            (r2 - accepted * Aimd::SLOW_START_EXIT).abs() < 1.0,
            "{rate} -> {r2}, accepted about {accepted}/s"
        );
        // And the level to climb back to fast is what was accepted, not the pace.
        let level = a.lock().last_cut.unwrap();
        assert!((level - accepted).abs() < 1.0, "{level}");
    }

    /// After a cut, a refusal among successes of requests sent since it, once the bucket has
    /// had its echo slots to refill, steps the pace down again at once (and ends slow start);
    /// a refusal inside the echo, or refusals with no success between them, wait for the
    /// half-second window as before.
    /// Paces requests at the target against a server that refuses whatever is sent above
    /// `limit` requests/s, from `from` for `secs` seconds; returns the refusals' times.
    fn paced_against(a: &Aimd, limit: f64, from: Instant, secs: f64) -> Vec<Instant> {
        let mut refused = Vec::new();
        let end = from + Duration::from_secs_f64(secs);
        let mut now = from;
        while now < end {
            let (at, t) = a.reserve(now);
            now = at;
            if a.target().unwrap() > limit {
                a.on_throttled(t, Some(Duration::from_secs(1)), now);
                refused.push(now);
            } else {
                a.on_success_of(t, now);
            }
        }
        refused
    }

    /// A fixed limit found again and again is probed ever more rarely (each probe costs a
    /// 429): the growth near the last cut slows by half at each cut at the same limit, up to
    /// [`Aimd::PLATEAU_MAX`] times; a cut at another limit starts over.
    #[test]
    fn repeated_cuts_at_one_limit_slow_the_probing() {
        let a = Aimd::starting_at(40.0);
        let t0 = Instant::now();
        let refused = paced_against(&a, 40.0, t0, 60.0);
        let gaps: Vec<f64> = refused
            .windows(2)
            .map(|w| w[1].saturating_duration_since(w[0]).as_secs_f64())
            .collect();
        // Without the slowdown a probe came about every two seconds: 31 refusals.
        assert!(refused.len() <= 15, "{} refusals: {gaps:?}", refused.len());
        assert!(
            gaps.last().unwrap() > &(3.0 * gaps[0]),
            "the gaps grow: {gaps:?}"
        );
        assert_eq!(a.lock().plateau, Aimd::PLATEAU_MAX);
        let target = a.target().unwrap();
        assert!((0.9 * 40.0..=40.0).contains(&target), "{target}");

        // The limit doubles: slow only up to just past the old limit, then found at the usual
        // pace (about 5% a second), and a cut at the new limit starts the slowdown over.
        let t1 = t0 + Duration::from_secs(60);
        let found = paced_against(&a, 80.0, t1, 40.0);
        let first = found[0].saturating_duration_since(t1).as_secs_f64();
        assert!(first < 30.0, "the new limit first met after {first} s");
        let again = found[1].saturating_duration_since(found[0]).as_secs_f64();
        assert!(
            again < gaps.last().unwrap() / 2.0,
            "probed at the new limit as at a new one: {again} s"
        );
    }

    #[test]
    fn a_refusal_among_successes_after_the_echo_cuts_again_at_once() {
        let a = Aimd::starting_at(100.0);
        let t0 = Instant::now();
        let sent_at = |at| Ticket {
            epoch: a.lock().epoch,
            at,
        };
        // The pace grew past the limit: 120/s accepted over the last half second (a burst),
        // the target 100. The cut keeps the lower, times DECREASE.
        {
            let mut s = a.lock();
            s.resumed_at = t0 - Duration::from_secs(1);
            s.successes = (0..60).map(|i| t0 - Duration::from_millis(i * 8)).collect();
        }
        a.on_throttled(sent_at(t0), None, t0);
        let r1 = a.target().unwrap();
        assert!((r1 - 100.0 * Aimd::DECREASE).abs() < 1e-9, "{r1}");
        let echo = Duration::from_secs_f64(Aimd::ECHO_SLOTS / r1);
        // Refused with no success since the cut: a quota spent, nothing learnt.
        a.on_throttled(sent_at(t0 + 2 * echo), None, t0 + 2 * echo);
        assert_eq!(a.target().unwrap(), r1);
        // One success of a request sent since the cut; then a refusal inside the echo.
        a.on_success_of(sent_at(t0), t0 + echo / 2);
        let r1 = a.target().unwrap();
        a.on_throttled(sent_at(t0 + echo / 2), None, t0 + echo);
        assert_eq!(a.target().unwrap(), r1, "the overshoot's echo");
        // Past the echo, among successes: one step down, and the new round starts there.
        let late = sent_at(t0 + 2 * echo);
        a.on_throttled(late, None, t0 + 2 * echo);
        let r2 = a.target().unwrap();
        assert!((r2 - r1 * Aimd::DECREASE).abs() < 1e-9, "{r1} -> {r2}");
        assert_eq!(
            a.lock().last_cut,
            Some(r1),
            "recovery climbs back near it slowly"
        );
        // Requests sent before that cut cut nothing more.
        a.on_throttled(late, None, t0 + 3 * echo);
        assert_eq!(a.target().unwrap(), r2);
    }

    /// Every refusal of one episode bounds the reset from above; the pause ends at the
    /// earliest bound, and a clearly later one starts a new pause.
    #[test]
    fn a_pause_ends_at_the_earliest_bound_of_its_episode() {
        let a = Aimd::new();
        let t0 = Instant::now();
        a.hold(
            Some(Duration::from_secs(10)),
            t0 + Duration::from_millis(300),
        );
        a.hold(Some(Duration::from_secs(10)), t0);
        a.hold(
            Some(Duration::from_secs(10)),
            t0 + Duration::from_millis(600),
        );
        assert_eq!(a.reserve(t0).0, t0 + Duration::from_secs(10));
        a.hold(
            Some(Duration::from_secs(20)),
            t0 + Duration::from_millis(500),
        );
        assert_eq!(
            a.reserve(t0).0,
            t0 + Duration::from_millis(20_500),
            "a later episode"
        );
        // A short Retry-After is the refused request's alone.
        let b = Aimd::new();
        b.hold(Some(Duration::from_secs(1)), t0);
        assert_eq!(b.reserve(t0).0, t0);
    }

    /// A window without headers: after one period the client sends what it admitted, then
    /// one probe, and waits for the probe's answer instead of sending into the closed window.
    #[test]
    fn a_window_without_headers_is_learned_from_one_period() {
        let a = Aimd::new();
        let t0 = Instant::now();
        for _ in 0..5 {
            a.try_take(t0).unwrap();
        }
        for _ in 0..3 {
            a.on_success(t0);
        }
        // The window closes: a long Retry-After; two more admitted ones still come back.
        a.hold(Some(Duration::from_secs(10)), t0);
        a.on_success(t0);
        a.on_success(t0);
        assert!(a.try_take(t0 + Duration::from_secs(5)).is_err(), "paused");
        let t1 = t0 + Duration::from_secs(10);
        for _ in 0..5 {
            a.try_take(t1).unwrap();
        }
        a.try_take(t1).expect("one probe past the learned 5");
        assert!(a.try_take(t1).is_err(), "the probe is out");
        // The probe refused briefly (the window opens within 2 s): another may go.
        a.hold(Some(Duration::from_secs(1)), t1);
        a.try_take(t1).expect("a second probe");
        // The probe succeeds: the model was wrong, sending goes on.
        for _ in 0..6 {
            a.on_success(t1);
        }
        for _ in 0..20 {
            a.try_take(t1).unwrap();
        }
        // A probe that never comes back stops holding the others after a while.
        let b = Aimd::new();
        b.try_take(t0).unwrap();
        b.on_success(t0);
        b.hold(Some(Duration::from_secs(10)), t0);
        b.try_take(t1).unwrap();
        b.try_take(t1).unwrap();
        assert!(b.try_take(t1).is_err());
        assert!(b.try_take(t1 + crate::rate::period::PROBE_EXPIRY).is_ok());
    }

    /// The first window of a run without headers: 5 sent at `t0`, 3 answered after `rtt`,
    /// then a refusal answered at `refused` asking for 10 s, then the other 2 answered.
    fn first_window(a: &Aimd, t0: Instant, rtt: Duration, refused: Instant) {
        let mut tickets: Vec<Ticket> = (0..5).map(|_| a.try_take(t0).unwrap()).collect();
        for t in tickets.drain(..3) {
            a.on_success_of(t, t0 + rtt);
        }
        a.hold(Some(Duration::from_secs(10)), refused);
        for t in tickets {
            a.on_success_of(t, refused);
        }
    }

    /// A window of whole seconds is met at its openings (see `Period`'s grid): the first
    /// refusal, back within a second of the first request, gives the width; the next window
    /// is awaited from the first answer's round trip, not for the rounded-up Retry-After; one
    /// request checks it alone; once the quota is sent everyone waits for the next opening
    /// without a probe.
    #[test]
    fn a_window_of_whole_seconds_is_met_at_its_openings() {
        let a = Aimd::new();
        let t0 = Instant::now();
        let rtt = Duration::from_millis(20);
        let t1 = t0 + Duration::from_millis(100);
        first_window(&a, t0, rtt, t1);
        let open = t0 + rtt + Duration::from_secs(10);
        assert_eq!(
            a.try_take(t1).unwrap_err(),
            open,
            "paused until the opening"
        );
        let lone = a.try_take(open).expect("one request checks the opening");
        assert!(a.try_take(open).is_err(), "the others wait for its answer");
        a.on_success_of(lone, open + rtt);
        for _ in 0..4 {
            a.try_take(open + rtt).unwrap();
        }
        let next = open + Duration::from_secs(10);
        assert_eq!(
            a.try_take(open + rtt).unwrap_err(),
            next,
            "quota sent: no probe"
        );
        let lone = a.try_take(next).expect("the next window's lone request");
        // A window whose quota took longer than a window to send: the next opening has
        // passed, and sending goes straight on into it.
        a.on_success_of(lone, next + rtt);
        let late = next + Duration::from_secs(12);
        for _ in 0..4 {
            a.try_take(late).unwrap();
        }
        let third = next + Duration::from_secs(10);
        assert_eq!(a.try_take(late).unwrap_err(), third, "already open");
        a.try_take(late).expect("sent at once into the open window");

        // The lone request refused: the prediction was wrong. Everyone waits as that refusal
        // says, and the run goes back to one probe past the quota.
        let b = Aimd::new();
        first_window(&b, t0, rtt, t1);
        b.try_take(open).unwrap();
        let back = open + rtt;
        b.hold(Some(Duration::from_secs(1)), back);
        let until = back + Duration::from_secs(1);
        assert_eq!(b.try_take(back).unwrap_err(), until, "everyone waits");
        for _ in 0..5 {
            b.try_take(until).unwrap();
        }
        b.try_take(until).expect("one probe past the quota");
        assert!(b.try_take(until).is_err(), "the probe is out");

        // A first refusal later than a second into the run cannot tell the width: the pause is
        // the Retry-After's.
        let c = Aimd::new();
        let late = t0 + Duration::from_millis(1500);
        first_window(&c, t0, rtt, late);
        assert_eq!(
            c.try_take(late).unwrap_err(),
            late + Duration::from_secs(10)
        );
    }

    #[test]
    fn a_cut_never_goes_above_the_accepted_rate() {
        let a = Aimd::new();
        let t0 = Instant::now();
        let (_, t) = a.reserve(t0);
        a.on_throttled(t, None, t0); // target from nothing: MIN_RATE, slow start
        for _ in 0..100 {
            a.on_success(t0);
        }
        assert!(a.target().unwrap() > 100.0);
        // the server accepted 10/s over the last second (5 of them in the last half)
        let t1 = t0 + Duration::from_secs(2);
        for i in 0..10u64 {
            a.on_success(t1 - Duration::from_millis(i * 100));
        }
        let (_, t) = a.reserve(t1);
        a.on_throttled(t, None, t1);
        // (this cut ends slow start: the deeper slow-start exit)
        assert!((a.target().unwrap() - 10.0 * Aimd::SLOW_START_EXIT).abs() < 1.0);
    }

    /// A fresh limiter whose first request was refused with `retry_after` (seconds).
    fn refused_once(retry_after: u64) -> (Aimd, Instant) {
        let a = Aimd::new();
        let t0 = Instant::now();
        let (_, t) = a.reserve(t0);
        a.on_throttled(t, Some(Duration::from_secs(retry_after)), t0);
        (a, t0)
    }

    #[test]
    fn a_short_retry_after_slows_everyone_but_pauses_no_one() {
        let (a, t0) = refused_once(1);
        let (s1, _) = a.reserve(t0);
        assert!(s1 < t0 + Duration::from_secs(1), "no global pause");
        assert!(a.target().is_some(), "but the rate is now paced");
    }

    #[test]
    fn paces_at_target_and_pauses_for_a_long_retry_after() {
        let (a, t0) = refused_once(5);
        let rate = a.target().unwrap();
        let (s1, _) = a.reserve(t0);
        assert!(s1 >= t0 + Duration::from_secs(5), "global pause");
        let (s2, _) = a.reserve(t0);
        let gap = s2.duration_since(s1).as_secs_f64();
        assert!((gap - 1.0 / rate).abs() < 1e-6);
    }

    /// Timers fire late: a sender that always wakes a millisecond after its slot still sends
    /// at the target, and one back from a long idle spell gets one slot at once, not a burst.
    #[test]
    fn a_late_waker_keeps_the_target_rate_and_idle_earns_no_burst() {
        let a = Aimd::starting_at(200.0);
        let t0 = Instant::now();
        let late = Duration::from_millis(1);
        let mut now = t0;
        let mut taken = 0u32;
        while now < t0 + Duration::from_secs(1) {
            match a.try_take(now) {
                Ok(_) => taken += 1,
                Err(due) => now = due + late,
            }
        }
        // 200 a second, give or take the first and last slot (each 1 ms late: 167 before).
        assert!(
            (199..=201).contains(&taken),
            "{taken} in one second at 200/s"
        );

        let idle = now + Duration::from_secs(10);
        assert!(a.try_take(idle).is_ok());
        assert!(a.try_take(idle).is_ok(), "one slot of lateness absorbed");
        assert!(a.try_take(idle).is_err(), "but no burst for the idle time");
    }

    /// Near the end of a run the pace stops creeping above the last cut: a refusal there
    /// would be the run's last answer, a Retry-After late.
    #[test]
    fn no_probing_when_the_run_is_about_to_end() {
        for (left, grows) in [(10_000u64, true), (5, false)] {
            let backlog = crate::flow::Backlog::default();
            let a = Aimd::starting_at(100.0).with_backlog(backlog.clone());
            backlog.expect(left);
            let now = Instant::now();
            for _ in 0..100 {
                a.on_success(now);
            }
            let target = a.target().unwrap();
            assert_eq!(target > 100.5, grows, "{left} left: 100 -> {target}");
        }
    }
}
