//! What `run_started` records about how the run was made, for a compliance reader. Built field
//! by field from the flags and the configuration, so a secret can never slip in.

use cxone_uuid_client::{ClientConfig, ProviderConfig};
use serde_json::{json, Map, Value};

use super::args::Args;

/// The `run_started` metadata: the run's flags, then the connection settings.
pub(super) fn run_settings(
    args: &Args,
    config: &ClientConfig,
    pending: usize,
    registry: &str,
    sinks: &str,
) -> Map<String, Value> {
    let mut settings = Map::new();
    settings.insert("tool_version".into(), json!(env!("CARGO_PKG_VERSION")));
    settings.insert("count".into(), json!(args.count));
    settings.insert("resume".into(), json!(args.resume));
    settings.insert("retry_failed".into(), json!(args.retry_failed));
    settings.insert("on_ambiguous".into(), json!(args.on_ambiguous));
    settings.insert("pending".into(), json!(pending));
    settings.insert("uuid_version".into(), json!(args.uuid_version));
    settings.insert("concurrency".into(), args.transport.concurrency.to_json());
    settings.insert("rate".into(), json!(config.rate.to_string()));
    settings.insert("max_retries".into(), json!(args.transport.max_retries));
    settings.insert("timeout_s".into(), json!(args.transport.timeout));
    settings.insert("registry".into(), json!(registry));
    settings.insert("audit".into(), json!(sinks));
    settings.insert("audit_sync".into(), json!(args.audit.audit_sync));
    settings.insert("test_entropy".into(), json!(args.test_entropy.is_some()));
    settings.extend(settings_of(config));
    settings
}

/// The run's settings for `run_started`: what a compliance reader needs to know how the run was
/// made. Built field by field from the configuration so a secret can never slip in.
fn settings_of(config: &ClientConfig) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("provider".into(), json!(config.provider_kind().as_str()));
    m.insert("base_url".into(), json!(config.base_url));
    m.insert("token_url".into(), json!(config.token_url));
    match &config.provider {
        ProviderConfig::Cxone(x) => {
            m.insert("issuer".into(), json!(x.issuer));
            m.insert("execute_path".into(), json!(x.execute_path));
        }
        ProviderConfig::Genesys(g) if g.region.is_some() => {
            m.insert("region".into(), json!(g.region));
        }
        _ => {}
    }
    m.insert(
        "auth_method".into(),
        json!(format!("{:?}", config.effective_auth_method()).to_lowercase()),
    );
    m.insert("scope".into(), json!(config.scope));
    m.insert("input_name".into(), json!(config.input_name));
    m.insert(
        "extra_inputs".into(),
        json!(config
            .extra_inputs
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()),
    );
    m.insert(
        "max_retry_after_s".into(),
        json!(config.max_retry_after.as_secs_f64()),
    );
    m.insert(
        "backoff_base_s".into(),
        json!(config.backoff_base.as_secs_f64()),
    );
    m.insert(
        "backoff_cap_s".into(),
        json!(config.backoff_cap.as_secs_f64()),
    );
    m
}
