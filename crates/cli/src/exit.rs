//! Exit codes and error reporting shared by every command.
//!
//! Users script against the exit codes: 0 success, 1 a failure of the job itself, 2 a usage or
//! configuration error (nothing was sent), 130 interrupted.

use std::fmt;
use std::process::ExitCode;

/// Exit code for usage and configuration errors.
pub(crate) const USAGE: u8 = 2;
/// Exit code when the job ran and something failed.
pub(crate) const FAILURE: u8 = 1;
/// Exit code after Ctrl-C.
pub(crate) const INTERRUPTED: u8 = 130;

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
    eprintln!("error: {err:#}");
    if err.chain().any(|e| e.is::<UsageError>()) {
        ExitCode::from(USAGE)
    } else {
        ExitCode::from(FAILURE)
    }
}

/// Logs go to stderr so stdout stays machine-readable. `--log` (or CXONE_UUID_LOG) wins over
/// RUST_LOG, which a shell may export for other programs; `warn` when neither is given.
pub(crate) fn init_logging(flag: Option<&str>) {
    let filter = flag
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "warn".to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
