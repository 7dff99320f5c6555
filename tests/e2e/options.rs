//! Settings a user sets once: the TOML file under flags and environment, renamed and extra
//! inputs, Basic client authentication, and signed checkpoints written by `run`.

use cxone_uuid_mock::MockConfig;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toml_file_sits_under_the_environment_and_flags() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let d = MockConfig::default();
    std::fs::write(
        dir.path().join("cxone.toml"),
        format!(
            "client_id = \"{}\"\nclient_secret = \"{}\"\ndata_action_id = \"from-file\"\n\
             base_url = \"{}\"\ntoken_url = \"{}\"\ninput_name = \"requestId\"\n\
             [inputs]\nsource = \"file\"\nteam = \"ops\"\n",
            d.client_id,
            d.client_secret,
            server.base_url(),
            server.token_url()
        ),
    )
    .unwrap();
    private(&dir.path().join("cxone.toml"));
    let mut cmd = bin();
    cmd.current_dir(dir.path())
        .env("CXONE_DATA_ACTION_ID", "from-env")
        .args([
            "run",
            "-n",
            "1",
            "--output",
            "json",
            "--config",
            "cxone.toml",
        ])
        .args(["--input", "source=flag", "--auth-method", "basic"])
        .args(["--audit", "none"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = &server.recorded().execute_requests[0];
    // The environment beats the file; the flag beats the file's input of the same name.
    assert_eq!(r.path, "/api/v2/data-actions/from-env/execute");
    let uuid = r.uuid.clone().unwrap();
    assert_eq!(
        r.body,
        serde_json::json!({"inputs": {"requestId": uuid, "source": "flag", "team": "ops"}})
    );
}

/// Only the owner may read `path` (a plain secret in a config file requires it).
fn private(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_takes_every_run_setting_under_flags_and_environment() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let d = MockConfig::default();
    std::fs::write(
        dir.path().join("secret.txt"),
        format!("{}\n", d.client_secret),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("job.toml"),
        format!(
            "client_id = \"{}\"\nclient_secret_file = \"secret.txt\"\n\
             data_action_id = \"from-file\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\n\
             count = 4\nconcurrency = 2\nmax_retries = 9\noutput = \"json\"\n\
             audit = [\"jsonl:file.jsonl\", \"sqlite:file.db\"]\nuuid_version = \"7\"\n",
            d.client_id,
            server.base_url(),
            server.token_url()
        ),
    )
    .unwrap();
    let mut cmd = bin();
    // The flag beats the file's count, the environment its action id; the rest is the file's.
    cmd.current_dir(dir.path())
        .env("CXONE_DATA_ACTION_ID", "from-env")
        .args(["run", "--config", "job.toml", "-n", "3"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = summary(&out);
    assert_eq!(s["requested"], 3);
    let rec = server.recorded();
    assert_eq!(rec.execute_requests.len(), 3);
    assert_eq!(
        rec.execute_requests[0].path,
        "/api/v2/data-actions/from-env/execute"
    );
    let started = &of_kind(&events(&dir.path().join("file.jsonl")), "run_started")[0].clone();
    assert_eq!(started["metadata"]["uuid_version"], "7");
    assert_eq!(started["metadata"]["max_retries"], 9);
    assert!(
        dir.path().join("file.db").exists(),
        "both trails from the file's list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_secret_in_a_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cxone.toml");
    std::fs::write(&p, "client_id = \"x\"\nclient_secret = \"s3cr3t-value\"\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut cmd = bin();
        cmd.current_dir(dir.path())
            .args(["token", "--config", "cxone.toml"]);
        let out = output(cmd).await;
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        assert!(err.contains("other users can read it (mode 644)"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        assert!(err.contains("client_secret_file"), "{err}");
        assert!(!err.contains("s3cr3t-value"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_with_a_typo_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.toml"), "client_idd = \"x\"\n").unwrap();
    let mut cmd = bin();
    cmd.current_dir(dir.path())
        .args(["run", "--config", "bad.toml"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("client_idd"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_signs_checkpoints_that_verify_with_the_public_key() {
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut keygen = bin();
    keygen
        .current_dir(dir.path())
        .args(["audit", "keygen", "--out", "signing.key"]);
    let out = output(keygen).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("signing.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the private key is private");
    }
    let mut cmd = run_cmd(&server, dir.path(), 10);
    cmd.args([
        "--audit-signing-key",
        "signing.key",
        "--checkpoint-every",
        "8",
    ]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let evs = events(&audit_path(dir.path()));
    let checkpoints = of_kind(&evs, "checkpoint");
    assert!(
        checkpoints.len() >= 2,
        "periodic and end-of-run checkpoints"
    );
    assert_eq!(
        evs.last().unwrap()["event"],
        "checkpoint",
        "the run ends signed"
    );

    let mut verify = bin();
    verify
        .current_dir(dir.path())
        .args(["audit", "verify", "--public-key", "signing.key.pub"])
        .arg(format!("jsonl:{}", audit_path(dir.path()).display()));
    let out = output(verify).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));

    // Cut the tail before the last checkpoint: the chain alone still holds, the signature
    // proof does not.
    let text = std::fs::read_to_string(audit_path(dir.path())).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(
        audit_path(dir.path()),
        lines[..lines.len() - 3].join("\n") + "\n",
    )
    .unwrap();
    let mut verify = bin();
    verify
        .current_dir(dir.path())
        .args(["audit", "verify", "--public-key", "signing.key.pub"])
        .arg(format!("jsonl:{}", audit_path(dir.path()).display()));
    let out = output(verify).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}
