//! `cxone-uuid audit …`: verify, query, import and sign audit trails.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use cxone_uuid_audit::{AuditError, BreakReason, CheckpointError, VerifySummary};
use uuid::Uuid;

use crate::exit::{usage, FAILURE};
use crate::s3_args::S3Args;

const VERIFY_HELP: &str = "\
Checks every event's hash, seq and prev_hash from the first event to the last (JSONL: across
rotated files PATH.1, PATH.2, ..., PATH). With --public-key it also checks every signed
checkpoint and reports the events after the last one as unsigned; a trail rewritten without the
private key, or cut before its last checkpoint, fails.

Examples:
  cxone-uuid audit verify jsonl:cxone_uuid_audit.jsonl
  cxone-uuid audit verify sqlite:trail.db --public-key audit.key.pub

A trail is named as jsonl:PATH, sqlite:PATH, s3://BUCKET/PREFIX, or a bare path ending in .jsonl,
.db or .sqlite.

Exit codes: 0 intact (and, with --public-key, proven up to its last checkpoint); 1 broken (the
first bad seq and why are printed), or with --public-key no checkpoint signed by that key (the
chain is intact: `ok` is printed, then `not proven`); 2 usage, a missing trail included.";

const QUERY_HELP: &str = "\
Filters combine with AND; every value is passed to SQLite as a bound parameter.

Examples:
  cxone-uuid audit query --db trail.db --event action_failed --since 2026-11-01
  cxone-uuid audit query --db trail.db --uuid 0192f0c4-... --output json
  cxone-uuid audit query --db trail.db --status pending --output csv > pending.csv";

const KEYGEN_HELP: &str = "\
Makes an Ed25519 key pair from the operating system's random source: PATH (private, PKCS#8 PEM,
mode 0600) and PATH.pub (public). Keep the private key away from the trail; give the public key
to whoever verifies.

Example:
  cxone-uuid audit keygen --out audit.key
  cxone-uuid run --audit jsonl:trail.jsonl --audit-signing-key audit.key --checkpoint-every 10000
  cxone-uuid audit verify jsonl:trail.jsonl --public-key audit.key.pub";

const FLUSH_HELP: &str = "\
A run whose S3 uploads failed (an outage, expired credentials) keeps the unuploaded events in
its local spool, durable; the next run to the same destination uploads them first, or this
command does it now. Give the same --s3-spool the run used.

Example:
  cxone-uuid audit flush s3://bucket/trails --s3-region eu-west-1 --s3-spool .cxone-uuid/spool
  cxone-uuid audit verify s3://bucket/trails --s3-region eu-west-1";

/// Audit subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Verify a trail's hash chain (and signed checkpoints with --public-key).
    #[command(after_help = VERIFY_HELP)]
    Verify(VerifyArgs),
    /// Query a SQLite trail.
    #[command(after_help = QUERY_HELP)]
    Query(QueryArgs),
    /// Load a JSONL trail or an S3 archive into SQLite, verifying it.
    #[command(after_help = crate::import::IMPORT_HELP)]
    Import(crate::import::ImportArgs),
    /// Report on a SQLite trail for an audit: verdict, totals, charts per day, failures, runs.
    #[command(after_help = crate::report::REPORT_HELP)]
    Report(crate::report::ReportArgs),
    /// Make an Ed25519 key pair for signed checkpoints.
    #[command(after_help = KEYGEN_HELP)]
    Keygen(KeygenArgs),
    /// Upload what the local spool of an S3 archive still holds (s3://BUCKET/PREFIX).
    // The S3 sink's place: its flags and work live in s3_args.rs.
    #[command(after_help = FLUSH_HELP)]
    Flush(crate::s3_args::FlushArgs),
}

/// Arguments of `audit verify`.
#[derive(clap::Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The trail: jsonl:PATH, sqlite:PATH or s3://BUCKET/PREFIX.
    #[arg(value_name = "SINK")]
    sink: String,
    /// Ed25519 public key (PATH.pub from `audit keygen`) to check signed checkpoints.
    #[arg(long, value_name = "PATH")]
    public_key: Option<PathBuf>,
    #[command(flatten)]
    s3: S3Args,
}

/// Event kinds accepted by `--event`.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
#[value(rename_all = "snake_case")]
enum EventArg {
    RunStarted,
    UuidGenerated,
    ActionSubmitted,
    ActionExecuted,
    ActionFailed,
    RunFinished,
    Checkpoint,
}

/// Statuses of the `uuid_status` view.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum StatusArg {
    Succeeded,
    Failed,
    Pending,
}

/// Output formats of `audit query`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum QueryOutput {
    /// Aligned columns.
    Text,
    /// One JSON array of events.
    Json,
    /// CSV with a header, one column per field.
    Csv,
}

/// Arguments of `audit query`.
#[derive(clap::Args, Debug)]
pub(crate) struct QueryArgs {
    /// The SQLite trail.
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// Events of this UUID.
    #[arg(long, value_name = "UUID")]
    uuid: Option<Uuid>,
    /// Events of this kind.
    #[arg(long, value_name = "EVENT")]
    event: Option<EventArg>,
    /// Events of this run.
    #[arg(long, value_name = "RUN_ID")]
    run_id: Option<Uuid>,
    /// Events of UUIDs whose latest state is this.
    #[arg(long, value_name = "STATUS")]
    status: Option<StatusArg>,
    /// At or after this time (RFC 3339 UTC, or a prefix such as 2026-11-24).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Before this time.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// At most this many events.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: QueryOutput,
}

/// Arguments of `audit keygen`.
#[derive(clap::Args, Debug)]
pub(crate) struct KeygenArgs {
    /// Where to write the private key; the public key goes to PATH.pub. Never overwrites.
    #[arg(long, value_name = "PATH", default_value = "cxone_uuid_audit.key")]
    out: PathBuf,
}

pub(crate) async fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Verify(args) => verify(args).await,
        Command::Query(args) => query(args).await,
        Command::Import(args) => crate::import::import(args).await,
        Command::Report(args) => crate::report::report(args).await,
        Command::Keygen(args) => keygen(args),
        #[cfg(feature = "s3")]
        Command::Flush(args) => crate::s3_args::flush_cmd(args).await,
        #[cfg(not(feature = "s3"))]
        Command::Flush(_) => Err(usage(
            "this build has no s3 sink; rebuild with --features s3",
        )),
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let key = match &args.public_key {
        Some(path) => Some(
            cxone_uuid_audit::signing::read_public_key(path)
                .map_err(|e| usage(format!("--public-key: {e}")))?,
        ),
        None => None,
    };
    match crate::sinks::verify(&args.sink, key, &args.s3).await {
        Ok(summary) => {
            print_ok(&summary);
            print_partial(&args.sink);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => match e.downcast_ref::<AuditError>() {
            Some(AuditError::Chain {
                reason: BreakReason::Checkpoint(CheckpointError::NoCheckpoint),
                ..
            }) => {
                // The chain held to its end; only the proof asked for is missing.
                let summary = crate::sinks::verify(&args.sink, None, &args.s3).await?;
                print_ok(&summary);
                println!(
                    "not proven: no checkpoint in this trail is signed by {} (was it written \
                     with --audit-signing-key, and is this its public key?)",
                    args.public_key
                        .as_deref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                );
                Ok(ExitCode::from(FAILURE))
            }
            Some(AuditError::Chain { seq, reason, at }) => {
                println!(
                    "FAILED: {}: chain broken at seq {seq}: {reason}{}",
                    args.sink,
                    place(at)
                );
                Ok(ExitCode::from(FAILURE))
            }
            _ => Err(e.context(format!("cannot verify {}", args.sink))),
        },
    }
}

/// A SQLite copy of part of an archive says where it starts, so an intact chain is not taken
/// for the whole trail.
fn print_partial(sink: &str) {
    #[cfg(feature = "audit-sqlite")]
    if let Ok(crate::sinks::SinkSpec::Sqlite(path)) = crate::sinks::parse_trail(sink) {
        if let Ok(Some(a)) = cxone_uuid_audit_sqlite::anchor(&path) {
            println!(
                "partial copy of {}: starts at seq {} (the events before it stay in the archive)",
                a.source, a.first_seq
            );
        }
    }
    #[cfg(not(feature = "audit-sqlite"))]
    let _ = sink;
}

/// ` (in PATH.2)`, ` (object KEY)`: where a break is, when the trail has several parts.
fn place(at: &Option<String>) -> String {
    at.as_ref().map(|a| format!(" ({a})")).unwrap_or_default()
}

fn print_ok(s: &VerifySummary) {
    println!("ok: {} events, chain intact, head {}", s.events, s.head);
    match &s.signed {
        Some(signed) => {
            println!(
                "signed: {} checkpoints valid; events 1–{} signed (last checkpoint {})",
                signed.checkpoints, signed.signed_through, signed.last_time
            );
            if signed.unsigned_after > 0 {
                println!(
                    "unsigned: {} events after the last checkpoint are not covered by a signature",
                    signed.unsigned_after
                );
            }
        }
        None if s.checkpoints > 0 => println!(
            "checkpoints: {} (signatures not checked: pass --public-key)",
            s.checkpoints
        ),
        None => {}
    }
}

/// `--db` takes a path, or `sqlite:PATH` as `--audit` does.
#[cfg(feature = "audit-sqlite")]
pub(crate) fn sqlite_path(db: &std::path::Path) -> PathBuf {
    let text = db.to_string_lossy();
    match text.strip_prefix("sqlite:") {
        Some(rest) => PathBuf::from(rest),
        None => db.to_path_buf(),
    }
}

/// `--db` naming a JSONL trail: say what it is and how to query it, instead of SQLite's
/// "file is not a database".
#[cfg(feature = "audit-sqlite")]
pub(crate) fn not_a_jsonl_trail(db: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Read as _;
    let named_jsonl = db.to_string_lossy().starts_with("jsonl:")
        || db
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    let mut first = [0u8; 1];
    let starts_like_json = std::fs::File::open(db)
        .and_then(|mut f| f.read(&mut first))
        .is_ok_and(|n| n == 1 && first[0] == b'{');
    if named_jsonl || starts_like_json {
        let path = db.to_string_lossy();
        let path = path.strip_prefix("jsonl:").unwrap_or(&path);
        return Err(usage(format!(
            "{path} is a JSONL trail, not a SQLite database: load it into one with \
             `cxone-uuid audit import {path} --db trail.db`, then query --db trail.db"
        )));
    }
    Ok(())
}

#[cfg(feature = "audit-sqlite")]
async fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    fn name<T: clap::ValueEnum>(v: Option<T>) -> Option<String> {
        v.and_then(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
    }
    let q = cxone_uuid_audit_sqlite::Query {
        uuid: args.uuid.map(|u| u.to_string()),
        event: name(args.event),
        run_id: args.run_id.map(|u| u.to_string()),
        status: name(args.status),
        since: args.since,
        until: args.until,
        limit: args.limit,
    };
    let db = sqlite_path(&args.db);
    not_a_jsonl_trail(&db)?;
    let events = tokio::task::spawn_blocking(move || cxone_uuid_audit_sqlite::query(&db, &q))
        .await?
        .map_err(|e| match e {
            AuditError::Config { .. } => usage(e.to_string()),
            other => crate::sinks::lift(other),
        })?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.output {
        QueryOutput::Json => {
            serde_json::to_writer_pretty(&mut out, &events)?;
            writeln!(out)?;
        }
        QueryOutput::Csv => write_csv(&mut out, &events)?,
        QueryOutput::Text => {
            for e in &events {
                writeln!(
                    out,
                    "{:>8}  {}  {:<16}  {}  attempts={}  http={}{}",
                    e.seq,
                    e.timestamp,
                    cxone_uuid_audit::chain::event_name(e.event),
                    e.uuid.map(|u| u.to_string()).unwrap_or_else(|| "-".into()),
                    e.attempts
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "-".into()),
                    e.http_status
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "-".into()),
                    e.error
                        .as_deref()
                        .map(|m| format!("  error={m}"))
                        .unwrap_or_default(),
                )?;
            }
            writeln!(out, "{} events", events.len())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "audit-sqlite"))]
async fn query(_args: QueryArgs) -> anyhow::Result<ExitCode> {
    Err(usage(
        "this build has no sqlite sink; rebuild with --features audit-sqlite",
    ))
}

#[cfg(feature = "audit-sqlite")]
fn write_csv(
    out: &mut impl std::io::Write,
    events: &[cxone_uuid_audit::AuditEvent],
) -> std::io::Result<()> {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    fn opt<T: ToString>(v: &Option<T>) -> String {
        v.as_ref()
            .map(|x| field(&x.to_string()))
            .unwrap_or_default()
    }
    writeln!(
        out,
        "seq,schema,timestamp,event,run_id,uuid,action_id,attempts,http_status,error,\
         generation_latency_ms,execution_latency_ms,total_latency_ms,uniqueness_rate,metadata,prev_hash,hash,\
         correlation_id,wait_ms,ambiguous_attempts"
    )?;
    for e in events {
        let metadata = e
            .metadata
            .as_ref()
            .map(|m| field(&serde_json::Value::Object(m.clone()).to_string()))
            .unwrap_or_default();
        writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            e.seq,
            e.schema,
            field(&e.timestamp),
            cxone_uuid_audit::chain::event_name(e.event),
            e.run_id,
            opt(&e.uuid),
            opt(&e.action_id),
            opt(&e.attempts),
            opt(&e.http_status),
            opt(&e.error),
            opt(&e.generation_latency_ms),
            opt(&e.execution_latency_ms),
            opt(&e.total_latency_ms),
            opt(&e.uniqueness_rate),
            metadata,
            e.prev_hash,
            e.hash,
            opt(&e.correlation_id),
            opt(&e.wait_ms),
            opt(&e.ambiguous_attempts)
        )?;
    }
    Ok(())
}

fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    if args.out.exists() {
        return Err(usage(format!(
            "{} already exists: keygen never overwrites a key; choose another --out",
            args.out.display()
        )));
    }
    let key = cxone_uuid_audit::signing::generate_signing_key()?;
    let public = cxone_uuid_audit::signing::write_key_pair(&key, &args.out)
        .with_context(|| format!("cannot write the key pair to {}", args.out.display()))?;
    println!(
        "wrote private key {} (mode 0600) and public key {}",
        args.out.display(),
        public.display()
    );
    println!(
        "sign:   cxone-uuid run --audit-signing-key {} ...",
        args.out.display()
    );
    println!(
        "verify: cxone-uuid audit verify SINK --public-key {}",
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}
