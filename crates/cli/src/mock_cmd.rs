//! `cxone-uuid mock`: serve the CXone / Genesys stand-in from the command line.
//!
//! The first stdout line is the contract with scripts and test harnesses that start this as a
//! child process: `listening on http://HOST:PORT`, flushed at once, nothing before it. Details
//! for a human go to stderr. The mock accepts well-known demo credentials, so it binds to
//! loopback unless `--allow-remote` says otherwise.

use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::Context as _;
use cxone_uuid_mock::{
    format_script, parse_script, DiscoveryFault, GenesysLimit, Limit, LimitHeaders, Malformed,
    MockConfig, MockServer, Provider, CXONE_ACCESS_KEY_TOKEN_PATH, DEFAULT_CXONE_EXECUTE_PATH,
};

use crate::exit::note;

/// A command-line value that must not appear in `Debug` output.
#[derive(Clone)]
pub(crate) struct Hidden(String);

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Hidden {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Hidden(s.to_string()))
    }
}

/// Arguments of `cxone-uuid mock`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: String,
    /// Allow a non-loopback --bind (the mock accepts demo credentials: keep it off networks).
    #[arg(long)]
    allow_remote: bool,
    /// Serve Prometheus metrics of what the mock received and refused at
    /// http://HOST:PORT/metrics (`cxone_uuid_mock_*`; port 0 picks one, said on stderr). No
    /// environment variable: `run`'s CXONE_UUID_METRICS_ADDR must not make the mock take its port.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
    /// API dialect to imitate: tutorial, genesys or cxone.
    #[arg(long, default_value = "tutorial")]
    provider: Provider,
    /// Token bucket on execute requests, in requests/s; over it: 429 with Retry-After. The same
    /// as --limit bucket:R.
    #[arg(long, value_name = "R")]
    rate_limit: Option<f64>,
    // The doc is the flag's --help text, not rustdoc: `[:BURST]` is not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    /// A limit every execute must pass (repeatable): bucket:R[:BURST] (R as 40, 40/s,
    /// 300/min), window:N/DURATION (300/10s, 300/1m; aligned to the first request),
    /// token-window:N/DURATION (the same per access token), concurrency:K (in flight). Over
    /// any: 429 with Retry-After in whole seconds (at least 1), in the dialect's body shape.
    #[arg(long = "limit", value_name = "SPEC")]
    limits: Vec<Limit>,
    /// Quota headers on every execute answer: none, ietf (RateLimit-Policy and RateLimit; a
    /// concurrency:K limit as a qu="concurrent-requests" policy) or x (X-RateLimit-Limit,
    /// -Remaining, -Reset in delta seconds; no field for concurrency).
    #[arg(long, value_name = "STYLE", default_value = "none")]
    limit_headers: LimitHeaders,
    /// Milliseconds added to every execute response.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Probability (0..=1) that an execute answers --fail-status.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    fail_rate: f64,
    /// Status of random failures.
    #[arg(long, value_name = "S", default_value_t = 500)]
    fail_status: u16,
    /// Lifetime of issued tokens, in seconds (expired tokens get 401).
    #[arg(long, value_name = "S", default_value_t = 3600)]
    token_ttl: u64,
    /// Every execute answers this malformed body: not-array, html, oversized, truncated,
    /// echo-mismatch.
    #[arg(long, value_name = "KIND")]
    malformed: Option<Malformed>,
    /// Per-UUID script, e.g. "500,429:ra=2,200": the k-th attempt for a UUID gets step k.
    #[arg(long, value_name = "STEPS")]
    script: Option<String>,
    /// Token-endpoint script, e.g. "500,200": the k-th token request gets step k.
    #[arg(long, value_name = "STEPS")]
    token_script: Option<String>,
    /// Break CXone discovery: not-found, no-tenant, malformed-json.
    #[arg(long, value_name = "KIND")]
    discovery_fault: Option<DiscoveryFault>,
    /// Accepted client id.
    #[arg(long, default_value = "demo-client")]
    client_id: String,
    /// Accepted client secret.
    #[arg(long, default_value = "demo-secret")]
    client_secret: Hidden,
    /// Accepted access key id (cxone password grant).
    #[arg(long, default_value = "demo-key")]
    access_key_id: String,
    /// Accepted access key secret (cxone password grant).
    #[arg(long, default_value = "demo-key-secret")]
    access_key_secret: Hidden,
    /// Tenant id put in cxone id tokens and known to the discovery document.
    #[arg(long, default_value = "11111111-2222-4333-8444-555555555555")]
    tenant_id: String,
    /// Genesys: the limit every 429 names in its body's `limit` object, as KEY=VALUE (or
    /// KEY=VALUE@NAMESPACE), e.g. client.credentials.token.rate.per.minute=300,
    /// actions.concurrent.executions.max=50, requests.volume.max=1000. Applies to the
    /// --rate-limit bucket's 429s and to scripted ones.
    #[arg(long, value_name = "KEY=VALUE")]
    genesys_limit: Option<GenesysLimit>,
    /// CXone: the one path executes are accepted on; any other path answers 404.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_CXONE_EXECUTE_PATH)]
    execute_path: String,
}

impl Args {
    fn config(&self) -> anyhow::Result<MockConfig> {
        use crate::exit::usage;
        if !(0.0..=1.0).contains(&self.fail_rate) {
            return Err(usage(format!(
                "--fail-rate {} is outside 0..=1: give a probability such as 0.1",
                self.fail_rate
            )));
        }
        if !(100..=599).contains(&self.fail_status) {
            return Err(usage(format!(
                "--fail-status {} is not an HTTP status (100..=599)",
                self.fail_status
            )));
        }
        if let Some(r) = self.rate_limit {
            if !(r.is_finite() && r > 0.0) {
                return Err(usage(format!(
                    "--rate-limit {r} must be a positive number of requests per second"
                )));
            }
        }
        let script = |flag: &str, text: &Option<String>| match text {
            None => Ok(Vec::new()),
            Some(t) => parse_script(t).map_err(|e| usage(format!("{flag}: {e}"))),
        };
        Ok(MockConfig {
            provider: self.provider,
            client_id: self.client_id.clone(),
            client_secret: self.client_secret.0.clone(),
            access_key_id: self.access_key_id.clone(),
            access_key_secret: self.access_key_secret.0.clone(),
            tenant_id: self.tenant_id.clone(),
            token_ttl_secs: self.token_ttl,
            rate_limit: self.rate_limit,
            limits: self.limits.clone(),
            limit_headers: self.limit_headers,
            latency_ms: self.latency_ms,
            fail_rate: self.fail_rate,
            fail_status: self.fail_status,
            malformed: self.malformed,
            script: script("--script", &self.script)?,
            token_script: script("--token-script", &self.token_script)?,
            discovery_fault: self.discovery_fault,
            genesys_limit: self.genesys_limit.clone(),
            execute_path: self.execute_path.clone(),
        })
    }
}

/// A secret shown at start-up: the demo default itself (not a secret: it is in `--help`'s
/// source and the README), or only that one was given, so a real value never reaches a log.
fn shown(value: &Hidden, default: &str, flag: &str) -> String {
    if value.0 == default {
        format!("{default:?}")
    } else {
        format!("(given with {flag})")
    }
}

/// Every credential the mock accepts, one line each, for a user wiring a client to it.
fn credential_lines(args: &Args, cfg: &MockConfig, base: &str) -> Vec<String> {
    let client = format!(
        "accepts client id {:?}, client secret {}",
        cfg.client_id,
        shown(&args.client_secret, "demo-secret", "--client-secret")
    );
    let key = format!(
        "access key id {:?}, access key secret {}",
        cfg.access_key_id,
        shown(
            &args.access_key_secret,
            "demo-key-secret",
            "--access-key-secret"
        )
    );
    let mut lines = Vec::new();
    match cfg.provider {
        Provider::Tutorial => lines.push(format!("{client} (client credentials grant)")),
        Provider::Genesys => {
            lines.push(format!("{client} (client credentials grant, HTTP Basic)"));
            if let Some(l) = &cfg.genesys_limit {
                lines.push(format!(
                    "429s name the limit {} = {} (namespace {})",
                    l.key, l.value, l.namespace
                ));
            }
        }
        Provider::Cxone => {
            lines.push(format!(
                "{client} with {key} (password grant at {base}{})",
                cfg.provider.token_path()
            ));
            lines.push(format!(
                "accepts {key} (access-key token endpoint {base}{CXONE_ACCESS_KEY_TOKEN_PATH}, \
                 no client)"
            ));
            lines.push(format!(
                "tenant {}; executes only on {}",
                cfg.tenant_id, cfg.execute_path
            ));
        }
    }
    lines
}

/// Resolves --bind and refuses a non-loopback address unless --allow-remote.
async fn bind_addr(bind: &str, allow_remote: bool) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(bind)
        .await
        .map_err(|e| {
            crate::exit::usage(format!(
                "--bind {bind:?} is not an address: {e} (expected HOST:PORT, e.g. 127.0.0.1:0)"
            ))
        })?
        .collect();
    let Some(addr) = addrs
        .iter()
        .find(|a| a.ip().is_loopback())
        .or_else(|| addrs.first())
        .copied()
    else {
        return Err(crate::exit::usage(format!(
            "--bind {bind:?} resolves to no address"
        )));
    };
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(crate::exit::usage(format!(
            "--bind {addr} is not a loopback address: the mock accepts demo credentials, so \
             pass --allow-remote if you really mean to serve it beyond this machine"
        )));
    }
    Ok(addr)
}

/// Waits for Ctrl-C or (on Unix) SIGTERM, the signal test harnesses and service managers send.
/// The SIGTERM handler is installed when this is called, not when the wait is first polled: a
/// harness may signal as soon as it reads `listening on`, and before the handler exists SIGTERM
/// would kill the process instead of stopping it cleanly.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    let addr = bind_addr(&args.bind, args.allow_remote).await?;
    let metrics_addr = match &args.metrics_addr {
        Some(text) => Some(crate::metrics::resolve_addr(text)?),
        None => None,
    };
    let server = MockServer::start(config, addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let endpoint = match metrics_addr {
        Some(maddr) => {
            let recorded = server.recorder();
            let endpoint = crate::metrics::Endpoint::start(
                maddr,
                std::sync::Arc::new(move || crate::metrics::mock_page(&recorded())),
            )
            .await?;
            Some(endpoint)
        }
        None => None,
    };

    let stop = stop_signal();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}", server.base_url())
            .and_then(|()| out.flush())
            .context("cannot write to stdout")?;
    }
    let cfg = server.config();
    note(&format!(
        "mock {} provider: token endpoint {}",
        cfg.provider,
        server.token_url()
    ));
    for line in credential_lines(&args, cfg, &server.base_url()) {
        note(&line);
    }
    if !cfg.script.is_empty() {
        note(&format!("script per UUID: {}", format_script(&cfg.script)));
    }
    if !cfg.token_script.is_empty() {
        note(&format!(
            "token script: {}",
            format_script(&cfg.token_script)
        ));
    }
    if let Some(endpoint) = &endpoint {
        note(&format!(
            "metrics: serving http://{}/metrics",
            endpoint.addr()
        ));
    }
    note(&format!(
        "recorded requests at {}/__mock/recorded; Ctrl-C to stop",
        server.base_url()
    ));

    stop.await;
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
