use cxone_uuid_mock::{MockConfig, Recorded};
use serde_json::{json, Value};

use crate::{execute, http, start, token, UUID};

#[tokio::test]
async fn token_then_execute_echoes_the_uuid_and_is_recorded() {
    let server = start(MockConfig::default()).await;
    let token = token(&server).await;
    let resp = execute(&server, &token, UUID).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!([{"name": "output_uuid", "value": UUID}, {"name": "status", "value": "ok"}])
    );
    let rec = server.recorded();
    assert_eq!(rec.token_requests, 1);
    assert_eq!(rec.execute_requests.len(), 1);
    let req = &rec.execute_requests[0];
    assert_eq!(req.path, "/api/v2/data-actions/act-1/execute");
    assert_eq!(req.idempotency_key.as_deref(), Some(UUID));
    assert_eq!(req.uuid.as_deref(), Some(UUID));
    assert_eq!(req.body, json!({"inputs": {"uuid": UUID}}));
    assert_eq!(req.status, 200);
    assert_eq!(rec.count_status(200), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn token_response_has_the_oauth_fields() {
    let server = start(MockConfig::default()).await;
    let body: Value = http()
        .post(server.token_url())
        .basic_auth("demo-client", Some("demo-secret"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "data-actions:execute"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body["access_token"].as_str().unwrap().len() >= 32);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "data-actions:execute");
    assert!(server.token_url().ends_with("/oauth2/token"));
}

#[tokio::test]
async fn wrong_credentials_and_grants_are_refused() {
    let server = start(MockConfig::default()).await;
    let resp = http()
        .post(server.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "demo-client"),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
    let resp = http()
        .post(server.token_url())
        .basic_auth("demo-client", Some("demo-secret"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
}

#[tokio::test]
async fn missing_unknown_and_expired_tokens_get_401() {
    let server = start(MockConfig {
        token_ttl_secs: 1,
        ..Default::default()
    })
    .await;
    let url = format!("{}/api/v2/data-actions/a/execute", server.base_url());
    let resp = http()
        .post(&url)
        .header("Idempotency-Key", UUID)
        .json(&json!({"inputs": {"uuid": UUID}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(execute(&server, "made-up", UUID).await.status(), 401);
    let token = token(&server).await;
    assert_eq!(execute(&server, &token, UUID).await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let resp = execute(&server, &token, UUID).await;
    assert_eq!(resp.status(), 401);
    assert!(resp.text().await.unwrap().contains("expired"));
    // A fresh token works again.
    let token = crate::token(&server).await;
    assert_eq!(execute(&server, &token, UUID).await.status(), 200);
}

#[tokio::test]
async fn bad_bodies_get_400_or_415_with_a_message() {
    let server = start(MockConfig::default()).await;
    let token = token(&server).await;
    let url = format!("{}/api/v2/data-actions/a/execute", server.base_url());
    let send = |body: &'static str, ct: &'static str, key: bool| {
        let mut req = http()
            .post(&url)
            .bearer_auth(&token)
            .header("Content-Type", ct)
            .body(body);
        if key {
            req = req.header("Idempotency-Key", UUID);
        }
        req.send()
    };
    let resp = send("not json", "application/json", true).await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("not JSON"));
    let resp = send(r#"{"inputs":{"uuid":"nope"}}"#, "application/json", true)
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("UUID"));
    let resp = send(
        r#"{"inputs":{"uuid":"0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b"}}"#,
        "text/plain",
        true,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 415);
    let resp = send(
        r#"{"inputs":{"uuid":"0190a1b2-c3d4-7e5f-8a6b-1c2d3e4f5a6b"}}"#,
        "application/json",
        false,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("Idempotency-Key"));
    // A renamed input is found by its value.
    let resp = http()
        .post(&url)
        .bearer_auth(&token)
        .header("Idempotency-Key", UUID)
        .json(&json!({"inputs": {"region": "eu", "requestId": UUID.to_uppercase()}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body[0]["value"], UUID);
}

#[tokio::test]
async fn recorded_and_healthz_are_served_over_http() {
    let server = start(MockConfig::default()).await;
    let token = token(&server).await;
    execute(&server, &token, UUID).await;
    let health = http()
        .get(format!("{}/healthz", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");
    let rec: Recorded = http()
        .get(format!("{}/__mock/recorded", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rec.token_requests, 1);
    assert_eq!(rec.execute_requests.len(), 1);
    assert_eq!(rec.responses_by_status.get(&200), Some(&1));
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let server = start(MockConfig::default()).await;
    let resp = http()
        .post(format!("{}/api/v2/other", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn issued_tokens_lists_what_clients_received() {
    let server = start(MockConfig::default()).await;
    assert!(server.issued_tokens().is_empty());
    let a = token(&server).await;
    let b = token(&server).await;
    let issued = server.issued_tokens();
    assert_eq!(issued.len(), 2);
    assert!(issued.contains(&a) && issued.contains(&b));
}
