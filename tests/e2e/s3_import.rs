//! `audit import s3://…` end to end against the S3 test server: an archive loaded into SQLite
//! whole, a later import adding only what came after, one run's objects as a partial copy that
//! verify anchors, and an edited or removed object, or one whose bytes do not match its stored
//! SHA-256, caught with its key named and nothing imported.
#![cfg(feature = "s3")]

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;

use cxone_uuid_mock::MockConfig;

use crate::s3::{audit_cmd, create_bucket, moto, s3_flags};
use crate::support::*;

/// One `run` of `n` UUIDs archiving to `uri` in objects of 10 events.
async fn archive_run(
    server: &cxone_uuid_mock::MockServer,
    dir: &Path,
    uri: &str,
    endpoint: &str,
    n: u64,
) {
    let mut cmd = run_cmd(server, dir, n);
    cmd.args(["--audit", uri, "--s3-batch-events", "10"]);
    s3_flags(&mut cmd, endpoint, &dir.join("spool"));
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

fn import_cmd(uri: &str, endpoint: &str, dir: &Path, db: &Path) -> Command {
    let mut cmd = audit_cmd("import", uri, endpoint, &dir.join("spool"));
    cmd.arg("--db").arg(db);
    cmd
}

fn run_ids(dir: &Path) -> Vec<String> {
    events(&audit_path(dir))
        .iter()
        .filter(|e| e["event"] == "run_started")
        .map(|e| e["run_id"].as_str().unwrap().to_string())
        .collect()
}

/// The keys under `prefix/`, in order (moto answers ListObjectsV2 with XML).
async fn keys(endpoint: &str, bucket: &str) -> Vec<String> {
    let xml = reqwest::get(format!("{endpoint}/{bucket}?list-type=2"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut keys: Vec<String> = xml
        .split("<Key>")
        .skip(1)
        .map(|s| s.split("</Key>").next().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

fn db_count(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_imports_whole_then_only_what_came_after_and_one_run_as_a_partial_copy() {
    let moto = moto();
    let bucket = create_bucket(&moto.endpoint, "import");
    let server = mock(MockConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let uri = format!("s3://{bucket}/trail");
    archive_run(&server, dir.path(), &uri, &moto.endpoint, 12).await;
    let first_run_events = events(&audit_path(dir.path())).len() as i64;

    let db = dir.path().join("trail.db");
    let out = output(import_cmd(&uri, &moto.endpoint, dir.path(), &db)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).starts_with(&format!("ok: imported {first_run_events} events into ")),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        db_count(&db, "SELECT count(*) FROM audit_events_all"),
        first_run_events
    );

    // A second run continues the archive; importing again adds only its events.
    archive_run(&server, dir.path(), &uri, &moto.endpoint, 7).await;
    let all_events = events(&audit_path(dir.path())).len() as i64;
    let out = output(import_cmd(&uri, &moto.endpoint, dir.path(), &db)).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!(
            "ok: imported {} events into",
            all_events - first_run_events
        )),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        db_count(&db, "SELECT count(*) FROM audit_events_all"),
        all_events
    );
    assert_verifies(&format!("sqlite:{}", db.display())).await;

    // The imported copy answers queries and reports what both runs did.
    let mut query = bin();
    query.args(["audit", "query", "--db"]).arg(&db).args([
        "--event",
        "action_executed",
        "--output",
        "json",
    ]);
    let out = output(query).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let executed: Vec<serde_json::Value> = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(executed.len(), 19);
    let mut report = bin();
    report
        .args(["audit", "report", "--db"])
        .arg(&db)
        .args(["--output", "json"]);
    let out = output(report).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["totals"]["submitted"], 19);
    assert_eq!(report["totals"]["succeeded"], 19);
    assert_eq!(report["verification"]["events"], all_events);
    assert_eq!(report["runs"].as_array().unwrap().len(), 2);

    // The second run alone: a copy that starts mid-chain, anchored, and verifies as such.
    let runs = run_ids(dir.path());
    assert_eq!(runs.len(), 2);
    let part = dir.path().join("second-run.db");
    let mut cmd = import_cmd(&uri, &moto.endpoint, dir.path(), &part);
    cmd.args(["--run-id", &runs[1]]);
    let out = output(cmd).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("partial copy: seqs "),
        "{}",
        stdout(&out)
    );
    let other_runs = db_count(
        &part,
        &format!(
            "SELECT count(*) FROM audit_events_all WHERE run_id <> '{}'",
            runs[1]
        ),
    );
    assert!(
        other_runs <= 10,
        "at most the object shared with run 1: {other_runs}"
    );
    assert_eq!(
        db_count(&part, &format!("SELECT count(*) FROM audit_events_all WHERE run_id = '{}' AND event = 'action_executed'", runs[1])),
        7
    );
    let mut verify = bin();
    verify
        .args(["audit", "verify"])
        .arg(format!("sqlite:{}", part.display()));
    let out = output(verify).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("partial copy of "),
        "{}",
        stdout(&out)
    );

    // A period with no object is an error naming the filters, and leaves no database.
    let none = dir.path().join("none.db");
    let mut cmd = import_cmd(&uri, &moto.endpoint, dir.path(), &none);
    cmd.args(["--since", "2999-01-01"]);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("for that --run-id/--since/--until"),
        "{}",
        stderr(&out)
    );
    assert!(!none.exists());
    // The filters belong to S3: a JSONL import says so.
    let mut cmd = bin();
    cmd.args(["audit", "import"])
        .arg(audit_path(dir.path()))
        .args(["--since", "2026-01-01", "--db"])
        .arg(&none);
    let out = output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--since chooses objects of an S3 archive"),
        "{}",
        stderr(&out)
    );
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap();
    text
}

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_or_removed_object_is_named_and_nothing_is_imported() {
    let moto = moto();
    let server = mock(MockConfig::default()).await;
    // moto checks who asks, not the signature: a header naming the test credentials will do.
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, \
         SignedHeaders=host, Signature=0"
            .parse()
            .unwrap(),
    );
    let http = reqwest::Client::builder()
        .default_headers(auth)
        .build()
        .unwrap();
    for tamper in ["edit", "remove", "checksum"] {
        let bucket = create_bucket(&moto.endpoint, tamper);
        let dir = tempfile::tempdir().unwrap();
        let uri = format!("s3://{bucket}/trail");
        archive_run(&server, dir.path(), &uri, &moto.endpoint, 25).await;
        let keys = keys(&moto.endpoint, &bucket).await;
        assert!(keys.len() >= 4, "{keys:?}");
        let victim = &keys[1];
        let url = format!("{}/{bucket}/{victim}", moto.endpoint);
        if tamper == "edit" {
            let resp = http.get(&url).send().await.unwrap();
            assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
            let bytes = resp.bytes().await.unwrap();
            assert!(
                bytes.starts_with(&[0x1f, 0x8b]),
                "gzip from {url}: {bytes:?}"
            );
            let text = gunzip(&bytes);
            // The first UUID in the object, one hex digit changed.
            let at = text.find("\"uuid\":\"").unwrap() + "\"uuid\":\"".len();
            let digit = if &text[at..at + 1] == "0" { "1" } else { "0" };
            let edited = format!("{}{digit}{}", &text[..at], &text[at + 1..]);
            let resp = http.put(&url).body(gzip(&edited)).send().await.unwrap();
            assert!(resp.status().is_success());
        } else if tamper == "checksum" {
            // The same bytes, stored with a SHA-256 that is not theirs (moto keeps what it is
            // told), as a corrupted copy would be.
            let bytes = http.get(&url).send().await.unwrap().bytes().await.unwrap();
            let resp = http
                .put(&url)
                .header("x-amz-sdk-checksum-algorithm", "SHA256")
                .header(
                    "x-amz-checksum-sha256",
                    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                )
                .body(bytes)
                .send()
                .await
                .unwrap();
            assert!(resp.status().is_success());
        } else {
            let resp = http.delete(&url).send().await.unwrap();
            assert!(resp.status().is_success());
        }
        let db = dir.path().join("trail.db");
        let out = output(import_cmd(&uri, &moto.endpoint, dir.path(), &db)).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{tamper}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let said = stdout(&out);
        assert!(
            said.starts_with("FAILED: nothing imported: chain broken at seq "),
            "{said}"
        );
        let named = match tamper {
            "edit" | "checksum" => format!("(object {victim})"),
            _ => format!("and object {}", keys[2]),
        };
        assert!(said.contains(&named), "{tamper}: names {named}: {said}");
        assert!(!db.exists(), "{tamper}: no database is left behind");
    }
}
