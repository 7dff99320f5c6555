//! Settings and connection: everything that can go wrong before the first batch.

use std::time::Duration;

use cxone_uuid_core::RegistryError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, ConnectionAddr, ConnectionInfo};

use crate::registry::RedisRegistry;
use crate::DEFAULT_PREFIX;

/// Why a registry could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL or a setting is malformed: a usage error, nothing was contacted.
    #[error("invalid Redis registry settings: {message}")]
    Invalid {
        /// What is wrong (the URL itself is not repeated: it may hold a password).
        message: String,
    },
    /// The server could not be reached or refused the connection.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// Settings for [`RedisRegistry`]; build with [`RedisRegistry::builder`].
#[derive(Clone)]
pub struct RedisRegistryBuilder {
    url: String,
    prefix: Vec<u8>,
    ttl: Option<Duration>,
    connect_timeout: Duration,
    response_timeout: Duration,
    connect_attempts: usize,
}

impl std::fmt::Debug for RedisRegistryBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: show only the redacted form.
        f.debug_struct("RedisRegistryBuilder")
            .field("url", &redact(&self.url))
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl RedisRegistryBuilder {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            prefix: DEFAULT_PREFIX.as_bytes().to_vec(),
            ttl: None,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(10),
            connect_attempts: 3,
        }
    }

    /// Key prefix (default [`DEFAULT_PREFIX`]): separates environments sharing one database.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<Vec<u8>>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Forget each UUID this long after it was recorded (default: never). Sent as `PX`
    /// milliseconds; must be at least one millisecond.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Longest wait for a TCP (and TLS) connection (default 5 s).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Longest wait for a batch's replies (default 10 s); past it the batch is unavailable.
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Connection attempts before giving up, at start and on each reconnect (default 3, with
    /// jittered backoff from 100 ms).
    #[must_use]
    pub fn with_connect_attempts(mut self, attempts: usize) -> Self {
        self.connect_attempts = attempts.max(1);
        self
    }

    /// Connects (with the configured attempts) and checks the server answers `PING`.
    ///
    /// # Errors
    /// [`OpenError::Invalid`] for a malformed URL or TTL; [`OpenError::Registry`] holding
    /// [`RegistryError::Unavailable`] when the server cannot be reached or refuses us.
    pub async fn connect(self) -> Result<RedisRegistry, OpenError> {
        let ttl_ms = match self.ttl {
            None => None,
            Some(ttl) => match u64::try_from(ttl.as_millis()) {
                Ok(ms) if ms > 0 => Some(ms),
                _ => {
                    return Err(OpenError::Invalid {
                        message: format!(
                            "TTL {ttl:?} is out of range: give at least one millisecond"
                        ),
                    })
                }
            },
        };
        let client = Client::open(self.url.as_str()).map_err(|e| OpenError::Invalid {
            message: format!(
                "{e}; expected redis://[USER:PASSWORD@]HOST[:PORT][/DB] or rediss://…"
            ),
        })?;
        let describe = describe(client.get_connection_info());
        if matches!(
            client.get_connection_info().addr,
            ConnectionAddr::TcpTls { .. }
        ) {
            // rustls refuses to pick a crypto provider when more than one is compiled in (the
            // S3 SDK brings aws-lc-rs): install ring, which redis's TLS feature always brings.
            // An error only means the process already chose one, which is just as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        // backon computes factor * base^n milliseconds: 100 ms, 200 ms, 400 ms … with jitter.
        let config = ConnectionManagerConfig::new()
            .set_factor(100)
            .set_exponent_base(2)
            .set_max_delay(2_000)
            .set_number_of_retries(self.connect_attempts.saturating_sub(1))
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(self.response_timeout);
        let unavailable = |e: redis::RedisError| {
            OpenError::Registry(RegistryError::Unavailable {
                registry: describe.clone(),
                message: format!("cannot connect: {}", crate::registry::explain(&e)),
            })
        };
        let mut conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unavailable)?;
        redis::cmd("PING")
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(RedisRegistry::new(conn, self.prefix, ttl_ms, describe))
    }
}

/// The URL as a reader may see it: scheme, host, port and database, never user or password.
fn describe(info: &ConnectionInfo) -> String {
    let db = info.redis.db;
    match &info.addr {
        ConnectionAddr::Tcp(host, port) => format!("redis://{}:{port}/{db}", bracket(host)),
        ConnectionAddr::TcpTls { host, port, .. } => {
            format!("rediss://{}:{port}/{db}", bracket(host))
        }
        ConnectionAddr::Unix(path) => format!("redis+unix://{}?db={db}", path.display()),
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Best-effort redaction of a URL that may not even parse: drops everything between `://` and
/// the last `@` of the authority.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<not a URL>".to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn description_never_holds_credentials() {
        let c = Client::open("redis://alice:s3cret@cache.example:6380/3").unwrap();
        assert_eq!(
            describe(c.get_connection_info()),
            "redis://cache.example:6380/3"
        );
        let c = Client::open("rediss://:s3cret@cache.example/1").unwrap();
        assert_eq!(
            describe(c.get_connection_info()),
            "rediss://cache.example:6379/1"
        );
        let b = RedisRegistryBuilder::new("redis://u:s3cret@h:1/0");
        assert!(!format!("{b:?}").contains("s3cret"));
    }

    #[test]
    fn redact_hides_userinfo() {
        assert_eq!(redact("redis://u:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(redact("redis://h:1/0"), "redis://h:1/0");
        assert_eq!(redact("nonsense"), "<not a URL>");
    }

    #[tokio::test]
    async fn malformed_url_and_ttl_are_invalid_without_echoing_the_url() {
        let err = RedisRegistryBuilder::new("redis://:pw@[bad")
            .connect()
            .await
            .unwrap_err();
        assert!(matches!(err, OpenError::Invalid { .. }), "{err}");
        assert!(!err.to_string().contains("pw"), "{err}");
        let err = RedisRegistryBuilder::new("redis://127.0.0.1:1/0")
            .with_ttl(Duration::from_micros(10))
            .connect()
            .await
            .unwrap_err();
        assert!(matches!(err, OpenError::Invalid { .. }), "{err}");
    }
}
