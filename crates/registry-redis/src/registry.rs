//! The check-and-insert itself: one pipeline of `SET NX` per batch.

use async_trait::async_trait;
use cxone_uuid_core::{Novelty, Registry, RegistryError};
use redis::aio::ConnectionManager;
use redis::Value;
use uuid::Uuid;

use crate::builder::RedisRegistryBuilder;

/// A uniqueness registry in one Redis database. Cheap to clone: clones share the multiplexed
/// connection, so concurrent batches from many tasks interleave on one socket.
#[derive(Clone)]
pub struct RedisRegistry {
    conn: ConnectionManager,
    prefix: Vec<u8>,
    ttl_ms: Option<u64>,
    describe: String,
}

impl std::fmt::Debug for RedisRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRegistry")
            .field("server", &self.describe)
            .field("prefix", &String::from_utf8_lossy(&self.prefix))
            .field("ttl_ms", &self.ttl_ms)
            .finish_non_exhaustive()
    }
}

impl RedisRegistry {
    /// Starts building a registry at `url` (`redis://[USER:PASSWORD@]HOST[:PORT][/DB]`, or
    /// `rediss://` for TLS, checked against the system's root certificates).
    pub fn builder(url: &str) -> RedisRegistryBuilder {
        RedisRegistryBuilder::new(url)
    }

    /// Connects with the default settings (prefix [`crate::DEFAULT_PREFIX`], no TTL).
    ///
    /// # Errors
    /// As [`RedisRegistryBuilder::connect`].
    pub async fn connect(url: &str) -> Result<Self, crate::OpenError> {
        Self::builder(url).connect().await
    }

    pub(crate) fn new(
        conn: ConnectionManager,
        prefix: Vec<u8>,
        ttl_ms: Option<u64>,
        describe: String,
    ) -> Self {
        Self {
            conn,
            prefix,
            ttl_ms,
            describe,
        }
    }

    /// The Redis key that records `id`: the prefix followed by the UUID's 16 bytes.
    pub fn key_for(&self, id: &Uuid) -> Vec<u8> {
        let mut key = Vec::with_capacity(self.prefix.len() + 16);
        key.extend_from_slice(&self.prefix);
        key.extend_from_slice(id.as_bytes());
        key
    }

    /// Counts the keys under the prefix with `SCAN`: it walks the whole database, so it is for
    /// tests and reports, not for every batch (which is why [`Registry::len`] does not use it).
    ///
    /// # Errors
    /// [`RegistryError::Unavailable`] when the server cannot answer.
    pub async fn count_keys(&self) -> Result<u64, RegistryError> {
        let pattern = glob_escape(&self.prefix);
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut count: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(&e))?;
            count += keys.len() as u64;
            if next == 0 {
                return Ok(count);
            }
            cursor = next;
        }
    }

    fn unavailable(&self, e: &redis::RedisError) -> RegistryError {
        RegistryError::Unavailable {
            registry: self.describe.clone(),
            message: explain(e),
        }
    }
}

/// The error and what the user can do about it.
pub(crate) fn explain(e: &redis::RedisError) -> String {
    let text = e.to_string();
    let hint = if text.contains("certificate") {
        ": the server's TLS certificate is not trusted here; if it comes from a private CA, \
         point SSL_CERT_FILE at that CA's PEM file"
    } else if e.is_timeout() {
        ": Redis did not answer in time (overloaded, or a network problem)"
    } else if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
        ": check that Redis is running and reachable from here"
    } else {
        ""
    };
    format!("{text}{hint}")
}

/// `SCAN MATCH` takes a glob: escape the prefix so `*`, `?`, `[` or `\` in it match literally.
fn glob_escape(prefix: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 2);
    for &b in prefix {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'*');
    out
}

#[async_trait]
impl Registry for RedisRegistry {
    async fn check_and_insert(&self, ids: &[Uuid]) -> Result<Vec<Novelty>, RegistryError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        let mut key = Vec::with_capacity(self.prefix.len() + 16);
        for id in ids {
            key.clear();
            key.extend_from_slice(&self.prefix);
            key.extend_from_slice(id.as_bytes());
            let cmd = pipe.cmd("SET").arg(&key[..]).arg(1).arg("NX");
            if let Some(ms) = self.ttl_ms {
                cmd.arg("PX").arg(ms);
            }
        }
        let mut conn = self.conn.clone();
        let replies: Vec<Value> = pipe
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(&e))?;
        if replies.len() != ids.len() {
            return Err(RegistryError::Protocol {
                registry: self.describe.clone(),
                message: format!(
                    "{} replies to a pipeline of {} SET NX commands",
                    replies.len(),
                    ids.len()
                ),
            });
        }
        replies
            .into_iter()
            .map(|reply| match reply {
                Value::Okay => Ok(Novelty::New),
                Value::Nil => Ok(Novelty::Duplicate),
                Value::ServerError(e) => Err(RegistryError::Unavailable {
                    registry: self.describe.clone(),
                    message: format!("Redis refused a SET: {e:?}"),
                }),
                other => Err(RegistryError::Protocol {
                    registry: self.describe.clone(),
                    message: format!("unexpected reply to SET NX: {other:?}"),
                }),
            })
            .collect()
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_specials_in_the_prefix_are_escaped() {
        assert_eq!(
            glob_escape(b"a*b?[c]\\:"),
            b"a\\*b\\?\\[c\\]\\\\:*".to_vec()
        );
        assert_eq!(glob_escape(b"cxone-uuid:"), b"cxone-uuid:*".to_vec());
    }
}
