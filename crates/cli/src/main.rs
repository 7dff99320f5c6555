//! `cxone-uuid`: generate RFC 9562 UUIDs, submit each to a CXone Data Action, and keep a
//! tamper-evident audit trail.
//!
//! This binary is the one place that wires the library crates together: every sink and registry
//! backend is chosen here by an explicit `match` over its spec (see `sinks.rs`, `registries.rs`),
//! one `#[cfg(feature)]` arm each, so a reader finds every backend on one screen.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod audit_cmd;
mod config;
mod demo;
mod exit;
mod generate;
mod metrics;
mod mock_cmd;
mod registries;
mod run;
mod s3_args;
mod settings;
mod signals;
mod sinks;
mod token;
mod validate;

/// Generate RFC 9562 UUIDs, submit each to a CXone Data Action, keep a tamper-evident audit trail.
#[derive(Parser, Debug)]
#[command(name = "cxone-uuid", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Log filter for stderr (e.g. `info`, `debug`, `cxone_uuid_client=trace`) [default: warn].
    /// The flag wins over CXONE_UUID_LOG, which wins over RUST_LOG.
    #[arg(long, global = true, env = "CXONE_UUID_LOG", value_name = "FILTER")]
    log: Option<String>,

    /// Shape of stderr: `text` for a person, `json` for a log shipper (one object a line:
    /// timestamp, level, target, message and fields such as run_id, uuid, attempt). With `json`,
    /// progress, warnings and the final error are JSON lines too.
    #[arg(
        long,
        global = true,
        env = "CXONE_UUID_LOG_FORMAT",
        value_enum,
        default_value_t = exit::LogFormat::Text,
        value_name = "FORMAT"
    )]
    log_format: exit::LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate UUIDs offline, one a line, to stdout.
    Generate(generate::Args),
    /// Validate UUIDs given as arguments or one a line on stdin.
    Validate(validate::Args),
    /// Generate UUIDs and submit each to a Data Action (the main job).
    Run(Box<run::Args>),
    /// Run against an in-process stand-in server: no account needed.
    Demo(Box<demo::Args>),
    /// Serve a CXone / Genesys stand-in with fault injection, for tests and trials.
    Mock(mock_cmd::Args),
    /// Fetch a token and show who and where it authenticated (never the token).
    Token(Box<token::Args>),
    /// Verify, query, import and sign audit trails.
    #[command(subcommand)]
    Audit(audit_cmd::Command),
    /// Print shell completions (used by `cargo xtask release`).
    #[command(hide = true)]
    Completions {
        /// Shell to generate for.
        shell: clap_complete::Shell,
    },
    /// Print the man page in roff (used by `cargo xtask release`).
    #[command(hide = true)]
    Manpage,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with exit 0, and usage errors with exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    exit::init_logging(cli.log.as_deref(), cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            exit::error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Generate(args) => generate::run(args).await,
            Command::Validate(args) => validate::run(args).await,
            Command::Run(args) => run::run(*args).await,
            Command::Demo(args) => demo::run(*args).await,
            Command::Mock(args) => mock_cmd::run(args).await,
            Command::Token(args) => token::run(*args).await,
            Command::Audit(cmd) => audit_cmd::run(cmd).await,
            Command::Completions { shell } => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut cmd, "cxone-uuid", &mut std::io::stdout());
                Ok(ExitCode::SUCCESS)
            }
            Command::Manpage => {
                let cmd = <Cli as clap::CommandFactory>::command();
                clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
                Ok(ExitCode::SUCCESS)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => exit::report(&err),
    }
}
