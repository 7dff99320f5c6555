//! The figures of a compliance report, computed with SQL over the database.
//!
//! A year of trail is tens of millions of events, so nothing here loads the events: totals,
//! per-day counts, failure reasons and runs are `GROUP BY` queries SQLite answers with its own
//! bounded temporary storage, and latency percentiles are streamed into one HdrHistogram per
//! day (3 significant digits, a few kilobytes each) instead of sorting every latency.

use std::collections::BTreeMap;
use std::path::Path;

use cxone_uuid_audit::AuditError;
use hdrhistogram::Histogram;
use rusqlite::types::Value;
use serde::Serialize;

use crate::backend;
use crate::schema::open_read;

/// Which events a report covers. Values are bound as parameters.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ReportFilter {
    /// Events at or after this time (RFC 3339, or a prefix such as `2026-03-01`).
    pub since: Option<String>,
    /// Events before this time.
    pub until: Option<String>,
    /// Events of this run.
    pub run_id: Option<String>,
}

impl ReportFilter {
    /// A filter by period and run (each may be `None`).
    pub fn new(since: Option<String>, until: Option<String>, run_id: Option<String>) -> Self {
        Self {
            since,
            until,
            run_id,
        }
    }
}

/// Counts over the UUIDs submitted in the period, each by its latest outcome in the period.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[non_exhaustive]
pub struct Totals {
    /// UUIDs with an `action_submitted` event.
    pub submitted: u64,
    /// Of those, whose latest outcome is `action_executed`.
    pub succeeded: u64,
    /// Whose latest outcome is `action_failed`.
    pub failed: u64,
    /// With no outcome: submitted, never answered (what `run --resume` sends).
    pub pending: u64,
    /// Whose outcome records at least one attempt that may have run the action.
    pub ambiguous: u64,
    /// Attempts beyond the first, over every outcome.
    pub retries: u64,
    /// 429 answers, as each run's `run_finished` counted them.
    pub rate_limited: u64,
    /// succeeded / (succeeded + failed); `None` with no outcome.
    pub success_rate: Option<f64>,
}

/// Server latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[non_exhaustive]
pub struct Quantiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One UTC day's outcomes and latency.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[non_exhaustive]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// `action_executed` events.
    pub succeeded: u64,
    /// `action_failed` events.
    pub failed: u64,
    /// Of the outcomes that recorded one; `None` when none did.
    pub latency_ms: Option<Quantiles>,
}

/// A failure reason and how often it was the outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[non_exhaustive]
pub struct Reason {
    /// The `error` of the `action_failed` events.
    pub reason: String,
    /// How many.
    pub count: u64,
    /// One UUID that failed so.
    pub example_uuid: Option<String>,
}

/// One run's row.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[non_exhaustive]
pub struct RunRow {
    /// The run.
    pub run_id: String,
    /// Its first event in the period.
    pub start: String,
    /// Its `run_finished`, when in the period.
    pub end: Option<String>,
    /// From `run_started` (`genesys`, `cxone`, `tutorial`).
    pub provider: Option<String>,
    /// The action (or CXone execute path) from `run_started`.
    pub action_id: Option<String>,
    /// `action_submitted` events.
    pub submitted: u64,
    /// `action_executed` events.
    pub succeeded: u64,
    /// `action_failed` events.
    pub failed: u64,
}

/// Everything a report shows about the period, besides the chain's verification.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[non_exhaustive]
pub struct Figures {
    /// Events in the period.
    pub events: u64,
    /// The first event's time in the period.
    pub first_event: Option<String>,
    /// The last event's time in the period.
    pub last_event: Option<String>,
    /// Totals.
    pub totals: Totals,
    /// Per UTC day, in order.
    pub days: Vec<Day>,
    /// The ten most frequent failure reasons, most frequent first.
    pub failure_reasons: Vec<Reason>,
    /// One row per run, in the order they started.
    pub runs: Vec<RunRow>,
}

/// The report's figures over the database at `path`.
pub fn figures(path: &Path, filter: &ReportFilter) -> Result<Figures, AuditError> {
    let conn = open_read(path)?;
    let err = backend(path);
    // The period's events, as a CTE every query starts from; parameters ?1..?3 are bound to
    // the filter (NULL: no restriction).
    let scope = "WITH ev AS (SELECT * FROM audit_events_all \
                  WHERE (?1 IS NULL OR timestamp >= ?1) AND (?2 IS NULL OR timestamp < ?2) \
                    AND (?3 IS NULL OR run_id = ?3))";
    let params = [opt(&filter.since), opt(&filter.until), opt(&filter.run_id)];
    let params = rusqlite::params_from_iter(params.iter());
    let mut f = Figures::default();

    let (events, first, last): (i64, Option<String>, Option<String>) = conn
        .query_row(
            &format!("{scope} SELECT count(*), min(timestamp), max(timestamp) FROM ev"),
            params.clone(),
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(&err)?;
    f.events = events as u64;
    f.first_event = first;
    f.last_event = last;

    let t = conn
        .query_row(
            &format!(
                "{scope}, sub AS (SELECT DISTINCT uuid FROM ev WHERE event = 'action_submitted'),
                 done AS (SELECT uuid, max(seq) AS seq FROM ev
                           WHERE event IN ('action_executed', 'action_failed') GROUP BY uuid),
                 latest AS (SELECT sub.uuid, e.event, e.ambiguous_attempts FROM sub
                            LEFT JOIN done ON done.uuid = sub.uuid
                            LEFT JOIN audit_events_all e ON e.seq = done.seq)
                 SELECT count(*),
                        coalesce(sum(event = 'action_executed'), 0),
                        coalesce(sum(event = 'action_failed'), 0),
                        coalesce(sum(event IS NULL), 0),
                        coalesce(sum(coalesce(ambiguous_attempts, 0) > 0), 0),
                        (SELECT coalesce(sum(max(coalesce(attempts, 1) - 1, 0)), 0) FROM ev
                          WHERE event IN ('action_executed', 'action_failed')),
                        (SELECT coalesce(sum(json_extract(metadata, '$.rate_limited')), 0) FROM ev
                          WHERE event = 'run_finished')
                   FROM latest"
            ),
            params.clone(),
            |r| {
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
                Ok(Totals {
                    submitted: n(0)?,
                    succeeded: n(1)?,
                    failed: n(2)?,
                    pending: n(3)?,
                    ambiguous: n(4)?,
                    retries: n(5)?,
                    rate_limited: n(6)?,
                    success_rate: None,
                })
            },
        )
        .map_err(&err)?;
    let answered = t.succeeded + t.failed;
    f.totals = Totals {
        success_rate: (answered > 0).then(|| t.succeeded as f64 / answered as f64),
        ..t
    };

    // Per day: counts by SQL, latency percentiles by streaming into a histogram per day.
    let mut days: BTreeMap<String, (u64, u64, Option<Histogram<u64>>)> = BTreeMap::new();
    let mut stmt = conn
        .prepare(&format!(
            "{scope} SELECT substr(timestamp, 1, 10), event = 'action_executed', execution_latency_ms
               FROM ev WHERE event IN ('action_executed', 'action_failed')"
        ))
        .map_err(&err)?;
    let mut rows = stmt.query(params.clone()).map_err(&err)?;
    while let Some(r) = rows.next().map_err(&err)? {
        let day: String = r.get(0).map_err(&err)?;
        let ok: bool = r.get(1).map_err(&err)?;
        let latency: Option<f64> = r.get(2).map_err(&err)?;
        let entry = days.entry(day).or_insert((0, 0, None));
        if ok {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
        if let Some(ms) = latency.filter(|v| v.is_finite() && *v >= 0.0) {
            if entry.2.is_none() {
                // 1 µs to an hour, 3 significant digits; longer is counted as an hour.
                entry.2 = Histogram::new_with_bounds(1, 3_600_000_000, 3).ok();
            }
            if let Some(h) = &mut entry.2 {
                // Microseconds: the stored latency has three decimals of a millisecond.
                h.saturating_record((ms * 1000.0).round() as u64);
            }
        }
    }
    drop(rows);
    drop(stmt);
    f.days = days
        .into_iter()
        .map(|(day, (succeeded, failed, h))| Day {
            day,
            succeeded,
            failed,
            latency_ms: h.filter(|h| !h.is_empty()).map(|h| Quantiles {
                p50: h.value_at_quantile(0.50) as f64 / 1000.0,
                p95: h.value_at_quantile(0.95) as f64 / 1000.0,
                p99: h.value_at_quantile(0.99) as f64 / 1000.0,
            }),
        })
        .collect();

    let mut stmt = conn
        .prepare(&format!(
            "{scope} SELECT coalesce(error, '(no reason recorded)'), count(*), min(uuid)
               FROM ev WHERE event = 'action_failed'
              GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10"
        ))
        .map_err(&err)?;
    f.failure_reasons = stmt
        .query_map(params.clone(), |r| {
            Ok(Reason {
                reason: r.get(0)?,
                count: r.get::<_, i64>(1)?.max(0) as u64,
                example_uuid: r.get(2)?,
            })
        })
        .map_err(&err)?
        .collect::<Result<_, _>>()
        .map_err(&err)?;

    let mut stmt = conn
        .prepare(&format!(
            "{scope} SELECT run_id, min(timestamp),
                    max(CASE WHEN event = 'run_finished' THEN timestamp END),
                    max(CASE WHEN event = 'run_started'
                             THEN json_extract(metadata, '$.provider') END),
                    max(CASE WHEN event = 'run_started' THEN action_id END),
                    sum(event = 'action_submitted'), sum(event = 'action_executed'),
                    sum(event = 'action_failed')
               FROM ev GROUP BY run_id ORDER BY min(seq)"
        ))
        .map_err(&err)?;
    f.runs = stmt
        .query_map(params, |r| {
            let n = |i: usize| r.get::<_, i64>(i).map(|v| v.max(0) as u64);
            Ok(RunRow {
                run_id: r.get(0)?,
                start: r.get(1)?,
                end: r.get(2)?,
                provider: r.get(3)?,
                action_id: r.get(4)?,
                submitted: n(5)?,
                succeeded: n(6)?,
                failed: n(7)?,
            })
        })
        .map_err(&err)?
        .collect::<Result<_, _>>()
        .map_err(&err)?;
    Ok(f)
}

fn opt(v: &Option<String>) -> Value {
    v.clone().map_or(Value::Null, Value::Text)
}
