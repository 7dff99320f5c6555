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

/// Each execute request carries one `Host` header naming the host and port of the execute URL
/// (the client writes it once per run; the pool must not add a second one or drop the port).
#[tokio::test]
async fn the_execute_request_names_its_host_and_port() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let tokens = mock(MockConfig::default()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = conn.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            let Some(end) = text.find("\r\n\r\n") else {
                continue;
            };
            let head = text[..end].to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() < end + 4 + length {
                continue;
            }
            let body: serde_json::Value =
                serde_json::from_slice(&got[end + 4..end + 4 + length]).unwrap();
            got.drain(..end + 4 + length);
            let answer = serde_json::json!([
                {"name": "output_uuid", "value": body["inputs"]["uuid"]},
                {"name": "status", "value": "ok"}
            ])
            .to_string();
            seen.lock().unwrap().push(head);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            conn.write_all(reply.as_bytes()).await.unwrap();
        }
    });
    let c = client(
        tutorial(&tokens)
            .with_token_url(tokens.token_url())
            .with_base_url(format!("http://{addr}")),
    );
    for _ in 0..2 {
        c.execute(Uuid::new_v4()).await.outcome.expect("success");
    }
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads.len(), 2);
    for head in heads {
        let hosts: Vec<&str> = head
            .lines()
            .filter_map(|l| l.strip_prefix("host: "))
            .collect();
        assert_eq!(hosts, [addr.to_string()], "{head}");
    }
}
