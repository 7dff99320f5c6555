//! One error type for the whole client: a kind a caller can match on plus a user-facing message.
//!
//! Messages are built from URLs, statuses and server excerpts only, never from the client
//! secret, access key secret or a token, so any error can be printed or audited as is.

use std::fmt;

use crate::setting::Setting;

/// What went wrong, coarse enough for a caller to decide (exit code, stop the run, count it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A setting is missing or invalid (the CLI exits 2; no request was sent).
    Config,
    /// The token endpoint refused the credentials (400/401): every UUID would fail the same way.
    Credentials,
    /// A discovery document could not be fetched or read.
    Discovery,
    /// The token endpoint kept failing with 5xx, timeouts or connection errors.
    TokenUnavailable,
    /// The execute endpoint rejected the token even after one refresh.
    Unauthorized,
    /// 403: the credentials lack a permission or scope.
    Forbidden,
    /// Another 4xx: the server rejected this request.
    Rejected,
    /// 429 and the client gave up (retries exhausted or Retry-After too long).
    RateLimited,
    /// 5xx and retries exhausted.
    Server,
    /// The attempt did not finish within the per-attempt timeout.
    Timeout,
    /// Connection refused, reset or closed without an answer.
    Transport,
    /// A 2xx whose body is not what the dialect expects (not JSON, wrong shape, oversized).
    UnexpectedResponse,
    /// The action echoed a different UUID than the one sent.
    EchoMismatch,
    /// The action ran but reported failure (e.g. a Genesys `/test` run with a failed step).
    ActionFailed,
}

impl ErrorKind {
    /// A short stable name, for JSON summaries and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Credentials => "credentials",
            ErrorKind::Discovery => "discovery",
            ErrorKind::TokenUnavailable => "token_unavailable",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Rejected => "rejected",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Server => "server_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::UnexpectedResponse => "unexpected_response",
            ErrorKind::EchoMismatch => "echo_mismatch",
            ErrorKind::ActionFailed => "action_failed",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from the client: [`kind`](Error::kind) to match on, `Display` for the user.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct Error {
    kind: ErrorKind,
    message: String,
    status: Option<u16>,
    retry_after: Option<std::time::Duration>,
    fatal: bool,
    /// The settings a configuration error is about (empty for other kinds).
    settings: Vec<Setting>,
    /// True when `settings` are missing rather than wrong.
    missing: bool,
}

/// Errors from [`Client::new`](crate::Client::new) and [`Client::token_info`](crate::Client::token_info).
pub type ClientError = Error;
/// The error of one UUID's execution (see [`ExecuteReport`](crate::ExecuteReport)).
pub type ExecuteError = Error;

impl Error {
    /// Makes an error of `kind` with a user-facing message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
            fatal: false,
            settings: Vec::new(),
            missing: false,
        }
    }

    /// Required settings that were not given, all named at once.
    pub fn missing(provider: &str, settings: Vec<Setting>) -> Self {
        let names: Vec<&str> = settings.iter().map(|s| s.describe()).collect();
        let mut e = Error::config(format!(
            "missing required settings for provider {provider}: {}",
            names.join(", ")
        ));
        e.settings = settings;
        e.missing = true;
        e
    }

    /// A setting whose value is wrong; the message says why and what to give instead.
    pub fn invalid(setting: Setting, message: impl Into<String>) -> Self {
        let mut e = Error::config(message);
        e.settings = vec![setting];
        e
    }

    /// A configuration error (exit 2).
    pub fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Config, message)
    }

    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_retry_after(mut self, ra: Option<std::time::Duration>) -> Self {
        self.retry_after = ra;
        self
    }

    pub(crate) fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after
    }

    /// Marks the error as stopping the run whatever its kind (e.g. a token endpoint answering
    /// garbage: every UUID would fail the same way).
    pub(crate) fn into_fatal(mut self) -> Self {
        self.fatal = true;
        self
    }

    pub(crate) fn suffixed(mut self, suffix: &str) -> Self {
        self.message.push_str(suffix);
        self
    }

    pub(crate) fn prefixed(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The user-facing message (same as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The settings a configuration error is about, so a program can name its own flag or
    /// variable for each (empty for other errors).
    pub fn settings(&self) -> &[Setting] {
        &self.settings
    }

    /// True when [`settings`](Error::settings) were missing rather than wrong.
    pub fn is_missing_settings(&self) -> bool {
        self.missing
    }

    /// The HTTP status of the last answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// True when the whole run should stop: every further UUID would fail the same way
    /// (bad configuration, refused credentials, failed discovery).
    pub fn is_fatal(&self) -> bool {
        self.fatal
            || matches!(
                self.kind,
                ErrorKind::Config | ErrorKind::Credentials | ErrorKind::Discovery
            )
    }

    /// True for a configuration error, which the CLI maps to exit code 2.
    pub fn is_config(&self) -> bool {
        self.kind == ErrorKind::Config
    }

    /// True when trying the same request again may succeed (5xx, 429, timeouts, connection
    /// errors). The retry policy still decides whether and when.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Server
                | ErrorKind::Timeout
                | ErrorKind::Transport
                | ErrorKind::RateLimited
                | ErrorKind::TokenUnavailable
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_kinds() {
        assert!(Error::config("x").is_fatal());
        assert!(Error::new(ErrorKind::Credentials, "x").is_fatal());
        assert!(!Error::new(ErrorKind::Server, "x").is_fatal());
        assert!(Error::new(ErrorKind::Server, "x").is_transient());
        assert!(!Error::new(ErrorKind::Rejected, "x").is_transient());
    }
}
