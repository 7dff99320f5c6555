//! Placeholder until this command lands; replaced by its owner.

use std::process::ExitCode;

/// Arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    Err(crate::exit::usage("this command is not built yet"))
}
