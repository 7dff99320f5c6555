//! Quota headers: what a server says is left of its limit, read from every answer.
//!
//! Two styles are read, the standard one first:
//! - IETF `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers, revision 10
//!   and later; read against -11,
//!   <https://www.ietf.org/archive/id/draft-ietf-httpapi-ratelimit-headers-10.txt>): Lists of
//!   Structured Field items (RFC 9651) parsed with the `sfv` crate, e.g.
//!   `RateLimit-Policy: "default";q=100;w=60` and `RateLimit: "default";r=42;t=17`. `r` is the
//!   quota left, `t` the delta seconds until it resets. The draft says malformed fields MUST be
//!   ignored, so any parse error yields `None`, never an error. Names may be Strings (-10 and
//!   later) or Tokens (drafts up to -08, still sent by some gateways). Policies whose quota unit
//!   `qu` is not requests (`content-bytes`, `concurrent-requests`) say nothing about how many
//!   requests may be sent and are skipped. With several policies, the one with the least left
//!   binds. A `concurrent-requests` policy (draft -10 §3.1.2: "the number of concurrent
//!   requests processed by the resource server") is read apart, by [`concurrency_cap`]: its `q`
//!   is how many requests the server takes in flight, which the adaptive window then never
//!   exceeds. The X- style has no such field.
//! - `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (GitHub, Cloud Foundry,
//!   IBM; Kong-style `RateLimit-Remaining`/`RateLimit-Reset` too). `Reset` is either delta
//!   seconds or a Unix epoch time depending on the vendor (GitHub documents "UTC epoch
//!   seconds"; Kong and Microsoft's Dev Proxy send the time remaining). They are told apart by
//!   size: a value of at least [`EPOCH_THRESHOLD`] (10^9 s, 2001-09-09 as an epoch time, about
//!   31.7 years as a delay) is an epoch time, anything smaller is delta seconds: no real window
//!   is 31 years long, and no clock reads earlier than 2001.
//!
//! `Retry-After` wins over both (the draft: "the Retry-After field MUST take precedence"): the
//! pacer applies it, this module only reads the quota.
//!
//! Hand-written on top of `sfv` rather than a RateLimit crate: none found that reads both the
//! IETF draft and the X- style, and the rules (skip other units, pick the binding policy, epoch
//! or delta) are the part that matters.

use std::time::{Duration, SystemTime};

use sfv::{BareItem, List, ListEntry, Parser};

/// A Reset value at or above this many seconds is an epoch time, below it delta seconds.
pub const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// Which header style a [`Quota`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaStyle {
    /// IETF `RateLimit` / `RateLimit-Policy`.
    Ietf,
    /// `X-RateLimit-*` (or un-prefixed `RateLimit-Remaining`/`-Reset`).
    X,
}

/// What the server said is left of its quota.
#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    /// Requests the server still admits before the reset.
    pub remaining: u64,
    /// Time until the quota is replenished, when the server said.
    pub reset: Option<Duration>,
    /// Requests per window the policy allows, when advertised (`q`, `X-RateLimit-Limit`).
    pub limit: Option<u64>,
    /// The window's width, when advertised (`w`).
    pub window: Option<Duration>,
    /// The policy's name (IETF only).
    pub policy: Option<String>,
    /// Where it came from.
    pub style: QuotaStyle,
}

/// Header values of one answer, each as the list of its field lines (in order).
#[derive(Debug, Default, Clone, Copy)]
pub struct QuotaHeaders<'a> {
    /// `RateLimit-Policy` lines.
    pub policy: &'a [&'a str],
    /// `RateLimit` lines.
    pub ratelimit: &'a [&'a str],
    /// `X-RateLimit-Limit` (or `RateLimit-Limit`).
    pub x_limit: Option<&'a str>,
    /// `X-RateLimit-Remaining` (or `RateLimit-Remaining`).
    pub x_remaining: Option<&'a str>,
    /// `X-RateLimit-Reset` (or `RateLimit-Reset`).
    pub x_reset: Option<&'a str>,
}

impl Quota {
    /// Reads the quota from one answer's headers: IETF first, then the X- style.
    pub fn read(h: &QuotaHeaders<'_>, now: SystemTime) -> Option<Quota> {
        Self::read_with_cap(h, now).0
    }

    /// [`Quota::read`], and the [`concurrency_cap`] from the same parse of
    /// `RateLimit-Policy` (every answer is read for both).
    pub fn read_with_cap(h: &QuotaHeaders<'_>, now: SystemTime) -> (Option<Quota>, Option<u64>) {
        let known = policies(h.policy);
        let quota = ietf_with(&known, h.ratelimit)
            .or_else(|| parse_x(h.x_limit, h.x_remaining, h.x_reset, now));
        (quota, cap_of(&known))
    }
}

/// A List field from its lines: lines are joined with ", " as RFC 9110 §5.3 combines them.
fn parse_list(lines: &[&str]) -> Option<List> {
    if lines.is_empty() {
        return None;
    }
    let joined = lines.join(", ");
    Parser::new(joined.as_str()).parse::<List>().ok()
}

fn item_name(item: &BareItem) -> Option<String> {
    item.as_string()
        .map(|s| s.as_str().to_string())
        .or_else(|| item.as_token().map(|t| t.as_str().to_string()))
}

fn non_negative(item: Option<&BareItem>) -> Option<u64> {
    item.and_then(BareItem::as_integer)
        .and_then(|i| u64::try_from(i64::from(i)).ok())
}

/// What a policy's `q` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// `requests` (the default).
    Requests,
    /// `concurrent-requests`.
    Concurrent,
    /// `content-bytes`, or a unit this client does not know.
    Other,
}

struct Policy {
    name: String,
    q: Option<u64>,
    w: Option<u64>,
    unit: Unit,
}

fn policies(lines: &[&str]) -> Vec<Policy> {
    let Some(list) = parse_list(lines) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|entry| match entry {
            ListEntry::Item(item) => Some(item),
            ListEntry::InnerList(_) => None,
        })
        .filter_map(|item| {
            let name = item_name(&item.bare_item)?;
            // A String from -10 on; read as a Token too, as names are.
            let unit = item.params.get("qu").and_then(item_name);
            Some(Policy {
                name,
                // `q` is REQUIRED; older drafts called it `l`.
                q: non_negative(item.params.get("q").or_else(|| item.params.get("l"))),
                w: non_negative(item.params.get("w")).filter(|w| *w > 0),
                unit: match unit.as_deref() {
                    None | Some("requests") | Some("request") => Unit::Requests,
                    Some("concurrent-requests") => Unit::Concurrent,
                    Some(_) => Unit::Other,
                },
            })
        })
        .collect()
}

/// Reads IETF `RateLimit` (with `RateLimit-Policy` for the limit and window). `None` when
/// absent or malformed, as the draft requires.
pub fn parse_ietf(policy_lines: &[&str], ratelimit_lines: &[&str]) -> Option<Quota> {
    ietf_with(&policies(policy_lines), ratelimit_lines)
}

/// [`parse_ietf`] with the policies already parsed.
fn ietf_with(known: &[Policy], ratelimit_lines: &[&str]) -> Option<Quota> {
    let list = parse_list(ratelimit_lines)?;
    let mut best: Option<Quota> = None;
    for entry in &list {
        let ListEntry::Item(item) = entry else {
            continue;
        };
        let Some(name) = item_name(&item.bare_item) else {
            continue;
        };
        let policy = known.iter().find(|p| p.name == name);
        if policy.is_some_and(|p| p.unit != Unit::Requests) {
            continue;
        }
        // `r` is REQUIRED: an item without it is malformed and ignored.
        let Some(remaining) = non_negative(item.params.get("r")) else {
            continue;
        };
        let quota = Quota {
            remaining,
            reset: non_negative(item.params.get("t")).map(Duration::from_secs),
            limit: policy.and_then(|p| p.q),
            window: policy.and_then(|p| p.w).map(Duration::from_secs),
            policy: Some(name),
            style: QuotaStyle::Ietf,
        };
        // The policy with the least left binds; between equals, the later reset.
        let binds = match &best {
            None => true,
            Some(b) => {
                quota.remaining < b.remaining
                    || (quota.remaining == b.remaining && quota.reset > b.reset)
            }
        };
        if binds {
            best = Some(quota);
        }
    }
    best
}

/// The most requests the server says it takes in flight: the least `q` of the
/// `concurrent-requests` policies in `RateLimit-Policy` (a `q` of 0 would stop every request
/// and is ignored as malformed). `None` without one, or when the field is malformed.
///
/// The policy's `q`, not the `RateLimit` item's `r`, is read: `r` is what is free at the moment
/// the answer left, which this client's own requests on their way back already change, while
/// `q` is the cap it must stay under; a cap shared with other clients still shows as 429s,
/// which cut the window below it as any other concurrency refusal does.
pub fn concurrency_cap(policy_lines: &[&str]) -> Option<u64> {
    cap_of(&policies(policy_lines))
}

fn cap_of(known: &[Policy]) -> Option<u64> {
    known
        .iter()
        .filter(|p| p.unit == Unit::Concurrent)
        .filter_map(|p| p.q)
        .filter(|q| *q > 0)
        .min()
}

/// The leading unsigned integer of a value such as `100` or `100, 100;w=60` (some gateways
/// append an IETF-style policy to `X-RateLimit-Limit`).
fn leading_u64(text: &str) -> Option<u64> {
    let t = text.trim();
    let end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    t[..end].parse().ok()
}

/// Reads the X- style. `reset` of at least [`EPOCH_THRESHOLD`] is an epoch time (a past one
/// means now), else delta seconds; a fractional reset is rounded up. `None` without a valid
/// `remaining`.
pub fn parse_x(
    limit: Option<&str>,
    remaining: Option<&str>,
    reset: Option<&str>,
    now: SystemTime,
) -> Option<Quota> {
    let remaining: u64 = remaining?.trim().parse().ok()?;
    let reset = reset.and_then(|r| {
        let secs: f64 = r
            .trim()
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)?;
        let secs = secs.ceil();
        if secs >= EPOCH_THRESHOLD as f64 {
            let epoch = Duration::from_secs_f64(secs.min(1e15));
            let now = now.duration_since(SystemTime::UNIX_EPOCH).ok()?;
            Some(epoch.saturating_sub(now))
        } else {
            Some(Duration::from_secs_f64(secs))
        }
    });
    Some(Quota {
        remaining,
        reset,
        limit: limit.and_then(leading_u64),
        window: None,
        policy: None,
        style: QuotaStyle::X,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn ietf_draft_example() {
        let q = parse_ietf(&[r#""default";q=100;w=60"#], &[r#""default";r=42;t=17"#]).unwrap();
        assert_eq!(q.remaining, 42);
        assert_eq!(q.reset, Some(Duration::from_secs(17)));
        assert_eq!(q.limit, Some(100));
        assert_eq!(q.window, Some(Duration::from_secs(60)));
        assert_eq!(q.policy.as_deref(), Some("default"));
        assert_eq!(q.style, QuotaStyle::Ietf);
    }

    #[test]
    fn ietf_without_policy_and_with_tokens_and_split_lines() {
        let q = parse_ietf(&[], &[r#""a";r=5"#]).unwrap();
        assert_eq!((q.remaining, q.reset, q.limit), (5, None, None));
        // Token names (older drafts) and a list split over two field lines.
        let q = parse_ietf(
            &["burst;q=10;w=1", "daily;q=1000;w=86400"],
            &["burst;r=9;t=1", "daily;r=3;t=500"],
        )
        .unwrap();
        assert_eq!(
            q.policy.as_deref(),
            Some("daily"),
            "the policy with the least left binds"
        );
        assert_eq!((q.remaining, q.limit), (3, Some(1000)));
    }

    #[test]
    fn ietf_skips_other_units_and_ignores_malformed_fields() {
        let q = parse_ietf(
            &[r#""c";q=5;qu="concurrent-requests", "r";q=100;w=10"#],
            &[r#""c";r=0, "r";r=50;t=3"#],
        )
        .unwrap();
        assert_eq!(q.policy.as_deref(), Some("r"));
        for bad in [
            "",
            "\"default\";r=",
            "\"default\";r=-1",
            "\"default\";t=3",
            "(\"a\" \"b\");r=1",
            "\"unterminated;r=1",
            "\"default\";r=1.5",
            "default;r=1,,",
        ] {
            assert_eq!(parse_ietf(&[], &[bad]), None, "{bad:?}");
        }
        // A malformed policy field loses the limit, not the quota.
        let q = parse_ietf(&["q=;;"], &[r#""default";r=1;t=2"#]).unwrap();
        assert_eq!((q.remaining, q.limit), (1, None));
    }

    /// A `concurrent-requests` policy says how many the server takes in flight: the least such
    /// `q` is the cap; request policies, other units, a zero and a malformed field say nothing.
    #[test]
    fn concurrency_cap_is_the_least_concurrent_requests_quota() {
        assert_eq!(
            concurrency_cap(&[r#""conc";q=6;qu="concurrent-requests""#]),
            Some(6)
        );
        assert_eq!(
            concurrency_cap(&[
                r#""r";q=100;w=10, "a";q=8;qu="concurrent-requests""#,
                r#""b";q=5;qu="concurrent-requests", "z";q=0;qu="concurrent-requests""#,
            ]),
            Some(5),
            "across lines, the least non-zero"
        );
        assert_eq!(
            concurrency_cap(&["conc;q=6;qu=concurrent-requests"]),
            Some(6),
            "tokens, as drafts up to -08 sent them"
        );
        for none in [
            r#""r";q=100;w=10"#,
            r#""bytes";q=6;qu="content-bytes""#,
            r#""conc";qu="concurrent-requests""#,
            r#""conc";q=-6;qu="concurrent-requests""#,
            r#""conc";q=6;qu="concurrent-requests"#,
            "",
        ] {
            assert_eq!(concurrency_cap(&[none]), None, "{none:?}");
        }
        assert_eq!(concurrency_cap(&[]), None);
    }

    #[test]
    fn x_reset_delta_or_epoch_by_size() {
        let now = at(1_800_000_000);
        let q = parse_x(Some("300"), Some("12"), Some("17"), now).unwrap();
        assert_eq!((q.limit, q.remaining), (Some(300), 12));
        assert_eq!(q.reset, Some(Duration::from_secs(17)));
        let q = parse_x(None, Some("0"), Some("1800000042"), now).unwrap();
        assert_eq!(q.reset, Some(Duration::from_secs(42)), "epoch seconds");
        let q = parse_x(None, Some("0"), Some("1799999000"), now).unwrap();
        assert_eq!(q.reset, Some(Duration::ZERO), "an epoch in the past is now");
        let q = parse_x(None, Some("0"), Some("999999999"), now).unwrap();
        assert_eq!(
            q.reset,
            Some(Duration::from_secs(999_999_999)),
            "just below: delta"
        );
        let q = parse_x(Some("100, 100;w=60"), Some(" 7 "), Some("0.2"), now).unwrap();
        assert_eq!(
            (q.limit, q.remaining, q.reset),
            (Some(100), 7, Some(Duration::from_secs(1)))
        );
        for bad in ["", "-1", "x", "1e3"] {
            assert_eq!(parse_x(None, Some(bad), None, now), None, "{bad:?}");
        }
        assert_eq!(parse_x(None, None, Some("5"), now), None);
        let q = parse_x(None, Some("5"), Some("nonsense"), now).unwrap();
        assert_eq!(q.reset, None);
        assert!(parse_x(None, Some("5"), Some("1e300"), now)
            .unwrap()
            .reset
            .is_some());
    }

    #[test]
    fn ietf_is_read_before_x() {
        let h = QuotaHeaders {
            ratelimit: &[r#""default";r=1;t=1"#],
            x_remaining: Some("99"),
            ..Default::default()
        };
        assert_eq!(Quota::read(&h, at(0)).unwrap().remaining, 1);
        let h = QuotaHeaders {
            ratelimit: &["garbage((("],
            x_remaining: Some("99"),
            ..Default::default()
        };
        assert_eq!(Quota::read(&h, at(0)).unwrap().remaining, 99);
    }
}
