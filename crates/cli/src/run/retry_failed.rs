//! `run --retry-failed`: after an outage, resubmit the UUIDs whose latest outcome in the trail
//! is a failure that did not run the action, with the same UUID and Idempotency-Key, to the
//! action recorded for them.
//!
//! Which failures qualify is read from the outcome event itself: a 429 or a 5xx that exhausted
//! its retries, or a failure with no HTTP answer at all (connection refused or lost, timeout).
//! A 4xx other than 429 is the platform refusing that UUID, a 2xx whose body did not check out
//! means the action ran, and an outcome marked "may have executed" (`--on-ambiguous fail`) is
//! one the user asked never to be resent: all of those stay failed.

use std::collections::HashMap;

use cxone_uuid_audit::{AuditEvent, EventKind, Pending};
use uuid::Uuid;

use crate::s3_args::S3Args;

/// Why a failed UUID is not resubmitted, in the order the summary note lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Kept {
    /// The platform refused it (4xx other than 429).
    Refused,
    /// The action answered but its answer did not check out: it ran.
    Answered,
    /// Ended by `--on-ambiguous fail`: it may have run.
    MayHaveExecuted,
}

impl Kept {
    fn why(self) -> &'static str {
        match self {
            Kept::Refused => "refused by the platform (4xx)",
            Kept::Answered => "answered by the action (it ran)",
            Kept::MayHaveExecuted => "may have executed (--on-ambiguous fail)",
        }
    }
}

/// The failures to resubmit, and how many stay failed for each reason.
pub(super) struct Selection {
    pub(super) retry: Vec<Pending>,
    pub(super) kept: Vec<(Kept, usize)>,
}

impl Selection {
    /// One line for the person running it: how many go out again and why the others do not.
    pub(super) fn note(&self) -> String {
        let mut text = format!(
            "--retry-failed: resubmitting {} failed UUID(s) that did not run the action",
            self.retry.len()
        );
        for (kept, n) in &self.kept {
            text.push_str(&format!("; {n} stay failed: {}", kept.why()));
        }
        text
    }
}

/// Whether an outcome event is a failure worth resubmitting, or why not.
fn classify(ev: &AuditEvent) -> Result<(), Kept> {
    let error = ev.error.as_deref().unwrap_or_default();
    if error.starts_with(cxone_uuid_client::AMBIGUOUS_PREFIX) {
        return Err(Kept::MayHaveExecuted);
    }
    match ev.http_status {
        None | Some(429) => Ok(()),
        Some(s) if s >= 500 => Ok(()),
        Some(s) if (200..300).contains(&s) => Err(Kept::Answered),
        Some(_) => Err(Kept::Refused),
    }
}

/// Reads the first local trail in `specs` and selects what to resubmit.
pub(super) async fn select(specs: &[String], s3: &S3Args) -> anyhow::Result<Selection> {
    for text in specs {
        let Some(source) = crate::sinks::backend(text, s3)?.and_then(|b| b.source()) else {
            continue;
        };
        return tokio::task::spawn_blocking(move || -> anyhow::Result<Selection> {
            // The latest outcome of each UUID, and the action it was last submitted to.
            let mut latest: HashMap<Uuid, (u64, Option<AuditEvent>, Option<String>, Uuid)> =
                HashMap::new();
            if source.exists()? {
                source.visit(&mut |ev| {
                    let Some(uuid) = ev.uuid else { return Ok(()) };
                    let entry = latest
                        .entry(uuid)
                        .or_insert((ev.seq, None, None, ev.run_id));
                    match ev.event {
                        EventKind::ActionSubmitted => {
                            *entry = (ev.seq, None, ev.action_id.clone(), ev.run_id);
                        }
                        EventKind::ActionExecuted | EventKind::ActionFailed => {
                            entry.0 = ev.seq;
                            entry.1 = Some(ev.clone());
                        }
                        _ => {}
                    }
                    Ok(())
                })?;
            }
            let mut retry: Vec<(u64, Pending)> = Vec::new();
            let mut kept: HashMap<Kept, usize> = HashMap::new();
            for (uuid, (seq, outcome, action_id, run_id)) in latest {
                let Some(ev) = outcome.filter(|e| e.event == EventKind::ActionFailed) else {
                    continue;
                };
                match classify(&ev) {
                    Ok(()) => retry.push((
                        seq,
                        Pending {
                            uuid,
                            action_id: action_id.or(ev.action_id.clone()),
                            run_id,
                        },
                    )),
                    Err(k) => *kept.entry(k).or_default() += 1,
                }
            }
            // In the order they failed, as --resume keeps submission order.
            retry.sort_by_key(|(seq, _)| *seq);
            let mut kept: Vec<(Kept, usize)> = kept.into_iter().collect();
            kept.sort();
            Ok(Selection {
                retry: retry.into_iter().map(|(_, p)| p).collect(),
                kept,
            })
        })
        .await?;
    }
    Err(crate::exit::usage(
        "--retry-failed needs a local audit trail to read: pass --audit jsonl:PATH or --audit sqlite:PATH",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failed(status: Option<u16>, error: &str) -> AuditEvent {
        let mut ev = AuditEvent::new(EventKind::ActionFailed, Uuid::nil());
        ev.http_status = status;
        ev.error = Some(error.into());
        ev
    }

    #[test]
    fn only_failures_that_did_not_run_the_action_qualify() {
        assert_eq!(classify(&failed(Some(429), "rate limited")), Ok(()));
        assert_eq!(classify(&failed(Some(503), "HTTP 503")), Ok(()));
        assert_eq!(classify(&failed(None, "connection refused")), Ok(()));
        assert_eq!(
            classify(&failed(Some(400), "bad input")),
            Err(Kept::Refused)
        );
        assert_eq!(
            classify(&failed(Some(200), "echo mismatch")),
            Err(Kept::Answered)
        );
        assert_eq!(
            classify(&failed(
                Some(502),
                "may have executed: check the target before resubmitting (HTTP 502; --on-ambiguous fail)"
            )),
            Err(Kept::MayHaveExecuted)
        );
    }
}
