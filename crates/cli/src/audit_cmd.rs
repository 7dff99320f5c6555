//! Placeholder until the audit commands land; replaced by their owner.

use std::process::ExitCode;

/// Audit subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum Command {
    /// Verify a trail's hash chain.
    Verify {},
}

pub(crate) async fn run(_cmd: Command) -> anyhow::Result<ExitCode> {
    Err(crate::exit::usage("this command is not built yet"))
}
