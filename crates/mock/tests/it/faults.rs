use std::collections::BTreeMap;

use cxone_uuid_mock::{Malformed, MockConfig};
use serde_json::Value;

use crate::{execute, start, token, UUID};

fn with_malformed(kind: Malformed) -> MockConfig {
    MockConfig {
        malformed: Some(kind),
        ..Default::default()
    }
}

#[tokio::test]
async fn rate_limit_answers_429_with_whole_seconds_retry_after() {
    // 1 request/s, burst 1: the first passes, the next ones are told to wait 1 s.
    let server = start(MockConfig {
        rate_limit: Some(1.0),
        ..Default::default()
    })
    .await;
    let token = token(&server).await;
    assert_eq!(execute(&server, &token, UUID).await.status(), 200);
    let r = execute(&server, &token, UUID).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("json"));
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "rate_limited");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(execute(&server, &token, UUID).await.status(), 200);
    // The token endpoint is not rate-limited.
    for _ in 0..3 {
        crate::token(&server).await;
    }
}

#[tokio::test]
async fn fail_rate_one_always_fails_with_the_chosen_status() {
    let server = start(MockConfig {
        fail_rate: 1.0,
        fail_status: 503,
        ..Default::default()
    })
    .await;
    let token = token(&server).await;
    for _ in 0..5 {
        assert_eq!(execute(&server, &token, UUID).await.status(), 503);
    }
    let mut want = BTreeMap::new();
    want.insert(503, 5);
    assert_eq!(server.recorded().responses_by_status, want);
}

#[tokio::test]
async fn fail_rate_half_fails_some_and_passes_some() {
    let server = start(MockConfig {
        fail_rate: 0.5,
        ..Default::default()
    })
    .await;
    let token = token(&server).await;
    for _ in 0..60 {
        execute(&server, &token, UUID).await;
    }
    let rec = server.recorded();
    assert!(
        rec.count_status(500) > 5 && rec.count_status(200) > 5,
        "{rec:?}"
    );
}

#[tokio::test]
async fn latency_is_added() {
    let server = start(MockConfig {
        latency_ms: 200,
        ..Default::default()
    })
    .await;
    let token = token(&server).await;
    let t = std::time::Instant::now();
    execute(&server, &token, UUID).await;
    let elapsed = t.elapsed();
    assert!(elapsed >= std::time::Duration::from_millis(200));
    // The record says how long the request was really held: at least the latency, and no
    // more than the client waited.
    let held = server.recorded().execute_requests[0].held_ms.unwrap();
    assert!(held >= 200.0, "{held}");
    assert!(
        held <= elapsed.as_secs_f64() * 1000.0,
        "{held} vs {elapsed:?}"
    );
}

#[tokio::test]
async fn not_array_is_an_object() {
    let server = start(with_malformed(Malformed::NotArray)).await;
    let token = token(&server).await;
    let r = execute(&server, &token, UUID).await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap().is_object());
}

#[tokio::test]
async fn html_is_text_html() {
    let server = start(with_malformed(Malformed::Html)).await;
    let token = token(&server).await;
    let r = execute(&server, &token, UUID).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.text().await.unwrap().contains("<html>"));
}

#[tokio::test]
async fn oversized_is_valid_json_above_one_mib() {
    let server = start(with_malformed(Malformed::Oversized)).await;
    let token = token(&server).await;
    let bytes = execute(&server, &token, UUID).await.bytes().await.unwrap();
    assert!(bytes.len() > 1024 * 1024);
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body[0]["value"], UUID);
}

#[tokio::test]
async fn truncated_is_a_cut_json_array() {
    let server = start(with_malformed(Malformed::Truncated)).await;
    let token = token(&server).await;
    let text = execute(&server, &token, UUID).await.text().await.unwrap();
    assert!(text.starts_with('['));
    assert!(serde_json::from_str::<Value>(&text).is_err());
}

#[tokio::test]
async fn echo_mismatch_returns_another_uuid() {
    let server = start(with_malformed(Malformed::EchoMismatch)).await;
    let token = token(&server).await;
    let body: Value = execute(&server, &token, UUID).await.json().await.unwrap();
    let echoed = body[0]["value"].as_str().unwrap();
    assert_ne!(echoed, UUID);
    assert!(uuid::Uuid::parse_str(echoed).is_ok());
}
