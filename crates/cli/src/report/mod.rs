//! `cxone-uuid audit report`: what an auditor attaches to a finding. The figures come from
//! SQL over a SQLite trail (`cxone_uuid_audit_sqlite::figures`), the verdict from verifying
//! its chain (and signed checkpoints with `--public-key`); text, JSON and HTML all render the
//! one [`Report`], so a script checking `--output json` checks what the HTML shows.

// Without SQLite there is nothing to report on: the types stay, unused.
#![cfg_attr(not(feature = "audit-sqlite"), allow(dead_code, unused_imports))]

#[cfg(feature = "audit-sqlite")]
mod charts;
mod html;
mod text;

use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;
use uuid::Uuid;

use crate::exit::{usage, FAILURE};

pub(crate) const REPORT_HELP: &str = "\
Reports on a SQLite trail (load a JSONL trail or an S3 archive with `audit import` first):
whether its chain verifies (and its signed checkpoints, with --public-key); totals of UUIDs
submitted, succeeded, failed, pending and ambiguous, retries and 429s; outcomes and server
latency (p50/p95/p99) per day; the ten most frequent failure reasons with an example UUID each;
and one row per run. --output html writes one self-contained page (inline CSS and SVG charts,
nothing fetched) to attach to an audit finding; json gives the same figures to scripts.

The chain is verified whole; --since, --until and --run-id choose which events the figures
count (times are RFC 3339 UTC, or a prefix such as 2026-03-01; --until is exclusive).

Examples:
  cxone-uuid audit report --db trail.db
  cxone-uuid audit report --db march.db --since 2026-03-01 --until 2026-04-01 \\
      --public-key audit.key.pub --output html -o march.html

Exit codes: 0 the report was written and the chain is intact (proven, with --public-key);
1 it was written and the chain is broken or not proven (the report says where); 2 usage.";

/// Output formats of `audit report`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReportOutput {
    /// Aligned text.
    Text,
    /// One JSON object.
    Json,
    /// One self-contained HTML page.
    Html,
}

/// Arguments of `audit report`.
#[derive(clap::Args, Debug)]
#[cfg_attr(not(feature = "audit-sqlite"), allow(dead_code))] // read only by sqlite builds
pub(crate) struct ReportArgs {
    /// The SQLite trail.
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// Count events at or after this time.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Count events before this time.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Count events of this run.
    #[arg(long, value_name = "RUN_ID")]
    run_id: Option<Uuid>,
    /// Ed25519 public key (PATH.pub from `audit keygen`) to check signed checkpoints.
    #[arg(long, value_name = "PATH")]
    public_key: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: ReportOutput,
    /// Write the report to this file instead of standard output.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    out: Option<PathBuf>,
}

/// What the verification of the whole database found.
#[derive(Debug, Clone, Serialize, Default)]
pub(crate) struct Verification {
    /// The chain verified from its first event to its last.
    pub(crate) intact: bool,
    /// Events verified (up to the break, when broken).
    pub(crate) events: u64,
    /// The last event's hash.
    pub(crate) head: Option<String>,
    /// The first break: seq and why.
    pub(crate) first_break: Option<Break>,
    /// Whether signatures were checked (`--public-key` given).
    pub(crate) signatures_checked: bool,
    /// With `--public-key`: every signed checkpoint verified and at least one exists.
    pub(crate) proven: Option<bool>,
    /// Events 1..=this are covered by a verified signature.
    pub(crate) signed_through: Option<u64>,
    /// The last checkpoint stored: its seq and time.
    pub(crate) last_checkpoint: Option<CheckpointRef>,
    /// A partial copy of an archive: where it starts.
    pub(crate) partial_copy: Option<PartialCopy>,
}

/// The first break in the chain.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Break {
    pub(crate) seq: u64,
    pub(crate) reason: String,
}

/// A checkpoint's place.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CheckpointRef {
    pub(crate) seq: u64,
    pub(crate) time: String,
}

/// Where a partial copy starts.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PartialCopy {
    pub(crate) source: String,
    pub(crate) first_seq: u64,
}

/// The period and run the figures count.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Period {
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) run_id: Option<String>,
}

/// The whole report, as every format renders it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) database: String,
    pub(crate) generated_at: String,
    pub(crate) tool_version: &'static str,
    pub(crate) period: Period,
    pub(crate) verification: Verification,
    #[cfg(feature = "audit-sqlite")]
    #[serde(flatten)]
    pub(crate) figures: cxone_uuid_audit_sqlite::Figures,
}

impl Report {
    /// Whether the report's verdict is good: intact, and proven when a key was given.
    fn passed(&self) -> bool {
        self.verification.intact && self.verification.proven != Some(false)
    }
}

pub(crate) async fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
    #[cfg(feature = "audit-sqlite")]
    return imp::report(args).await;
    #[cfg(not(feature = "audit-sqlite"))]
    {
        let _ = args;
        Err(usage(
            "this build has no sqlite sink; rebuild with --features audit-sqlite",
        ))
    }
}

#[cfg(feature = "audit-sqlite")]
mod imp {
    use std::io::Write as _;

    use anyhow::Context as _;
    use cxone_uuid_audit::{AuditError, AuditSource as _, BreakReason, CheckpointError};
    use cxone_uuid_audit_sqlite::{ReportFilter, SqliteSource};

    use super::*;

    pub(super) async fn report(args: ReportArgs) -> anyhow::Result<ExitCode> {
        let db = crate::audit_cmd::sqlite_path(&args.db);
        if !db.exists() {
            return Err(usage(format!(
                "--db {}: no such database; load a trail into one with `cxone-uuid audit import TRAIL --db {}`",
                db.display(),
                db.display()
            )));
        }
        crate::audit_cmd::not_a_jsonl_trail(&db)?;
        let key = match &args.public_key {
            Some(path) => Some(
                cxone_uuid_audit::signing::read_public_key(path)
                    .map_err(|e| usage(format!("--public-key: {e}")))?,
            ),
            None => None,
        };
        let filter = ReportFilter::new(
            args.since.clone(),
            args.until.clone(),
            args.run_id.map(|r| r.to_string()),
        );
        let path = db.clone();
        let (verification, figures) = tokio::task::spawn_blocking(move || {
            let verification = verify(&path, key)?;
            let figures =
                cxone_uuid_audit_sqlite::figures(&path, &filter).map_err(crate::sinks::lift)?;
            anyhow::Ok((verification, figures))
        })
        .await??;
        let report = Report {
            database: db.display().to_string(),
            generated_at: cxone_uuid_audit::now_rfc3339_micros(),
            tool_version: env!("CARGO_PKG_VERSION"),
            period: Period {
                since: args.since,
                until: args.until,
                run_id: args.run_id.map(|r| r.to_string()),
            },
            verification,
            figures,
        };
        let body = match args.output {
            ReportOutput::Json => {
                let mut s = serde_json::to_string_pretty(&report)?;
                s.push('\n');
                s
            }
            ReportOutput::Text => text::render(&report),
            ReportOutput::Html => html::render(&report)?,
        };
        match &args.out {
            Some(file) => {
                // Written whole to a temporary file, then renamed: never half a report.
                let tmp = file.with_extension("partial");
                std::fs::write(&tmp, body.as_bytes())
                    .and_then(|()| std::fs::rename(&tmp, file))
                    .with_context(|| format!("cannot write the report to {}", file.display()))?;
                eprintln!("wrote {}", file.display());
            }
            None => {
                let mut out = std::io::stdout().lock();
                out.write_all(body.as_bytes())?;
                out.flush()?;
            }
        }
        Ok(if report.passed() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(FAILURE)
        })
    }

    /// Verifies the whole database; a break is a finding to report, not an error.
    fn verify(
        path: &std::path::Path,
        key: Option<ed25519_dalek::VerifyingKey>,
    ) -> anyhow::Result<Verification> {
        let source = SqliteSource::new(path);
        let mut v = Verification {
            signatures_checked: key.is_some(),
            last_checkpoint: source.checkpoint().map_err(crate::sinks::lift)?.map(|cp| {
                CheckpointRef {
                    seq: cp.seq,
                    time: cp.timestamp,
                }
            }),
            partial_copy: cxone_uuid_audit_sqlite::anchor(path)
                .map_err(crate::sinks::lift)?
                .map(|a| PartialCopy {
                    source: a.source,
                    first_seq: a.first_seq,
                }),
            ..Verification::default()
        };
        match source.verify(key) {
            Ok(s) => {
                v.intact = true;
                v.events = s.events;
                v.head = Some(s.head);
                if key.is_some() {
                    v.proven = Some(true);
                    v.signed_through = s.signed.map(|x| x.signed_through);
                }
            }
            Err(AuditError::Chain {
                reason: BreakReason::Checkpoint(CheckpointError::NoCheckpoint),
                ..
            }) => {
                let s = source.verify(None).map_err(crate::sinks::lift)?;
                v.intact = true;
                v.events = s.events;
                v.head = Some(s.head);
                v.proven = Some(false);
            }
            Err(AuditError::Chain { seq, reason, .. }) => {
                v.events = seq.saturating_sub(1);
                v.first_break = Some(Break {
                    seq,
                    reason: reason.to_string(),
                });
                if key.is_some() {
                    v.proven = Some(false);
                }
            }
            Err(e) => return Err(crate::sinks::lift(e)),
        }
        Ok(v)
    }
}
