//! The job of `run`: generate, record, submit, record, in the order the audit contract fixes.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use cxone_uuid_audit::{AuditEvent, AuditWriter, EventKind, GroupCommit};
use cxone_uuid_client::{Client, ClientConfig, ExecuteReport, ProviderConfig};
use cxone_uuid_core::{Generator, UniqueGenerator, UuidVersion};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::args::{Args, OutputFormat};
use super::progress::Progress;
use super::summary::{Summary, Tally};
use crate::exit::{usage, FAILURE};
use crate::settings::client_error;
use crate::signals::{StopSignal, StopSignals};

/// Fewest UUIDs staged (made durable ahead of their request). Against a fast endpoint one request
/// takes less time than one sync, so a stage of a few UUIDs (at `--concurrency 1` or 8) runs dry
/// while its sync is out and the requests wait on the disk. Measured against the mock at
/// `--concurrency 8`: 32 kept 0.59 of the no-audit rate, 64 kept 0.74.
const MIN_STAGE: usize = 64;
/// Longest a write-ahead sync waits for more records to share it. The stage is made durable
/// well ahead of need, so the delay is hidden unless the stage runs dry.
const GROUP_COMMIT_DELAY: Duration = Duration::from_millis(2);

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
    let concurrency = config.concurrency;
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
    settings.insert("concurrency".into(), args.transport.concurrency.to_json());
    settings.insert("rate".into(), json!(config.rate.to_string()));
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

    // 0 while running; the exit code of the stop signal once one came.
    let interrupted = Arc::new(AtomicU8::new(0));
    // Wakes a submission loop waiting for a free slot; the flag is what everything else reads.
    let interrupt = Arc::new(tokio::sync::Notify::new());
    let halt = Arc::new(AtomicBool::new(false));
    {
        let interrupted = interrupted.clone();
        let interrupt = interrupt.clone();
        let halt = halt.clone();
        let mut signals = StopSignals::new();
        tokio::spawn(async move {
            let first = signals.recv().await;
            if first == StopSignal::Interrupt {
                eprintln!("interrupted: finishing requests in flight, then writing the summary");
            } else {
                eprintln!(
                    "received {}: finishing requests in flight, then writing the summary",
                    first.name()
                );
            }
            interrupted.store(first.exit_code(), Ordering::SeqCst);
            halt.store(true, Ordering::SeqCst);
            interrupt.notify_waiters();
            let second = signals.recv().await;
            eprintln!(
                "received {} again: stopping at once; UUIDs staged but not answered stay pending, \
                 and run --resume with the same --audit sends them",
                second.name()
            );
            std::process::exit(i32::from(second.exit_code()));
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
        if interrupted.load(Ordering::SeqCst) != 0
            || ctx.abort.load(Ordering::SeqCst)
            || stop.is_some()
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
    let signal_code = interrupted.load(Ordering::SeqCst);
    let was_interrupted = signal_code != 0;

    let elapsed = started.elapsed();
    let stats = unique.stats();
    let summary = Summary::new(
        &tally,
        total,
        &stats,
        elapsed,
        stop.as_deref(),
        was_interrupted,
    )
    .with_limits(&client.limits());

    let mut ev = AuditEvent::new(EventKind::RunFinished, run_id);
    ev.action_id = Some(action_id);
    ev.uniqueness_rate = Some(unique.uniqueness_rate());
    ev.total_latency_ms = Some(ms(elapsed));
    ev.error = stop.clone().or_else(|| signal_reason(signal_code));
    ev.metadata = Some(summary.finished_metadata());
    let audit_result = async {
        writer.record_durable(ev).await?;
        writer.close().await
    }
    .await;

    summary.print(args.output, &sink_names);
    if let Err(e) = audit_result {
        eprintln!("error: the audit trail could not be completed: {e}");
        return Ok(ExitCode::from(FAILURE));
    }
    if was_interrupted {
        return Ok(ExitCode::from(signal_code));
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
        // TODO(audit correlation_id): issue 16 adds an optional `correlation_id` to
        // action_executed / action_failed: set it here from `report.correlation_id` once the
        // audit crates' restructure lands (AuditEvent field, canonical hash form, README's
        // Python verifier). The JSON summary's `errors` list already carries it.
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

/// Why `run_finished` says the run stopped, from the stop signal's exit code.
fn signal_reason(code: u8) -> Option<String> {
    [
        StopSignal::Interrupt,
        StopSignal::Terminate,
        StopSignal::Hangup,
    ]
    .into_iter()
    .find(|s| s.exit_code() == code)
    .map(StopSignal::reason)
}
