use cxone_uuid_mock::{parse_script, MockConfig, MockServer, Provider};
use serde_json::{json, Value};

use crate::{http, start, start_provider, UUID};

async fn genesys_token(server: &MockServer) -> String {
    let resp = http()
        .post(server.token_url())
        .basic_auth("demo-client", Some("demo-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn call(server: &MockServer, token: &str, variant: &str) -> reqwest::Response {
    http()
        .post(format!(
            "{}/api/v2/integrations/actions/act-1/{variant}",
            server.base_url()
        ))
        .bearer_auth(token)
        .json(&json!({ "uuid": UUID, "source": "test" }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn token_needs_http_basic() {
    let server = start_provider(Provider::Genesys).await;
    assert!(server.token_url().ends_with("/oauth/token"));
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
    assert_eq!(resp.status(), 401);
    genesys_token(&server).await;
}

#[tokio::test]
async fn execute_answers_a_flat_object_keyed_by_uuid_without_idempotency_key() {
    let server = start(MockConfig {
        provider: Provider::Genesys,
        script: parse_script("503").unwrap(),
        ..Default::default()
    })
    .await;
    let token = genesys_token(&server).await;
    assert_eq!(call(&server, &token, "execute").await.status(), 503);
    let resp = call(&server, &token, "execute").await;
    assert_eq!(resp.status(), 200);
    let body = resp.json::<Value>().await.unwrap();
    assert_eq!(body["uuid"], UUID);
    assert_eq!(body["status"], "ok");
    // A nested output too, so `?flatten=true` has something to flatten.
    assert_eq!(body["record"]["id"], UUID);
    let rec = server.recorded();
    assert_eq!(rec.attempts_for(UUID), 2);
    assert_eq!(rec.execute_requests[0].idempotency_key, None);
}

#[tokio::test]
async fn test_variant_reports_steps_and_failures_in_the_body() {
    let server = start(MockConfig {
        provider: Provider::Genesys,
        script: parse_script("500").unwrap(),
        ..Default::default()
    })
    .await;
    let token = genesys_token(&server).await;
    let fail: Value = call(&server, &token, "test").await.json().await.unwrap();
    assert_eq!(fail["success"], false);
    let ops = fail["operations"].as_array().unwrap();
    assert!(ops.iter().any(|op| op["error"].is_object()));
    let ok: Value = call(&server, &token, "test").await.json().await.unwrap();
    assert_eq!(ok["success"], true);
    assert_eq!(ok["finalResult"]["uuid"], UUID);
    assert!(ok["operations"][0]["step"] == 1);
}

#[tokio::test]
async fn tutorial_paths_are_not_served() {
    let server = start_provider(Provider::Genesys).await;
    let token = genesys_token(&server).await;
    let resp = crate::execute(&server, &token, UUID).await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn malformed_genesys_bodies() {
    let server = start(MockConfig {
        provider: Provider::Genesys,
        script: parse_script("not-array,echo-mismatch").unwrap(),
        ..Default::default()
    })
    .await;
    let token = genesys_token(&server).await;
    let body: Value = call(&server, &token, "execute").await.json().await.unwrap();
    assert!(body.is_array());
    let body: Value = call(&server, &token, "execute").await.json().await.unwrap();
    assert_ne!(body["uuid"], UUID);
    assert!(body["uuid"].is_string());
}

#[tokio::test]
async fn every_answer_has_a_correlation_id_and_errors_are_error_bodies() {
    let server = start(MockConfig {
        provider: Provider::Genesys,
        script: parse_script("429").unwrap(),
        genesys_limit: Some("actions.concurrent.executions.max=5".parse().unwrap()),
        ..Default::default()
    })
    .await;
    let token = genesys_token(&server).await;
    let resp = call(&server, &token, "execute").await;
    assert_eq!(resp.status(), 429);
    let id = resp.headers()["inin-correlation-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "too.many.requests.retry.after");
    assert_eq!(
        body["message"],
        "Rate limit exceeded the maximum. Retry the request in [1] seconds"
    );
    assert_eq!(body["contextId"], id.as_str());
    assert_eq!(body["details"], json!([]));
    assert_eq!(body["errors"], json!([]));
    assert_eq!(body["limit"]["key"], "actions.concurrent.executions.max");
    assert_eq!(body["limit"]["value"], 5);
    let resp = call(&server, &token, "execute").await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("inin-correlation-id"));
}

#[tokio::test]
async fn flatten_gives_dotted_keys_and_test_failures_carry_error_bodies() {
    let server = start(MockConfig {
        provider: Provider::Genesys,
        script: parse_script("200,500").unwrap(),
        ..Default::default()
    })
    .await;
    let token = genesys_token(&server).await;
    let resp = http()
        .post(format!(
            "{}/api/v2/integrations/actions/act-1/execute?flatten=true",
            server.base_url()
        ))
        .bearer_auth(&token)
        .json(&json!({ "uuid": UUID }))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["record.id"], UUID);
    assert!(body.get("record").is_none());
    assert_eq!(
        server.recorded().execute_requests[0].query.as_deref(),
        Some("flatten=true")
    );
    let resp = call(&server, &token, "test").await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["status"], 500);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("step 2"));
    assert_eq!(
        body["operations"][1]["error"]["code"],
        "internal.server.error"
    );
}

#[tokio::test]
async fn the_rate_limiter_and_random_failures_name_the_limit_too() {
    let server = start(MockConfig {
        provider: Provider::Genesys,
        rate_limit: Some(0.5),
        genesys_limit: Some(
            "client.credentials.token.rate.per.minute=300"
                .parse()
                .unwrap(),
        ),
        ..Default::default()
    })
    .await;
    let token = genesys_token(&server).await;
    assert_eq!(call(&server, &token, "execute").await.status(), 200);
    let resp = call(&server, &token, "execute").await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "2");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["limit"]["key"],
        "client.credentials.token.rate.per.minute"
    );
    assert_eq!(body["limit"]["namespace"], "platform.api");

    let server = start(MockConfig {
        provider: Provider::Genesys,
        fail_rate: 1.0,
        fail_status: 429,
        genesys_limit: Some("requests.volume.max=7".parse().unwrap()),
        ..Default::default()
    })
    .await;
    let token = genesys_token(&server).await;
    let resp = call(&server, &token, "execute").await;
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["limit"]["value"], 7);
}

#[tokio::test]
async fn a_concurrency_cap_refuses_with_the_named_limit_and_quota_headers() {
    let server = start(MockConfig {
        provider: Provider::Genesys,
        limits: vec![
            "concurrency:1".parse().unwrap(),
            "window:5/1m".parse().unwrap(),
        ],
        limit_headers: cxone_uuid_mock::LimitHeaders::Ietf,
        latency_ms: 300,
        ..Default::default()
    })
    .await;
    let token = genesys_token(&server).await;
    let (a, b) = tokio::join!(call(&server, &token, "execute"), async {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        call(&server, &token, "execute").await
    });
    assert_eq!(a.status(), 200);
    let h = a.headers();
    // The cap is advertised in IETF's concurrent-requests unit, beside the window's quota.
    assert_eq!(
        h["ratelimit-policy"],
        r#""concurrency";q=1;qu="concurrent-requests", "window";q=5;w=60"#
    );
    assert_eq!(h["ratelimit"], r#""concurrency";r=0, "window";r=4;t=60"#);
    assert_eq!(b.status(), 429);
    assert_eq!(b.headers()["retry-after"], "1");
    assert_eq!(
        b.headers()["ratelimit"],
        r#""concurrency";r=0, "window";r=4;t=60"#,
        "a refusal takes no quota"
    );
    let body: Value = b.json().await.unwrap();
    assert_eq!(body["code"], "too.many.requests.retry.after");
    assert_eq!(body["limit"]["key"], "actions.concurrent.executions.max");
    assert_eq!(body["limit"]["value"], 1);
}

#[tokio::test]
async fn x_headers_name_the_binding_limit_and_a_spent_window_says_when_it_resets() {
    let server = start(MockConfig {
        provider: Provider::Genesys,
        limits: vec!["token-window:1/1m".parse().unwrap()],
        limit_headers: cxone_uuid_mock::LimitHeaders::X,
        ..Default::default()
    })
    .await;
    let token = genesys_token(&server).await;
    let a = call(&server, &token, "execute").await;
    assert_eq!(a.status(), 200);
    assert_eq!(a.headers()["x-ratelimit-limit"], "1");
    assert_eq!(a.headers()["x-ratelimit-remaining"], "0");
    let b = call(&server, &token, "execute").await;
    assert_eq!(b.status(), 429);
    let ra: u64 = b.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((59..=60).contains(&ra), "{ra}");
    let body: Value = b.json().await.unwrap();
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains(&format!("[{ra}]")));
    // Another token has its own window.
    let other = genesys_token(&server).await;
    assert_eq!(call(&server, &other, "execute").await.status(), 200);
}
