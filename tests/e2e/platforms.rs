//! Issue 16: the platforms as their documentation describes them, end to end through the binary
//! and a stand-in as strict as they are: Genesys's named limits, correlation ids, flatten and
//! `/test` results; Retry-After on 503; CXone's access-key token flow and strict execute path;
//! the tutorial's hint for users who forgot `--provider`.

use std::path::Path;
use std::process::Command;

use cxone_uuid_mock::{
    parse_script, DiscoveryFault, MockConfig, MockServer, Provider, CXONE_ACCESS_KEY_TOKEN_PATH,
    DEFAULT_CXONE_EXECUTE_PATH,
};
use serde_json::Value;

use crate::support::*;

/// `run` against the Genesys stand-in, with the audit trail in `dir`.
fn genesys_cmd(server: &MockServer, dir: &Path, n: u64) -> Command {
    let d = MockConfig::default();
    let mut cmd = bin();
    cmd.current_dir(dir)
        .env("GENESYS_CLIENT_ID", &d.client_id)
        .env("GENESYS_CLIENT_SECRET", &d.client_secret)
        .env("CXONE_DATA_ACTION_ID", "action-42")
        .args(["run", "-n", &n.to_string(), "--output", "json"])
        .args(["--backoff-base", "0.01", "--backoff-cap", "0.05"])
        .args(["--provider", "genesys", "--region", "mypurecloud.ie"])
        .args(["--api-url", &server.base_url()])
        .args(["--token-url", &server.token_url()])
        .arg("--audit")
        .arg(format!("jsonl:{}", audit_path(dir).display()));
    cmd
}

/// A CXone command (`run` or `token`) using the access-key token endpoint: no client id or
/// secret anywhere in its environment.
fn cxone_access_key_cmd(server: &MockServer, dir: &Path, command: &str) -> Command {
    let d = MockConfig::default();
    let mut cmd = bin();
    cmd.current_dir(dir)
        .env("CXONE_ACCESS_KEY_ID", &d.access_key_id)
        .env("CXONE_ACCESS_KEY_SECRET", &d.access_key_secret)
        .env("CXONE_AUTH", "access-key")
        .arg(command)
        .args(["--provider", "cxone", "--issuer", &server.base_url()])
        .args([
            "--token-url",
            &format!("{}{CXONE_ACCESS_KEY_TOKEN_PATH}", server.base_url()),
        ]);
    cmd
}

fn cxone_run_args(cmd: &mut Command, dir: &Path, path: &str) {
    cmd.args(["-n", "2", "--output", "json"])
        .args(["--execute-path", path])
        .args(["--body-template", r#"{"parameters":"{{uuid}}|e2e"}"#])
        .args(["--backoff-base", "0.01", "--backoff-cap", "0.05"])
        .arg("--audit")
        .arg(format!("jsonl:{}", audit_path(dir).display()));
}

async fn limit_named(key: &str, value: u64) {
    let server = mock(MockConfig {
        provider: Provider::Genesys,
        script: parse_script("429:ra=1,429:ra=1").unwrap(),
        genesys_limit: Some(format!("{key}={value}").parse().unwrap()),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = genesys_cmd(&server, dir.path(), 1);
    cmd.args(["--max-retries", "1"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = summary(&out);
    let err = &s["errors"][0];
    let message = err["error"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "rate limited (429) by {key} = {value}, after 2 attempts"
        )),
        "{message}"
    );
    // The correlation id is the one the stand-in sent with its last answer.
    let rec = server.recorded();
    assert_eq!(rec.execute_requests.len(), 2);
    let last = rec.execute_requests[1].correlation_id.clone().unwrap();
    assert_eq!(err["correlation_id"], last.as_str());
    let failed = of_kind(&events(&audit_path(dir.path())), "action_failed")
        .into_iter()
        .cloned()
        .collect::<Vec<Value>>();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["error"].as_str().unwrap().contains(key));
    assert_eq!(failed[0]["correlation_id"], last.as_str());
    assert_trail_verifies(dir.path()).await;
}

#[cfg(feature = "audit-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_carries_the_correlation_id_into_both_trails() {
    let server = mock(MockConfig {
        provider: Provider::Genesys,
        // Each UUID: a 500, then success; the outcome keeps the last answer's id.
        script: parse_script("500,200").unwrap(),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("trail.db");
    let mut cmd = genesys_cmd(&server, dir.path(), 3);
    cmd.args(["--concurrency", "1", "--audit"])
        .arg(format!("sqlite:{}", db.display()));
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // What the stand-in sent with each UUID's last answer is what its outcome recorded.
    let mut last: std::collections::HashMap<String, String> = Default::default();
    for r in &server.recorded().execute_requests {
        last.insert(r.uuid.clone().unwrap(), r.correlation_id.clone().unwrap());
    }
    assert_eq!(server.recorded().execute_requests.len(), 6);
    let sent: Vec<String> = last.into_values().collect();
    assert_eq!(sent.len(), 3);
    let evs = events(&audit_path(dir.path()));
    let outcomes: Vec<&Value> = evs
        .iter()
        .filter(|e| {
            matches!(
                e["event"].as_str(),
                Some("action_executed" | "action_failed")
            )
        })
        .collect();
    assert_eq!(outcomes.len(), 3);
    let mut recorded: Vec<String> = outcomes
        .iter()
        .map(|e| e["correlation_id"].as_str().unwrap().to_string())
        .collect();
    let mut expected = sent.clone();
    recorded.sort();
    expected.sort();
    assert_eq!(recorded, expected);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT correlation_id FROM audit_events_all \
             WHERE event IN ('action_executed', 'action_failed') ORDER BY correlation_id",
        )
        .unwrap();
    let in_db: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(in_db, expected);
    assert_trail_verifies(dir.path()).await;
    assert_verifies(&format!("sqlite:{}", db.display())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesys_429_names_the_per_token_limit() {
    limit_named("client.credentials.token.rate.per.minute", 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesys_429_names_the_concurrency_limit() {
    limit_named("actions.concurrent.executions.max", 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesys_429_names_the_volume_limit() {
    limit_named("requests.volume.max", 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_on_503_is_waited_for() {
    let server = mock(MockConfig {
        provider: Provider::Genesys,
        script: parse_script("503:ra=2,200").unwrap(),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(genesys_cmd(&server, dir.path(), 1)).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rec = server.recorded();
    assert_eq!(rec.execute_requests.len(), 2);
    let waited = rec.execute_requests[1].at_ms - rec.execute_requests[0].at_ms;
    // Backoff alone would be under 10 ms here (--backoff-base 0.01).
    assert!(waited >= 2000, "waited only {waited} ms");
    assert_trail_verifies(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flatten_sends_the_parameter_and_echo_matches_the_dotted_key() {
    let server = mock(MockConfig {
        provider: Provider::Genesys,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = genesys_cmd(&server, dir.path(), 2);
    cmd.args(["--flatten", "--echo-field", "record.id"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary(&out)["succeeded"], 2);
    for r in server.recorded().execute_requests {
        assert_eq!(r.query.as_deref(), Some("flatten=true"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_action_prints_the_failing_step_and_the_final_error() {
    let server = mock(MockConfig {
        provider: Provider::Genesys,
        script: parse_script("500").unwrap(),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = genesys_cmd(&server, dir.path(), 1);
    cmd.arg("--test-action");
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = summary(&out)["errors"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("step 2 Execute request: failed: the remote endpoint answered 500"),
        "{message}"
    );
    assert!(
        message.contains("error: the action failed at step 2"),
        "{message}"
    );
    let rec = server.recorded();
    assert_eq!(rec.execute_requests.len(), 1);
    assert!(rec.execute_requests[0].path.ends_with("/test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesys_auto_rate_starts_at_the_per_token_quota() {
    let server = mock(MockConfig {
        provider: Provider::Genesys,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = genesys_cmd(&server, dir.path(), 6);
    cmd.args(["--concurrency", "6"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rec = server.recorded();
    let span = rec.execute_requests[5].at_ms - rec.execute_requests[0].at_ms;
    // 300/min is one request every 200 ms: six requests span about a second, not a burst.
    assert!(span >= 700, "six requests within {span} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_access_key_token_and_run() {
    let server = mock(MockConfig {
        provider: Provider::Cxone,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(cxone_access_key_cmd(&server, dir.path(), "token")).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let d = MockConfig::default();
    assert!(text.contains(CXONE_ACCESS_KEY_TOKEN_PATH), "{text}");
    assert!(
        text.contains(&format!("tenant:         {}", d.tenant_id)),
        "{text}"
    );
    assert!(text.contains("(area na1)"), "{text}");
    assert!(
        text.contains(&format!("api host:       {}", server.base_url())),
        "{text}"
    );
    assert!(text.contains("expires:"), "{text}");
    for token in server.issued_tokens() {
        assert!(!text.contains(&token));
    }

    let mut cmd = cxone_access_key_cmd(&server, dir.path(), "run");
    cxone_run_args(&mut cmd, dir.path(), DEFAULT_CXONE_EXECUTE_PATH);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(summary(&out)["succeeded"], 2);
    let rec = server.recorded();
    assert_eq!(rec.token_requests, 2, "one for token, one for run");
    assert_eq!(rec.execute_requests.len(), 2);
    assert_trail_verifies(dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_access_key_takes_the_tenant_from_the_flag_when_the_token_has_none() {
    let server = mock(MockConfig {
        provider: Provider::Cxone,
        discovery_fault: Some(DiscoveryFault::NoTenant),
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = output(cxone_access_key_cmd(&server, dir.path(), "token")).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--tenant-id"), "{}", stderr(&out));
    let mut cmd = cxone_access_key_cmd(&server, dir.path(), "token");
    cmd.env("CXONE_TENANT_ID", &MockConfig::default().tenant_id);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_access_key_needs_an_area_or_a_token_url() {
    let mut cmd = bin();
    cmd.env("CXONE_ACCESS_KEY_ID", "k")
        .env("CXONE_ACCESS_KEY_SECRET", "s")
        .args(["token", "--provider", "cxone", "--cxone-auth", "access-key"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("CXONE_AREA (--area)"), "{err}");
    assert!(!err.contains("CLIENT_ID"), "no client needed: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cxone_wrong_execute_path_fails_with_404() {
    let server = mock(MockConfig {
        provider: Provider::Cxone,
        ..MockConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = cxone_access_key_cmd(&server, dir.path(), "run");
    cxone_run_args(
        &mut cmd,
        dir.path(),
        "/incontactapi/services/v99.0/scripts/start",
    );
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["failed"], 2);
    let message = s["errors"][0]["error"].as_str().unwrap();
    assert!(message.contains("HTTP 404"), "{message}");
    assert!(message.contains("check --execute-path"), "{message}");
    let rec = server.recorded();
    assert!(rec.execute_requests.is_empty(), "nothing executed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_404_points_at_the_provider_flag() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&server, dir.path(), 1);
    cmd.args([
        "--path-template",
        "/api/v2/integrations/actions/{id}/execute",
    ]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let message = summary(&out)["errors"][0]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("HTTP 404"), "{message}");
    assert!(
        message.contains(
            "\nthis is the tutorial's endpoint; a real NICE CXone tenant needs --provider cxone, \
             Genesys Cloud --provider genesys"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_genesys_region_with_only_a_base_url_is_refused_naming_both() {
    let d = MockConfig::default();
    let mut cmd = bin();
    cmd.env("GENESYS_CLIENT_ID", &d.client_id)
        .env("GENESYS_CLIENT_SECRET", &d.client_secret)
        .env("CXONE_BASE_URL", "https://api.example.com")
        .env_remove("CXONE_TOKEN_URL")
        .args([
            "token",
            "--provider",
            "genesys",
            "--region",
            "mypurecloud.ie",
        ]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim(),
        "error: a Genesys region sets both the API and the token URL, but the API base URL is \
         given without the token URL: give the token URL too, or unset the API base URL so the \
         region sets both [set by CXONE_BASE_URL (--base-url)]"
    );
}
