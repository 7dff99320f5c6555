//! Integration tests of the client against the in-process mock, grouped by topic in one test
//! binary so the suite links once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cxone;
mod faults;
mod genesys;
mod rate;
mod tokens;
mod tutorial;

use std::time::Duration;

use cxone_uuid_client::{Client, ClientConfig, ClientConfigBuilder, Provider};
use cxone_uuid_mock::{parse_script, MockConfig, MockServer};

/// Starts a mock on an ephemeral loopback port.
pub async fn mock(config: MockConfig) -> MockServer {
    MockServer::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("mock starts")
}

/// A mock with a per-UUID script such as `"500,200"`.
pub async fn scripted(script: &str) -> MockServer {
    mock(MockConfig {
        script: parse_script(script).unwrap(),
        ..Default::default()
    })
    .await
}

/// Tutorial settings pointing at the mock, with fast backoff so tests do not wait long.
pub fn tutorial(server: &MockServer) -> ClientConfigBuilder {
    ClientConfig::builder()
        .provider(Provider::Tutorial)
        .with_client_id("demo-client")
        .with_client_secret("demo-secret")
        .with_action_id("act-1")
        .with_base_url(server.base_url())
        .with_backoff_base(Duration::from_millis(10))
        .with_backoff_cap(Duration::from_millis(50))
        .with_timeout(Duration::from_secs(5))
}

/// Builds a client from validated settings.
pub fn client(builder: ClientConfigBuilder) -> Client {
    let config = builder.build();
    config.validate().expect("valid config");
    Client::new(config).expect("client builds")
}
