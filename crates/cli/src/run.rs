//! `cxone-uuid run`: generate, record, submit, record, summarise.
//!
//! The order per UUID is fixed by the audit contract: `uuid_generated` (queued), then
//! `action_submitted` made durable (the write-ahead rule: a UUID never leaves the machine before
//! its record is on disk), then the POST with its retries, then `action_executed` or
//! `action_failed`. Group commit in the audit writer keeps the durable step cheap under
//! concurrency: one fsync covers every task waiting at that moment.
//!
//! Split where the command divides: [`args`] (the flags), [`job`] (the submission loop and its
//! tasks), [`started`] (what `run_started` records), [`resume`] and [`retry_failed`] (which
//! UUIDs of the trail go out again, and to which action), [`progress`] (stderr while it runs)
//! and [`summary`] (one typed summary that the text and JSON outputs and the `run_finished`
//! record are all made from).

use std::process::ExitCode;

mod args;
mod job;
mod progress;
mod resume;
mod retry_failed;
mod started;
mod summary;

pub(crate) use args::{Args, DEFAULT_AUDIT};
pub(crate) use job::execute_job;

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = crate::config::client_config(&args.connect, &args.transport)?;
    execute_job(args, config, None).await
}
