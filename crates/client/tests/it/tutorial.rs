use cxone_uuid_client::ErrorKind;
use uuid::Uuid;

use super::*;

#[tokio::test]
async fn executes_with_idempotency_key_and_echo() {
    let server = mock(MockConfig::default()).await;
    let c = client(tutorial(&server).with_input("team", "blue"));
    let u = Uuid::new_v4();
    let report = c.execute(u).await;
    let out = report.outcome.expect("success");
    assert_eq!(
        out.get("output_uuid").unwrap().as_str().unwrap(),
        u.hyphenated().to_string()
    );
    assert_eq!(report.attempts, 1);
    assert_eq!(report.retries, 0);
    assert_eq!(report.http_status, Some(200));
    let rec = server.recorded();
    assert_eq!(rec.token_requests, 1);
    let r = &rec.execute_requests[0];
    assert_eq!(r.path, "/api/v2/data-actions/act-1/execute");
    assert_eq!(r.idempotency_key.as_deref(), Some(u.to_string().as_str()));
    assert_eq!(r.body["inputs"]["uuid"], u.to_string());
    assert_eq!(r.body["inputs"]["team"], "blue");
}

#[tokio::test]
async fn renamed_input_and_basic_auth() {
    let server = mock(MockConfig::default()).await;
    let c = client(
        tutorial(&server)
            .with_input_name("requestId")
            .with_auth_method(cxone_uuid_client::AuthMethod::Basic),
    );
    let u = Uuid::new_v4();
    c.execute(u).await.outcome.expect("success");
    let rec = server.recorded();
    assert_eq!(
        rec.execute_requests[0].body["inputs"]["requestId"],
        u.to_string()
    );
}

#[tokio::test]
async fn malformed_bodies_fail_with_unexpected_format() {
    for (script, kind) in [
        ("not-array", ErrorKind::UnexpectedResponse),
        ("html", ErrorKind::UnexpectedResponse),
        ("oversized", ErrorKind::UnexpectedResponse),
        ("truncated", ErrorKind::UnexpectedResponse),
        ("echo-mismatch", ErrorKind::EchoMismatch),
    ] {
        let server = scripted(script).await;
        let c = client(tutorial(&server));
        let report = c.execute(Uuid::new_v4()).await;
        let err = report.outcome.expect_err(script);
        assert_eq!(err.kind(), kind, "{script}: {err}");
        assert_eq!(report.attempts, 1, "{script}: never retried");
        let msg = err.to_string();
        if kind == ErrorKind::UnexpectedResponse {
            assert!(msg.starts_with("unexpected response format"), "{msg}");
            assert!(msg.len() < 400, "short excerpt: {} chars", msg.len());
        } else {
            assert!(msg.contains("echo mismatch"), "{msg}");
        }
    }
}

#[tokio::test]
async fn http_to_remote_host_is_refused_before_any_request() {
    let config = ClientConfig::builder()
        .with_client_id("id")
        .with_client_secret("secret")
        .with_action_id("a")
        .with_base_url("http://example.com")
        .build();
    let err = config.validate().unwrap_err();
    assert!(err.is_config());
    assert!(Client::new(config).unwrap_err().is_config());
}
