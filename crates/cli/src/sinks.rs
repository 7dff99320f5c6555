//! Audit sink specs to sinks, readers and verifiers: the one place every backend is wired.
//!
//! Each function is one explicit `match` over [`SinkSpec`], one `#[cfg(feature = …)]` arm per
//! sink and a fallback arm per missing feature that says which feature to rebuild with.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;

use cxone_uuid_audit::signing::Signing;
use cxone_uuid_audit::{AuditError, AuditEvent, AuditSink, EventKind, Fanout, SyncMode};
use ed25519_dalek::VerifyingKey;
use uuid::Uuid;

use crate::exit::usage;
use crate::s3_args::S3Args;

/// A parsed `--audit` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SinkSpec {
    /// `jsonl:PATH`
    Jsonl(PathBuf),
    /// `sqlite:PATH`
    Sqlite(PathBuf),
    /// `s3://BUCKET/PREFIX`
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without a trailing slash (may be empty).
        prefix: String,
    },
    /// `none`: no audit trail.
    None,
}

impl FromStr for SinkSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let path = |rest: &str, kind: &str| {
            if rest.is_empty() {
                Err(format!("audit sink {s:?} has no path: use {kind}:PATH"))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        if s == "none" {
            Ok(Self::None)
        } else if let Some(rest) = s.strip_prefix("jsonl:") {
            path(rest, "jsonl").map(Self::Jsonl)
        } else if let Some(rest) = s.strip_prefix("sqlite:") {
            path(rest, "sqlite").map(Self::Sqlite)
        } else if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "audit sink {s:?} has no bucket: use s3://BUCKET/PREFIX"
                ));
            }
            Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_end_matches('/').to_string(),
            })
        } else {
            Err(format!(
                "unknown audit sink {s:?}: use jsonl:PATH, sqlite:PATH, s3://BUCKET/PREFIX or none"
            ))
        }
    }
}

/// How sinks write, from the `run` flags.
#[derive(Clone, Default)]
pub(crate) struct SinkOptions {
    /// When events are made durable.
    pub(crate) sync: SyncMode,
    /// Signs checkpoints when set.
    pub(crate) signing: Option<Signing>,
    /// Rotate JSONL files at this size in MiB.
    pub(crate) rotate_mb: Option<u64>,
}

impl std::fmt::Debug for SinkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkOptions")
            .field("sync", &self.sync)
            .field("signing", &self.signing)
            .field("rotate_mb", &self.rotate_mb)
            .finish()
    }
}

fn parse(spec: &str) -> anyhow::Result<SinkSpec> {
    spec.parse::<SinkSpec>().map_err(usage)
}

#[cfg_attr(
    all(feature = "jsonl", feature = "sqlite", feature = "s3"),
    allow(dead_code)
)]
fn missing(feature: &str) -> anyhow::Error {
    usage(format!(
        "this build has no {feature} sink; rebuild with --features {feature}"
    ))
}

#[cfg_attr(
    not(any(feature = "jsonl", feature = "sqlite", feature = "s3")),
    allow(dead_code)
)]
fn cannot_open(spec: &str, e: AuditError) -> anyhow::Error {
    // Nothing has been sent yet: a sink that cannot be opened is a configuration error.
    usage(format!("cannot open audit sink {spec}: {e}"))
}

/// Checks that every spec parses and that this build has its sink, before anything is opened:
/// a missing feature must not leave a registry or another sink's file half-created.
pub(crate) fn check_built(specs: &[String]) -> anyhow::Result<()> {
    for text in specs {
        match parse(text)? {
            #[cfg(not(feature = "jsonl"))]
            SinkSpec::Jsonl(_) => return Err(missing("jsonl")),
            #[cfg(not(feature = "sqlite"))]
            SinkSpec::Sqlite(_) => return Err(missing("sqlite")),
            #[cfg(not(feature = "s3"))]
            SinkSpec::S3 { .. } => return Err(missing("s3")),
            _ => {}
        }
    }
    Ok(())
}

/// Opens every sink in `specs` (`none` adds nothing) as one fan-out.
#[cfg_attr(
    not(any(feature = "jsonl", feature = "sqlite", feature = "s3")),
    allow(unreachable_code, unused_mut, unused_variables)
)]
pub(crate) async fn open_all(
    specs: &[String],
    opts: &SinkOptions,
    s3: &S3Args,
) -> anyhow::Result<Fanout> {
    let _ = (opts, s3); // unused in builds without some sinks
    check_built(specs)?;
    let mut sinks: Vec<Box<dyn AuditSink>> = Vec::new();
    for text in specs {
        let sink: Box<dyn AuditSink> = match parse(text)? {
            SinkSpec::None => continue,
            #[cfg(feature = "jsonl")]
            SinkSpec::Jsonl(path) => {
                let o = cxone_uuid_audit_jsonl::JsonlOptions {
                    sync: opts.sync,
                    rotate_mb: opts.rotate_mb,
                    signing: opts.signing.clone(),
                };
                Box::new(
                    cxone_uuid_audit_jsonl::JsonlSink::open(&path, o)
                        .map_err(|e| cannot_open(text, e))?,
                )
            }
            #[cfg(not(feature = "jsonl"))]
            SinkSpec::Jsonl(_) => return Err(missing("jsonl")),
            #[cfg(feature = "sqlite")]
            SinkSpec::Sqlite(path) => {
                let o = cxone_uuid_audit_sqlite::SqliteOptions {
                    sync: opts.sync,
                    signing: opts.signing.clone(),
                };
                Box::new(
                    cxone_uuid_audit_sqlite::SqliteSink::open(&path, o)
                        .map_err(|e| cannot_open(text, e))?,
                )
            }
            #[cfg(not(feature = "sqlite"))]
            SinkSpec::Sqlite(_) => return Err(missing("sqlite")),
            // Written by the S3 sink's owner in s3_args.rs:
            // `open_sink(&str, &str, &S3Args, &SinkOptions) -> anyhow::Result<Box<dyn AuditSink>>`.
            #[cfg(feature = "s3")]
            SinkSpec::S3 { bucket, prefix } => {
                crate::s3_args::open_sink(&bucket, &prefix, s3, opts).await?
            }
            #[cfg(not(feature = "s3"))]
            SinkSpec::S3 { .. } => return Err(missing("s3")),
        };
        sinks.push(sink);
    }
    Ok(Fanout(sinks))
}

/// Verifies the trail named by `spec`. A broken chain is an [`AuditError::Chain`] in the error.
pub(crate) async fn verify(
    spec: &str,
    public_key: Option<VerifyingKey>,
    s3: &S3Args,
) -> anyhow::Result<cxone_uuid_audit::VerifySummary> {
    let _ = (&public_key, s3);
    match parse(spec)? {
        SinkSpec::None => Err(usage("there is nothing to verify in the `none` sink")),
        #[cfg(feature = "jsonl")]
        SinkSpec::Jsonl(path) => {
            tokio::task::spawn_blocking(move || cxone_uuid_audit_jsonl::verify(&path, public_key))
                .await?
                .map_err(anyhow::Error::new)
        }
        #[cfg(not(feature = "jsonl"))]
        SinkSpec::Jsonl(_) => Err(missing("jsonl")),
        #[cfg(feature = "sqlite")]
        SinkSpec::Sqlite(path) => {
            tokio::task::spawn_blocking(move || cxone_uuid_audit_sqlite::verify(&path, public_key))
                .await?
                .map_err(anyhow::Error::new)
        }
        #[cfg(not(feature = "sqlite"))]
        SinkSpec::Sqlite(_) => Err(missing("sqlite")),
        // Written by the S3 sink's owner in s3_args.rs:
        // `verify(&str, &str, &S3Args) -> anyhow::Result<VerifySummary>`.
        #[cfg(feature = "s3")]
        SinkSpec::S3 { bucket, prefix } => {
            if public_key.is_some() {
                return Err(usage(
                    "--public-key is not supported for s3:// trails yet: verify the local copy",
                ));
            }
            crate::s3_args::verify(&bucket, &prefix, s3).await
        }
        #[cfg(not(feature = "s3"))]
        SinkSpec::S3 { .. } => Err(missing("s3")),
    }
}

/// A UUID the trail shows as submitted without an outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(dead_code)] // action_id and run_id are for callers that report what they resume
pub(crate) struct Pending {
    pub(crate) uuid: Uuid,
    pub(crate) action_id: Option<String>,
    pub(crate) run_id: Uuid,
}

/// Tracks the latest submission state per UUID while streaming events.
#[derive(Default)]
#[cfg_attr(not(feature = "jsonl"), allow(dead_code))]
struct PendingTracker {
    open: HashMap<Uuid, (u64, Pending)>,
}

#[cfg_attr(not(feature = "jsonl"), allow(dead_code))]
impl PendingTracker {
    fn feed(&mut self, ev: &AuditEvent) {
        let Some(uuid) = ev.uuid else { return };
        match ev.event {
            EventKind::ActionSubmitted => {
                self.open.insert(
                    uuid,
                    (
                        ev.seq,
                        Pending {
                            uuid,
                            action_id: ev.action_id.clone(),
                            run_id: ev.run_id,
                        },
                    ),
                );
            }
            EventKind::ActionExecuted | EventKind::ActionFailed => {
                self.open.remove(&uuid);
            }
            _ => {}
        }
    }

    fn finish(self) -> Vec<Pending> {
        let mut v: Vec<(u64, Pending)> = self.open.into_values().collect();
        v.sort_by_key(|(seq, _)| *seq);
        v.into_iter().map(|(_, p)| p).collect()
    }
}

/// UUIDs with `action_submitted` but no terminal event, in submission order, read from the first
/// local trail in `specs` (every sink holds the same events).
pub(crate) async fn pending_submissions(
    specs: &[String],
    s3: &S3Args,
) -> anyhow::Result<Vec<Pending>> {
    let _ = s3;
    for text in specs {
        match parse(text)? {
            SinkSpec::None => continue,
            #[cfg(feature = "jsonl")]
            SinkSpec::Jsonl(path) => {
                if cxone_uuid_audit_jsonl::segments(&path)?.is_empty() {
                    return Ok(Vec::new());
                }
                return tokio::task::spawn_blocking(move || pending_jsonl(&path)).await?;
            }
            #[cfg(not(feature = "jsonl"))]
            SinkSpec::Jsonl(_) => return Err(missing("jsonl")),
            #[cfg(feature = "sqlite")]
            SinkSpec::Sqlite(path) => {
                if !path.exists() {
                    return Ok(Vec::new());
                }
                let rows =
                    tokio::task::spawn_blocking(move || cxone_uuid_audit_sqlite::pending(&path))
                        .await??;
                return Ok(rows
                    .into_iter()
                    .map(|p| Pending {
                        uuid: p.uuid,
                        action_id: p.action_id,
                        run_id: p.run_id,
                    })
                    .collect());
            }
            #[cfg(not(feature = "sqlite"))]
            SinkSpec::Sqlite(_) => return Err(missing("sqlite")),
            // The S3 archive is read back through a local sink: skip it here.
            SinkSpec::S3 { .. } => continue,
        }
    }
    Err(usage(
        "--resume needs a local audit trail to read: pass --audit jsonl:PATH or --audit sqlite:PATH",
    ))
}

/// The UUIDs of [`pending_submissions`] (what `run --resume` submits again).
pub(crate) async fn pending_uuids(specs: &[String], s3: &S3Args) -> anyhow::Result<Vec<Uuid>> {
    Ok(pending_submissions(specs, s3)
        .await?
        .into_iter()
        .map(|p| p.uuid)
        .collect())
}

#[cfg(feature = "jsonl")]
fn pending_jsonl(path: &std::path::Path) -> anyhow::Result<Vec<Pending>> {
    let mut reader = cxone_uuid_audit_jsonl::JsonlReader::open(path)?;
    let mut tracker = PendingTracker::default();
    let mut line = Vec::new();
    let mut bad: Option<String> = None;
    while reader.next_line(&mut line)? {
        if let Some(why) = bad.take() {
            // Only the very last line may be partial (a crash mid-write); anything else is damage.
            anyhow::bail!(
                "{} holds an unparseable line before its end ({why}); check it with `cxone-uuid audit verify`",
                path.display()
            );
        }
        match serde_json::from_slice::<AuditEvent>(&line) {
            Ok(ev) => tracker.feed(&ev),
            Err(e) => bad = Some(e.to_string()),
        }
    }
    Ok(tracker.finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!("none".parse(), Ok(SinkSpec::None));
        assert_eq!(
            "jsonl:a/b.jsonl".parse(),
            Ok(SinkSpec::Jsonl("a/b.jsonl".into()))
        );
        assert_eq!("sqlite:x.db".parse(), Ok(SinkSpec::Sqlite("x.db".into())));
        assert_eq!(
            "s3://bkt/some/prefix/".parse(),
            Ok(SinkSpec::S3 {
                bucket: "bkt".into(),
                prefix: "some/prefix".into()
            })
        );
        assert_eq!(
            "s3://bkt".parse(),
            Ok(SinkSpec::S3 {
                bucket: "bkt".into(),
                prefix: String::new()
            })
        );
        assert!("jsonl:".parse::<SinkSpec>().is_err());
        assert!("s3:///x".parse::<SinkSpec>().is_err());
        assert!("ftp://x"
            .parse::<SinkSpec>()
            .unwrap_err()
            .contains("jsonl:PATH"));
    }

    #[test]
    fn pending_tracks_the_latest_state() {
        let run = Uuid::now_v7();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut t = PendingTracker::default();
        for (seq, kind, u) in [
            (1, EventKind::ActionSubmitted, a),
            (2, EventKind::ActionSubmitted, b),
            (3, EventKind::ActionFailed, a),
            (4, EventKind::ActionSubmitted, a),
            (5, EventKind::ActionExecuted, b),
        ] {
            let mut e = AuditEvent::new(kind, run);
            e.seq = seq;
            e.uuid = Some(u);
            t.feed(&e);
        }
        assert_eq!(
            t.finish().iter().map(|p| p.uuid).collect::<Vec<_>>(),
            vec![a]
        );
    }
}
