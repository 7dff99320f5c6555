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
use tracing::Instrument as _;
use uuid::Uuid;

use super::args::{Args, OutputFormat};
use super::progress::Progress;
use super::summary::{Summary, Tally};
use crate::exit::{usage, FAILURE};
use crate::metrics::{Endpoint, RunMetrics};
use crate::settings::client_error;
use crate::signals::{StopSignal, StopSignals};

/// Fewest UUIDs staged (made durable ahead of their request). Against a fast endpoint one request
/// takes less time than one sync, so a stage of a few UUIDs (at `--concurrency 1` or 8) runs dry
/// while its sync is out and the requests wait on the disk. Measured against the mock at
/// `--concurrency 8`: 32 kept 0.59 of the no-audit rate, 64 kept 0.74.
const MIN_STAGE: usize = 64;
/// UUIDs staged per request slot (`--concurrency`): see where the stage is sized.
const STAGE_PER_SLOT: usize = 16;
/// Stage slots the job loop takes at a time (fewer when fewer UUIDs are left): one wake-up of
/// the loop per this many finished requests instead of one per request.
const STAGE_REFILL: usize = 16;
/// Longest a write-ahead sync waits for more records to share it. The stage is made durable
/// well ahead of need, so the delay is hidden unless the stage runs dry.
const GROUP_COMMIT_DELAY: Duration = Duration::from_millis(2);

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

impl Done {
    /// Its write-ahead record is durable but it was not sent: it stays pending.
    fn not_sent(uuid: Uuid) -> Self {
        Done {
            uuid,
            report: None,
            pending: true,
            audit_error: None,
        }
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Runs the job with a ready client configuration; `demo` calls this with the in-process mock.
///
/// Everything it logs is inside the `run` span, whose `run_id` field is set once the id is
/// drawn, so a JSON log line carries the run it belongs to.
pub(crate) async fn execute_job(
    args: Args,
    config: ClientConfig,
    banner: Option<String>,
) -> anyhow::Result<ExitCode> {
    // `error` level: the span must exist whatever the filter shows, or warnings lose the run id.
    let span = tracing::error_span!("run", run_id = tracing::field::Empty);
    execute_job_in(args, config, banner, span.clone())
        .instrument(span)
        .await
}

async fn execute_job_in(
    args: Args,
    mut config: ClientConfig,
    banner: Option<String>,
    span: tracing::Span,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (metrics_hold, progress_every) = args.observe.durations()?;
    let metrics_addr = match &args.observe.metrics_addr {
        Some(text) => Some(crate::metrics::resolve_addr(text)?),
        None => None,
    };
    let version = match args.uuid_version.as_str() {
        "7" => UuidVersion::V7,
        _ => UuidVersion::V4,
    };
    let sink_options = args.audit.sink_options()?;
    crate::sinks::check_built(&args.audit.audit)?;
    // Before anything is read, sent or written: a second writer would fork the chain.
    let _locks =
        crate::trail_lock::lock_specs(&args.audit.audit, &args.s3, "choose another --audit path")?;
    // Resubmitting (pending or failed UUIDs of the trail) instead of generating new ones.
    let resubmitting = args.resume || args.retry_failed;
    if args.count == 0 && !resubmitting {
        return Err(usage("--count must be at least 1"));
    }
    config.on_ambiguous = args
        .on_ambiguous
        .parse()
        .map_err(|e: cxone_uuid_client::Error| usage(e.to_string()))?;
    // Pending UUIDs go to the action the trail recorded for them (see resume.rs).
    let pending: Vec<Uuid> = if resubmitting {
        let mut recorded = Vec::new();
        if args.resume {
            recorded = crate::sinks::pending_submissions(&args.audit.audit, &args.s3)
                .await
                .context("cannot read the audit trail to resume")?;
        }
        if args.retry_failed {
            let selection = super::retry_failed::select(&args.audit.audit, &args.s3)
                .await
                .context("cannot read the audit trail for --retry-failed")?;
            crate::exit::note(&selection.note());
            recorded.extend(selection.retry);
        }
        super::resume::bind(&mut config, recorded)?
            .into_iter()
            .map(|p| p.uuid)
            .collect()
    } else {
        Vec::new()
    };
    // Everything that can be checked locally is checked before any record is written.
    let provider = config.provider_kind();
    config.validate().map_err(|e| client_error(e, provider))?;
    let client = Client::new(config.clone()).map_err(|e| client_error(e, provider))?;
    let registry = crate::registries::open_with(&args.registry, args.count).await?;
    let source = match &args.test_entropy {
        Some(spec) => {
            crate::exit::warn(&format!(
                "--test-entropy {spec}: UUIDs come from a deterministic TEST source, not a CSPRNG"
            ));
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
    // Eight times `--concurrency`: at 64 against the mock, a stage of twice made about 800
    // fsyncs in a 50,000-UUID run and four times about 500; each costs CPU the client and the
    // endpoint share (the rule kept a median 0.85 of the no-wait rate at twice, 0.95 at four
    // times, over seven interleaved rounds). Once the request path itself got faster (its own
    // hyper pool), four times kept only 0.85-0.91 in a bench run and three interleaved pairs:
    // the stage ran dry whenever a sync took long on this VM, with the same CPU per request.
    // Eight times kept 0.91-0.99 (and 1.06 times the requests per second with the rule).
    // With the client on one core (row 2h) eight times still ran dry: the core idled a tenth
    // of the run with `--audit-sync batch` and not with `none` (65 against 73.5k req/s, the
    // same CPU per request). Sixteen times kept it busy: 69.7-70.5k (12 times 68.7-68.9k, 24
    // times 70.1-70.7k, 32 times 70.5k and once 52.1k). The price is staged records: up to
    // 1,024 pending UUIDs at 64 in flight after a stop, all resumable. A small stage for
    // `--audit none`, where nothing waits on a sync, was slower here too (two and four
    // times: 81.4-86.2k against 86.4-88.3k req/s at 256 in flight, two rounds).
    let concurrency = config.concurrency;
    let stage = concurrency.saturating_mul(STAGE_PER_SLOT).max(MIN_STAGE);
    let writer = if sinks.0.is_empty() {
        // `--audit none`: no task for an empty sink (see `AuditWriter::discard`).
        AuditWriter::discard()
    } else {
        AuditWriter::spawn_grouped(
            Box::new(sinks),
            sink_options.sync,
            GroupCommit {
                waiters: stage / 2,
                max_delay: GROUP_COMMIT_DELAY,
            },
        )
    };

    let run_id = Uuid::now_v7();
    span.record("run_id", tracing::field::display(run_id));
    let metrics = Arc::new(RunMetrics::new(&run_id.to_string(), provider.as_str()));
    metrics
        .concurrency_limit
        .set(i64::try_from(client.limits().concurrency).unwrap_or(i64::MAX));
    // Bound before the first record, so a taken port stops the run before anything is written.
    let endpoint = match metrics_addr {
        Some(addr) => {
            let m = metrics.clone();
            let c = client.clone();
            let endpoint = Endpoint::start(
                addr,
                Arc::new(move || {
                    // Read at scrape time: the adaptive rate and window move between outcomes.
                    let limits = c.limits();
                    m.rate_limit.set(limits.rate_rps.unwrap_or(0.0));
                    m.concurrency_limit
                        .set(i64::try_from(limits.concurrency).unwrap_or(i64::MAX));
                    m.render()
                }),
            )
            .await?;
            crate::exit::note(&format!(
                "metrics: serving http://{}/metrics",
                endpoint.addr()
            ));
            Some(endpoint)
        }
        None => None,
    };
    let action_id = match &config.provider {
        ProviderConfig::Cxone(x) => x.execute_path.clone(),
        other => other.action_id().map(str::to_string),
    }
    .unwrap_or_default();
    let settings = super::started::run_settings(
        &args,
        &config,
        pending.len(),
        &registry.describe(),
        &sink_names,
    );
    let mut ev = AuditEvent::new(EventKind::RunStarted, run_id);
    ev.action_id = Some(action_id.clone());
    ev.metadata = Some(settings);
    writer
        .record_durable(ev)
        .await
        .context("cannot write the audit trail")?;
    metrics.audit_events.inc();

    if let Some(banner) = banner {
        crate::exit::note(&banner);
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
        tokio::spawn(
            async move {
                let first = signals.recv().await;
                if first == StopSignal::Interrupt {
                    crate::exit::note(
                        "interrupted: finishing requests in flight, then writing the summary",
                    );
                } else {
                    crate::exit::note(&format!(
                        "received {}: finishing requests in flight, then writing the summary",
                        first.name()
                    ));
                }
                interrupted.store(first.exit_code(), Ordering::SeqCst);
                halt.store(true, Ordering::SeqCst);
                interrupt.notify_waiters();
                let second = signals.recv().await;
                crate::exit::note(&format!(
                "received {} again: stopping at once; UUIDs staged but not answered stay pending, \
                 and run --resume with the same --audit sends them",
                second.name()
            ));
                std::process::exit(i32::from(second.exit_code()));
            }
            .in_current_span(),
        );
    }

    let total = if resubmitting {
        pending.len() as u64
    } else {
        args.count
    };
    // A piped `--output json` run stays quiet on stderr, unless stderr is JSON lines too.
    let quiet = args.output == OutputFormat::Json
        && !std::io::stderr().is_terminal()
        && !crate::exit::json();
    let mut progress = Progress::new(total, quiet, progress_every);
    metrics
        .pending
        .set(i64::try_from(total).unwrap_or(i64::MAX));
    let mut tally = Tally::new()?;
    client.expect(total);
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
        metrics: metrics.clone(),
    });

    // Work list: resumed UUIDs first (already registered), otherwise freshly generated ones.
    let mut to_resume = pending.into_iter();
    let mut remaining = if resubmitting { 0 } else { args.count };
    let mut batch: std::vec::IntoIter<(Uuid, f64)> = Vec::new().into_iter();
    // Stage slots taken and not yet handed to a task (see STAGE_REFILL).
    let mut free: Option<tokio::sync::OwnedSemaphorePermit> = None;
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
                    metrics.generated.inc_by(uuids.len() as u64);
                    // The same for the whole batch.
                    let gen_ms = (per * 1000.0).round() / 1000.0;
                    let uniqueness = unique.uniqueness_rate();
                    let events: Vec<AuditEvent> = uuids
                        .iter()
                        .map(|u| {
                            let mut ev = AuditEvent::new(EventKind::UuidGenerated, run_id);
                            ev.uuid = Some(*u);
                            ev.generation_latency_ms = Some(gen_ms);
                            ev.uniqueness_rate = Some(uniqueness);
                            let mut md = Map::new();
                            md.insert("version".into(), json!(u.get_version_num()));
                            md.insert("variant".into(), json!("RFC4122"));
                            ev.metadata = Some(md);
                            ev
                        })
                        .collect();
                    let n = events.len() as u64;
                    // One message for the batch: the channel is taken once, not per UUID.
                    if let Err(e) = writer.record_all(events).await {
                        // As when a submission's record fails: nothing more is generated or
                        // sent, what is in flight drains, and the run still reports (returning
                        // the error here dropped the tasks in flight and printed no summary).
                        // This batch never left the machine.
                        stop = Some(format!("cannot write the audit trail: {e}"));
                        break;
                    }
                    metrics.audit_events.inc_by(n);
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
        if free.as_ref().is_none_or(|f| f.num_permits() == 0) {
            // Stage slots are taken a few at a time: this loop runs on the thread in
            // `block_on`, and waking it for every finished request cost a futex wake and a
            // context switch each (about a tenth of the client's CPU in a profile). Moving
            // the loop onto a runtime worker saved as much, but then generation and its
            // records competed with the requests for the workers, and a run against a
            // concurrency cap started a tenth of a second later.
            let left = 1
                + to_resume.len()
                + batch.len()
                + usize::try_from(remaining).unwrap_or(usize::MAX);
            let want = u32::try_from(left.min(STAGE_REFILL)).unwrap_or(1);
            free = Some(tokio::select! {
                p = staged.clone().acquire_many_owned(want) => p.context("semaphore closed")?,
                _ = interrupt.notified() => break,
            });
        }
        // Just refilled with at least one slot when it was empty, so this cannot come up short.
        let permit = free
            .as_mut()
            .and_then(|f| f.split(1))
            .context("no stage slot after a refill")?;
        let ctx = ctx.clone();
        tasks.spawn(
            async move {
                let _permit = permit;
                ctx.submit(uuid, gen_ms, resumed).await
            }
            .in_current_span(),
        );
        while let Some(joined) = tasks.try_join_next() {
            handle(
                joined,
                &mut tally,
                &mut progress,
                &mut stop,
                &metrics,
                total,
            );
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
        handle(
            joined,
            &mut tally,
            &mut progress,
            &mut stop,
            &metrics,
            total,
        );
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
        metrics.audit_events.inc();
        writer.close().await
    }
    .await;

    summary.print(args.output, &sink_names);
    if let Some(endpoint) = endpoint {
        if !metrics_hold.is_zero() {
            crate::exit::note(&format!(
                "metrics: keeping http://{}/metrics up for {} s (--metrics-hold)",
                endpoint.addr(),
                metrics_hold.as_secs_f64()
            ));
            // A stop signal during the hold ends it: the run itself is already over.
            tokio::select! {
                _ = tokio::time::sleep(metrics_hold) => {}
                _ = interrupt.notified() => {}
            }
        }
        drop(endpoint);
    }
    if let Err(e) = audit_result {
        crate::exit::error(&format!("the audit trail could not be completed: {e}"));
        return Ok(ExitCode::from(FAILURE));
    }
    if was_interrupted {
        return Ok(ExitCode::from(signal_code));
    }
    if let Some(why) = &stop {
        crate::exit::error(why);
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
    metrics: &RunMetrics,
    total: u64,
) {
    match joined {
        Ok(done) => {
            // A UUID that was sent is counted even when its outcome could not be recorded.
            // The metrics are counted here, next to the tally, so the two cannot disagree.
            if let Some(report) = &done.report {
                tally.add(done.uuid, report);
                metrics.observe(report);
                progress.inc(tally.failed, tally.rate_limited);
            }
            metrics
                .pending
                .set(i64::try_from(total.saturating_sub(tally.answered())).unwrap_or(i64::MAX));
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
    metrics: Arc<RunMetrics>,
}

impl TaskCtx {
    // Every submission task holds this future: the events are built by the plain functions
    // below and moved straight into the writer's call, so none is stored across an await.
    // Two events and a result kept in every state made it 2.9 KB instead of 1.9, and cost
    // 4-6% of the client's CPU per request (README, development).
    async fn submit(&self, uuid: Uuid, gen_ms: Option<f64>, resumed: bool) -> Done {
        // Write-ahead: the record is durable before the UUID leaves the machine.
        if let Err(e) = self
            .writer
            .record_durable(self.submitted_event(uuid, resumed))
            .await
        {
            return Done {
                uuid,
                report: None,
                pending: false,
                audit_error: Some(format!(
                    "cannot make the audit record durable; nothing more will be sent: {e}"
                )),
            };
        }
        self.metrics.audit_events.inc();
        let Ok(slot) = self.sending.acquire().await else {
            return Done::not_sent(uuid);
        };
        if self.halt.load(Ordering::SeqCst) {
            return Done::not_sent(uuid);
        }

        self.metrics.submitted.inc();
        self.metrics.in_flight.inc();
        let report = self
            .client
            .execute(uuid)
            // A debug span: the client's own events carry the UUID as a field, and the span
            // is there for the HTTP stack's debug lines. At the default level it is disabled
            // (a cached check); an enabled span per request cost about 5% of the client's CPU
            // in a profile (its fields formatted, EnvFilter's enter and exit on every poll).
            .instrument(tracing::debug_span!("uuid", %uuid))
            .await;
        self.metrics.in_flight.dec();
        if let Err(e) = &report.outcome {
            if report.attempts == 0 {
                // Nothing left the machine (no token, say): the UUID is not failed but unsent,
                // so it stays pending in the trail for --resume, and the run stops, since
                // whatever kept this one from being sent keeps every other one too.
                self.stop_run(e);
                return Done::not_sent(uuid);
            }
            if e.is_fatal() {
                self.stop_run(e);
            }
        }
        // Answered (any fatal error above has already halted the run): the slot goes to the
        // next staged request, and that request is sent before this one's result is recorded.
        // Recording wakes the trail's writer, which took the runtime's next-task slot from the
        // request just woken, so the next request waited behind the writer's work on the last
        // result (one request in flight, 50 ms away: about 0.85 of the answer-to-next-request
        // time).
        drop(slot);
        tokio::task::yield_now().await;
        let recorded = self
            .writer
            .record(self.answered_event(uuid, gen_ms, &report))
            .await;
        if recorded.is_ok() {
            self.metrics.audit_events.inc();
        }
        let audit_error = recorded
            .err()
            .map(|e| format!("cannot write the audit trail: {e}"));
        Done {
            uuid,
            report: Some(report),
            pending: false,
            audit_error,
        }
    }

    /// The write-ahead `action_submitted` record.
    fn submitted_event(&self, uuid: Uuid, resumed: bool) -> AuditEvent {
        let mut ev = AuditEvent::new(EventKind::ActionSubmitted, self.run_id);
        ev.uuid = Some(uuid);
        ev.action_id = Some(self.action_id.clone());
        if resumed {
            let mut md = Map::new();
            md.insert("resumed".into(), Value::Bool(true));
            ev.metadata = Some(md);
        }
        ev
    }

    /// The `action_executed` or `action_failed` record of an answered UUID.
    fn answered_event(
        &self,
        uuid: Uuid,
        gen_ms: Option<f64>,
        report: &ExecuteReport,
    ) -> AuditEvent {
        // Server latency only: the pacer's wait and the backoff between attempts are not the
        // platform's time (the summary reports the wait as `wait_ms`).
        let exec_ms = ms(report.server_latency);
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
        ev.wait_ms = Some(ms(report.wait));
        // Attempts that may have run the action (neither platform honours an idempotency key).
        ev.ambiguous_attempts = (report.ambiguous > 0).then_some(report.ambiguous);
        ev.generation_latency_ms = gen_ms;
        ev.total_latency_ms = Some(((exec_ms + gen_ms.unwrap_or(0.0)) * 1000.0).round() / 1000.0);
        ev.correlation_id = report.correlation_id.clone();
        if let Err(e) = &report.outcome {
            ev.error = Some(e.to_string());
        }
        ev
    }

    /// Stops the whole run on `e`: the first such error is the one the run reports, and
    /// staged UUIDs are not sent.
    fn stop_run(&self, e: &cxone_uuid_client::Error) {
        if let Ok(mut first) = self.fatal.lock() {
            first.get_or_insert_with(|| e.to_string());
        }
        self.abort.store(true, Ordering::SeqCst);
        self.halt.store(true, Ordering::SeqCst);
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
