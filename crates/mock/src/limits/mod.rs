//! Server limits of every shape a real platform has, each refusing with 429 and a whole-second
//! Retry-After (the time until it admits again, at least 1), and the quota headers that
//! advertise them (`--limit-headers`).
//!
//! - `bucket:R[:BURST]`: token bucket, `R` per second (`40`, `40/s`, `300/min`, `3600/h`), burst
//!   `max(1, R/10)` unless given (the old `--rate-limit R`).
//! - `window:N/DURATION`: N requests per fixed window (`300/10s`, `300/1m`), the windows aligned
//!   to the first request the limit sees.
//! - `token-window:N/DURATION`: the same, counted per access token (Genesys's
//!   `client.credentials.token.rate.per.minute`, 300 per token per minute:
//!   <https://developer.genesys.cloud/organization/organization/limits#platform-api>).
//! - `concurrency:K`: at most K executions in flight (Genesys's
//!   `actions.concurrent.executions.max`, whose value is tenant-specific).
//!
//! A request must pass every limit; one refused by any takes nothing from the others.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One limit, as `--limit` gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// Token bucket: `rate` tokens a second, up to `burst`.
    Bucket {
        /// Tokens per second.
        rate: f64,
        /// Bucket size.
        burst: f64,
    },
    /// `quota` requests per fixed `width` window.
    Window {
        /// Requests per window.
        quota: u64,
        /// Window width.
        width: Duration,
    },
    /// As `Window`, counted per access token.
    TokenWindow {
        /// Requests per window and token.
        quota: u64,
        /// Window width.
        width: Duration,
    },
    /// At most this many executions in flight.
    Concurrency(usize),
}

impl Limit {
    /// The old `--rate-limit R`: a bucket of burst `max(1, R/10)`.
    pub fn bucket(rate: f64) -> Limit {
        Limit::Bucket {
            rate,
            burst: (rate / 10.0).max(1.0),
        }
    }
}

/// Which quota headers every execute answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitHeaders {
    /// None.
    #[default]
    None,
    /// IETF `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10+).
    Ietf,
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset` (delta seconds).
    X,
}

impl FromStr for LimitHeaders {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(LimitHeaders::None),
            "ietf" => Ok(LimitHeaders::Ietf),
            "x" => Ok(LimitHeaders::X),
            other => Err(format!(
                "unknown limit header style {other:?}: use none, ietf or x"
            )),
        }
    }
}

fn rate(text: &str) -> Option<f64> {
    let (n, per) = match text.split_once('/') {
        None => (text, 1.0),
        Some((n, u)) => (
            n,
            match u.trim() {
                "s" | "sec" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                _ => return None,
            },
        ),
    };
    let n: f64 = n.trim().parse().ok()?;
    (n.is_finite() && n > 0.0).then_some(n / per)
}

fn duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs > 0.0 && secs < 1e9).then(|| Duration::from_secs_f64(secs))
}

impl FromStr for Limit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            format!(
                "invalid limit {s:?}: {why} (use bucket:R[:BURST], window:N/DURATION, \
                 token-window:N/DURATION or concurrency:K, e.g. bucket:300/min, window:300/10s)"
            )
        };
        let (kind, spec) = s.trim().split_once(':').ok_or_else(|| bad("no kind"))?;
        match kind {
            "bucket" => {
                let (r, burst) = match spec.rsplit_once(':') {
                    Some((r, b)) => (r, Some(b)),
                    None => (spec, None),
                };
                let r = rate(r)
                    .ok_or_else(|| bad("the rate is not a positive R, R/s, R/min or R/h"))?;
                let burst = match burst {
                    None => (r / 10.0).max(1.0),
                    Some(b) => b
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|b| b.is_finite() && *b >= 1.0)
                        .ok_or_else(|| bad("the burst is not a number of at least 1"))?,
                };
                Ok(Limit::Bucket { rate: r, burst })
            }
            "window" | "token-window" => {
                let (n, d) = spec.split_once('/').ok_or_else(|| bad("no /DURATION"))?;
                let quota = n
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("N is not a positive whole number"))?;
                let width = duration(d)
                    .ok_or_else(|| bad("the duration is not like 10s, 1m, 500ms or 1h"))?;
                Ok(if kind == "window" {
                    Limit::Window { quota, width }
                } else {
                    Limit::TokenWindow { quota, width }
                })
            }
            "concurrency" => spec
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|k| *k > 0)
                .map(Limit::Concurrency)
                .ok_or_else(|| bad("K is not a positive whole number")),
            _ => Err(bad("unknown kind")),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Bucket { rate, burst } => write!(f, "bucket:{rate}:{burst}"),
            Limit::Window { quota, width } => write!(f, "window:{quota}/{}s", width.as_secs_f64()),
            Limit::TokenWindow { quota, width } => {
                write!(f, "token-window:{quota}/{}s", width.as_secs_f64())
            }
            Limit::Concurrency(k) => write!(f, "concurrency:{k}"),
        }
    }
}

/// A window's count, from the first request it saw.
#[derive(Debug, Default, Clone, Copy)]
struct WindowCount {
    start: Option<Instant>,
    count: u64,
}

impl WindowCount {
    /// Moves to the window `now` is in; returns its end.
    fn roll(&mut self, width: Duration, now: Instant) -> Instant {
        let start = *self.start.get_or_insert(now);
        let n = (now.saturating_duration_since(start).as_secs_f64() / width.as_secs_f64()).floor();
        let current = start + width.mul_f64(n);
        if current > start {
            self.start = Some(current);
            self.count = 0;
        }
        self.start.unwrap_or(now) + width
    }
}

#[derive(Debug)]
enum Running {
    Bucket {
        rate: f64,
        burst: f64,
        tokens: f64,
        last: Option<Instant>,
    },
    Window {
        quota: u64,
        width: Duration,
        count: WindowCount,
    },
    TokenWindow {
        quota: u64,
        width: Duration,
        counts: HashMap<String, WindowCount>,
    },
    Concurrency {
        max: usize,
        in_flight: Arc<AtomicUsize>,
    },
}

/// One limit's view for the headers: what is left, until when, out of what.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct QuotaView {
    pub(crate) name: &'static str,
    pub(crate) remaining: u64,
    /// Whole seconds until the quota is replenished.
    pub(crate) reset_secs: u64,
    pub(crate) quota: u64,
    pub(crate) window_secs: u64,
    /// A cap on requests in flight (`concurrency:K`), not a count over a window: IETF says so
    /// with `qu="concurrent-requests"`, and the X- style cannot say it at all.
    pub(crate) concurrent: bool,
}

impl QuotaView {
    /// Its `RateLimit-Policy` item: a concurrency cap has no window.
    fn policy_item(&self) -> String {
        if self.concurrent {
            format!(
                "\"{}\";q={};qu=\"concurrent-requests\"",
                self.name, self.quota
            )
        } else {
            format!("\"{}\";q={};w={}", self.name, self.quota, self.window_secs)
        }
    }

    /// Its `RateLimit` item: a concurrency cap has no reset.
    fn limit_item(&self) -> String {
        if self.concurrent {
            format!("\"{}\";r={}", self.name, self.remaining)
        } else {
            format!(
                "\"{}\";r={};t={}",
                self.name, self.remaining, self.reset_secs
            )
        }
    }
}

/// The answer to one request: admitted (holding its concurrency slots until dropped) or refused.
#[derive(Debug)]
pub(crate) struct Decision {
    /// `None` admitted, else the Retry-After in whole seconds (at least 1).
    pub(crate) refused: Option<u64>,
    /// Concurrency slots this request holds while it runs.
    pub(crate) held: Vec<Held>,
    /// Every quota limit's state after this request, for the headers.
    pub(crate) views: Vec<QuotaView>,
    /// The cap of a concurrency limit that refused, if one did.
    pub(crate) by_concurrency: Option<usize>,
}

/// A concurrency slot, freed on drop.
#[derive(Debug)]
pub(crate) struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn ceil_secs(d: Duration) -> u64 {
    // Saturating float-to-int cast: an absurd wait is still finite.
    d.as_secs_f64().ceil() as u64
}

/// Every configured limit, checked together.
#[derive(Debug)]
pub(crate) struct Limits {
    running: Mutex<Vec<Running>>,
}

impl Limits {
    pub(crate) fn new(limits: &[Limit]) -> Self {
        let running = limits
            .iter()
            .map(|l| match *l {
                Limit::Bucket { rate, burst } => Running::Bucket {
                    rate,
                    burst,
                    tokens: burst,
                    last: None,
                },
                Limit::Window { quota, width } => Running::Window {
                    quota,
                    width,
                    count: WindowCount::default(),
                },
                Limit::TokenWindow { quota, width } => Running::TokenWindow {
                    quota,
                    width,
                    counts: HashMap::new(),
                },
                Limit::Concurrency(max) => Running::Concurrency {
                    max,
                    in_flight: Arc::new(AtomicUsize::new(0)),
                },
            })
            .collect();
        Limits {
            running: Mutex::new(running),
        }
    }

    /// Checks one request (with its bearer token) against every limit, at `now`.
    pub(crate) fn admit(&self, token: &str, now: Instant) -> Decision {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        // First pass: bring every limit to `now` and find the longest wait among refusals.
        let mut wait: Option<Duration> = None;
        let mut by_concurrency = None;
        let mut refuse = |d: Duration| wait = Some(wait.map_or(d, |w| w.max(d)));
        for r in running.iter_mut() {
            match r {
                Running::Bucket {
                    rate,
                    burst,
                    tokens,
                    last,
                } => {
                    let elapsed =
                        last.map_or(0.0, |l| now.saturating_duration_since(l).as_secs_f64());
                    *last = Some(now);
                    *tokens = (*tokens + elapsed * *rate).min(*burst);
                    if *tokens < 1.0 {
                        refuse(Duration::from_secs_f64(((1.0 - *tokens) / *rate).min(1e9)));
                    }
                }
                Running::Window {
                    quota,
                    width,
                    count,
                } => {
                    let end = count.roll(*width, now);
                    if count.count >= *quota {
                        refuse(end.saturating_duration_since(now));
                    }
                }
                Running::TokenWindow {
                    quota,
                    width,
                    counts,
                } => {
                    let count = counts.entry(token.to_string()).or_default();
                    let end = count.roll(*width, now);
                    if count.count >= *quota {
                        refuse(end.saturating_duration_since(now));
                    }
                }
                Running::Concurrency { max, in_flight } => {
                    if in_flight.load(Ordering::SeqCst) >= *max {
                        // When a slot frees is unknown: the least Retry-After.
                        refuse(Duration::from_secs(1));
                        by_concurrency = Some(*max);
                    }
                }
            }
        }
        let refused = wait.map(|w| ceil_secs(w).max(1));
        let mut held = Vec::new();
        if refused.is_none() {
            for r in running.iter_mut() {
                match r {
                    Running::Bucket { tokens, .. } => *tokens -= 1.0,
                    Running::Window { count, .. } => count.count += 1,
                    Running::TokenWindow { counts, .. } => {
                        if let Some(c) = counts.get_mut(token) {
                            c.count += 1;
                        }
                    }
                    Running::Concurrency { in_flight, .. } => {
                        in_flight.fetch_add(1, Ordering::SeqCst);
                        held.push(Held(in_flight.clone()));
                    }
                }
            }
        }
        let views = running
            .iter()
            .filter_map(|r| match r {
                Running::Bucket {
                    rate,
                    burst,
                    tokens,
                    ..
                } => Some(QuotaView {
                    name: "bucket",
                    remaining: tokens.max(0.0).floor() as u64,
                    // Until the bucket is full again.
                    reset_secs: ceil_secs(Duration::from_secs_f64(
                        ((*burst - *tokens) / *rate).clamp(0.0, 1e9),
                    )),
                    quota: burst.floor() as u64,
                    window_secs: ceil_secs(Duration::from_secs_f64((*burst / *rate).min(1e9)))
                        .max(1),
                    concurrent: false,
                }),
                Running::Window {
                    quota,
                    width,
                    count,
                } => Some(window_view("window", *quota, *width, count, now)),
                Running::TokenWindow {
                    quota,
                    width,
                    counts,
                } => counts
                    .get(token)
                    .map(|c| window_view("token-window", *quota, *width, c, now)),
                Running::Concurrency { max, in_flight } => Some(QuotaView {
                    name: "concurrency",
                    remaining: max.saturating_sub(in_flight.load(Ordering::SeqCst)) as u64,
                    reset_secs: 0,
                    quota: *max as u64,
                    window_secs: 0,
                    concurrent: true,
                }),
            })
            .collect();
        Decision {
            refused,
            held,
            views,
            by_concurrency,
        }
    }
}

fn window_view(
    name: &'static str,
    quota: u64,
    width: Duration,
    c: &WindowCount,
    now: Instant,
) -> QuotaView {
    let end = c.start.unwrap_or(now) + width;
    QuotaView {
        name,
        remaining: quota.saturating_sub(c.count),
        reset_secs: ceil_secs(end.saturating_duration_since(now)),
        quota,
        window_secs: ceil_secs(width).max(1),
        concurrent: false,
    }
}

/// The header lines for `views` in `style`: IETF lists every policy (a concurrency cap as a
/// `concurrent-requests` policy, draft-ietf-httpapi-ratelimit-headers-10 §3.1.2, with no
/// window and no reset), the X- style the request quota with the least left (it has no field
/// for a concurrency cap).
pub(crate) fn headers(style: LimitHeaders, views: &[QuotaView]) -> Vec<(&'static str, String)> {
    match style {
        LimitHeaders::None => Vec::new(),
        _ if views.is_empty() => Vec::new(),
        LimitHeaders::Ietf => {
            let policy = views
                .iter()
                .map(QuotaView::policy_item)
                .collect::<Vec<_>>()
                .join(", ");
            let left = views
                .iter()
                .map(QuotaView::limit_item)
                .collect::<Vec<_>>()
                .join(", ");
            vec![("ratelimit-policy", policy), ("ratelimit", left)]
        }
        LimitHeaders::X => {
            let mut counts = views.iter().filter(|v| !v.concurrent);
            let Some(mut binding) = counts.next().copied() else {
                return Vec::new();
            };
            for v in counts {
                if v.remaining < binding.remaining {
                    binding = *v;
                }
            }
            vec![
                ("x-ratelimit-limit", binding.quota.to_string()),
                ("x-ratelimit-remaining", binding.remaining.to_string()),
                ("x-ratelimit-reset", binding.reset_secs.to_string()),
            ]
        }
    }
}

#[cfg(test)]
mod tests;
