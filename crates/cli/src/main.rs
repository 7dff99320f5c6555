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

const TOP_HELP: &str = "\
Examples:
  cxone-uuid demo                                  the main job against an embedded stand-in
  cxone-uuid generate -n 10                        ten UUIDs, offline
  cxone-uuid run -n 100 --audit jsonl:trail.jsonl  submit 100 UUIDs (settings: run --help)
  cxone-uuid audit verify jsonl:trail.jsonl        prove the trail intact

Exit codes: 0 success, 1 the job failed, 2 usage or configuration error (nothing was sent),
130/143/129 stopped by Ctrl-C/SIGTERM/SIGHUP after draining.";

/// Generate RFC 9562 UUIDs, submit each to a CXone Data Action, keep a tamper-evident audit trail.
#[derive(Parser, Debug)]
#[command(
    name = "cxone-uuid",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = TOP_HELP
)]
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

/// The command tree as users see it. Environment values are never shown in `--help`: they may
/// be private, and clap shows an unset one as `[env: NAME=]`, which reads like a setting.
fn command() -> clap::Command {
    fn hide_env_values(cmd: clap::Command) -> clap::Command {
        cmd.mut_args(|a| {
            if a.get_env().is_some() {
                a.hide_env_values(true)
            } else {
                a
            }
        })
        .mut_subcommands(hide_env_values)
    }
    hide_env_values(<Cli as clap::CommandFactory>::command())
}

fn main() -> ExitCode {
    let cli = match command()
        .try_get_matches()
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help/version to stdout with exit 0, and usage errors with exit 2;
            // asked for JSON stderr, a usage error is one JSON line too.
            if e.use_stderr() && exit::json_requested() {
                exit::init_logging(None, exit::LogFormat::Json);
                let text = e.render().to_string();
                exit::error(text.trim().trim_start_matches("error: "));
            } else {
                let _ = e.print();
            }
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
                let mut cmd = command();
                clap_complete::generate(shell, &mut cmd, "cxone-uuid", &mut std::io::stdout());
                Ok(ExitCode::SUCCESS)
            }
            Command::Manpage => {
                let cmd = command();
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    /// Every command's long help, recursively, with its path.
    fn helps(cmd: &mut clap::Command, path: String, out: &mut Vec<(String, String)>) {
        out.push((path.clone(), cmd.render_long_help().to_string()));
        for sub in cmd.get_subcommands_mut() {
            let p = format!("{path} {}", sub.get_name());
            helps(sub, p, out);
        }
    }

    #[test]
    fn no_help_shows_an_empty_environment_value() {
        let mut cli = super::command();
        cli.build();
        let mut all = Vec::new();
        helps(&mut cli, "cxone-uuid".to_string(), &mut all);
        for (path, text) in all {
            for part in text.split("[env: ").skip(1) {
                let shown = part.split(']').next().unwrap_or_default();
                assert!(!shown.ends_with('='), "{path} --help shows [env: {shown}]");
            }
        }
    }
}
