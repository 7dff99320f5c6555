use cxone_uuid_client::ErrorKind;
use uuid::Uuid;

use super::*;

#[tokio::test]
async fn fifty_concurrent_calls_share_one_token_request() {
    let server = mock(MockConfig::default()).await;
    let c = client(tutorial(&server).with_concurrency(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.execute(Uuid::new_v4()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().outcome.expect("success");
    }
    assert_eq!(server.recorded().token_requests, 1);
    assert_eq!(c.token_requests(), 1);
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_retries() {
    let server = scripted("401").await;
    let c = client(tutorial(&server));
    let u = Uuid::new_v4();
    let report = c.execute(u).await;
    report.outcome.expect("success after refresh");
    assert_eq!(report.attempts, 2);
    let rec = server.recorded();
    assert_eq!(rec.token_requests, 2);
    assert_eq!(rec.attempts_for(&u.to_string()), 2);
}

#[tokio::test]
async fn a_second_401_fails_the_uuid() {
    let server = scripted("401,401").await;
    let c = client(tutorial(&server));
    let report = c.execute(Uuid::new_v4()).await;
    let err = report.outcome.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(!err.is_fatal());
    assert_eq!(report.attempts, 2);
    assert_eq!(server.recorded().token_requests, 2);
}

#[tokio::test]
async fn tokens_are_refreshed_before_they_expire() {
    // ttl 2 s: refreshed when less than min(30, 1) s remains, so never sent expired.
    let server = mock(MockConfig {
        token_ttl_secs: 2,
        ..Default::default()
    })
    .await;
    let c = client(tutorial(&server));
    c.execute(Uuid::new_v4()).await.outcome.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let report = c.execute(Uuid::new_v4()).await;
    report.outcome.unwrap();
    assert_eq!(report.attempts, 1, "no 401 round trip");
    assert_eq!(server.recorded().token_requests, 2);
}

#[tokio::test]
async fn refused_credentials_stop_the_run_without_a_storm() {
    let server = mock(MockConfig::default()).await;
    let c = client(
        tutorial(&server)
            .with_client_secret("wrong-secret-value-123")
            .with_concurrency(20),
    );
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.execute(Uuid::new_v4()).await })
        })
        .collect();
    for t in tasks {
        let err = t.await.unwrap().outcome.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Credentials);
        assert!(err.is_fatal());
        let msg = err.to_string();
        assert!(
            msg.contains("credentials") && msg.contains("scope"),
            "{msg}"
        );
        assert!(!msg.contains("wrong-secret-value-123"));
    }
    assert_eq!(server.recorded().token_requests, 1, "no retries, no storm");
    assert!(server.recorded().execute_requests.is_empty());
    let err = c.token_info().await.unwrap_err();
    assert!(err.is_fatal());
    assert!(!format!("{c:?}").contains("wrong-secret-value-123"));
}

#[tokio::test]
async fn token_endpoint_5xx_is_retried() {
    let server = mock(MockConfig {
        token_script: parse_script("500,503").unwrap(),
        ..Default::default()
    })
    .await;
    let c = client(tutorial(&server));
    c.execute(Uuid::new_v4()).await.outcome.expect("success");
    assert_eq!(server.recorded().token_requests, 3);
}

#[tokio::test]
async fn token_endpoint_down_fails_without_being_fatal() {
    let server = mock(MockConfig {
        token_script: parse_script("500*20").unwrap(),
        ..Default::default()
    })
    .await;
    let c = client(tutorial(&server).with_max_retries(2));
    let err = c.execute(Uuid::new_v4()).await.outcome.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TokenUnavailable);
    assert!(!err.is_fatal());
    assert_eq!(server.recorded().token_requests, 3);
}

#[tokio::test]
async fn token_info_never_shows_the_token() {
    let server = mock(MockConfig::default()).await;
    let c = client(tutorial(&server));
    let info = c.token_info().await.unwrap();
    assert_eq!(info.provider, Provider::Tutorial);
    assert_eq!(info.token_endpoint, server.token_url());
    assert!(info.expires_at > std::time::SystemTime::now());
    let shown = format!("{info:?} {c:?}");
    assert!(!shown.contains("demo-secret"));
    assert!(!shown.to_ascii_lowercase().contains("bearer"));
}

/// A loopback port nothing listens on: connections are refused at once.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_token_endpoint_stops_the_run_naming_its_url() {
    let server = mock(MockConfig::default()).await;
    let url = format!("http://127.0.0.1:{}/oauth2/token", dead_port());
    let c = client(
        tutorial(&server)
            .with_token_url(url.clone())
            .with_max_retries(2)
            .with_backoff_base(std::time::Duration::from_millis(1)),
    );
    let err = c.execute(Uuid::new_v4()).await.outcome.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TokenUnavailable);
    assert!(err.is_fatal(), "every UUID would fail the same way: {err}");
    assert!(err.to_string().contains(&url), "{err}");
    assert_eq!(c.token_requests(), 3, "the retry policy's attempts, once");
    // Later UUIDs fail at once with the same error instead of retrying the endpoint again.
    let again = c.execute(Uuid::new_v4()).await;
    assert!(again.outcome.unwrap_err().is_fatal());
    assert_eq!(c.token_requests(), 3);
    assert!(server.recorded().execute_requests.is_empty());
}

#[tokio::test]
async fn token_retries_spend_the_shared_retry_budget() {
    let server = mock(MockConfig {
        token_script: parse_script("500*20").unwrap(),
        ..Default::default()
    })
    .await;
    // A budget of one retry: the second token retry is refused by the budget.
    let c = client(
        tutorial(&server)
            .with_max_retries(5)
            .with_retry_budget(Some(5))
            .with_backoff_base(std::time::Duration::from_millis(1)),
    );
    let err = c.execute(Uuid::new_v4()).await.outcome.unwrap_err();
    assert!(err.to_string().contains("retry budget exhausted"), "{err}");
    assert_eq!(server.recorded().token_requests, 2);
}
