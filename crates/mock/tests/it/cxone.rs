use base64::Engine as _;
use cxone_uuid_mock::{DiscoveryFault, MockConfig, MockServer, Provider};
use serde_json::{json, Value};

use crate::{http, start, start_provider, UUID};

const TENANT: &str = "11111111-2222-4333-8444-555555555555";

async fn password_token(server: &MockServer, password: &str) -> reqwest::Response {
    http()
        .post(server.token_url())
        .basic_auth("demo-client", Some("demo-secret"))
        .form(&[
            ("grant_type", "password"),
            ("username", "demo-key"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap()
}

fn claims(id_token: &str) -> Value {
    let payload = id_token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn discovery_token_and_execute_end_to_end() {
    let server = start_provider(Provider::Cxone).await;
    let base = server.base_url();
    let oidc: Value = http()
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(oidc["issuer"], base);
    assert_eq!(oidc["token_endpoint"], server.token_url());

    let token: Value = password_token(&server, "demo-key-secret")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(token["token_type"], "Bearer");
    let tenant = claims(token["id_token"].as_str().unwrap())["tenantId"].clone();
    assert_eq!(tenant, TENANT);

    let conf: Value = http()
        .get(format!(
            "{base}/.well-known/cxone-configuration?tenantId={TENANT}"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(conf["api_endpoint"], base);
    assert_eq!(conf["area"], "na1");

    let resp = http()
        .post(format!("{base}/incontactapi/services/v31.0/scripts/start"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"skillId": 42, "parameters": ["x", UUID]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["uuid"], UUID);
    assert!(body["contactId"].is_u64());
    let rec = server.recorded();
    assert_eq!(
        rec.execute_requests[0].path,
        "/incontactapi/services/v31.0/scripts/start"
    );
    assert_eq!(rec.count_status(202), 1);
}

#[tokio::test]
async fn wrong_access_key_is_invalid_grant_and_unknown_tenant_is_404() {
    let server = start_provider(Provider::Cxone).await;
    let resp = password_token(&server, "nope").await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let resp = http()
        .get(format!(
            "{}/.well-known/cxone-configuration?tenantId=someone-else",
            server.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn access_key_with_equals_signs_survives_form_encoding() {
    let server = start(MockConfig {
        provider: Provider::Cxone,
        access_key_secret: "a+b=c&d%==".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(password_token(&server, "a+b=c&d%==").await.status(), 200);
}

#[tokio::test]
async fn discovery_faults() {
    let not_found = start(MockConfig {
        provider: Provider::Cxone,
        discovery_fault: Some(DiscoveryFault::NotFound),
        ..Default::default()
    })
    .await;
    let resp = http()
        .get(format!(
            "{}/.well-known/openid-configuration",
            not_found.base_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let no_tenant = start(MockConfig {
        provider: Provider::Cxone,
        discovery_fault: Some(DiscoveryFault::NoTenant),
        ..Default::default()
    })
    .await;
    let token: Value = password_token(&no_tenant, "demo-key-secret")
        .await
        .json()
        .await
        .unwrap();
    let claims = claims(token["id_token"].as_str().unwrap());
    assert!(claims.get("tenantId").is_none());
    assert!(claims.get("sub").is_some());

    let malformed = start(MockConfig {
        provider: Provider::Cxone,
        discovery_fault: Some(DiscoveryFault::MalformedJson),
        ..Default::default()
    })
    .await;
    let text = http()
        .get(format!(
            "{}/.well-known/cxone-configuration?tenantId={TENANT}",
            malformed.base_url()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[tokio::test]
async fn execute_needs_a_token_and_a_uuid() {
    let server = start_provider(Provider::Cxone).await;
    let url = format!(
        "{}/incontactapi/services/v31.0/scripts/start",
        server.base_url()
    );
    let resp = http()
        .post(&url)
        .json(&json!({"uuid": UUID}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let token: Value = password_token(&server, "demo-key-secret")
        .await
        .json()
        .await
        .unwrap();
    let resp = http()
        .post(&url)
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"nothing": "here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = http().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn execute_finds_a_uuid_inside_pipe_separated_parameters() {
    let server = start_provider(Provider::Cxone).await;
    let token: Value = password_token(&server, "demo-key-secret")
        .await
        .json()
        .await
        .unwrap();
    let resp = http()
        .post(format!(
            "{}/incontactapi/services/v31.0/scripts/start",
            server.base_url()
        ))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"scriptName": "Register", "parameters": format!("{UUID}|e2e")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.json::<Value>().await.unwrap()["uuid"], UUID);
    assert_eq!(
        server.recorded().execute_requests[0].uuid.as_deref(),
        Some(UUID)
    );
}

#[tokio::test]
async fn execute_only_on_the_configured_path() {
    let server = start_provider(Provider::Cxone).await;
    let token: Value = password_token(&server, "demo-key-secret")
        .await
        .json()
        .await
        .unwrap();
    let resp = http()
        .post(format!("{}/scripts/start", server.base_url()))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({ "parameters": UUID }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("/scripts/start"));
    assert!(server.recorded().execute_requests.is_empty());
}

#[tokio::test]
async fn access_key_token_needs_no_client() {
    let server = start_provider(Provider::Cxone).await;
    let url = format!(
        "{}{}",
        server.base_url(),
        cxone_uuid_mock::CXONE_ACCESS_KEY_TOKEN_PATH
    );
    let resp = http()
        .post(&url)
        .json(&json!({ "accessKeyId": "demo-key", "accessKeySecret": "wrong" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http()
        .post(&url)
        .json(&json!({ "accessKeyId": "demo-key", "accessKeySecret": "demo-key-secret" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token: Value = resp.json().await.unwrap();
    assert!(token["access_token"].is_string());
    let tenant = claims(token["id_token"].as_str().unwrap())["tenantId"].clone();
    let conf: Value = http()
        .get(format!(
            "{}/.well-known/cxone-configuration?tenantId={}",
            server.base_url(),
            tenant.as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for field in [
        "api_endpoint",
        "area",
        "cluster",
        "domain",
        "acdDomain",
        "uhDomain",
    ] {
        assert!(conf[field].is_string(), "{field} in {conf}");
    }
    assert!(conf.get("auth_endpoint").is_none());
}
