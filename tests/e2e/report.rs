//! `audit report` end to end: figures checked against the trail the run wrote (JSON), a broken
//! or unproven trail reported as such (exit 1), and the HTML opened in a real headless Chromium:
//! it renders, requests nothing from the network, shows the JSON's totals, and its screenshot is
//! not blank.

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cxone_uuid_mock::MockConfig;
use serde_json::Value;

use crate::support::*;

/// A run of `n` UUIDs, about a third refused with a 400, into `sqlite:DIR/trail.db` (and the
/// usual JSONL trail beside it).
async fn failing_run(dir: &Path, n: u64) -> PathBuf {
    let server = mock(MockConfig {
        fail_rate: 0.3,
        fail_status: 400,
        ..MockConfig::default()
    })
    .await;
    let db = dir.join("trail.db");
    let mut cmd = run_cmd(&server, dir, n);
    cmd.args(["--audit", &format!("sqlite:{}", db.display())]);
    let out = output(cmd).await;
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    db
}

fn report_cmd(db: &Path, args: &[&str]) -> Command {
    let mut cmd = bin();
    cmd.args(["audit", "report", "--db"]).arg(db).args(args);
    cmd
}

async fn report_json(db: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = output(report_cmd(db, &all)).await;
    let json = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&out), stderr(&out)));
    (out.status.code(), json)
}

fn count(events: &[Value], kind: &str) -> u64 {
    events.iter().filter(|e| e["event"] == kind).count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_report_counts_what_the_trail_holds_and_says_when_it_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let db = failing_run(dir.path(), 60).await;
    let events = events(&audit_path(dir.path()));
    let (code, r) = report_json(&db, &[]).await;
    assert_eq!(code, Some(0), "{r}");
    let t = &r["totals"];
    assert_eq!(t["submitted"], count(&events, "action_submitted"));
    assert_eq!(t["succeeded"], count(&events, "action_executed"));
    assert_eq!(t["failed"], count(&events, "action_failed"));
    assert!(
        t["failed"].as_u64().unwrap() > 0,
        "the stand-in refused some: {r}"
    );
    assert_eq!(t["pending"], 0);
    let ok = t["succeeded"].as_f64().unwrap();
    let rate = ok / (ok + t["failed"].as_f64().unwrap());
    assert!((t["success_rate"].as_f64().unwrap() - rate).abs() < 1e-9);
    assert_eq!(r["verification"]["intact"], true);
    assert_eq!(r["verification"]["events"], events.len() as u64);
    let days = r["days"].as_array().unwrap();
    assert_eq!(days.len(), 1, "one day: {r}");
    assert_eq!(days[0]["succeeded"], t["succeeded"]);
    assert!(days[0]["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    let reasons = r["failure_reasons"].as_array().unwrap();
    let counted: u64 = reasons.iter().map(|x| x["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, t["failed"].as_u64().unwrap(), "one reason: {r}");
    let example = reasons[0]["example_uuid"].as_str().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "action_failed" && e["uuid"] == example),
        "the example failed"
    );
    let runs = r["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    let started = events.iter().find(|e| e["event"] == "run_started").unwrap();
    assert_eq!(runs[0]["provider"], started["metadata"]["provider"]);
    assert!(runs[0]["provider"].is_string());
    assert_eq!(runs[0]["action_id"], "action-42");
    assert!(runs[0]["end"].is_string());

    // A period after the run counts nothing; the chain is still verified whole.
    let (code, later) = report_json(&db, &["--since", "2999-01-01"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(later["totals"]["submitted"], 0);
    assert_eq!(later["verification"]["events"], events.len() as u64);

    // A key that signed nothing: intact but not proven, exit 1.
    let key = dir.path().join("k");
    let mut keygen = bin();
    keygen.args(["audit", "keygen", "--out"]).arg(&key);
    assert_eq!(output(keygen).await.status.code(), Some(0));
    let public = format!("{}.pub", key.display());
    let (code, unproven) = report_json(&db, &["--public-key", &public]).await;
    assert_eq!(code, Some(1));
    assert_eq!(unproven["verification"]["proven"], false);

    // An edited row: the report is still written, names the break, and exits 1.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute(
        "UPDATE audit_events_recent SET attempts = 7 WHERE seq = 5",
        [],
    )
    .unwrap();
    conn.execute("UPDATE audit_events SET attempts = 7 WHERE seq = 5", [])
        .unwrap();
    drop(conn);
    let (code, broken) = report_json(&db, &[]).await;
    assert_eq!(code, Some(1));
    assert_eq!(broken["verification"]["intact"], false);
    assert_eq!(broken["verification"]["first_break"]["seq"], 5);
    let out = output(report_cmd(&db, &[])).await;
    assert!(
        stdout(&out).contains("verification: BROKEN at seq 5: hash mismatch"),
        "{}",
        stdout(&out)
    );
}

/// A loopback HTTP proxy that counts the connections made through it and answers 502.
fn counting_proxy() -> (u16, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (h, s) = (hits.clone(), seen.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            h.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 512];
            let n = conn.read(&mut buf).unwrap_or(0);
            let line = String::from_utf8_lossy(&buf[..n]);
            s.lock()
                .unwrap()
                .push(line.lines().next().unwrap_or_default().to_string());
            let _ = conn.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        }
    });
    (port, hits, seen)
}

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CXONE_UUID_TEST_CHROMIUM") {
        return PathBuf::from(p);
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!(
                "no headless browser: run `cargo xtask test` (it installs Debian's chromium), \
                 or set CXONE_UUID_TEST_CHROMIUM"
            )
        })
}

/// Chromium headless on `page` with every request sent through the counting proxy (loopback
/// included) and no background traffic of its own; `what` is `--dump-dom` or `--screenshot=…`.
fn browse(page: &Path, proxy: u16, profile: &Path, what: &str) -> std::process::Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-client-side-phishing-detection",
            "--disable-domain-reliability",
            "--disable-breakpad",
            "--disable-field-trial-config",
            "--no-pings",
            "--no-service-autorun",
            "--metrics-recording-only",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,\
             MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,\
             CertificateTransparencyComponentUpdater,AccountConsistency",
            "--hide-scrollbars",
            "--window-size=1200,1600",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--proxy-server=http://127.0.0.1:{proxy}"),
            "--proxy-bypass-list=<-loopback>",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(what)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("start chromium")
}

/// The text of the element with `id` in a dumped DOM.
fn by_id(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the page"));
    let rest = &dom[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest.find("</").unwrap();
    rest[open..close].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_renders_offline_in_chromium_with_the_json_totals() {
    let dir = tempfile::tempdir().unwrap();
    let db = failing_run(dir.path(), 40).await;
    let (_, json) = report_json(&db, &[]).await;
    let page = dir.path().join("report.html");
    let out = output(report_cmd(
        &db,
        &["--output", "html", "-o", page.to_str().unwrap()],
    ))
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.contains("<script"), "no script");
    assert_eq!(html.matches("<svg").count(), 2, "two inline charts");

    let (proxy, hits, seen) = counting_proxy();
    // The detector works: a page that fetches an image is seen by the proxy.
    let control = dir.path().join("control.html");
    std::fs::write(
        &control,
        "<!DOCTYPE html><html><body><img src=\"http://cxone-uuid.invalid/x.png\"></body></html>",
    )
    .unwrap();
    browse(&control, proxy, &dir.path().join("profile-0"), "--dump-dom");
    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .any(|line| line.contains("cxone-uuid.invalid")),
        "the control page's request reached the proxy: {:?}",
        seen.lock().unwrap()
    );
    hits.store(0, Ordering::SeqCst);
    seen.lock().unwrap().clear();

    let out = browse(&page, proxy, &dir.path().join("profile-1"), "--dump-dom");
    assert!(out.status.success(), "{}", stderr(&out));
    let dom = stdout(&out);
    let log = stderr(&out);
    assert!(
        !log.contains("CONSOLE") && !log.contains("Refused to"),
        "no console message or blocked load: {log}"
    );
    for (id, key) in [
        ("total-submitted", "submitted"),
        ("total-succeeded", "succeeded"),
        ("total-failed", "failed"),
        ("total-pending", "pending"),
        ("total-retries", "retries"),
        ("total-rate-limited", "rate_limited"),
    ] {
        assert_eq!(
            by_id(&dom, id),
            json["totals"][key].to_string(),
            "#{id} shows the JSON's {key}"
        );
    }
    assert!(by_id(&dom, "verdict").starts_with("intact: "));
    let shot = dir.path().join("shot.png");
    let out = browse(
        &page,
        proxy,
        &dir.path().join("profile-2"),
        &format!("--screenshot={}", shot.display()),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Chromium itself calls its update and sign-in services whatever the page (Debian's build
    // keeps them despite the flags above); any other request came from the page.
    let own = [
        "update.googleapis.com",
        "accounts.google.com",
        "clients2.google.com",
    ];
    let from_page: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|line| !own.iter().any(|host| line.contains(host)))
        .cloned()
        .collect();
    assert!(from_page.is_empty(), "no network request: {from_page:?}");
    // Nor could it make one: nothing in the page loads anything.
    for loader in [
        "src=", "href=", "url(", "@import", "<link", "<script", "<iframe",
    ] {
        assert!(!html.contains(loader), "the page holds {loader}");
    }

    // Not blank: a real share of the pixels differ from the background.
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let first = &pixels[..px];
    let differing = pixels.chunks(px).filter(|p| p[..3] != first[..3]).count();
    let share = differing as f64 / (pixels.len() / px) as f64;
    assert!(share > 0.02, "the screenshot is not blank: {share}");
}
