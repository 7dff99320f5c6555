//! The flags of `run`: what to submit, where to audit it, how to report it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cxone_uuid_audit::SyncMode;

use crate::config::{ConnectArgs, TransportArgs};
use crate::exit::usage;
use crate::registries::RegistryArgs;
use crate::s3_args::S3Args;
use crate::sinks::SinkOptions;

/// The audit file the tutorial wrote; kept so existing scripts find it.
pub(crate) const DEFAULT_AUDIT: &str = "jsonl:cxone_uuid_audit.jsonl";

const AFTER_HELP: &str = "\
Examples:
  export CXONE_CLIENT_ID=... CXONE_CLIENT_SECRET=... CXONE_DATA_ACTION_ID=...
  cxone-uuid run -n 1000 --concurrency 16 --audit jsonl:trail.jsonl --audit sqlite:trail.db
  cxone-uuid run -n 50 --rate 20 --output json | jq .latency_ms
  cxone-uuid run --resume --audit jsonl:trail.jsonl     # finish UUIDs a crash left pending
  cxone-uuid run --provider genesys --region mypurecloud.ie --flatten --echo-field record.id
  cxone-uuid run --provider cxone --cxone-auth access-key --area na1 \\
    --execute-path /incontactapi/services/v31.0/scripts/start --body-template TEMPLATE
  cxone-uuid --log-format json run -n 100000 --metrics-addr 127.0.0.1:9464 --metrics-hold 30

Exit codes: 0 all succeeded, 1 any failed or the run stopped, 2 usage/configuration (nothing sent),
130/143/129 stopped by Ctrl-C/SIGTERM/SIGHUP after draining.";

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

/// How a long run can be watched: metrics endpoint and progress lines.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ObserveArgs {
    /// Serve Prometheus metrics at http://HOST:PORT/metrics while the run lasts (port 0 picks
    /// one; the address is said on stderr). A non-loopback address is served with a warning:
    /// the endpoint has no authentication.
    #[arg(long, env = "CXONE_UUID_METRICS_ADDR", value_name = "HOST:PORT")]
    pub(crate) metrics_addr: Option<String>,

    /// Keep the metrics endpoint up this many seconds after the run ends, so the last scrape
    /// sees the final values.
    #[arg(long, default_value_t = 0.0, value_name = "SECS")]
    pub(crate) metrics_hold: f64,

    /// Seconds between progress lines (done/total, rate, ETA, failures, 429s) when stderr is not
    /// a terminal or `--log-format json` is set; a terminal shows a bar instead.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub(crate) progress_every: f64,
}

impl ObserveArgs {
    /// The checked durations: hold and progress interval.
    pub(crate) fn durations(&self) -> anyhow::Result<(Duration, Duration)> {
        let hold = Duration::try_from_secs_f64(self.metrics_hold)
            .map_err(|_| usage("--metrics-hold must be a number of seconds, 0 or more"))?;
        let every = Duration::try_from_secs_f64(self.progress_every)
            .ok()
            .filter(|d| *d >= Duration::from_millis(100))
            .ok_or_else(|| usage("--progress-every must be at least 0.1 seconds"))?;
        Ok((hold, every))
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
    #[arg(
        short = 'n',
        long,
        value_name = "N",
        allow_negative_numbers = true,
        value_parser = crate::exit::parse_count,
        default_value_t = 5)]
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

    #[command(flatten)]
    pub(crate) observe: ObserveArgs,

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

    /// Submit again the UUIDs the audit trail shows as failed without running the action (429
    /// or 5xx after every retry, no answer at all), same UUID and Idempotency-Key, to the
    /// recorded action; 4xx refusals and "may have executed" failures stay failed. With
    /// --resume, the pending ones go too.
    #[arg(long)]
    pub(crate) retry_failed: bool,

    /// An attempt whose outcome is unknown (a timeout or a connection lost after the request
    /// was written, 500, 502, 504) may have run the action, and neither Genesys nor CXone
    /// honours an idempotency key: `retry` it anyway (the action must tolerate a second run
    /// for one UUID), or `fail` the UUID as "may have executed", which nothing resends.
    #[arg(long, value_name = "retry|fail", default_value = "retry", value_parser = ["retry", "fail"])]
    pub(crate) on_ambiguous: String,

    /// TESTS ONLY: replace the CSPRNG with a deterministic source (e.g. repeat:SEED:PERIOD).
    #[arg(long, hide = true, value_name = "SPEC")]
    pub(crate) test_entropy: Option<String>,
}
