use cxone_uuid_client::ErrorKind;
use cxone_uuid_mock::Provider as MockProvider;
use uuid::Uuid;

use super::*;

async fn genesys_mock(script: &str) -> MockServer {
    mock(MockConfig {
        provider: MockProvider::Genesys,
        script: parse_script(script).unwrap(),
        ..Default::default()
    })
    .await
}

fn genesys(server: &MockServer) -> ClientConfigBuilder {
    ClientConfig::builder()
        .provider(Provider::Genesys)
        .with_client_id("demo-client")
        .with_client_secret("demo-secret")
        .with_region("mypurecloud.com")
        .with_base_url(server.base_url())
        .with_token_url(server.token_url())
        .with_action_id("custom_-_1234")
        .with_echo_field("uuid")
        .with_backoff_base(Duration::from_millis(10))
}

#[tokio::test]
async fn executes_end_to_end() {
    let server = genesys_mock("").await;
    let c = client(genesys(&server).with_input("queue", "sales"));
    let u = Uuid::new_v4();
    let report = c.execute(u).await;
    let out = report.outcome.expect("success");
    assert_eq!(out.get("status").unwrap(), "ok");
    let rec = server.recorded();
    let r = &rec.execute_requests[0];
    assert_eq!(r.path, "/api/v2/integrations/actions/custom_-_1234/execute");
    assert_eq!(
        r.body,
        serde_json::json!({"uuid": u.to_string(), "queue": "sales"})
    );
    let info = c.token_info().await.unwrap();
    assert_eq!(info.provider, Provider::Genesys);
    assert_eq!(info.token_endpoint, server.token_url());
}

#[tokio::test]
async fn same_fault_handling_as_the_tutorial() {
    let server = genesys_mock("503,429:ra=1,401").await;
    let c = client(genesys(&server));
    let report = c.execute(Uuid::new_v4()).await;
    report.outcome.expect("success");
    assert_eq!(report.attempts, 4);
    assert_eq!(report.rate_limited, 1);

    let server = genesys_mock("403").await;
    let err = client(genesys(&server))
        .execute(Uuid::new_v4())
        .await
        .outcome
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert!(
        err.to_string().contains("integrations:action:execute"),
        "{err}"
    );

    let server = genesys_mock("echo-mismatch").await;
    let err = client(genesys(&server))
        .execute(Uuid::new_v4())
        .await
        .outcome
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::EchoMismatch);
}

#[tokio::test]
async fn test_variant_prints_steps_on_failure() {
    let server = genesys_mock("500").await;
    let c = client(genesys(&server).with_test_action(true));
    let err = c.execute(Uuid::new_v4()).await.outcome.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ActionFailed);
    assert!(err.to_string().contains("step"), "{err}");

    let server = genesys_mock("").await;
    let c = client(genesys(&server).with_test_action(true));
    c.execute(Uuid::new_v4())
        .await
        .outcome
        .expect("test run succeeds");
    assert!(server.recorded().execute_requests[0]
        .path
        .ends_with("/test"));
}

#[tokio::test]
async fn wrong_secret_is_fatal() {
    let server = genesys_mock("").await;
    let c = client(genesys(&server).with_client_secret("nope-nope-nope"));
    let err = c.token_info().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials);
    assert!(err.is_fatal());
    assert!(!err.to_string().contains("nope-nope-nope"));
}
