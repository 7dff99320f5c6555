use cxone_uuid_client::ErrorKind;
use cxone_uuid_mock::{DiscoveryFault, Provider as MockProvider};
use uuid::Uuid;

use super::*;

const TENANT: &str = "11111111-2222-4333-8444-555555555555";

async fn cxone_mock(fault: Option<DiscoveryFault>, script: &str) -> MockServer {
    mock(MockConfig {
        provider: MockProvider::Cxone,
        discovery_fault: fault,
        script: parse_script(script).unwrap(),
        ..Default::default()
    })
    .await
}

fn cxone(server: &MockServer) -> ClientConfigBuilder {
    ClientConfig::builder()
        .provider(Provider::Cxone)
        .with_client_id("demo-client")
        .with_client_secret("demo-secret")
        .with_access_key_id("demo-key")
        .with_access_key_secret("demo-key-secret")
        .with_issuer(server.base_url())
        .with_execute_path("/incontactapi/services/v31.0/scripts/start")
        .with_body_template(
            r#"{"scriptPath": "{{input.script}}", "parameters": "{{uuid}}", "startDate": ""}"#,
        )
        .with_input("script", "Company\\Check \"UUID\"")
        .with_backoff_base(Duration::from_millis(10))
}

#[tokio::test]
async fn discovers_and_executes_end_to_end() {
    let server = cxone_mock(None, "").await;
    let c = client(cxone(&server));
    let info = c.token_info().await.expect("discovery works");
    assert_eq!(info.tenant_id.as_deref(), Some(TENANT));
    assert_eq!(info.area.as_deref(), Some("na1"));
    assert_eq!(
        info.token_endpoint,
        format!("{}/auth/token", server.base_url())
    );
    assert_eq!(info.api_base.as_deref(), Some(server.base_url().as_str()));

    let u = Uuid::new_v4();
    let report = c.execute(u).await;
    let out = report.outcome.expect("success");
    assert_eq!(report.http_status, Some(202));
    assert!(out.get("contactId").is_some());
    let rec = server.recorded();
    let r = &rec.execute_requests[0];
    assert_eq!(r.path, "/incontactapi/services/v31.0/scripts/start");
    assert_eq!(r.body["parameters"], u.to_string());
    assert_eq!(r.body["scriptPath"], "Company\\Check \"UUID\"");
    assert_eq!(rec.token_requests, 1, "discovery cached, one token");
}

#[tokio::test]
async fn form_auth_and_retries() {
    let server = cxone_mock(None, "500,401").await;
    let c = client(cxone(&server).with_auth_method(cxone_uuid_client::AuthMethod::Post));
    let report = c.execute(Uuid::new_v4()).await;
    report.outcome.expect("success");
    assert_eq!(report.attempts, 3);
}

#[tokio::test]
async fn discovery_faults_name_the_url() {
    for (fault, needle) in [
        (
            DiscoveryFault::NotFound,
            "/.well-known/openid-configuration",
        ),
        (DiscoveryFault::NoTenant, "tenantId"),
        (
            DiscoveryFault::MalformedJson,
            "/.well-known/cxone-configuration?tenantId=",
        ),
    ] {
        let server = cxone_mock(Some(fault), "").await;
        let c = client(cxone(&server));
        let err = c.token_info().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Discovery, "{fault:?}: {err}");
        assert!(err.is_fatal());
        let msg = err.to_string();
        assert!(msg.contains(needle), "{fault:?}: {msg}");
        assert!(
            msg.contains(&server.base_url()),
            "{fault:?} names the URL: {msg}"
        );
        let report = c.execute(Uuid::new_v4()).await;
        assert!(report.outcome.unwrap_err().is_fatal());
        assert!(server.recorded().execute_requests.is_empty());
    }
}

#[tokio::test]
async fn wrong_access_key_is_fatal_and_secret_free() {
    let server = cxone_mock(None, "").await;
    let c = client(cxone(&server).with_access_key_secret("k=e=y+secret/value"));
    let err = c.token_info().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials);
    assert!(!err.to_string().contains("k=e=y+secret/value"));
}

#[tokio::test]
async fn access_keys_with_reserved_characters_are_form_encoded() {
    let server = mock(MockConfig {
        provider: MockProvider::Cxone,
        access_key_secret: "a+b=c&d/e==".to_string(),
        ..Default::default()
    })
    .await;
    let c = client(cxone(&server).with_access_key_secret("a+b=c&d/e=="));
    c.token_info()
        .await
        .expect("the mock decodes what we encoded");
}
