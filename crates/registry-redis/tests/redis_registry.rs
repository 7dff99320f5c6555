//! The Redis registry against a real `redis-server` (see `support`): the registry contract
//! (atomicity across racing callers, duplicates inside a batch, a later connection remembering)
//! from the shared conformance suite, then what is Redis's own: key layout and TTL, and an
//! outage reported, never skipped.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::time::Duration;

use cxone_uuid_core::conformance::Backend;
use cxone_uuid_core::{Novelty, Registry, RegistryError};
use cxone_uuid_registry_redis::{OpenError, RedisRegistry};
use support::{unique_prefix, TestRedis};
use uuid::Uuid;

/// A store is a key prefix on the server no other test uses; each handle is a connection of its
/// own, as separate processes would have. `Registry::len` is unknown for Redis, so the suite
/// counts with `SCAN` over the prefix.
struct Redis {
    server: TestRedis,
}

impl Backend for Redis {
    type Registry = RedisRegistry;
    type Store = String;

    async fn create(&self) -> Self::Store {
        unique_prefix("conformance")
    }

    async fn open(&self, prefix: &Self::Store) -> Self::Registry {
        RedisRegistry::builder(self.server.url())
            .with_prefix(prefix.clone())
            .connect()
            .await
            .unwrap()
    }

    async fn count(&self, reg: &Self::Registry) -> u64 {
        reg.count_keys().await.unwrap()
    }
}

mod conformance {
    use super::{Redis, TestRedis};
    // The server lives as long as the test: a fresh one, or the one xtask started.
    cxone_uuid_core::registry_conformance!(Redis { server: TestRedis::shared() }; persistent);
}

#[tokio::test]
async fn keys_are_prefix_plus_raw_bytes_and_carry_the_ttl() {
    let server = TestRedis::shared();
    let prefix = unique_prefix("ttl");
    let reg = RedisRegistry::builder(server.url())
        .with_prefix(prefix.clone())
        .with_ttl(Duration::from_secs(600))
        .connect()
        .await
        .unwrap();
    let id = Uuid::new_v4();
    reg.check_and_insert(&[id]).await.unwrap();
    let mut expected = prefix.into_bytes();
    expected.extend_from_slice(id.as_bytes());
    assert_eq!(reg.key_for(&id), expected);
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(&expected)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(pttl > 500_000 && pttl <= 600_000, "PTTL {pttl}");
}

#[tokio::test]
async fn unreachable_server_is_unavailable_and_names_the_url_without_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = RedisRegistry::builder(&format!("redis://:hunter2@127.0.0.1:{port}/2"))
        .with_connect_attempts(1)
        .connect()
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, OpenError::Registry(RegistryError::Unavailable { .. })),
        "{text}"
    );
    assert!(
        text.contains(&format!("redis://127.0.0.1:{port}/2")),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
}

#[tokio::test]
async fn server_stopped_mid_use_is_unavailable_never_a_pass() {
    let mut server = TestRedis::spawn(&["--requirepass", "hunter2"]);
    let url = format!("redis://:hunter2@127.0.0.1:{}/0", server.port());
    let reg = RedisRegistry::builder(&url)
        .with_connect_attempts(1)
        .with_response_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    let first: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
    assert!(reg
        .check_and_insert(&first)
        .await
        .unwrap()
        .iter()
        .all(|n| *n == Novelty::New));
    server.stop();
    // Every batch after the outage fails (the first on the dead socket, later ones on the
    // reconnect attempts): none is answered as if it had been checked.
    for _ in 0..3 {
        let batch: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
        let err = reg.check_and_insert(&batch).await.unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RegistryError::Unavailable { .. }), "{text}");
        assert!(
            text.contains(&format!("127.0.0.1:{}", server.port())),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
    }
}

#[tokio::test]
async fn wrong_password_is_unavailable() {
    let server = TestRedis::spawn(&["--requirepass", "right"]);
    let url = format!("redis://:wrong@127.0.0.1:{}/0", server.port());
    let err = RedisRegistry::builder(&url)
        .with_connect_attempts(1)
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, OpenError::Registry(RegistryError::Unavailable { .. })),
        "{err}"
    );
    assert!(!err.to_string().contains("wrong@"), "{err}");
}

#[tokio::test]
async fn tls_url_against_a_plain_server_fails_cleanly() {
    // Exercises the rustls set-up (crypto provider choice) without a certificate: the
    // handshake must fail as an error, not a panic, and the description keeps the scheme.
    let server = TestRedis::spawn(&[]);
    let url = format!("rediss://127.0.0.1:{}/0", server.port());
    let err = RedisRegistry::builder(&url)
        .with_connect_attempts(1)
        .with_connect_timeout(Duration::from_secs(3))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(err, OpenError::Registry(RegistryError::Unavailable { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("rediss://127.0.0.1"), "{err}");
}

#[tokio::test]
async fn the_registry_reconnects_when_the_server_comes_back() {
    let mut server = TestRedis::spawn(&[]);
    let reg = RedisRegistry::builder(server.url())
        .with_connect_attempts(2)
        .connect()
        .await
        .unwrap();
    let id = Uuid::new_v4();
    assert_eq!(
        reg.check_and_insert(&[id]).await.unwrap(),
        vec![Novelty::New]
    );
    server.stop();
    assert!(reg.check_and_insert(&[Uuid::new_v4()]).await.is_err());
    server.restart();
    // The manager reconnects in the background; allow it a few seconds at most.
    let mut answer = None;
    for _ in 0..50 {
        if let Ok(a) = reg.check_and_insert(&[Uuid::new_v4()]).await {
            answer = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer, Some(vec![Novelty::New]), "no reconnect within 5 s");
}
