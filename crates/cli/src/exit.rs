//! Exit codes, error reporting and what the program says on stderr, shared by every command.
//!
//! Users script against the exit codes: 0 success, 1 a failure of the job itself, 2 a usage or
//! configuration error (nothing was sent), 130 interrupted.
//!
//! Stderr has two shapes (`--log-format`): `text`, lines for a person, and `json`, one object a
//! line from tracing-subscriber's JSON formatter for a log shipper. With `json`, everything the
//! program says on stderr (progress, warnings, the final error) goes through [`note`], [`warn`]
//! and [`error`] as a tracing event with the target [`CONSOLE`], which the filter always lets
//! through at `info`, so nothing reaches stderr as plain text.

use std::fmt;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit code for usage and configuration errors.
pub(crate) const USAGE: u8 = 2;
/// Exit code when the job ran and something failed.
pub(crate) const FAILURE: u8 = 1;
/// Exit code after Ctrl-C.
pub(crate) const INTERRUPTED: u8 = 130;

/// The tracing target of what the program says on stderr in `json` mode: shown at `info`
/// whatever `--log` filters, as the text lines are.
pub(crate) const CONSOLE: &str = "cxone_uuid::console";

/// Set once by [`init_logging`]: stderr is JSON lines.
static JSON: AtomicBool = AtomicBool::new(false);

/// The shape of stderr (`--log-format`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    /// Lines for a person.
    #[default]
    Text,
    /// One JSON object a line (timestamp, level, target, message, fields, spans).
    Json,
}

/// Whether stderr is JSON lines.
pub(crate) fn json() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// A usage or configuration error: reported as `error: ...` with exit code 2.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Builds an `anyhow::Error` that exits with code 2.
pub(crate) fn usage(msg: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(msg.into()))
}

/// Prints the error chain to stderr and picks the exit code.
pub(crate) fn report(err: &anyhow::Error) -> ExitCode {
    error(&format!("{err:#}"));
    if err.chain().any(|e| e.is::<UsageError>()) {
        ExitCode::from(USAGE)
    } else {
        ExitCode::from(FAILURE)
    }
}

/// Says something for the person (or shipper) watching: as is in text, an `info` event in JSON.
pub(crate) fn note(msg: &str) {
    if json() {
        tracing::info!(target: CONSOLE, "{msg}");
    } else {
        eprintln!("{msg}");
    }
}

/// A warning: `warning: MSG` in text, a `warn` event in JSON.
pub(crate) fn warn(msg: &str) {
    if json() {
        tracing::warn!(target: CONSOLE, "{msg}");
    } else {
        eprintln!("warning: {msg}");
    }
}

/// An error: `error: MSG` in text, an `error` event in JSON.
pub(crate) fn error(msg: &str) {
    if json() {
        tracing::error!(target: CONSOLE, "{msg}");
    } else {
        eprintln!("error: {msg}");
    }
}

/// Logs go to stderr so stdout stays machine-readable. `--log` (or CXONE_UUID_LOG) wins over
/// RUST_LOG, which a shell may export for other programs; `warn` when neither is given.
pub(crate) fn init_logging(flag: Option<&str>, format: LogFormat) {
    let filter = flag
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "warn".to_string());
    let filter = match format {
        LogFormat::Text => filter,
        // What the text mode prints unconditionally stays visible whatever the filter says.
        LogFormat::Json if filter.trim().is_empty() => format!("{CONSOLE}=info"),
        LogFormat::Json => format!("{filter},{CONSOLE}=info"),
    };
    // Plain `target=level` directives (all the README shows) go to `Targets`, which only
    // answers whether a callsite is enabled. EnvFilter also tracks every span it is entered
    // and left through, under a lock, for span directives (`[span{field=value}]=level`): the
    // run's span is entered and left on each poll of every request's task, about 2% of the
    // client's CPU per request. A filter with such directives still gets EnvFilter.
    match format {
        LogFormat::Text => {
            install(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false),
                &filter,
            );
        }
        LogFormat::Json => {
            let ok = install(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
                &filter,
            );
            JSON.store(ok, Ordering::Relaxed);
            if ok {
                // A panic's message would otherwise be the one plain-text line on stderr.
                std::panic::set_hook(Box::new(|info| {
                    tracing::error!(target: CONSOLE, "{info}");
                }));
            }
        }
    }
}

/// Installs `fmt` under the filter `directives` (see [`init_logging`]); false if a subscriber
/// was already set.
fn install<L>(fmt: L, directives: &str) -> bool
where
    L: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let logs = tracing_subscriber::registry().with(fmt);
    // `Targets` would take `[span]` for a target's name: span and field directives are told
    // by their brackets and braces, which no target name holds.
    let plain = !directives.contains(['[', ']', '{', '}']);
    match directives
        .parse::<tracing_subscriber::filter::Targets>()
        .ok()
        .filter(|_| plain)
    {
        Some(targets) => logs.with(targets).try_init().is_ok(),
        None => logs
            .with(tracing_subscriber::EnvFilter::new(directives))
            .try_init()
            .is_ok(),
    }
}

/// Whether the command line or CXONE_UUID_LOG_FORMAT asks for JSON stderr, read without clap:
/// for the one message that comes before the arguments are parsed, a usage error.
pub(crate) fn json_requested() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut flag = None;
    for (i, a) in args.iter().enumerate() {
        if a == "--" {
            break;
        }
        if let Some(v) = a.strip_prefix("--log-format=") {
            flag = Some(v.to_string());
        } else if a == "--log-format" {
            flag = args.get(i + 1).cloned();
        }
    }
    flag.or_else(|| std::env::var("CXONE_UUID_LOG_FORMAT").ok())
        .is_some_and(|v| v == "json")
}

/// The value parser of `-n/--count` in every command, so `generate` and `run` agree on what a
/// count is and say it the same way (`-n 0` and `-n -5` included).
pub(crate) fn parse_count(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "{text:?} is not a count: give a whole number of UUIDs, at least 1 (e.g. -n 100)"
        )),
    }
}

/// True when the error is stdout closed by its reader (`… | head`): the reader's choice, not
/// a failure, so the command stops quietly with exit code 0.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || e.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe)
    })
}
