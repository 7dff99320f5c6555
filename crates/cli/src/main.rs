//! `cxone-uuid`: generate RFC 9562 UUIDs, submit each to a CXone Data Action, and keep a
//! tamper-evident audit trail.
//!
//! This binary is the one place that wires the library crates together: every sink and registry
//! backend is chosen here by an explicit `match` over its spec (see `sinks.rs`, `registries.rs`),
//! one `#[cfg(feature)]` arm each, so a reader finds every backend on one screen.

use std::process::ExitCode;

/// jemalloc instead of glibc's malloc: every request builds and drops its headers, body and
/// response buffers on several runtime threads, and glibc's per-thread arenas spend a
/// measurable share of the hot path on that (README, performance).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::{Parser, Subcommand};

mod audit_cmd;
mod config;
mod config_file;
mod demo;
mod exit;
mod generate;
mod import;
mod metrics;
mod mock_cmd;
mod registries;
mod report;
mod run;
mod s3_args;
mod settings;
mod signals;
mod sinks;
mod token;
mod trail_lock;
mod validate;

const TOP_HELP: &str = "\
Examples:
  cxone-uuid demo                                  the main job against an embedded stand-in
  cxone-uuid generate -n 10                        ten UUIDs, offline
  cxone-uuid run -n 100 --audit jsonl:trail.jsonl  submit 100 UUIDs (settings: run --help)
  cxone-uuid audit verify jsonl:trail.jsonl        prove the trail intact

Exit codes: 0 success, 1 the job failed, 2 usage or configuration error (nothing was sent),
130/143/129 stopped by Ctrl-C/SIGTERM/SIGHUP after draining.";

const MOCK_HELP: &str = "\
It accepts the demo credentials shown above (printed again at start-up) and records what it
received; point run or token at the URLs it prints.

Examples:
  cxone-uuid mock --bind 127.0.0.1:8080                      the tutorial API on a fixed port
  cxone-uuid mock --provider genesys --rate-limit 5 \\
      --genesys-limit client.credentials.token.rate.per.minute=300   429s as Genesys sends them
  cxone-uuid mock --script 500,429:ra=2,200 --latency-ms 50  each UUID: a 500, a 429, then success
  cxone-uuid mock --provider cxone --discovery-fault no-tenant      a broken CXone discovery";

const AUDIT_HELP: &str = "\
Examples:
  cxone-uuid audit verify jsonl:trail.jsonl --public-key audit.key.pub
  cxone-uuid audit import trail.jsonl --db trail.db
  cxone-uuid audit import s3://bucket/trails --s3-region eu-west-1 --since 2026-03-01 --db march.db
  cxone-uuid audit report --db march.db --output html -o march.html
  cxone-uuid audit query --db trail.db --event action_failed --since 2026-03-01
  cxone-uuid audit keygen --out audit.key
  cxone-uuid audit flush s3://bucket/trails --s3-region eu-west-1

Exit codes: 0 intact / done, 1 broken or failed, 2 usage or configuration error.";

/// Options `token` takes through the settings it shares with `run` but never uses: parsed (so
/// one environment or --config serves both), not listed in `token --help`.
const RUN_ONLY: &[&str] = &[
    "data_action_id",
    "input_name",
    "inputs",
    "path_template",
    "echo_field",
    "test_action",
    "flatten",
    "execute_path",
    "body_template",
    "concurrency",
    "max_concurrency",
    "rate",
];

/// S3 options that only writing (`run`, `audit flush`) uses: reading an archive needs the
/// endpoint, region, addressing and spool, not batching, encryption or retention.
const S3_WRITE_ONLY: &[&str] = &[
    "s3_batch_events",
    "s3_batch_secs",
    "s3_sse",
    "s3_kms_key_id",
    "s3_object_lock_days",
];

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
    #[command(after_help = MOCK_HELP)]
    Mock(mock_cmd::Args),
    /// Fetch a token and show who and where it authenticated (never the token).
    Token(Box<token::Args>),
    /// Verify, query, import and sign audit trails.
    #[command(subcommand, after_help = AUDIT_HELP)]
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
    fn hide(cmd: clap::Command, ids: &[&str]) -> clap::Command {
        ids.iter()
            .fold(cmd, |c, id| c.mut_arg(*id, |a| a.hide(true)))
    }
    let cmd = hide_env_values(<Cli as clap::CommandFactory>::command())
        .mut_subcommand("token", |t| hide(t, RUN_ONLY))
        .mut_subcommand("audit", |a| {
            a.mut_subcommand("verify", |v| hide(v, S3_WRITE_ONLY))
        });
    // A build without S3 has no use for any S3 option: `audit verify` would only list them.
    if cfg!(feature = "s3") {
        cmd
    } else {
        fn hide_s3(cmd: clap::Command) -> clap::Command {
            cmd.mut_args(|a| {
                if a.get_id().as_str().starts_with("s3_") {
                    a.hide(true)
                } else {
                    a
                }
            })
            .mut_subcommands(hide_s3)
        }
        hide_s3(cmd)
    }
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cmd = command();
    let parse = |argv: &[std::ffi::OsString]| {
        cmd.clone()
            .try_get_matches_from(argv)
            .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m).map(|c| (c, m)))
    };
    // clap prints help/version to stdout with exit 0, and usage errors with exit 2; asked for
    // JSON stderr, a usage error is one JSON line too.
    let clap_exit = |e: clap::Error| {
        if e.use_stderr() && exit::json_requested() {
            exit::init_logging(None, exit::LogFormat::Json);
            let text = e.render().to_string();
            exit::error(text.trim().trim_start_matches("error: "));
        } else {
            let _ = e.print();
        }
        ExitCode::from(if e.use_stderr() { 2 } else { 0 })
    };
    let cli = match parse(&argv) {
        Err(e) => return clap_exit(e),
        // A --config file's settings become flags, parsed again under flags and environment.
        Ok((cli, m)) => match config_file::with_file_settings(&cmd, &m, &argv) {
            Ok(None) => cli,
            Ok(Some(with_file)) => match parse(&with_file) {
                Ok((cli, _)) => cli,
                Err(e) => return clap_exit(e),
            },
            Err(e) => {
                exit::init_logging(None, cli.log_format);
                return exit::report(&e);
            }
        },
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

    #[test]
    fn every_visible_command_has_examples() {
        let mut cli = super::command();
        cli.build();
        let mut all = Vec::new();
        helps(&mut cli, "cxone-uuid".to_string(), &mut all);
        for (path, text) in all {
            if path
                .split(' ')
                .any(|w| matches!(w, "help" | "completions" | "manpage"))
            {
                continue;
            }
            assert!(text.contains("Example"), "{path} --help has no examples");
        }
    }

    /// The long help of the command at `path` (names below the top level).
    fn help_of(path: &[&str]) -> String {
        let mut cmd = super::command();
        cmd.build();
        let mut c = &mut cmd;
        for name in path {
            c = c.find_subcommand_mut(name).unwrap();
        }
        c.render_long_help().to_string()
    }

    #[test]
    fn token_help_lists_only_what_token_uses() {
        let text = help_of(&["token"]);
        for flag in super::RUN_ONLY {
            let flag = format!("--{} ", flag.replace('_', "-"));
            assert!(!text.contains(&flag), "token --help lists {flag}");
        }
        for used in [
            "--provider",
            "--client-secret-file",
            "--token-url",
            "--timeout",
            "--max-retries",
        ] {
            assert!(text.contains(used), "token --help lacks {used}");
        }
        // Still accepted, so one environment or --config serves run and token.
        let parsed = super::command().try_get_matches_from([
            "cxone-uuid",
            "token",
            "--data-action-id",
            "a",
            "--concurrency",
            "8",
        ]);
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn audit_verify_help_lists_no_upload_options() {
        let text = help_of(&["audit", "verify"]);
        for flag in super::S3_WRITE_ONLY {
            let flag = format!("--{}", flag.replace('_', "-"));
            assert!(!text.contains(&flag), "audit verify --help lists {flag}");
        }
        assert_eq!(text.contains("--s3-endpoint"), cfg!(feature = "s3"));
        let mock = help_of(&["mock"]);
        assert!(mock.contains("[default: demo-secret]"), "{mock}");
    }
}
