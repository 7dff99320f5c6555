//! `--registry SPEC` to a [`Registry`]: one explicit match, one arm per backend.
//!
//! Every backend is on this screen: `memory` always, `sqlite:PATH` with the `registry-sqlite`
//! feature (part of `sqlite`),
//! `redis://` / `rediss://` with the `redis` feature. A spec whose backend is not compiled in
//! exits 2 naming the feature to rebuild with, so a script learns at once, not after a run.
//!
//! Exit codes: a malformed spec or a file that is not a registry is a usage error (2); a registry
//! that cannot be reached is a failure of the job (1), never a silent pass.

use std::sync::Arc;

use cxone_uuid_core::Registry;

use crate::exit::usage;

/// Default `--registry-prefix`.
const DEFAULT_PREFIX: &str = "cxone-uuid:";

/// Where uniqueness is checked; flattened into `generate` and `run`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RegistryArgs {
    /// Uniqueness registry: `memory` (this run only), `sqlite:PATH` (remembered across runs on
    /// this machine), or `redis://[USER:PASSWORD@]HOST[:PORT][/DB]` / `rediss://…` (shared by
    /// every process and machine using it). Put a URL with a password in the environment
    /// variable rather than on the command line, where `ps` shows it.
    #[arg(
        long,
        env = "CXONE_UUID_REGISTRY",
        hide_env_values = true,
        default_value = "memory",
        value_name = "SPEC"
    )]
    pub(crate) registry: String,

    /// Redis only: forget each UUID this many seconds after it was recorded [default: never].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) registry_ttl: Option<u64>,

    /// Redis only: key prefix, to keep environments apart in one database.
    #[arg(long, default_value = DEFAULT_PREFIX, value_name = "PREFIX")]
    pub(crate) registry_prefix: String,
}

/// Opens the registry described by the flags (`memory`, `sqlite:PATH`, `redis://…`,
/// `rediss://…`). `expected` is how many UUIDs this run will hold, so the memory registry can
/// size itself once.
pub(crate) async fn open_with(
    args: &RegistryArgs,
    expected: u64,
) -> anyhow::Result<Arc<dyn Registry>> {
    let spec = args.registry.trim();
    let is_redis = ["redis://", "rediss://", "redis+unix://"]
        .iter()
        .any(|s| spec.starts_with(s));
    if args.registry_ttl.is_some() && !is_redis {
        return Err(usage(
            "--registry-ttl applies only to a redis:// registry: memory and sqlite registries \
             remember every UUID for good",
        ));
    }
    match spec {
        "memory" => Ok(Arc::new(cxone_uuid_core::MemoryRegistry::with_capacity(
            usize::try_from(expected).unwrap_or(usize::MAX),
        ))),

        #[cfg(feature = "registry-sqlite")]
        s if s.starts_with("sqlite:") => {
            open_sqlite(s.strip_prefix("sqlite:").unwrap_or_default()).await
        }
        #[cfg(not(feature = "registry-sqlite"))]
        s if s.starts_with("sqlite:") => Err(usage(
            "this build has no sqlite registry; rebuild with --features registry-sqlite",
        )),

        #[cfg(feature = "redis")]
        s if is_redis => open_redis(s, args).await,
        #[cfg(not(feature = "redis"))]
        _ if is_redis => Err(usage(
            "this build has no redis registry; rebuild with --features redis",
        )),

        other => Err(usage(format!(
            "unknown registry {:?}: use memory, sqlite:PATH or redis://HOST:PORT/DB",
            redact(other)
        ))),
    }
}

#[cfg(feature = "registry-sqlite")]
async fn open_sqlite(path: &str) -> anyhow::Result<Arc<dyn Registry>> {
    use cxone_uuid_core::RegistryError;
    if path.is_empty() {
        return Err(usage(
            "--registry sqlite: needs a file path, e.g. sqlite:used-uuids.db",
        ));
    }
    match cxone_uuid_registry_sqlite::SqliteRegistry::open(path).await {
        Ok(reg) => Ok(Arc::new(reg)),
        // Not a registry file: the path is wrong, nothing was generated.
        Err(e @ RegistryError::Protocol { .. }) => Err(usage(e.to_string())),
        // The message already names the registry and says it is unavailable.
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

#[cfg(feature = "redis")]
async fn open_redis(url: &str, args: &RegistryArgs) -> anyhow::Result<Arc<dyn Registry>> {
    use cxone_uuid_registry_redis::{OpenError, RedisRegistry};
    let mut builder =
        RedisRegistry::builder(url).with_prefix(args.registry_prefix.clone().into_bytes());
    if let Some(secs) = args.registry_ttl {
        builder = builder.with_ttl(std::time::Duration::from_secs(secs));
    }
    match builder.connect().await {
        Ok(reg) => Ok(Arc::new(reg)),
        Err(e @ OpenError::Invalid { .. }) => Err(usage(e.to_string())),
        // The message already names the registry and says it is unavailable.
        Err(e) => Err(anyhow::Error::new(e)),
    }
}

/// An unknown spec is echoed back, but a URL-like one may carry a password: drop the userinfo.
fn redact(spec: &str) -> String {
    match spec.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            match rest[..end].rfind('@') {
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => spec.to_string(),
            }
        }
        None => spec.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_specs_never_echo_a_password() {
        assert_eq!(redact("memcached://u:pw@h:1/0"), "memcached://***@h:1/0");
        assert_eq!(redact("nonsense"), "nonsense");
    }
}
