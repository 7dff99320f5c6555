use std::time::Instant;

use cxone_uuid_client::ErrorKind;
use uuid::Uuid;

use super::*;

#[tokio::test]
async fn five_xx_forever_makes_exactly_max_retries_plus_one_attempts() {
    let server = scripted("500*20").await;
    let c = client(tutorial(&server).with_max_retries(3));
    let u = Uuid::new_v4();
    let report = c.execute(u).await;
    let err = report.outcome.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Server);
    assert_eq!(report.attempts, 4);
    assert_eq!(report.retries, 3);
    assert_eq!(server.recorded().attempts_for(&u.to_string()), 4);
    let keys: Vec<_> = server
        .recorded()
        .execute_requests
        .iter()
        .map(|r| r.idempotency_key.clone())
        .collect();
    assert!(keys
        .iter()
        .all(|k| k.as_deref() == Some(u.to_string().as_str())));
    assert!(err.to_string().contains("4 attempt"), "{err}");
}

#[tokio::test]
async fn five_xx_then_success() {
    let server = scripted("502,503,504").await;
    let c = client(tutorial(&server));
    let report = c.execute(Uuid::new_v4()).await;
    report.outcome.expect("success on the 4th attempt");
    assert_eq!(report.attempts, 4);
    assert_eq!(report.retries, 3);
}

#[tokio::test]
async fn bad_request_fails_at_once_with_the_server_text() {
    let server = scripted("400").await;
    let c = client(tutorial(&server));
    let report = c.execute(Uuid::new_v4()).await;
    let err = report.outcome.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert_eq!(report.attempts, 1);
    assert_eq!(report.http_status, Some(400));
    assert!(err.to_string().contains("refused by the action"), "{err}");
}

#[tokio::test]
async fn forbidden_names_the_missing_scope() {
    let server = scripted("403").await;
    let c = client(tutorial(&server));
    let report = c.execute(Uuid::new_v4()).await;
    let err = report.outcome.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert_eq!(report.attempts, 1);
    assert!(err.to_string().contains("data-actions:execute"), "{err}");
}

#[tokio::test]
async fn retry_after_seconds_is_waited() {
    let server = scripted("429:ra=1").await;
    let c = client(tutorial(&server));
    let start = Instant::now();
    let report = c.execute(Uuid::new_v4()).await;
    let waited = start.elapsed();
    report.outcome.expect("success after the wait");
    assert_eq!(report.rate_limited, 1);
    assert_eq!(report.attempts, 2);
    assert!(waited >= Duration::from_millis(1000), "{waited:?}");
    assert!(waited < Duration::from_secs(4), "{waited:?}");
}

#[tokio::test]
async fn retry_after_http_date_is_waited() {
    let server = scripted("429:date=2").await;
    let c = client(tutorial(&server));
    let start = Instant::now();
    let report = c.execute(Uuid::new_v4()).await;
    let waited = start.elapsed();
    report.outcome.expect("success after the wait");
    assert_eq!(report.rate_limited, 1);
    // an HTTP-date has whole-second resolution: allow for the sub-second already elapsed
    assert!(waited >= Duration::from_millis(1000), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn retry_after_above_the_ceiling_fails_without_waiting() {
    let server = scripted("429:ra=120").await;
    let c = client(tutorial(&server).with_max_retry_after(Duration::from_secs(60)));
    let start = Instant::now();
    let report = c.execute(Uuid::new_v4()).await;
    let err = report.outcome.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert_eq!(report.attempts, 1);
    assert!(err.to_string().contains("max-retry-after"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn timeouts_are_retried() {
    let server = scripted("delay=1500").await;
    let c = client(tutorial(&server).with_timeout(Duration::from_millis(400)));
    let report = c.execute(Uuid::new_v4()).await;
    report.outcome.expect("second attempt is fast");
    assert_eq!(report.attempts, 2);

    let server = scripted("delay=1500").await;
    let c = client(
        tutorial(&server)
            .with_timeout(Duration::from_millis(400))
            .with_max_retries(0),
    );
    let err = c.execute(Uuid::new_v4()).await.outcome.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let server = scripted("close").await;
    let c = client(tutorial(&server));
    let report = c.execute(Uuid::new_v4()).await;
    report.outcome.expect("success after reconnect");
    assert_eq!(report.attempts, 2);
}

#[tokio::test]
async fn retry_budget_stops_retries_when_everything_fails() {
    let server = mock(MockConfig {
        fail_rate: 1.0,
        fail_status: 503,
        ..Default::default()
    })
    .await;
    // budget 20 = four retries in all
    let c = client(tutorial(&server).with_retry_budget(Some(20)));
    let mut budget_msgs = 0;
    for _ in 0..10 {
        let err = c.execute(Uuid::new_v4()).await.outcome.unwrap_err();
        if err.to_string().contains("retry budget exhausted") {
            budget_msgs += 1;
        }
    }
    assert_eq!(server.recorded().execute_requests.len(), 10 + 4);
    assert!(budget_msgs >= 8, "{budget_msgs}");
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    // bind then drop to get a port nobody listens on
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let c = client(
        ClientConfig::builder()
            .with_client_id("demo-client")
            .with_client_secret("demo-secret")
            .with_action_id("a")
            .with_base_url(format!("http://{addr}"))
            .with_backoff_base(Duration::from_millis(5))
            .with_max_retries(1),
    );
    let err = c.execute(Uuid::new_v4()).await.outcome.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TokenUnavailable);
    assert!(err.to_string().contains("connection"), "{err}");
}

#[tokio::test]
async fn no_error_or_debug_output_contains_a_secret() {
    let mut shown = Vec::new();
    for script in [
        "400",
        "403",
        "401,401",
        "500*5",
        "html",
        "oversized",
        "echo-mismatch",
    ] {
        let server = scripted(script).await;
        let c = client(tutorial(&server).with_max_retries(1));
        let report = c.execute(Uuid::new_v4()).await;
        shown.push(format!("{report:?}"));
        shown.push(report.outcome.unwrap_err().to_string());
        shown.push(format!("{c:?} {:?}", c.config()));
    }
    let server = mock(MockConfig::default()).await;
    let c = client(tutorial(&server).with_client_secret("not-the-demo-secret"));
    let err = c.token_info().await.unwrap_err();
    shown.push(format!("{err} {err:?} {c:?}"));
    for text in shown {
        assert!(!text.contains("demo-secret"), "{text}");
        assert!(!text.contains("not-the-demo-secret"), "{text}");
        assert!(
            !text.contains("Bearer "),
            "no Authorization header value: {text}"
        );
    }
}
