//! Every dialect (tutorial, genesys, cxone) passes the same fault tests against the mock, and
//! `token` shows who and where without the token.

use std::path::Path;
use std::process::Command;

use cxone_uuid_mock::{parse_script, DiscoveryFault, MockConfig, MockServer, Provider};
use serde_json::Value;

use crate::support::*;

const EXEC_PATH: &str = "/incontactapi/services/v31.0/scripts/start";

fn provider_name(p: &Provider) -> &'static str {
    match p {
        Provider::Tutorial => "tutorial",
        Provider::Genesys => "genesys",
        Provider::Cxone => "cxone",
    }
}

/// A `run` command for `provider`, configured the way that platform's users would.
fn dialect_cmd(provider: &Provider, server: &MockServer, dir: &Path, n: u64) -> Command {
    let d = MockConfig::default();
    let mut cmd = bin();
    cmd.current_dir(dir)
        .args(["run", "-n", &n.to_string(), "--output", "json"])
        .args(["--backoff-base", "0.01", "--backoff-cap", "0.05"])
        .arg("--audit")
        .arg(format!("jsonl:{}", audit_path(dir).display()));
    match provider {
        Provider::Tutorial => {
            cmd.env("CXONE_CLIENT_ID", &d.client_id)
                .env("CXONE_CLIENT_SECRET", &d.client_secret)
                .env("CXONE_DATA_ACTION_ID", "action-42")
                .env("CXONE_BASE_URL", server.base_url())
                .env("CXONE_TOKEN_URL", server.token_url());
        }
        Provider::Genesys => {
            cmd.env("GENESYS_CLIENT_ID", &d.client_id)
                .env("GENESYS_CLIENT_SECRET", &d.client_secret)
                .env("CXONE_DATA_ACTION_ID", "action-42")
                .args(["--provider", "genesys", "--region", "mypurecloud.ie"])
                .args(["--api-url", &server.base_url()])
                .args(["--token-url", &server.token_url()])
                .args(["--echo-field", "uuid"]);
        }
        Provider::Cxone => {
            cmd.env("CXONE_CLIENT_ID", &d.client_id)
                .env("CXONE_CLIENT_SECRET", &d.client_secret)
                .env("CXONE_ACCESS_KEY_ID", &d.access_key_id)
                .env("CXONE_ACCESS_KEY_SECRET", &d.access_key_secret)
                .args(["--provider", "cxone", "--issuer", &server.base_url()])
                .args(["--execute-path", EXEC_PATH])
                .args([
                    "--body-template",
                    r#"{"scriptName":"Register","parameters":"{{uuid}}|{{input.source}}"}"#,
                ])
                .args(["--input", "source=e2e"]);
        }
    }
    cmd
}

fn config(provider: Provider, script: &str) -> MockConfig {
    MockConfig {
        provider,
        script: parse_script(script).expect("script"),
        ..MockConfig::default()
    }
}

fn terminal_events(dir: &Path) -> Vec<Value> {
    events(&audit_path(dir))
        .into_iter()
        .filter(|e| e["event"] == "action_executed" || e["event"] == "action_failed")
        .collect()
}

async fn success_with_retries(provider: Provider, script: &str, attempts: usize) {
    let server = mock(config(provider, script)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(dialect_cmd(&provider, &server, dir.path(), 2)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}: {}",
        provider_name(&provider),
        stderr(&out)
    );
    assert_eq!(summary(&out)["succeeded"], 2);
    let rec = server.recorded();
    assert_eq!(rec.execute_requests.len(), 2 * attempts);
    for r in &rec.execute_requests {
        let uuid = r.uuid.clone().expect("the mock found the UUID in the body");
        if let Some(key) = &r.idempotency_key {
            assert_eq!(key, &uuid);
        }
    }
    for t in terminal_events(dir.path()) {
        assert_eq!(t["event"], "action_executed");
        assert_eq!(t["attempts"], attempts as u64);
    }
}

async fn fails_once(provider: Provider, script: &str, status: u64) {
    let server = mock(config(provider, script)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(dialect_cmd(&provider, &server, dir.path(), 1)).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(server.recorded().execute_requests.len(), 1);
    let t = terminal_events(dir.path());
    assert_eq!(t.len(), 1);
    assert_eq!(t[0]["event"], "action_failed");
    assert_eq!(t[0]["http_status"], status);
}

async fn server_error_forever(provider: Provider) {
    let server = mock(MockConfig {
        provider,
        fail_rate: 1.0,
        fail_status: 502,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dialect_cmd(&provider, &server, dir.path(), 1);
    cmd.args(["--max-retries", "3"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(server.recorded().execute_requests.len(), 4);
    assert_eq!(terminal_events(dir.path())[0]["attempts"], 4);
}

async fn token_rejected(provider: Provider) {
    let server = mock(MockConfig {
        provider,
        token_script: parse_script("401").unwrap(),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(dialect_cmd(&provider, &server, dir.path(), 5)).await;
    assert_eq!(out.status.code(), Some(1));
    let rec = server.recorded();
    assert_eq!(rec.token_requests, 1);
    assert!(rec.execute_requests.is_empty());
    assert!(format!("{}{}", stdout(&out), stderr(&out))
        .to_lowercase()
        .contains("credentials"));
}

async fn single_flight(provider: Provider) {
    let server = mock(MockConfig {
        provider,
        latency_ms: 20,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dialect_cmd(&provider, &server, dir.path(), 50);
    cmd.args(["--concurrency", "50", "--rate", "unlimited"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.recorded().token_requests, 1);
}

async fn timeout_retried(provider: Provider) {
    let server = mock(config(provider, "delay=2000,200")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dialect_cmd(&provider, &server, dir.path(), 1);
    cmd.args(["--timeout", "0.5"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.recorded().execute_requests.len(), 2);
}

macro_rules! dialect_suite {
    ($module:ident, $provider:expr) => {
        mod $module {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn retry_after_then_success() {
                success_with_retries($provider, "429:ra=1,200", 2).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn server_errors_then_success() {
                success_with_retries($provider, "503,504,200", 3).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn unauthorized_refreshes_once() {
                success_with_retries($provider, "401,200", 2).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn server_error_forever() {
                super::server_error_forever($provider).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bad_request_fails_at_once() {
                fails_once($provider, "400", 400).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn forbidden_fails_at_once() {
                fails_once($provider, "403", 403).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn token_endpoint_rejection_stops_the_run() {
                token_rejected($provider).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fifty_callers_one_token() {
                single_flight($provider).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn timeouts_are_retried() {
                timeout_retried($provider).await;
            }
        }
    };
}

dialect_suite!(genesys, Provider::Genesys);
dialect_suite!(cxone, Provider::Cxone);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesys_sends_a_flat_input_object_to_the_documented_path() {
    let server = mock(config(Provider::Genesys, "")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dialect_cmd(&Provider::Genesys, &server, dir.path(), 1);
    cmd.args(["--input", "source=e2e"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = &server.recorded().execute_requests[0];
    assert_eq!(r.path, "/api/v2/integrations/actions/action-42/execute");
    let uuid = r.uuid.clone().unwrap();
    assert_eq!(r.body, serde_json::json!({"uuid": uuid, "source": "e2e"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesys_echo_mismatch_fails_the_uuid() {
    let mut c = config(Provider::Genesys, "echo-mismatch");
    c.script = parse_script("echo-mismatch").unwrap();
    let server = mock(c).await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(dialect_cmd(&Provider::Genesys, &server, dir.path(), 1)).await;
    assert_eq!(out.status.code(), Some(1));
    let t = terminal_events(dir.path());
    assert!(t[0]["error"].as_str().unwrap().contains("echo mismatch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesys_test_action_uses_the_test_variant() {
    let server = mock(config(Provider::Genesys, "")).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dialect_cmd(&Provider::Genesys, &server, dir.path(), 1);
    cmd.arg("--test-action");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        server.recorded().execute_requests[0].path,
        "/api/v2/integrations/actions/action-42/test"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_fills_the_body_template_and_posts_to_the_discovered_host() {
    let server = mock(config(Provider::Cxone, "")).await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(dialect_cmd(&Provider::Cxone, &server, dir.path(), 1)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = &server.recorded().execute_requests[0];
    assert_eq!(r.path, EXEC_PATH);
    let uuid = r.uuid.clone().unwrap();
    assert_eq!(
        r.body,
        serde_json::json!({"scriptName": "Register", "parameters": format!("{uuid}|e2e")})
    );
}

async fn discovery_fault(fault: DiscoveryFault, url_part: &str) {
    let server = mock(MockConfig {
        provider: Provider::Cxone,
        discovery_fault: Some(fault),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(dialect_cmd(&Provider::Cxone, &server, dir.path(), 1)).await;
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains(url_part),
        "error should name the URL tried: {err}"
    );
    assert!(server.recorded().execute_requests.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_discovery_document_missing() {
    discovery_fault(
        DiscoveryFault::NotFound,
        "/.well-known/openid-configuration",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_id_token_without_tenant() {
    discovery_fault(DiscoveryFault::NoTenant, "tenantId").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_configuration_not_json() {
    discovery_fault(
        DiscoveryFault::MalformedJson,
        "/.well-known/cxone-configuration",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_command_shows_who_and_where_but_never_the_token() {
    for provider in [Provider::Tutorial, Provider::Genesys, Provider::Cxone] {
        let server = mock(MockConfig {
            provider,
            ..MockConfig::default()
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let cmd = dialect_cmd(&provider, &server, dir.path(), 1);
        // Reuse the dialect's settings, but as `token` instead of `run`.
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let envs: Vec<(String, String)> = cmd
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        let mut token = bin();
        token.current_dir(dir.path()).arg("token").envs(envs);
        let mut skip = 0;
        for a in args.iter().skip(1) {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            if [
                "-n",
                "--output",
                "--audit",
                "--backoff-base",
                "--backoff-cap",
            ]
            .contains(&a.as_str())
            {
                skip = 1;
                continue;
            }
            token.arg(a);
        }
        let out = output(token).await;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains(provider_name(&provider)), "{text}");
        assert!(text.contains(&server.base_url()), "{text}");
        if matches!(provider, Provider::Cxone) {
            assert!(text.contains(&MockConfig::default().tenant_id), "{text}");
        }
        for t in server.issued_tokens() {
            assert!(!text.contains(&t), "the token was printed");
        }
    }
}
