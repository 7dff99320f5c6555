//! Stop signals. Ctrl-C (SIGINT), SIGTERM (what systemd, Kubernetes, CI runners and `timeout`
//! send) and SIGHUP (a closed terminal or SSH session) all ask a run to drain: no new
//! submissions, the requests in flight finish and are recorded, then the summary and
//! `run_finished` are written. A second signal of any kind ends the process at once; what was
//! staged stays pending in the trail and `run --resume` finishes it.
//!
//! Written on tokio's own signal streams: no crate does more than these few lines.

/// Which signal asked the run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopSignal {
    /// SIGINT (Ctrl-C).
    Interrupt,
    /// SIGTERM.
    Terminate,
    /// SIGHUP.
    Hangup,
}

impl StopSignal {
    /// 128 + the signal's number, the shell's convention for "ended by a signal".
    pub(crate) fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => crate::exit::INTERRUPTED,
            StopSignal::Terminate => 143,
            StopSignal::Hangup => 129,
        }
    }

    /// The signal's name, as operators know it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
            StopSignal::Hangup => "SIGHUP",
        }
    }

    /// How the summary and `run_finished` say why the run stopped.
    pub(crate) fn reason(self) -> String {
        match self {
            StopSignal::Interrupt => "interrupted by the user".to_string(),
            other => format!("interrupted by {}", other.name()),
        }
    }
}

/// The stop signals of this process, listened to from creation on (so none is missed between
/// the first and the second).
pub(crate) struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Starts listening. A signal that cannot be listened to (which does not happen on Linux)
    /// keeps its default action.
    pub(crate) fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            StopSignals {
                term: signal(SignalKind::terminate()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// Waits for the next stop signal.
    pub(crate) async fn recv(&mut self) -> StopSignal {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                r = tokio::signal::ctrl_c() => {
                    if r.is_err() {
                        std::future::pending::<()>().await;
                    }
                    StopSignal::Interrupt
                }
                _ = next(&mut self.term) => StopSignal::Terminate,
                _ = next(&mut self.hup) => StopSignal::Hangup,
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            StopSignal::Interrupt
        }
    }
}
