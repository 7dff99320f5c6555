//! `cxone-uuid run`: generate, record, submit, record, summarise.
//!
//! The order per UUID is fixed by the audit contract: `uuid_generated` (queued), then
//! `action_submitted` made durable (the write-ahead rule: a UUID never leaves the machine before
//! its record is on disk), then the POST with its retries, then `action_executed` or
//! `action_failed`. Group commit in the audit writer keeps the durable step cheap under
//! concurrency: one fsync covers every task waiting at that moment.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cxone_uuid_audit::{AuditEvent, AuditWriter, EventKind, GroupCommit, SyncMode};
use cxone_uuid_client::{Client, ClientConfig, ExecuteReport, ProviderConfig};
use cxone_uuid_core::{collision_probability, Generator, UniqueGenerator, UuidVersion};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::config::{ConnectArgs, TransportArgs};
use crate::exit::{usage, FAILURE, INTERRUPTED};
use crate::registries::RegistryArgs;
use crate::s3_args::S3Args;
use crate::settings::client_error;
use crate::sinks::SinkOptions;

/// The audit file the tutorial wrote; kept so existing scripts find it.
pub(crate) const DEFAULT_AUDIT: &str = "jsonl:cxone_uuid_audit.jsonl";

/// Fewest UUIDs staged (made durable ahead of their request). Against a fast endpoint one request
/// takes less time than one sync, so a stage of a few UUIDs (at `--concurrency 1` or 8) runs dry
/// while its sync is out and the requests wait on the disk. Measured against the mock at
/// `--concurrency 8`: 32 kept 0.59 of the no-audit rate, 64 kept 0.74.
const MIN_STAGE: usize = 64;
/// Longest a write-ahead sync waits for more records to share it. The stage is made durable
/// well ahead of need, so the delay is hidden unless the stage runs dry.
const GROUP_COMMIT_DELAY: Duration = Duration::from_millis(2);

const AFTER_HELP: &str = "\
Examples:
  export CXONE_CLIENT_ID=... CXONE_CLIENT_SECRET=... CXONE_DATA_ACTION_ID=...
  cxone-uuid run -n 1000 --concurrency 16 --audit jsonl:trail.jsonl --audit sqlite:trail.db
  cxone-uuid run -n 50 --rate 20 --output json | jq .latency_ms
  cxone-uuid run --resume --audit jsonl:trail.jsonl     # finish UUIDs a crash left pending

Exit codes: 0 all succeeded, 1 any failed or the run stopped, 2 usage/configuration, 130 Ctrl-C.";

/// Where and how the audit trail is written.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct AuditArgs {
    /// Audit sink (repeatable): jsonl:PATH, sqlite:PATH, s3://BUCKET/PREFIX or none.
    #[arg(long = "audit", value_name = "SINK", default_value = DEFAULT_AUDIT)]
    pub(crate) audit: Vec<String>,

    /// When audit events are made durable: `batch` (group commit, default), `always` (one sync
    /// per event), `none` (never sync before exit: a crash may LOSE events).
    #[arg(long, default_value = "batch", value_name = "MODE")]
    pub(crate) audit_sync: String,

    /// Ed25519 private key (from `cxone-uuid audit keygen`) to sign checkpoints.
    #[arg(long, value_name = "PATH")]
    pub(crate) audit_signing_key: Option<PathBuf>,

    /// Also write a signed checkpoint every N events (needs --audit-signing-key).
    #[arg(long, value_name = "N")]
    pub(crate) checkpoint_every: Option<u64>,

    /// Rotate JSONL files at this size in MiB (PATH, PATH.1, ...; the chain continues).
    #[arg(long, value_name = "MB")]
    pub(crate) audit_rotate_mb: Option<u64>,
}

impl AuditArgs {
    pub(crate) fn sink_options(&self) -> anyhow::Result<SinkOptions> {
        let sync = parse_sync(&self.audit_sync)?;
        let signing_key = match &self.audit_signing_key {
            Some(path) => Some(Arc::new(
                cxone_uuid_audit::signing::read_signing_key(path).map_err(|e| {
                    usage(format!(
                        "cannot use --audit-signing-key {}: {e}; make one with `cxone-uuid audit keygen`",
                        path.display()
                    ))
                })?,
            )),
            None => None,
        };
        if self.checkpoint_every.is_some() && signing_key.is_none() {
            return Err(usage(
                "--checkpoint-every needs --audit-signing-key: checkpoints are signed",
            ));
        }
        if self.checkpoint_every == Some(0) {
            return Err(usage("--checkpoint-every must be at least 1"));
        }
        Ok(SinkOptions {
            sync,
            signing: signing_key.map(|key| cxone_uuid_audit::signing::Signing {
                key,
                every: self.checkpoint_every,
            }),
            rotate_mb: self.audit_rotate_mb,
        })
    }
}

fn parse_sync(text: &str) -> anyhow::Result<SyncMode> {
    match text {
        "batch" => Ok(SyncMode::Batch),
        "always" => Ok(SyncMode::Always),
        "none" => Ok(SyncMode::None),
        other => Err(usage(format!(
            "--audit-sync {other:?} is not known: use batch, always or none"
        ))),
    }
}

/// Output format of the summary.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    /// Human-readable lines.
    Text,
    /// Exactly one JSON object on stdout.
    Json,
}

/// Arguments of `run`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct Args {
    /// How many UUIDs to generate and submit.
    #[arg(short = 'n', long, default_value_t = 5)]
    pub(crate) count: u64,

    #[command(flatten)]
    pub(crate) connect: ConnectArgs,

    #[command(flatten)]
    pub(crate) transport: TransportArgs,

    #[command(flatten)]
    pub(crate) audit: AuditArgs,

    #[command(flatten)]
    pub(crate) s3: S3Args,

    #[command(flatten)]
    pub(crate) registry: RegistryArgs,

    /// UUID version: 4 (random) or 7 (time-ordered, for users who index by UUID).
    #[arg(long, default_value = "4", value_parser = ["4", "7"])]
    pub(crate) uuid_version: String,

    /// Consecutive duplicates tolerated for one UUID before the entropy source is declared
    /// suspect and the run stops.
    #[arg(long, default_value_t = 100)]
    pub(crate) duplicate_limit: u32,

    /// Summary format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) output: OutputFormat,

    /// Submit again the UUIDs the audit trail shows as submitted without an outcome (same UUID,
    /// same Idempotency-Key), instead of generating new ones.
    #[arg(long)]
    pub(crate) resume: bool,

    /// TESTS ONLY: replace the CSPRNG with a deterministic source (e.g. repeat:SEED:PERIOD).
    #[arg(long, hide = true, value_name = "SPEC")]
    pub(crate) test_entropy: Option<String>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = crate::config::client_config(&args.connect, &args.transport)?;
    execute_job(args, config, None).await
}

/// The run's settings for `run_started`: what a compliance reader needs to know how the run was
/// made. Built field by field from the configuration so a secret can never slip in.
fn settings_of(config: &ClientConfig) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("provider".into(), json!(config.provider_kind().as_str()));
    m.insert("base_url".into(), json!(config.base_url));
    m.insert("token_url".into(), json!(config.token_url));
    match &config.provider {
        ProviderConfig::Cxone(x) => {
            m.insert("issuer".into(), json!(x.issuer));
            m.insert("execute_path".into(), json!(x.execute_path));
        }
        ProviderConfig::Genesys(g) if g.region.is_some() => {
            m.insert("region".into(), json!(g.region));
        }
        _ => {}
    }
    m.insert(
        "auth_method".into(),
        json!(format!("{:?}", config.effective_auth_method()).to_lowercase()),
    );
    m.insert("scope".into(), json!(config.scope));
    m.insert("input_name".into(), json!(config.input_name));
    m.insert(
        "extra_inputs".into(),
        json!(config
            .extra_inputs
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()),
    );
    m.insert(
        "max_retry_after_s".into(),
        json!(config.max_retry_after.as_secs_f64()),
    );
    m.insert(
        "backoff_base_s".into(),
        json!(config.backoff_base.as_secs_f64()),
    );
    m.insert(
        "backoff_cap_s".into(),
        json!(config.backoff_cap.as_secs_f64()),
    );
    m
}

/// Counters of one run, summarised at the end.
struct Tally {
    succeeded: u64,
    failed: u64,
    pending: u64,
    retries: u64,
    rate_limited: u64,
    errors: Vec<(Uuid, String)>,
    latency_us: hdrhistogram::Histogram<u64>,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            succeeded: 0,
            failed: 0,
            pending: 0,
            retries: 0,
            rate_limited: 0,
            errors: Vec::new(),
            // 1 µs .. 1 hour at 3 significant digits: constant memory whatever n is.
            latency_us: hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .context("cannot create the latency histogram")?,
        })
    }

    fn add(&mut self, uuid: Uuid, report: &ExecuteReport) {
        self.retries += u64::from(report.retries);
        self.rate_limited += u64::from(report.rate_limited);
        let us = u64::try_from(report.latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(us.max(1));
        match &report.outcome {
            Ok(_) => self.succeeded += 1,
            Err(e) => {
                self.failed += 1;
                self.errors.push((uuid, e.to_string()));
            }
        }
    }
}

/// What a submission task hands back.
struct Done {
    uuid: Uuid,
    /// The outcome, when the UUID was sent (it is not when its write-ahead record failed).
    report: Option<ExecuteReport>,
    /// Its write-ahead record is durable but the run stopped before it was sent: it stays
    /// pending in the trail for `run --resume`.
    pending: bool,
    /// The audit trail failed around this UUID: the run must stop.
    audit_error: Option<String>,
}

/// Progress on stderr: a bar on a terminal, a line every 10% otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: u64,
    next_line: u64,
}

impl Progress {
    fn new(total: u64, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} eta {eta} {msg}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        Self {
            bar,
            total,
            done: 0,
            next_line: total.div_ceil(10).max(1),
        }
    }

    fn inc(&mut self, failed: u64) {
        self.done += 1;
        if let Some(bar) = &self.bar {
            bar.inc(1);
            if failed > 0 {
                bar.set_message(format!("{failed} failed"));
            }
        } else if self.done >= self.next_line || self.done == self.total {
            // Not a log record: progress is what a user watching a piped run wants to see.
            eprintln!(
                "progress: {}/{} done, {failed} failed",
                self.done, self.total
            );
            self.next_line = self.done + self.total.div_ceil(10).max(1);
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Runs the job with a ready client configuration; `demo` calls this with the in-process mock.
pub(crate) async fn execute_job(
    args: Args,
    config: ClientConfig,
    banner: Option<String>,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let version = match args.uuid_version.as_str() {
        "7" => UuidVersion::V7,
        _ => UuidVersion::V4,
    };
    let sink_options = args.audit.sink_options()?;
    crate::sinks::check_built(&args.audit.audit)?;
    if args.count == 0 && !args.resume {
        return Err(usage("--count must be at least 1"));
    }
    // Everything that can be checked locally is checked before any record is written.
    let provider = config.provider_kind();
    config.validate().map_err(|e| client_error(e, provider))?;
    let client = Client::new(config.clone()).map_err(|e| client_error(e, provider))?;
    let pending = if args.resume {
        crate::sinks::pending_uuids(&args.audit.audit, &args.s3)
            .await
            .context("cannot read the audit trail to resume")?
    } else {
        Vec::new()
    };
    let registry = crate::registries::open_with(&args.registry, args.count).await?;
    let source = match &args.test_entropy {
        Some(spec) => {
            eprintln!(
                "warning: --test-entropy {spec}: UUIDs come from a deterministic TEST source, not a CSPRNG"
            );
            Some(
                cxone_uuid_core::test_source(spec)
                    .map_err(|e| usage(format!("--test-entropy {spec:?}: {e}")))?,
            )
        }
        None => None,
    };
    let generator = match source {
        Some(src) => Generator::from_source(version, src),
        None => Generator::new(version),
    };
    let mut unique = UniqueGenerator::new(generator, registry.clone(), args.duplicate_limit);

    let sinks = crate::sinks::open_all(&args.audit.audit, &sink_options, &args.s3).await?;
    let sink_names = cxone_uuid_audit::AuditSink::describe(&sinks);
    // Write-ahead is staged: up to `stage` UUIDs beyond those in flight have their
    // `action_submitted` made durable while earlier requests are still out, so a request slot
    // that frees up is refilled at once instead of waiting for a sync. With that many ready, a
    // sync can wait (briefly) until half the stage shares it: fewer, larger syncs for the same
    // rule. The staged records are what a crash would leave too: pending, resumable.
    // Four times `--concurrency`: at 64 against the mock, a stage of twice made about 800
    // fsyncs in a 50,000-UUID run and four times about 500; each costs CPU the client and the
    // endpoint share (the rule kept a median 0.85 of the no-wait rate at twice, 0.95 at four
    // times, over seven interleaved rounds).
    let concurrency = args.transport.concurrency as usize;
    let stage = concurrency.saturating_mul(4).max(MIN_STAGE);
    let writer = AuditWriter::spawn_grouped(
        Box::new(sinks),
        sink_options.sync,
        GroupCommit {
            waiters: stage / 2,
            max_delay: GROUP_COMMIT_DELAY,
        },
    );

    let run_id = Uuid::now_v7();
    let action_id = match &config.provider {
        ProviderConfig::Cxone(x) => x.execute_path.clone(),
        other => other.action_id().map(str::to_string),
    }
    .unwrap_or_default();
    let mut settings = Map::new();
    settings.insert("tool_version".into(), json!(env!("CARGO_PKG_VERSION")));
    settings.insert("count".into(), json!(args.count));
    settings.insert("resume".into(), json!(args.resume));
    settings.insert("pending".into(), json!(pending.len()));
    settings.insert("uuid_version".into(), json!(args.uuid_version));
    settings.insert("concurrency".into(), json!(args.transport.concurrency));
    settings.insert("rate".into(), json!(args.transport.rate));
    settings.insert("max_retries".into(), json!(args.transport.max_retries));
    settings.insert("timeout_s".into(), json!(args.transport.timeout));
    settings.insert("registry".into(), json!(registry.describe()));
    settings.insert("audit".into(), json!(sink_names));
    settings.insert("audit_sync".into(), json!(args.audit.audit_sync));
    settings.insert("test_entropy".into(), json!(args.test_entropy.is_some()));
    settings.extend(settings_of(&config));
    let mut ev = AuditEvent::new(EventKind::RunStarted, run_id);
    ev.action_id = Some(action_id.clone());
    ev.metadata = Some(settings);
    writer
        .record_durable(ev)
        .await
        .context("cannot write the audit trail")?;

    if let Some(banner) = banner {
        eprintln!("{banner}");
    }

    let interrupted = Arc::new(AtomicBool::new(false));
    // Wakes a submission loop waiting for a free slot; the flag is what everything else reads.
    let interrupt = Arc::new(tokio::sync::Notify::new());
    let halt = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        let interrupt = interrupt.clone();
        let halt = halt.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: finishing requests in flight, then writing the summary");
                interrupted.store(true, Ordering::SeqCst);
                halt.store(true, Ordering::SeqCst);
                interrupt.notify_waiters();
            }
        });
    }

    let total = if args.resume {
        pending.len() as u64
    } else {
        args.count
    };
    let quiet = args.output == OutputFormat::Json && !std::io::stderr().is_terminal();
    let mut progress = Progress::new(total, quiet);
    let mut tally = Tally::new()?;
    let client = Arc::new(client);
    let staged = Arc::new(Semaphore::new(concurrency.saturating_add(stage)));
    let mut tasks: JoinSet<Done> = JoinSet::new();
    let mut stop: Option<String> = None;
    let ctx = Arc::new(TaskCtx {
        client: client.clone(),
        writer: writer.clone(),
        run_id,
        action_id: action_id.clone(),
        abort: AtomicBool::new(false),
        halt,
        sending: Semaphore::new(concurrency),
        fatal: std::sync::Mutex::new(None),
    });

    // Work list: resumed UUIDs first (already registered), otherwise freshly generated ones.
    let mut to_resume = pending.into_iter();
    let mut remaining = if args.resume { 0 } else { args.count };
    let mut batch: std::vec::IntoIter<(Uuid, f64)> = Vec::new().into_iter();
    loop {
        if interrupted.load(Ordering::SeqCst) || ctx.abort.load(Ordering::SeqCst) || stop.is_some()
        {
            break;
        }
        let next: Option<(Uuid, Option<f64>, bool)> = if let Some(p) = to_resume.next() {
            Some((p, None, true))
        } else if let Some((u, gen_ms)) = batch.next() {
            Some((u, Some(gen_ms), false))
        } else if remaining > 0 {
            let n = remaining.min(256) as usize;
            let t0 = Instant::now();
            match unique.next_batch(n).await {
                Ok(uuids) => {
                    let per = ms(t0.elapsed()) / uuids.len().max(1) as f64;
                    remaining -= uuids.len() as u64;
                    for u in &uuids {
                        let mut ev = AuditEvent::new(EventKind::UuidGenerated, run_id);
                        ev.uuid = Some(*u);
                        ev.generation_latency_ms = Some((per * 1000.0).round() / 1000.0);
                        ev.uniqueness_rate = Some(unique.uniqueness_rate());
                        let mut md = Map::new();
                        md.insert("version".into(), json!(u.get_version_num()));
                        md.insert("variant".into(), json!("RFC4122"));
                        ev.metadata = Some(md);
                        writer
                            .record(ev)
                            .await
                            .context("cannot write the audit trail")?;
                    }
                    batch = uuids
                        .into_iter()
                        .map(|u| (u, per))
                        .collect::<Vec<_>>()
                        .into_iter();
                    continue;
                }
                Err(e) => {
                    stop = Some(format!("generation stopped: {e}"));
                    break;
                }
            }
        } else {
            None
        };
        let Some((uuid, gen_ms, resumed)) = next else {
            break;
        };
        let permit = tokio::select! {
            p = staged.clone().acquire_owned() => p.context("semaphore closed")?,
            _ = interrupt.notified() => break,
        };
        let ctx = ctx.clone();
        tasks.spawn(async move {
            let _permit = permit;
            ctx.submit(uuid, gen_ms, resumed).await
        });
        while let Some(joined) = tasks.try_join_next() {
            handle(joined, &mut tally, &mut progress, &mut stop);
        }
    }
    loop {
        if stop.is_some() {
            // Staged UUIDs not yet sent stay pending instead of going out after the stop.
            ctx.halt.store(true, Ordering::SeqCst);
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        handle(joined, &mut tally, &mut progress, &mut stop);
    }
    progress.finish();
    if stop.is_none() && ctx.abort.load(Ordering::SeqCst) {
        let why = ctx
            .fatal
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or_else(|| "a fatal error".to_string());
        stop = Some(format!("run stopped: {why}"));
    }
    let was_interrupted = interrupted.load(Ordering::SeqCst);

    let elapsed = started.elapsed();
    let stats = unique.stats();
    let summary = summary_json(
        &tally,
        total,
        &stats,
        elapsed,
        stop.as_deref(),
        was_interrupted,
    );

    let mut ev = AuditEvent::new(EventKind::RunFinished, run_id);
    ev.action_id = Some(action_id);
    ev.uniqueness_rate = Some(unique.uniqueness_rate());
    ev.total_latency_ms = Some(ms(elapsed));
    ev.error = stop
        .clone()
        .or_else(|| was_interrupted.then(|| "interrupted by the user".to_string()));
    let mut md = Map::new();
    for key in [
        "requested",
        "succeeded",
        "failed",
        "retries",
        "rate_limited",
        "duplicates",
    ] {
        if let Some(v) = summary.get(key) {
            md.insert(key.to_string(), v.clone());
        }
    }
    ev.metadata = Some(md);
    let audit_result = async {
        writer.record_durable(ev).await?;
        writer.close().await
    }
    .await;

    print_summary(&summary, args.output, &sink_names);
    if let Err(e) = audit_result {
        eprintln!("error: the audit trail could not be completed: {e}");
        return Ok(ExitCode::from(FAILURE));
    }
    if was_interrupted {
        return Ok(ExitCode::from(INTERRUPTED));
    }
    if let Some(why) = &stop {
        eprintln!("error: {why}");
        return Ok(ExitCode::from(FAILURE));
    }
    Ok(if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILURE)
    })
}

fn handle(
    joined: Result<Done, tokio::task::JoinError>,
    tally: &mut Tally,
    progress: &mut Progress,
    stop: &mut Option<String>,
) {
    match joined {
        Ok(done) => {
            // A UUID that was sent is counted even when its outcome could not be recorded.
            if let Some(report) = &done.report {
                tally.add(done.uuid, report);
                progress.inc(tally.failed);
            }
            if done.pending {
                tally.pending += 1;
            }
            if let Some(why) = done.audit_error {
                // The audit trail is failing: nothing more may be sent.
                stop.get_or_insert(why);
            }
        }
        Err(e) => {
            stop.get_or_insert_with(|| format!("a submission task failed: {e}"));
        }
    }
}

/// Shared by every submission task.
struct TaskCtx {
    client: Arc<Client>,
    writer: AuditWriter,
    run_id: Uuid,
    action_id: String,
    abort: AtomicBool,
    /// Set on Ctrl-C, on a fatal error and when the run stops: staged UUIDs are not sent.
    halt: Arc<AtomicBool>,
    /// Requests in flight, at most `--concurrency`.
    sending: Semaphore,
    /// The first error that stops the whole run (bad credentials, failed discovery).
    fatal: std::sync::Mutex<Option<String>>,
}

impl TaskCtx {
    async fn submit(&self, uuid: Uuid, gen_ms: Option<f64>, resumed: bool) -> Done {
        let mut ev = AuditEvent::new(EventKind::ActionSubmitted, self.run_id);
        ev.uuid = Some(uuid);
        ev.action_id = Some(self.action_id.clone());
        if resumed {
            let mut md = Map::new();
            md.insert("resumed".into(), Value::Bool(true));
            ev.metadata = Some(md);
        }
        // Write-ahead: the record is durable before the UUID leaves the machine.
        if let Err(e) = self.writer.record_durable(ev).await {
            return Done {
                uuid,
                report: None,
                pending: false,
                audit_error: Some(format!(
                    "cannot make the audit record durable; nothing more will be sent: {e}"
                )),
            };
        }
        let not_sent = Done {
            uuid,
            report: None,
            pending: true,
            audit_error: None,
        };
        let Ok(_slot) = self.sending.acquire().await else {
            return not_sent;
        };
        if self.halt.load(Ordering::SeqCst) {
            return not_sent;
        }

        let report = self.client.execute(uuid).await;
        let exec_ms = ms(report.latency);
        let kind = if report.outcome.is_ok() {
            EventKind::ActionExecuted
        } else {
            EventKind::ActionFailed
        };
        let mut ev = AuditEvent::new(kind, self.run_id);
        ev.uuid = Some(uuid);
        ev.action_id = Some(self.action_id.clone());
        ev.attempts = Some(report.attempts);
        ev.http_status = report.http_status;
        ev.execution_latency_ms = Some(exec_ms);
        ev.generation_latency_ms = gen_ms;
        ev.total_latency_ms = Some(((exec_ms + gen_ms.unwrap_or(0.0)) * 1000.0).round() / 1000.0);
        if let Err(e) = &report.outcome {
            ev.error = Some(e.to_string());
            if e.is_fatal() {
                if let Ok(mut first) = self.fatal.lock() {
                    first.get_or_insert_with(|| e.to_string());
                }
                self.abort.store(true, Ordering::SeqCst);
                self.halt.store(true, Ordering::SeqCst);
            }
        }
        let audit_error = self
            .writer
            .record(ev)
            .await
            .err()
            .map(|e| format!("cannot write the audit trail: {e}"));
        Done {
            uuid,
            report: Some(report),
            pending: false,
            audit_error,
        }
    }
}

fn summary_json(
    tally: &Tally,
    requested: u64,
    stats: &cxone_uuid_core::UniquenessStats,
    elapsed: Duration,
    stop: Option<&str>,
    interrupted: bool,
) -> Value {
    let h = &tally.latency_us;
    let q = |p: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(p) as f64 / 1000.0
        }
    };
    let completed = tally.succeeded + tally.failed;
    let secs = elapsed.as_secs_f64();
    json!({
        "requested": requested,
        "succeeded": tally.succeeded,
        "failed": tally.failed,
        "not_submitted": requested.saturating_sub(completed),
        "pending": tally.pending,
        "retries": tally.retries,
        "rate_limited": tally.rate_limited,
        "duplicates": stats.duplicates,
        "uniqueness_rate": stats.uniqueness_rate(),
        "collision_probability": collision_probability(stats.unique as f64),
        "elapsed_s": (secs * 1000.0).round() / 1000.0,
        "throughput_per_s": if secs > 0.0 { ((completed as f64 / secs) * 10.0).round() / 10.0 } else { 0.0 },
        "latency_ms": {
            "avg": if h.is_empty() { 0.0 } else { (h.mean() / 1000.0 * 1000.0).round() / 1000.0 },
            "p50": q(0.50),
            "p95": q(0.95),
            "p99": q(0.99),
            "max": if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 },
        },
        "aborted": stop.is_some() || interrupted,
        "stop_reason": stop,
        "errors": tally.errors.iter().map(|(u, e)| json!({"uuid": u.to_string(), "error": e})).collect::<Vec<_>>(),
    })
}

fn print_summary(summary: &Value, output: OutputFormat, sinks: &str) {
    match output {
        OutputFormat::Json => println!("{summary}"),
        OutputFormat::Text => {
            let g = |k: &str| summary.get(k).cloned().unwrap_or(Value::Null);
            let l = |k: &str| summary["latency_ms"].get(k).cloned().unwrap_or(Value::Null);
            println!(
                "requested {}  succeeded {}  failed {}  retries {}  rate-limited {}",
                g("requested"),
                g("succeeded"),
                g("failed"),
                g("retries"),
                g("rate_limited")
            );
            println!(
                "duplicates {}  uniqueness rate {}  collision probability {:e}",
                g("duplicates"),
                g("uniqueness_rate"),
                g("collision_probability").as_f64().unwrap_or(0.0)
            );
            println!(
                "elapsed {} s  throughput {} /s  latency ms: avg {} p50 {} p95 {} p99 {} max {}",
                g("elapsed_s"),
                g("throughput_per_s"),
                l("avg"),
                l("p50"),
                l("p95"),
                l("p99"),
                l("max")
            );
            if let Some(errors) = summary["errors"].as_array() {
                for e in errors.iter().take(20) {
                    println!(
                        "failed {}: {}",
                        e["uuid"].as_str().unwrap_or("?"),
                        e["error"].as_str().unwrap_or("?")
                    );
                }
                if errors.len() > 20 {
                    println!("... and {} more (see --output json)", errors.len() - 20);
                }
            }
            println!("audit: {sinks}");
        }
    }
    // Said in both formats, on stderr: the one thing left to do after a stopped run.
    if let Some(n) = summary["pending"].as_u64().filter(|n| *n > 0) {
        eprintln!(
            "{n} UUIDs are recorded as submitted but were not sent: `cxone-uuid run --resume` with the same --audit ({sinks}) sends them"
        );
    }
}
