//! Connection settings shared by `run`, `demo` and `token`: flags over environment over an
//! optional TOML file.
//!
//! clap already resolves flag-over-environment (`env = …`); the TOML file (`--config PATH`) only
//! fills what both left unset, so a user can keep non-secret defaults in a file and override them
//! per run. Secrets may come from the environment, a `*-file` flag, or the TOML file, but are
//! never accepted as plain flags' defaults in `--help`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};

use cxone_uuid_client::{AuthMethod, ClientConfig, CxoneAuth, Provider, RateSpec};

use crate::exit::usage;

/// How to reach and authenticate to the platform.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct ConnectArgs {
    /// TOML file with defaults for every setting of this command, each under its flag's name
    /// with underscores (`count = 500`, `concurrency = 8`, `audit = ["jsonl:t.jsonl"]`,
    /// `client_secret_file = "secret.txt"`); flags, then environment, win over it. A plain
    /// `client_secret` is refused unless only its owner can read the file.
    #[arg(long, value_name = "PATH")]
    pub(crate) config: Option<PathBuf>,

    /// Platform dialect: `tutorial` (the tutorial's API), `genesys` (Genesys Cloud Data
    /// Actions) or `cxone` (NICE CXone access keys with discovery).
    #[arg(long, env = "CXONE_PROVIDER", value_name = "NAME")]
    pub(crate) provider: Option<String>,

    /// OAuth client id [env: CXONE_CLIENT_ID, or GENESYS_CLIENT_ID for genesys].
    #[arg(long, value_name = "ID")]
    pub(crate) client_id: Option<String>,

    /// Read the OAuth client secret from this file [default: env CXONE_CLIENT_SECRET, or
    /// GENESYS_CLIENT_SECRET for genesys]. There is no plain flag: arguments show up in `ps`.
    #[arg(long, value_name = "PATH")]
    pub(crate) client_secret_file: Option<PathBuf>,

    /// The Data Action to execute (Genesys: the action id).
    #[arg(long, env = "CXONE_DATA_ACTION_ID", value_name = "ID")]
    pub(crate) data_action_id: Option<String>,

    /// API host when no base URL is given.
    #[arg(long = "env", env = "CXONE_ENV", value_name = "HOST")]
    pub(crate) cxone_env: Option<String>,

    /// API base URL [default: https://$CXONE_ENV, or the region's / discovered API host].
    #[arg(long, alias = "api-url", env = "CXONE_BASE_URL", value_name = "URL")]
    pub(crate) base_url: Option<String>,

    /// Token endpoint [default: $CXONE_BASE_URL/oauth2/token, or the region's / discovered one].
    #[arg(long, env = "CXONE_TOKEN_URL", value_name = "URL")]
    pub(crate) token_url: Option<String>,

    /// OAuth scope requested with client credentials.
    #[arg(long, env = "CXONE_SCOPE", value_name = "SCOPE")]
    pub(crate) scope: Option<String>,

    /// How the client id and secret reach the token endpoint: `post` (form body) or `basic`.
    #[arg(long, value_name = "METHOD")]
    pub(crate) auth_method: Option<String>,

    /// Name of the input that carries the UUID.
    #[arg(long, value_name = "NAME")]
    pub(crate) input_name: Option<String>,

    /// Extra input sent with every UUID (repeatable).
    #[arg(long = "input", value_name = "KEY=VALUE")]
    pub(crate) inputs: Vec<String>,

    /// Execute path template for deployments whose path differs; `{id}` is the action id.
    #[arg(long, value_name = "TEMPLATE")]
    pub(crate) path_template: Option<String>,

    /// Genesys Cloud region, e.g. mypurecloud.com, mypurecloud.ie, usw2.pure.cloud. It sets both
    /// the API URL (`https://api.REGION`) and the token URL (`https://login.REGION/oauth/token`);
    /// --base-url and --token-url replace them only together (one of them with a region is
    /// refused, as the token and the executions would go to different places).
    #[arg(long, env = "GENESYS_REGION", value_name = "REGION")]
    pub(crate) region: Option<String>,

    /// Genesys: the action output compared with the UUID sent (absent: no echo check).
    #[arg(long, value_name = "NAME")]
    pub(crate) echo_field: Option<String>,

    /// Genesys: call the action's `/test` variant, which reports each step (and the final
    /// error) on failure.
    #[arg(long)]
    pub(crate) test_action: bool,

    /// Genesys: send `flatten=true`, so outputs come back with dotted keys (Architect's
    /// flattening); --echo-field then names the dotted key literally, e.g. `record.id`.
    #[arg(long)]
    pub(crate) flatten: bool,

    /// CXone: how to get the token: `password` (OAuth password grant with a registered
    /// application's client id and secret) or `access-key` (NICE's access-key token endpoint:
    /// only the access key id and secret, with --area or --token-url).
    #[arg(long, env = "CXONE_AUTH", value_name = "password|access-key")]
    pub(crate) cxone_auth: Option<String>,

    /// CXone access-key auth: the area of the token endpoint, e.g. na1, au1, eu1
    /// (https://{area}.nice-incontact.com/authentication/v1/token/access-key).
    #[arg(long, env = "CXONE_AREA", value_name = "AREA")]
    pub(crate) area: Option<String>,

    /// CXone: the tenant id, where the token answer carries none.
    #[arg(long, env = "CXONE_TENANT_ID", value_name = "ID")]
    pub(crate) tenant_id: Option<String>,

    /// CXone: the OpenID issuer used for discovery.
    #[arg(long, env = "CXONE_ISSUER", value_name = "URL")]
    pub(crate) issuer: Option<String>,

    /// CXone: access key id of the API user.
    #[arg(long, env = "CXONE_ACCESS_KEY_ID", value_name = "ID")]
    pub(crate) access_key_id: Option<String>,

    /// CXone: read the access key secret from this file [default: env CXONE_ACCESS_KEY_SECRET].
    #[arg(long, value_name = "PATH")]
    pub(crate) access_key_secret_file: Option<PathBuf>,

    /// CXone: the path to POST each UUID to, e.g. a Studio script start.
    #[arg(long, value_name = "PATH")]
    pub(crate) execute_path: Option<String>,

    /// CXone: JSON body template with `{{uuid}}` and `{{input.NAME}}` placeholders.
    #[arg(long, value_name = "JSON")]
    pub(crate) body_template: Option<String>,
}

/// Retry, timeout and throughput settings.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct TransportArgs {
    /// Requests in flight at once: `auto` (grow while nothing pushes back, shrink on a
    /// concurrency limit's 429s or rising latency) or a fixed number (1 to 4096).
    #[arg(long, default_value = "auto", value_name = "auto|N", value_parser = parse_concurrency)]
    pub(crate) concurrency: Concurrency,

    /// The most requests in flight `--concurrency auto` may reach.
    #[arg(long, default_value_t = 64, value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub(crate) max_concurrency: u32,

    /// Client-side rate: `auto` (adapt to 429s and quota headers), `unlimited`, or a fixed R,
    /// R/s, R/min or R/h (e.g. 300/min) [default: auto, or `rate` in --config].
    #[arg(long, value_name = "auto|unlimited|R[/s|/min|/h]")]
    pub(crate) rate: Option<String>,

    /// Retries after the first attempt (so 3 means at most 4 attempts).
    #[arg(long, default_value_t = 3)]
    pub(crate) max_retries: u32,

    /// Per-attempt timeout in seconds.
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub(crate) timeout: f64,

    /// A Retry-After longer than this fails the UUID instead of waiting, in seconds.
    #[arg(long, default_value_t = 60.0, value_name = "SECS")]
    pub(crate) max_retry_after: f64,

    /// First backoff step in seconds (full jitter, doubling).
    #[arg(long, default_value_t = 0.5, value_name = "SECS")]
    pub(crate) backoff_base: f64,

    /// Longest backoff in seconds.
    #[arg(long, default_value_t = 30.0, value_name = "SECS")]
    pub(crate) backoff_cap: f64,
}

/// `--concurrency`: adaptive, or a fixed number of requests in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Concurrency {
    /// Adapt, up to `--max-concurrency`.
    Auto,
    /// Exactly this many.
    Fixed(u32),
}

impl Concurrency {
    /// As the run's settings record it: `"auto"` or the number.
    pub(crate) fn to_json(self) -> serde_json::Value {
        match self {
            Concurrency::Auto => serde_json::json!("auto"),
            Concurrency::Fixed(n) => serde_json::json!(n),
        }
    }
}

fn parse_concurrency(text: &str) -> Result<Concurrency, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok(Concurrency::Auto);
    }
    match t.parse::<u32>() {
        Ok(n) if (1..=4096).contains(&n) => Ok(Concurrency::Fixed(n)),
        _ => Err(format!(
            "{text:?} is not auto or a number of requests in flight from 1 to 4096"
        )),
    }
}

impl TransportArgs {
    /// The most requests in flight: the fixed number, or `--max-concurrency` for `auto`.
    pub(crate) fn max_in_flight(&self) -> usize {
        match self.concurrency {
            Concurrency::Auto => self.max_concurrency as usize,
            Concurrency::Fixed(n) => n as usize,
        }
    }
}

/// The connection settings of the TOML file. The file's other keys are the command's other flags,
/// applied by `config_file.rs`, which also rejects unknown keys (so typos are caught).
#[derive(serde::Deserialize, Default, Debug)]
struct FileConfig {
    provider: Option<String>,
    client_id: Option<String>,
    /// Plain text: refused unless only its owner can read the file.
    client_secret: Option<String>,
    /// A file holding the client secret, as --client-secret-file.
    client_secret_file: Option<PathBuf>,
    /// A file holding the access key secret, as --access-key-secret-file.
    access_key_secret_file: Option<PathBuf>,
    data_action_id: Option<String>,
    env: Option<String>,
    base_url: Option<String>,
    token_url: Option<String>,
    scope: Option<String>,
    auth_method: Option<String>,
    input_name: Option<String>,
    inputs: Option<BTreeMap<String, String>>,
    path_template: Option<String>,
    region: Option<String>,
    echo_field: Option<String>,
    test_action: Option<bool>,
    flatten: Option<bool>,
    cxone_auth: Option<String>,
    area: Option<String>,
    tenant_id: Option<String>,
    issuer: Option<String>,
    access_key_id: Option<String>,
    access_key_secret: Option<String>,
    execute_path: Option<String>,
    body_template: Option<String>,
    /// The same strings as `--rate` (`auto`, `unlimited`, `300/min`, ...).
    rate: Option<String>,
}

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read config file {}: {e}: check the path given to --config",
            path.display()
        ))
    })?;
    let file: FileConfig = toml::from_str(&text)
        .map_err(|e| usage(format!("config file {} is not valid: {e}", path.display())))?;
    if file.client_secret.is_some() || file.access_key_secret.is_some() {
        refuse_if_others_can_read(path)?;
    }
    Ok(file)
}

/// A secret in plain text is only as private as its file: one that other users can read is
/// refused, with the two ways out.
#[cfg(unix)]
fn refuse_if_others_can_read(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|e| usage(format!("cannot read config file {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(usage(format!(
            "config file {0} holds a secret in plain text but other users can read it (mode {1:o}): \
             run `chmod 600 {0}`, or keep the secret in its own file and name it with \
             client_secret_file / access_key_secret_file",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn refuse_if_others_can_read(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

/// `--rate`, else the file's `rate`, else `auto`; an error names where the bad value came from.
fn rate_spec(transport: &TransportArgs, file: &FileConfig) -> anyhow::Result<RateSpec> {
    match (&transport.rate, &file.rate) {
        (Some(flag), _) => flag
            .parse::<RateSpec>()
            .map_err(|e| usage(format!("--rate: {e}"))),
        (None, Some(text)) => text
            .parse::<RateSpec>()
            .map_err(|e| usage(format!("rate in the --config file: {e}"))),
        (None, None) => Ok(RateSpec::Auto),
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn read_secret_file(flag: &str, path: &Path) -> anyhow::Result<SecretString> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read {flag} {}: {e}", path.display())))?;
    let trimmed = text.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        return Err(usage(format!("{flag} {} is empty", path.display())));
    }
    Ok(SecretString::from(trimmed.to_string()))
}

fn parse_seconds(flag: &str, secs: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(secs).map_err(|_| {
        usage(format!(
            "{flag} must be a non-negative number of seconds, got {secs}"
        ))
    })
}

/// Builds the client configuration from flags, environment and file. The caller validates it
/// for its purpose (`run` needs an action, `token` does not), naming every missing setting.
pub(crate) fn client_config(
    connect: &ConnectArgs,
    transport: &TransportArgs,
) -> anyhow::Result<ClientConfig> {
    build(connect, transport, None)
}

/// As [`client_config`], with the client secret given in-process (the demo's stand-in
/// credentials), so the user's environment cannot leak into the demo.
pub(crate) fn client_config_with_secret(
    connect: &ConnectArgs,
    transport: &TransportArgs,
    secret: String,
) -> anyhow::Result<ClientConfig> {
    build(connect, transport, Some(SecretString::from(secret)))
}

fn build(
    connect: &ConnectArgs,
    transport: &TransportArgs,
    given_secret: Option<SecretString>,
) -> anyhow::Result<ClientConfig> {
    let file = match &connect.config {
        Some(path) => load_file(path)?,
        None => FileConfig::default(),
    };
    let provider_name = connect
        .provider
        .clone()
        .or(file.provider.clone())
        .unwrap_or_else(|| "tutorial".to_string());
    let provider: Provider = provider_name
        .parse()
        .map_err(|e: cxone_uuid_client::Error| usage(format!("--provider: {e}")))?;
    let genesys = provider == Provider::Genesys;

    let client_id = connect
        .client_id
        .clone()
        .or_else(|| env_nonempty("CXONE_CLIENT_ID"))
        .or_else(|| genesys.then(|| env_nonempty("GENESYS_CLIENT_ID")).flatten())
        .or(file.client_id.clone());
    let client_secret = match (&connect.client_secret_file, given_secret) {
        (_, Some(secret)) => Some(secret),
        (Some(path), None) => Some(read_secret_file("--client-secret-file", path)?),
        (None, None) => match env_nonempty("CXONE_CLIENT_SECRET").or_else(|| {
            genesys
                .then(|| env_nonempty("GENESYS_CLIENT_SECRET"))
                .flatten()
        }) {
            Some(secret) => Some(SecretString::from(secret)),
            None => match &file.client_secret_file {
                Some(path) => Some(read_secret_file("client_secret_file", path)?),
                None => file.client_secret.clone().map(SecretString::from),
            },
        },
    };
    let access_key_secret = match &connect.access_key_secret_file {
        Some(path) => Some(read_secret_file("--access-key-secret-file", path)?),
        None => match env_nonempty("CXONE_ACCESS_KEY_SECRET") {
            Some(secret) => Some(SecretString::from(secret)),
            None => match &file.access_key_secret_file {
                Some(path) => Some(read_secret_file("access_key_secret_file", path)?),
                None => file.access_key_secret.clone().map(SecretString::from),
            },
        },
    };

    let mut inputs: Vec<(String, String)> = file
        .inputs
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    for kv in &connect.inputs {
        let Some((k, v)) = kv.split_once('=') else {
            return Err(usage(format!(
                "--input {kv:?} is not KEY=VALUE: write e.g. --input source=batch"
            )));
        };
        if k.is_empty() {
            return Err(usage(format!("--input {kv:?} has an empty key")));
        }
        inputs.retain(|(existing, _)| existing != k);
        inputs.push((k.to_string(), v.to_string()));
    }

    let mut builder = ClientConfig::builder()
        .provider(provider)
        .with_test_action(connect.test_action || file.test_action.unwrap_or(false))
        .with_flatten(connect.flatten || file.flatten.unwrap_or(false))
        .with_max_retries(transport.max_retries)
        .with_timeout(parse_seconds("--timeout", transport.timeout)?)
        .with_max_retry_after(parse_seconds(
            "--max-retry-after",
            transport.max_retry_after,
        )?)
        .with_backoff_base(parse_seconds("--backoff-base", transport.backoff_base)?)
        .with_backoff_cap(parse_seconds("--backoff-cap", transport.backoff_cap)?)
        .with_rate(rate_spec(transport, &file)?)
        .with_concurrency(transport.max_in_flight())
        .with_adaptive_concurrency(transport.concurrency == Concurrency::Auto);
    for (k, v) in inputs {
        builder = builder.with_input(k, v);
    }
    if let Some(method) = connect.auth_method.clone().or(file.auth_method.clone()) {
        let m: AuthMethod = method
            .parse()
            .map_err(|e: cxone_uuid_client::Error| usage(format!("--auth-method: {e}")))?;
        builder = builder.with_auth_method(m);
    }
    if let Some(auth) = connect.cxone_auth.clone().or(file.cxone_auth.clone()) {
        let a: CxoneAuth = auth
            .parse()
            .map_err(|e: cxone_uuid_client::Error| crate::settings::client_error(e, provider))?;
        builder = builder.with_cxone_auth(a);
    }
    if let Some(id) = client_id {
        builder = builder.with_client_id(id);
    }
    if let Some(secret) = client_secret {
        builder = builder.with_client_secret(secret.expose_secret().to_string());
    }
    if let Some(secret) = access_key_secret {
        builder = builder.with_access_key_secret(secret.expose_secret().to_string());
    }
    // CXONE_ENV names the host; CXONE_BASE_URL (or --base-url) wins over it.
    let base_url = connect
        .base_url
        .clone()
        .or(file.base_url.clone())
        .or_else(|| {
            connect
                .cxone_env
                .clone()
                .or(file.env.clone())
                .map(|host| format!("https://{host}"))
        });
    if let Some(url) = base_url {
        builder = builder.with_base_url(url);
    }
    macro_rules! opt {
        ($field:ident, $file:ident, $method:ident) => {
            if let Some(v) = connect.$field.clone().or(file.$file.clone()) {
                builder = builder.$method(v);
            }
        };
    }
    opt!(data_action_id, data_action_id, with_action_id);
    opt!(token_url, token_url, with_token_url);
    opt!(scope, scope, with_scope);
    opt!(input_name, input_name, with_input_name);
    opt!(path_template, path_template, with_path_template);
    opt!(region, region, with_region);
    opt!(echo_field, echo_field, with_echo_field);
    opt!(issuer, issuer, with_issuer);
    opt!(execute_path, execute_path, with_execute_path);
    opt!(body_template, body_template, with_body_template);
    opt!(access_key_id, access_key_id, with_access_key_id);
    opt!(area, area, with_area);
    opt!(tenant_id, tenant_id, with_tenant_id);
    Ok(builder.build())
}
