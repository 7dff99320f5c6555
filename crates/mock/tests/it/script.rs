use std::time::{Duration, Instant, SystemTime};

use cxone_uuid_mock::{parse_script, Malformed, MockConfig, Step};
use serde_json::Value;

use crate::{execute, http, start, token, UUID};

const OTHER: &str = "0190a1b2-c3d4-7e5f-8a6b-000000000002";

fn scripted(script: &str) -> MockConfig {
    MockConfig {
        script: parse_script(script).unwrap(),
        ..Default::default()
    }
}

#[tokio::test]
async fn each_uuid_walks_the_script_then_succeeds() {
    let server = start(scripted("500,429:ra=2,502")).await;
    let token = token(&server).await;
    for uuid in [UUID, OTHER] {
        let r = execute(&server, &token, uuid).await;
        assert_eq!(r.status(), 500);
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string() && body["message"].is_string());
    }
    let r = execute(&server, &token, UUID).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    assert_eq!(execute(&server, &token, UUID).await.status(), 502);
    assert_eq!(execute(&server, &token, UUID).await.status(), 200);
    assert_eq!(execute(&server, &token, UUID).await.status(), 200);
    let rec = server.recorded();
    assert_eq!(rec.attempts_for(UUID), 5);
    assert_eq!(rec.attempts_for(OTHER), 1);
    let statuses: Vec<u16> = rec.execute_requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 429, 502, 200, 200]);
    assert_eq!(rec.count_status(500), 2);
}

#[tokio::test]
async fn retry_after_as_http_date_is_at_least_the_seconds_ahead() {
    let server = start(scripted("429:date=2")).await;
    let token = token(&server).await;
    let r = execute(&server, &token, UUID).await;
    assert_eq!(r.status(), 429);
    let text = r.headers()["retry-after"].to_str().unwrap().to_string();
    let when = httpdate::parse_http_date(&text).unwrap();
    let ahead = when.duration_since(SystemTime::now()).unwrap();
    assert!(
        ahead >= Duration::from_millis(1900) && ahead <= Duration::from_secs(4),
        "{ahead:?}"
    );
}

#[tokio::test]
async fn delay_holds_the_answer() {
    let server = start(scripted("delay=300")).await;
    let token = token(&server).await;
    let t = Instant::now();
    assert_eq!(execute(&server, &token, UUID).await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    // A client with a shorter timeout gives up; its retry gets the next (normal) step.
    let quick = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let server = start(scripted("delay=1000")).await;
    let token = crate::token(&server).await;
    let err = quick
        .post(format!(
            "{}/api/v2/data-actions/a/execute",
            server.base_url()
        ))
        .bearer_auth(&token)
        .header("Idempotency-Key", UUID)
        .json(&serde_json::json!({"inputs": {"uuid": UUID}}))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    assert_eq!(execute(&server, &token, UUID).await.status(), 200);
}

#[tokio::test]
async fn close_drops_the_connection_without_an_answer() {
    let server = start(scripted("close")).await;
    let token = token(&server).await;
    let err = http()
        .post(format!(
            "{}/api/v2/data-actions/a/execute",
            server.base_url()
        ))
        .bearer_auth(&token)
        .header("Idempotency-Key", UUID)
        .json(&serde_json::json!({"inputs": {"uuid": UUID}}))
        .send()
        .await
        .expect_err("a closed connection is an error before any status");
    assert!(!err.is_status());
    assert_eq!(execute(&server, &token, UUID).await.status(), 200);
    let rec = server.recorded();
    assert_eq!(rec.execute_requests[0].status, 0);
    assert_eq!(rec.execute_requests.len(), 2);
}

#[tokio::test]
async fn token_script_answers_the_kth_token_request() {
    let server = start(MockConfig {
        token_script: vec![Step::Status(500), Step::Status(401), Step::Ok],
        ..Default::default()
    })
    .await;
    let ask = || {
        http()
            .post(server.token_url())
            .basic_auth("demo-client", Some("demo-secret"))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    assert_eq!(ask().await.unwrap().status(), 500);
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    assert_eq!(ask().await.unwrap().status(), 200);
    assert_eq!(ask().await.unwrap().status(), 200);
    let rec = server.recorded();
    assert_eq!(rec.token_requests, 4);
    assert_eq!(rec.token_responses_by_status.get(&200), Some(&2));
    assert!(rec.execute_requests.is_empty());
}

#[tokio::test]
async fn scripted_malformed_bodies_are_200() {
    let server = start(MockConfig {
        script: vec![
            Step::Malformed(Malformed::NotArray),
            Step::Malformed(Malformed::EchoMismatch),
        ],
        ..Default::default()
    })
    .await;
    let token = token(&server).await;
    let r = execute(&server, &token, UUID).await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap().is_object());
    let body: Value = execute(&server, &token, UUID).await.json().await.unwrap();
    assert_eq!(body[0]["name"], "output_uuid");
    assert_ne!(body[0]["value"], UUID);
}

#[tokio::test]
async fn token_script_can_close_rate_limit_and_send_html() {
    let server = start(MockConfig {
        token_script: parse_script("close,429:ra=3,html,delay=200").unwrap(),
        ..Default::default()
    })
    .await;
    let ask = || {
        http()
            .post(server.token_url())
            .basic_auth("demo-client", Some("demo-secret"))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    assert!(ask().await.is_err());
    let r = ask().await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "3");
    let r = ask().await.unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let t = Instant::now();
    assert_eq!(ask().await.unwrap().status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert_eq!(server.recorded().token_requests, 4);
}
