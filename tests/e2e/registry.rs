//! `--registry`: memory, SQLite and Redis behind `generate`. Several processes on one Redis
//! never hand out the same UUID, a SQLite file remembers across runs, a repeating source is
//! caught by every registry, and an unreachable registry is exit 1, never a silent pass.
//!
//! Redis tests need a real `redis-server`: `CXONE_UUID_TEST_REDIS_URL` (set by `cargo xtask
//! test`) or the `redis-server` binary on PATH; with neither they fail saying how to get one.

use std::collections::HashSet;
#[cfg(feature = "redis")]
use std::io::{BufRead, BufReader};
use std::process::Output;
#[cfg(feature = "redis")]
use std::process::Stdio;

use crate::support::{bin, stderr};

#[cfg(feature = "redis")]
#[path = "../../crates/registry-redis/tests/support/mod.rs"]
mod redis_server;

fn generate(registry: &str, args: &[&str]) -> Output {
    bin()
        .args(["generate", "--registry", registry])
        .args(args)
        .output()
        .expect("run cxone-uuid generate")
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The `duplicates=N` field of the `generation finished` log line (`--log info`).
fn duplicates_logged(out: &Output) -> u64 {
    let err = strip_ansi(&stderr(out));
    let field = err
        .split_whitespace()
        .find_map(|w| w.strip_prefix("duplicates="))
        .unwrap_or_else(|| panic!("no duplicates= in the log:\n{err}"));
    field.trim_end_matches(',').parse().expect("a count")
}

/// The log may be coloured: drop `ESC [ … m` sequences.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The registries every build has, plus SQLite and Redis when built with them (the Redis
/// server lives in `_keep`).
/// Registry specs with their extra flags, and whatever must live as long as they are used.
type Registries = (Vec<(String, Vec<String>)>, Vec<Box<dyn std::any::Any>>);

#[cfg_attr(not(feature = "registry-sqlite"), allow(unused_variables))]
fn registries(dir: &std::path::Path, name: &str) -> Registries {
    #[allow(unused_mut)]
    let mut specs = vec![("memory".to_string(), Vec::new())];
    #[cfg(feature = "registry-sqlite")]
    specs.push((
        format!("sqlite:{}", dir.join(format!("{name}.db")).display()),
        Vec::new(),
    ));
    #[allow(unused_mut)]
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    #[cfg(feature = "redis")]
    {
        let server = redis_server::TestRedis::shared();
        specs.push((
            server.url().to_string(),
            vec![
                "--registry-prefix".to_string(),
                redis_server::unique_prefix(name),
            ],
        ));
        keep.push(Box::new(server));
    }
    (specs, keep)
}

#[test]
fn occasional_duplicates_are_caught_counted_and_regenerated_in_every_registry() {
    let dir = tempfile::tempdir().unwrap();
    let (specs, _keep) = registries(dir.path(), "dup");
    for (spec, extra) in &specs {
        let mut args = vec!["-n", "2000", "--test-entropy", "dup:5:10", "--log", "info"];
        args.extend(extra.iter().map(String::as_str));
        let out = generate(spec, &args);
        assert!(out.status.success(), "{spec}: {}", stderr(&out));
        let ids = lines(&out);
        assert_eq!(ids.len(), 2000, "{spec}");
        assert_eq!(
            ids.iter().collect::<HashSet<_>>().len(),
            2000,
            "{spec}: all distinct"
        );
        assert!(duplicates_logged(&out) >= 100, "{spec}: {}", stderr(&out));
    }
}

#[test]
fn a_repeating_source_hits_the_limit_of_100_with_the_entropy_error_in_every_registry() {
    let dir = tempfile::tempdir().unwrap();
    let (specs, _keep) = registries(dir.path(), "repeat");
    for (spec, extra) in &specs {
        // The stream starts over after 1000 UUIDs: every later candidate is a duplicate.
        let mut args = vec!["-n", "5000", "--test-entropy", "repeat:9:1000"];
        args.extend(extra.iter().map(String::as_str));
        let out = generate(spec, &args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{spec}: {err}");
        assert!(err.contains("100 consecutive duplicate"), "{spec}: {err}");
        assert!(err.contains("entropy source is suspect"), "{spec}: {err}");
        // No UUID of the failed batch is handed out.
        assert!(lines(&out).is_empty(), "{spec}");
    }
}

#[cfg(feature = "registry-sqlite")]
#[test]
fn a_sqlite_registry_finds_the_first_runs_uuids_in_a_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = format!("sqlite:{}", dir.path().join("used.db").display());
    let seeded = [
        "-n",
        "1000",
        "--test-entropy",
        "repeat:42:100000",
        "--log",
        "info",
    ];

    let first = generate(&file, &seeded);
    assert!(first.status.success(), "{}", stderr(&first));
    let first_ids: HashSet<String> = lines(&first).into_iter().collect();
    assert_eq!(first_ids.len(), 1000);
    assert_eq!(duplicates_logged(&first), 0);

    // The same seed from a fresh memory registry gives the same UUIDs again: only the file
    // knows they were used.
    let memory = generate("memory", &seeded);
    assert_eq!(
        lines(&memory).into_iter().collect::<HashSet<_>>(),
        first_ids
    );

    let second = generate(&file, &seeded);
    assert!(second.status.success(), "{}", stderr(&second));
    let second_ids: HashSet<String> = lines(&second).into_iter().collect();
    assert_eq!(second_ids.len(), 1000);
    assert!(
        first_ids.is_disjoint(&second_ids),
        "the second run reused a UUID"
    );
    assert_eq!(
        duplicates_logged(&second),
        1000,
        "every first-run UUID was met"
    );

    // A source that only ever repeats the first run's UUIDs is stopped by the limit.
    let third = generate(&file, &["-n", "10", "--test-entropy", "repeat:42:1000"]);
    assert_eq!(third.status.code(), Some(1), "{}", stderr(&third));
    assert!(stderr(&third).contains("entropy source is suspect"));
}

#[cfg(feature = "registry-sqlite")]
#[test]
fn a_sqlite_file_that_cannot_be_opened_is_exit_1_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("missing-dir").join("used.db");
    let out = generate(&format!("sqlite:{}", file.display()), &["-n", "5"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("missing-dir"), "{}", stderr(&out));
    assert!(lines(&out).is_empty());
}

#[test]
fn registry_usage_errors_exit_2() {
    let out = generate("carrier-pigeon", &["-n", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("memory, sqlite:PATH or redis://"));

    let out = generate("memory", &["-n", "1", "--registry-ttl", "60"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--registry-ttl applies only to a redis://"));

    let out = generate("sqlite:", &["-n", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[cfg(not(feature = "redis"))]
#[test]
fn a_redis_spec_without_the_feature_names_the_feature() {
    let out = generate("redis://127.0.0.1:6379/0", &["-n", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("this build has no redis registry; rebuild with --features redis"),
        "{}",
        stderr(&out)
    );
}

#[cfg(feature = "redis")]
#[test]
fn four_processes_on_one_redis_hand_out_100000_distinct_uuids() {
    use cxone_uuid_core::{Novelty, Registry};
    use cxone_uuid_registry_redis::RedisRegistry;

    let server = redis_server::TestRedis::shared();
    let prefix = redis_server::unique_prefix("four");
    let outputs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (url, prefix) = (server.url(), prefix.as_str());
                s.spawn(move || generate(url, &["-n", "25000", "--registry-prefix", prefix]))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all = HashSet::new();
    for out in &outputs {
        assert!(out.status.success(), "{}", stderr(out));
        let ids = lines(out);
        assert_eq!(ids.len(), 25_000);
        all.extend(ids);
    }
    assert_eq!(
        all.len(),
        100_000,
        "the four processes handed out a UUID twice"
    );

    // Every one is accounted for in Redis: 100,000 keys under the prefix, each one of ours.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let reg = RedisRegistry::builder(server.url())
            .with_prefix(prefix.clone())
            .connect()
            .await
            .unwrap();
        assert_eq!(reg.count_keys().await.unwrap(), 100_000);
        let ids: Vec<uuid::Uuid> = all.iter().map(|s| s.parse().unwrap()).collect();
        let answers = reg.check_and_insert(&ids).await.unwrap();
        assert!(answers.iter().all(|a| *a == Novelty::Duplicate));
    });
}

#[cfg(feature = "redis")]
#[test]
fn redis_unreachable_at_start_is_exit_1_naming_the_url_without_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = generate(
        &format!("redis://:hunter2@127.0.0.1:{port}/0"),
        &["-n", "5"],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("redis://127.0.0.1:{port}/0")),
        "{err}"
    );
    assert!(err.contains("unavailable"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
    assert!(lines(&out).is_empty());
}

#[cfg(feature = "redis")]
#[test]
fn redis_stopped_mid_run_stops_generation_with_exit_1() {
    let mut server = redis_server::TestRedis::spawn(&[]);
    let mut child = bin()
        .args(["generate", "-n", "50000000", "--registry", server.url()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let mut seen = 0u64;
    while seen < 20_000 {
        line.clear();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "generate ended early"
        );
        seen += 1;
    }
    server.stop();
    // Drain what was already checked; the run must then end by itself.
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen += 1;
    }
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unavailable"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{}", server.port())),
        "{err}"
    );
    assert!(seen < 50_000_000);
}

/// A CA and a server certificate for 127.0.0.1, made with the `openssl` command.
#[cfg(feature = "redis")]
fn make_certs(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run openssl ({e}): apt-get install openssl, or run cargo xtask test")
            });
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=cxone-uuid test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.crt",
        "-days",
        "2",
        "-extfile",
        "ext",
    ]);
}

#[cfg(feature = "redis")]
#[test]
fn rediss_works_with_a_trusted_ca_and_refuses_an_untrusted_one() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = |f: &str| certs.path().join(f).display().to_string();
    let (crt, key, ca) = (path("srv.crt"), path("srv.key"), path("ca.crt"));
    let tls_port_text = tls_port.to_string();
    let _server = redis_server::TestRedis::spawn(&[
        "--tls-port",
        &tls_port_text,
        "--tls-cert-file",
        &crt,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}/0");

    let out = bin()
        .env("SSL_CERT_FILE", &ca)
        .args(["generate", "-n", "100", "--registry", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lines(&out).len(), 100);

    // Without the CA the certificate is not trusted: exit 1 with the remedy, nothing printed.
    let untrusted = tempfile::NamedTempFile::new().unwrap();
    let out = bin()
        .env("SSL_CERT_FILE", untrusted.path())
        .args(["generate", "-n", "100", "--registry", &url])
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&url), "{err}");
    assert!(err.contains("SSL_CERT_FILE"), "{err}");
    assert!(lines(&out).is_empty());
}

/// The same guarantee through the main job: four `run` processes on one Redis submit 100,000
/// distinct UUIDs, and every one is in exactly one process's audit trail, which verifies.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_run_processes_on_one_redis_account_for_every_uuid_in_their_trails() {
    use crate::support::{audit_path, events, mock, output, run_cmd, stdout, summary};

    let server = redis_server::TestRedis::shared();
    let prefix = redis_server::unique_prefix("four-run");
    let mock = mock(cxone_uuid_mock::MockConfig::default()).await;
    let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let runs = dirs.iter().map(|d| {
        let mut cmd = run_cmd(&mock, d.path(), 25_000);
        cmd.args(["--registry", server.url(), "--registry-prefix", &prefix])
            .args(["--concurrency", "16", "--rate", "unlimited"]);
        // Spawned, so the four processes really run at the same time.
        tokio::spawn(output(cmd))
    });
    let handles: Vec<_> = runs.collect();
    let mut outs = Vec::new();
    for h in handles {
        outs.push(h.await.unwrap());
    }
    let mut submitted = HashSet::new();
    for (out, dir) in outs.iter().zip(&dirs) {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
        assert_eq!(summary(out)["succeeded"], 25_000);
        let evs = events(&audit_path(dir.path()));
        for e in evs.iter().filter(|e| e["event"] == "action_executed") {
            assert!(
                submitted.insert(e["uuid"].as_str().unwrap().to_string()),
                "a UUID was executed twice across processes"
            );
        }
        let mut verify = bin();
        verify
            .args(["audit", "verify"])
            .arg(format!("jsonl:{}", audit_path(dir.path()).display()));
        let v = output(verify).await;
        assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
    }
    assert_eq!(submitted.len(), 100_000);
    let received: HashSet<String> = mock
        .recorded()
        .execute_requests
        .iter()
        .filter_map(|r| r.uuid.clone())
        .collect();
    assert_eq!(
        received, submitted,
        "the server got exactly the audited UUIDs"
    );
}

/// Redis going away in the middle of `run` stops it with exit 1, and the audit trail records
/// the stop and still verifies.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_is_exit_1_with_an_intact_trail() {
    use crate::support::{audit_path, events, mock, output, run_cmd, stdout};

    let mut server = redis_server::TestRedis::spawn(&[]);
    let mock = mock(cxone_uuid_mock::MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = run_cmd(&mock, dir.path(), 2_000_000);
    cmd.args([
        "--registry",
        server.url(),
        "--concurrency",
        "8",
        "--rate",
        "unlimited",
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while mock.recorded().execute_requests.len() < 2_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the run never got going"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.stop();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unavailable"), "{err}");
    let evs = events(&audit_path(dir.path()));
    let fin: Vec<_> = evs
        .iter()
        .filter(|e| e["event"] == "run_finished")
        .collect();
    assert_eq!(fin.len(), 1);
    assert!(fin[0]["error"].as_str().unwrap().contains("unavailable"));
    let mut verify = bin();
    verify
        .args(["audit", "verify"])
        .arg(format!("jsonl:{}", audit_path(dir.path()).display()));
    let v = output(verify).await;
    assert_eq!(v.status.code(), Some(0), "{}", stdout(&v));
}
