//! Integration tests of the mock over real HTTP on loopback, one binary grouped by topic.
#![allow(clippy::unwrap_used)]

mod cxone;
mod faults;
mod genesys;
mod script;
mod tutorial;

use cxone_uuid_mock::{MockConfig, MockServer, Provider};
use serde_json::{json, Value};

pub(crate) const UUID: &str = "0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b";

pub(crate) async fn start(config: MockConfig) -> MockServer {
    MockServer::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

pub(crate) async fn start_provider(provider: Provider) -> MockServer {
    start(MockConfig {
        provider,
        ..Default::default()
    })
    .await
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// A tutorial-dialect token with the default demo credentials.
pub(crate) async fn token(server: &MockServer) -> String {
    let resp = http()
        .post(server.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-client"),
            ("client_secret", "demo-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_string()
}

/// One tutorial execute with `uuid` as body and Idempotency-Key.
pub(crate) async fn execute(server: &MockServer, token: &str, uuid: &str) -> reqwest::Response {
    http()
        .post(format!(
            "{}/api/v2/data-actions/act-1/execute",
            server.base_url()
        ))
        .bearer_auth(token)
        .header("Idempotency-Key", uuid)
        .json(&json!({ "inputs": { "uuid": uuid } }))
        .send()
        .await
        .unwrap()
}
