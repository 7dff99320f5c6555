//! The S3 sink against a real S3-compatible server (moto_server), never a mock of the SDK.
//!
//! `cargo xtask test` starts moto and exports CXONE_UUID_TEST_S3_ENDPOINT; without it each test
//! starts its own moto_server (from target/xtask-venv or PATH) on a free port, and fails with
//! instructions when none is installed: these tests never skip silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ObjectLockMode, ServerSideEncryption};
use base64::Engine as _;
use cxone_uuid_audit::chain::Verifier;
use cxone_uuid_audit::{AuditEvent, AuditSink, EventKind};
use cxone_uuid_audit_s3::{flush, verify, S3Config, S3Error, S3Sink, Sse};
use cxone_uuid_mock::OutageProxy;
use sha2::{Digest, Sha256};
use uuid::Uuid;

// ---------------------------------------------------------------- moto

struct Moto {
    endpoint: String,
    child: Option<Child>,
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn credentials() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ] {
            if std::env::var_os(k).is_none() {
                std::env::set_var(k, v);
            }
        }
    });
}

fn moto_bin() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let venv = target.join("xtask-venv/bin/moto_server");
    if venv.is_file() {
        return venv;
    }
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("moto_server"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "no S3 test server: run `cargo xtask test` (it installs moto[server] into \
                 target/xtask-venv and starts it), or set CXONE_UUID_TEST_S3_ENDPOINT"
            )
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 8];
    matches!(s.read(&mut buf), Ok(n) if n > 0 && buf.starts_with(b"HTTP/"))
}

fn moto() -> Moto {
    credentials();
    if let Ok(endpoint) = std::env::var("CXONE_UUID_TEST_S3_ENDPOINT") {
        return Moto {
            endpoint,
            child: None,
        };
    }
    let port = free_port();
    let child = Command::new(moto_bin())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let moto = Moto {
        endpoint: format!("http://127.0.0.1:{port}"),
        child: Some(child),
    };
    let start = Instant::now();
    while !http_answers(port) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "moto_server did not answer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto
}

fn client(endpoint: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

fn unique_bucket(tag: &str) -> String {
    format!("cx-{tag}-{}", &Uuid::new_v4().simple().to_string()[..12])
}

async fn make_bucket(c: &aws_sdk_s3::Client, bucket: &str, object_lock: bool) {
    c.create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(object_lock)
        .send()
        .await
        .expect("create bucket");
}

// ---------------------------------------------------------------- a proxy we can cut

// ---------------------------------------------------------------- helpers

fn events(run: Uuid, n: usize) -> Vec<AuditEvent> {
    (0..n)
        .map(|_| {
            let mut ev = AuditEvent::new(EventKind::UuidGenerated, run);
            ev.uuid = Some(Uuid::new_v4());
            ev
        })
        .collect()
}

fn config(endpoint: &str, bucket: &str, prefix: &str, spool: &Path) -> S3Config {
    S3Config::new(bucket, prefix)
        .with_endpoint(Some(endpoint.to_string()))
        .with_region(Some("us-east-1".into()))
        .with_path_style(true)
        .with_spool(spool)
        .with_batch_events(5)
        .with_retry(2, Duration::from_millis(50))
}

async fn keys(c: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let out = c.list_objects_v2().bucket(bucket).send().await.unwrap();
    let mut keys: Vec<String> = out
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

fn spool_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.starts_with("ready-") || name.starts_with("open-")
        })
        .count()
    })
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn objects_have_the_documented_keys_and_checksums_and_decompress_to_a_verified_trail() {
    let moto = moto();
    let c = client(&moto.endpoint);
    let bucket = unique_bucket("keys");
    make_bucket(&c, &bucket, false).await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&moto.endpoint, &bucket, "audit/prod", tmp.path());

    let sink = S3Sink::open(cfg.clone(), None).await.unwrap();
    let run = Uuid::now_v7();
    sink.append(&events(run, 7)).await.unwrap();
    sink.sync().await.unwrap();
    sink.append(&events(run, 5)).await.unwrap();
    sink.close().await.unwrap();
    assert_eq!(
        spool_files(&cfg.spool_dir()),
        0,
        "spool emptied after upload"
    );

    let keys = keys(&c, &bucket).await;
    let today = chrono::Utc::now().format("%Y/%m/%d").to_string();
    let want: Vec<String> = [(1, 5), (6, 10), (11, 12)]
        .iter()
        .map(|(a, b)| format!("audit/prod/{today}/{run}/{a:020}-{b:020}.jsonl.gz"))
        .collect();
    assert_eq!(keys, want);

    let mut verifier = Verifier::new();
    for key in &keys {
        let obj = c
            .get_object()
            .bucket(&bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let stored_checksum = obj.checksum_sha256().map(str::to_string);
        let body = obj.body.collect().await.unwrap().into_bytes();
        let ours = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
        assert_eq!(stored_checksum.as_deref(), Some(ours.as_str()), "{key}");
        let mut text = Vec::new();
        std::io::copy(&mut flate2::read::GzDecoder::new(&body[..]), &mut text).unwrap();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            verifier.feed_line(line).unwrap();
        }
    }
    assert_eq!(verifier.count(), 12);

    let report = verify(&cfg).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.objects, report.events), (3, 12));
    assert_eq!(report.head, verifier.head().1);
}

/// moto (unlike S3) stores a wrong `x-amz-checksum-sha256` without complaint, so this checks
/// our side: an object whose bytes no longer match its stored checksum fails verification.
#[tokio::test]
async fn an_object_whose_bytes_do_not_match_its_checksum_fails_verify() {
    let moto = moto();
    let c = client(&moto.endpoint);
    let bucket = unique_bucket("sum");
    make_bucket(&c, &bucket, false).await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&moto.endpoint, &bucket, "p", tmp.path());
    let sink = S3Sink::open(cfg.clone(), None).await.unwrap();
    sink.append(&events(Uuid::now_v7(), 3)).await.unwrap();
    sink.close().await.unwrap();
    let key = keys(&c, &bucket).await.remove(0);
    let body = c
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let wrong = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"other"));
    c.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(ByteStream::from(body.to_vec()))
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .checksum_sha256(wrong)
        .send()
        .await
        .unwrap();
    let report = verify(&cfg).await.unwrap();
    let broken = report.broken.expect("verify must fail");
    assert_eq!(broken.key, key);
    assert!(broken.reason.contains("checksum"), "{}", broken.reason);
}

#[tokio::test]
async fn a_new_run_with_an_empty_spool_continues_the_chain_from_the_bucket() {
    let moto = moto();
    let c = client(&moto.endpoint);
    let bucket = unique_bucket("resume");
    make_bucket(&c, &bucket, false).await;
    let tmp = tempfile::tempdir().unwrap();
    for (i, n) in [3usize, 4].into_iter().enumerate() {
        // A different spool each time: as if the next run were on another machine.
        let cfg = config(&moto.endpoint, &bucket, "", &tmp.path().join(i.to_string()));
        let sink = S3Sink::open(cfg, None).await.unwrap();
        sink.append(&events(Uuid::now_v7(), n)).await.unwrap();
        sink.close().await.unwrap();
    }
    let cfg = config(&moto.endpoint, &bucket, "", tmp.path());
    let report = verify(&cfg).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.events, report.last_seq, report.objects), (7, 7, 2));
}

#[tokio::test]
async fn s3_down_mid_run_loses_nothing_and_flush_then_verify_show_every_event_once() {
    let moto = moto();
    let c = client(&moto.endpoint);
    let bucket = unique_bucket("outage");
    make_bucket(&c, &bucket, false).await;
    let proxy = OutageProxy::new(&moto.endpoint).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&proxy.endpoint(), &bucket, "p", tmp.path());

    let sink = S3Sink::open(cfg.clone(), None).await.unwrap();
    let run = Uuid::now_v7();
    sink.append(&events(run, 5)).await.unwrap();
    sink.append(&events(run, 1)).await.unwrap(); // rolls 1-5: uploaded in the background
    sink.sync().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while keys(&c, &bucket).await.is_empty() {
        assert!(Instant::now() < deadline, "first object never uploaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    proxy.stop().await;
    sink.append(&events(run, 9)).await.unwrap();
    sink.sync().await.unwrap();
    // Closing with S3 down is not an error: the events are durable in the spool.
    sink.close().await.unwrap();
    assert!(
        spool_files(&cfg.spool_dir()) > 0,
        "events kept in the spool"
    );
    assert!(
        flush(&cfg).await.is_err(),
        "flush must fail while S3 is down"
    );

    proxy.start().await.unwrap();
    let report = flush(&cfg).await.unwrap();
    assert_eq!(report.remaining, 0);
    assert_eq!(report.events(), 10);
    assert_eq!(spool_files(&cfg.spool_dir()), 0);
    // A second flush has nothing to do.
    assert_eq!(flush(&cfg).await.unwrap().uploaded.len(), 0);

    let report = verify(&cfg).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.events, report.last_seq), (15, 15));
    proxy.stop().await;
}

#[tokio::test]
async fn a_segment_uploaded_again_after_a_crash_lands_on_the_same_key() {
    let moto = moto();
    let c = client(&moto.endpoint);
    let bucket = unique_bucket("idem");
    make_bucket(&c, &bucket, false).await;
    let proxy = OutageProxy::new(&moto.endpoint).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&proxy.endpoint(), &bucket, "p", tmp.path()).with_batch_events(100);
    let sink = S3Sink::open(cfg.clone(), None).await.unwrap();
    proxy.stop().await;
    sink.append(&events(Uuid::now_v7(), 3)).await.unwrap();
    sink.close().await.unwrap();
    // Keep a copy of the sealed segment, as a crash between PutObject and unlink would leave.
    let seg = std::fs::read_dir(cfg.spool_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("ready-")
        })
        .expect("a sealed segment in the spool");
    let copy = std::fs::read(&seg).unwrap();
    proxy.start().await.unwrap();
    flush(&cfg).await.unwrap();
    std::fs::write(&seg, copy).unwrap();
    assert_eq!(flush(&cfg).await.unwrap().uploaded.len(), 1);
    assert_eq!(
        keys(&c, &bucket).await.len(),
        1,
        "same key, not a second object"
    );
    let report = verify(&cfg).await.unwrap();
    assert!(report.is_intact() && report.events == 3, "{report:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn sse_and_object_lock_reach_the_stored_object() {
    let moto = moto();
    let c = client(&moto.endpoint);
    let bucket = unique_bucket("lock");
    make_bucket(&c, &bucket, true).await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&moto.endpoint, &bucket, "p", tmp.path())
        .with_sse(Some(Sse::Aes256))
        .with_object_lock_days(Some(3));
    let sink = S3Sink::open(cfg.clone(), None).await.unwrap();
    sink.append(&events(Uuid::now_v7(), 2)).await.unwrap();
    sink.close().await.unwrap();
    let keys = keys(&c, &bucket).await;
    assert_eq!(keys.len(), 1);
    let head = c
        .head_object()
        .bucket(&bucket)
        .key(&keys[0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    let until = head
        .object_lock_retain_until_date()
        .expect("retention date");
    let days = (until.secs() - chrono::Utc::now().timestamp()) as f64 / 86_400.0;
    assert!((2.9..=3.1).contains(&days), "retention {days} days");

    // KMS with a key id.
    let kms_bucket = unique_bucket("kms");
    make_bucket(&c, &kms_bucket, false).await;
    let cfg = config(&moto.endpoint, &kms_bucket, "p", tmp.path()).with_sse(Some(Sse::Kms {
        key_id: Some("alias/cxone-audit".into()),
    }));
    let sink = S3Sink::open(cfg, None).await.unwrap();
    sink.append(&events(Uuid::now_v7(), 1)).await.unwrap();
    sink.close().await.unwrap();
    let key = self::keys(&c, &kms_bucket).await.remove(0);
    let head = c
        .head_object()
        .bucket(&kms_bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::AwsKms)
    );
    assert_eq!(head.ssekms_key_id(), Some("alias/cxone-audit"));
}

#[tokio::test]
async fn a_missing_bucket_is_a_clear_error_before_anything_is_written() {
    let moto = moto();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&moto.endpoint, "cx-no-such-bucket", "p", tmp.path());
    let err = S3Sink::open(cfg, None).await.err().expect("must fail");
    assert!(matches!(err, S3Error::BucketMissing { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("\"cx-no-such-bucket\" does not exist"),
        "{msg}"
    );
}

#[tokio::test]
async fn verify_reports_a_missing_object_as_a_gap_and_checks_what_follows() {
    let moto = moto();
    let c = client(&moto.endpoint);
    let bucket = unique_bucket("gap");
    make_bucket(&c, &bucket, false).await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&moto.endpoint, &bucket, "p", tmp.path());
    let sink = S3Sink::open(cfg.clone(), None).await.unwrap();
    sink.append(&events(Uuid::now_v7(), 15)).await.unwrap();
    sink.close().await.unwrap();
    let keys = keys(&c, &bucket).await;
    assert_eq!(keys.len(), 3);
    c.delete_object()
        .bucket(&bucket)
        .key(&keys[1])
        .send()
        .await
        .unwrap();
    let report = verify(&cfg).await.unwrap();
    assert!(!report.is_intact());
    assert_eq!(report.gaps.len(), 1, "{report:?}");
    let gap = &report.gaps[0];
    assert_eq!((gap.first_missing, gap.last_missing), (6, 10));
    assert_eq!(gap.before, keys[2]);
    assert!(report.broken.is_none(), "{report:?}");
    assert_eq!(report.events, 10);
}

#[tokio::test]
async fn flush_refuses_a_spool_a_running_sink_is_writing() {
    let moto = moto();
    let c = client(&moto.endpoint);
    let bucket = unique_bucket("lock");
    make_bucket(&c, &bucket, false).await;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&moto.endpoint, &bucket, "p", tmp.path());
    let sink = S3Sink::open(cfg.clone(), None).await.unwrap();
    sink.append(&events(Uuid::now_v7(), 2)).await.unwrap();
    let err = flush(&cfg).await.unwrap_err();
    assert!(err.to_string().contains("in use by another"), "{err}");
    sink.close().await.unwrap();
    assert!(flush(&cfg).await.is_ok(), "free again after close");
    assert_eq!(verify(&cfg).await.unwrap().events, 2);
}
