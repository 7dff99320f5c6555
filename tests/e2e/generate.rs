//! `cxone-uuid generate`: count, uniqueness, formats, v7 order, entropy failures, usage errors.

use std::collections::HashSet;
use std::process::{Command, Output};

use cxone_uuid_core::{parse, ParseOptions, UuidVersion};

fn generate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cxone-uuid"))
        .env_remove("RUST_LOG")
        .arg("generate")
        .args(args)
        .output()
        .expect("run cxone-uuid generate")
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8(out.stdout.clone())
        .expect("stdout is UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn default_is_one_lowercase_hyphenated_v4() {
    let out = generate(&[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ids = lines(&out);
    assert_eq!(ids.len(), 1);
    let strict_v4 = ParseOptions {
        strict: true,
        version: Some(UuidVersion::V4),
    };
    assert!(parse(&ids[0], &strict_v4).is_ok(), "{}", ids[0]);
}

#[test]
fn a_million_lines_are_a_million_distinct_valid_uuids() {
    // The issue's `generate -n 1000000 | sort -u | wc -l`, done in Rust.
    let out = generate(&["-n", "1000000"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let mut distinct = HashSet::with_capacity(1_000_000);
    let mut count = 0;
    for line in text.lines() {
        count += 1;
        assert_eq!(line.len(), 36, "{line}");
        distinct.insert(line);
    }
    assert_eq!(count, 1_000_000);
    assert_eq!(distinct.len(), 1_000_000);
    // Spot-check the content too.
    let strict_v4 = ParseOptions {
        strict: true,
        version: Some(UuidVersion::V4),
    };
    assert!(text
        .lines()
        .step_by(9973)
        .all(|l| parse(l, &strict_v4).is_ok()));
}

#[test]
fn every_format_is_lowercase_and_parses_back() {
    let cases: [(&str, usize, &str, &str); 4] = [
        ("hyphenated", 36, "", ""),
        ("simple", 32, "", ""),
        ("urn", 45, "urn:uuid:", ""),
        ("braced", 38, "{", "}"),
    ];
    for (format, len, prefix, suffix) in cases {
        let out = generate(&["-n", "50", "--format", format]);
        assert!(out.status.success(), "{format}: {}", stderr(&out));
        let ids = lines(&out);
        assert_eq!(ids.len(), 50);
        for id in &ids {
            assert_eq!(id.len(), len, "{format}: {id}");
            assert!(
                id.starts_with(prefix) && id.ends_with(suffix),
                "{format}: {id}"
            );
            assert_eq!(id, &id.to_lowercase(), "{format}: {id}");
            let u = parse(id, &ParseOptions::default()).expect("parses");
            assert_eq!(u.get_version_num(), 4);
        }
    }
}

#[test]
fn version_7_is_strictly_increasing_in_output_order() {
    let out = generate(&["-n", "20000", "--uuid-version", "7"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ids = lines(&out);
    assert_eq!(ids.len(), 20_000);
    let v7 = ParseOptions {
        strict: true,
        version: Some(UuidVersion::V7),
    };
    let parsed: Vec<_> = ids.iter().map(|l| parse(l, &v7).expect("v7")).collect();
    // Byte order and text order agree for lowercase hex, so a plain `sort` keeps them in order.
    assert!(parsed.windows(2).all(|w| w[0] < w[1]));
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn a_constant_test_source_stops_with_a_health_error_and_exit_1() {
    let out = generate(&["-n", "10", "--test-entropy", "constant:0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("WARNING: --test-entropy constant:0"), "{err}");
    assert!(
        err.contains("error: generation stopped after 0 of 10 UUIDs: entropy health test failed: repetition count test saw byte 0x00 6 times in a row"),
        "{err}"
    );
    assert!(err.contains("entropy source is suspect"), "{err}");
    assert!(out.stdout.is_empty(), "no UUID may escape a failed source");
}

#[test]
fn a_short_cycle_and_a_stuck_byte_are_caught_too() {
    for spec in ["cycle:4", "stuck:171"] {
        let out = generate(&["-n", "1000", "--test-entropy", spec]);
        assert_eq!(out.status.code(), Some(1), "{spec}");
        assert!(
            stderr(&out).contains("adaptive proportion test"),
            "{spec}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn a_repeating_source_hits_the_duplicate_limit() {
    let out = generate(&[
        "-n",
        "1000",
        "--test-entropy",
        "repeat:1:200",
        "--duplicate-limit",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "5 consecutive duplicate UUIDs from registry memory: the entropy source is suspect"
        ),
        "{err}"
    );
    // Only whole batches reach stdout: the first (failing) batch wrote nothing.
    assert!(lines(&out).is_empty());
}

/// A failure after some batches were handed to the output thread: those reach stdout whole
/// and unique before the error exit, and the error counts them.
#[test]
fn a_failure_after_the_first_batches_leaves_them_whole_on_stdout() {
    // The source repeats after 40,000 UUIDs: the first batch is new, the second meets
    // duplicates until the limit.
    let out = generate(&[
        "-n",
        "100000",
        "--test-entropy",
        "repeat:1:40000",
        "--duplicate-limit",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.ends_with(b"\n"), "the last line is whole");
    let got = lines(&out);
    assert!(
        !got.is_empty() && got.len() < 40_000,
        "{} lines before the repeat",
        got.len()
    );
    let distinct: std::collections::HashSet<_> = got.iter().collect();
    assert_eq!(distinct.len(), got.len());
    for line in &got {
        parse(line, &ParseOptions::default()).unwrap();
    }
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "generation stopped after {} of 100000 UUIDs",
            got.len()
        )),
        "{err}"
    );
}

#[test]
fn occasional_duplicates_are_regenerated() {
    let out = generate(&["-n", "5000", "--test-entropy", "dup:9:50"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let ids = lines(&out);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 5000);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--format", "base64"][..],
        &["--uuid-version", "5"],
        &["-n", "many"],
        &["--duplicate-limit", "0"],
        &["--test-entropy", "bogus:1"],
        &["--registry", "nosuch:thing"],
    ] {
        let out = generate(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn help_shows_an_example_and_hides_test_entropy() {
    let out = generate(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:"), "{help}");
    assert!(help.contains("cxone-uuid generate -n 1000000"), "{help}");
    assert!(!help.contains("test-entropy"), "{help}");
}

#[test]
fn the_log_flag_wins_over_rust_log() {
    let run = |rust_log: &str, flag: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cxone-uuid"));
        cmd.env("RUST_LOG", rust_log)
            .env_remove("CXONE_UUID_LOG")
            .args(["generate", "-n", "3"]);
        if let Some(f) = flag {
            cmd.args(["--log", f]);
        }
        stderr(&cmd.output().expect("run cxone-uuid generate"))
    };
    assert!(!run("info", Some("warn")).contains("generation finished"));
    assert!(run("off", Some("info")).contains("generation finished"));
    // Without the flag RUST_LOG still applies.
    assert!(run("info", None).contains("generation finished"));
}

#[test]
fn a_count_below_one_is_the_same_usage_error_in_generate_and_run() {
    for cmd in ["generate", "run"] {
        for bad in ["0", "-5", "ten"] {
            let out = Command::new(env!("CARGO_BIN_EXE_cxone-uuid"))
                .env_remove("RUST_LOG")
                .args([cmd, "-n", bad])
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{cmd} -n {bad}");
            let err = stderr(&out);
            assert!(
                err.contains("at least 1") && err.contains("-n 100"),
                "{cmd} -n {bad}: {err}"
            );
            assert!(out.stdout.is_empty());
        }
    }
}

#[test]
fn a_closed_stdout_ends_generate_quietly_after_whole_lines() {
    // `generate -n 1000000 | head -1`: the reader closing the pipe is not an error, and what
    // was read is whole lines (each batch is written as one block of lines).
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_cxone-uuid"))
        .env_remove("RUST_LOG")
        .args(["generate", "-n", "1000000", "--format", "urn"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = Vec::new();
    for _ in 0..5000 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        first.push(line);
    }
    drop(reader);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    for line in &first {
        let text = line.strip_suffix('\n').expect("a whole line");
        let id = text.strip_prefix("urn:uuid:").expect("the urn form");
        parse(id, &ParseOptions::default()).unwrap();
    }
}
