//! `cxone-uuid demo`: the main job against an in-process stand-in, so a new user sees the whole
//! tool work without an account.
//!
//! The demo goes through exactly the code path of `run` (it parses a `run` command line), only
//! pointed at the embedded mock on an ephemeral loopback port with the mock's demo credentials.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use cxone_uuid_mock::{MockConfig, MockServer};

const AFTER_HELP: &str = "\
Examples:
  cxone-uuid demo                      # 100 UUIDs, audit in ./cxone_uuid_audit.jsonl
  cxone-uuid demo -n 1000 --fail-rate 0.1 --output json
  cxone-uuid audit verify jsonl:cxone_uuid_audit.jsonl";

/// Arguments of `demo`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct Args {
    /// How many UUIDs to submit.
    #[arg(short = 'n', long, default_value_t = 100)]
    count: u64,

    /// Requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: u32,

    /// Audit sink (repeatable) [default: jsonl:cxone_uuid_audit.jsonl, plus
    /// sqlite:cxone_uuid_audit.db when built with SQLite].
    #[arg(long = "audit", value_name = "SINK")]
    audit: Vec<String>,

    /// Share of requests the stand-in answers with 503, to show retries at work.
    #[arg(long, default_value_t = 0.05)]
    fail_rate: f64,

    /// Stand-in rate limit in requests/s (429 with Retry-After above it).
    #[arg(long)]
    rate_limit: Option<f64>,

    /// Latency the stand-in adds to each request, in ms.
    #[arg(long, default_value_t = 5)]
    latency_ms: u64,

    /// Summary format: text or json.
    #[arg(long, default_value = "text")]
    output: String,
}

/// Parses a `run` command line, so the demo shares every default and check of `run`.
#[derive(clap::Parser, Debug)]
struct RunLine {
    #[command(flatten)]
    run: crate::run::Args,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&args.fail_rate) {
        return Err(crate::exit::usage(format!(
            "--fail-rate {} must be between 0 and 1",
            args.fail_rate
        )));
    }
    let config = MockConfig {
        fail_rate: args.fail_rate,
        fail_status: 503,
        rate_limit: args.rate_limit,
        latency_ms: args.latency_ms,
        ..MockConfig::default()
    };
    let bind: SocketAddr = ([127, 0, 0, 1], 0).into();
    let server = MockServer::start(config.clone(), bind)
        .await
        .context("cannot start the embedded stand-in server")?;
    let base = server.base_url();

    let mut audit = args.audit.clone();
    if audit.is_empty() {
        audit.push(crate::run::DEFAULT_AUDIT.to_string());
        if cfg!(feature = "audit-sqlite") {
            audit.push("sqlite:cxone_uuid_audit.db".to_string());
        }
    }
    let mut argv: Vec<String> = vec![
        "demo".into(),
        "-n".into(),
        args.count.to_string(),
        "--concurrency".into(),
        args.concurrency.to_string(),
        "--client-id".into(),
        config.client_id.clone(),
        "--data-action-id".into(),
        "demo-action".into(),
        "--base-url".into(),
        base.clone(),
        "--token-url".into(),
        server.token_url(),
        "--provider".into(),
        "tutorial".into(),
        "--output".into(),
        args.output.clone(),
    ];
    for a in &audit {
        argv.push("--audit".into());
        argv.push(a.clone());
    }
    let line = RunLine::try_parse_from(&argv).map_err(|e| crate::exit::usage(e.to_string()))?;
    // The demo credentials are the stand-in's own, public by design; set in-process only.
    let client = crate::config::client_config_with_secret(
        &line.run.connect,
        &line.run.transport,
        config.client_secret.clone(),
    )?;
    let banner = format!(
        "demo: stand-in CXone at {base} (fail rate {}, latency {} ms); audit -> {}",
        args.fail_rate,
        args.latency_ms,
        audit.join(", ")
    );
    let code = crate::run::execute_job(line.run, client, Some(banner)).await;
    let recorded = server.recorded();
    server.shutdown().await;
    crate::exit::note(&format!(
        "demo: the stand-in received {} execute requests and {} token requests; verify the trail with `cxone-uuid audit verify {}`",
        recorded.execute_requests.len(),
        recorded.token_requests,
        audit.first().map(String::as_str).unwrap_or("none")
    ));
    code
}
