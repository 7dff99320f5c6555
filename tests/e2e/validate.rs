//! `cxone-uuid validate`: exact reasons, text and JSON output, stdin mode, exit codes.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const GOOD: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const TUTORIAL: &str = "a1b2c3d4-e5f6-4789-a012-3456789abcdef0";

fn validate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cxone-uuid"))
        .env_remove("RUST_LOG")
        .arg("validate")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cxone-uuid validate")
}

fn validate_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cxone-uuid"))
        .env_remove("RUST_LOG")
        .arg("validate")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cxone-uuid validate");
    // Feed stdin from another thread: the child's stdout pipe must be drained at the same time
    // or a large input deadlocks both.
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let feeder = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("wait");
    feeder.join().expect("feeder thread").expect("write stdin");
    out
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("UTF-8")
}

#[test]
fn a_valid_uuid_prints_its_canonical_form_and_exits_0() {
    let out = validate(&["{0F8FAD5B-D9CB-469F-A165-70867728950E}"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), format!("valid\t{GOOD}\n"));
}

#[test]
fn the_tutorial_sample_is_rejected_for_its_long_group_5() {
    let out = validate(&[TUTORIAL]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!("invalid\t{TUTORIAL}\tgroup 5 has 14 hex digits, expected 12\n")
    );
}

#[test]
fn every_reason_is_exact() {
    let cases = [
        (
            "a1b2c3d4-e5f6-4789-a012-3456789abcdef",
            "group 5 has 13 hex digits, expected 12",
        ),
        (
            "0f8fad5bd9cb469fa16570867728950",
            "wrong length: 31 characters, expected 32 hex digits or the 36-character hyphenated form 8-4-4-4-12",
        ),
        (
            "0f8fad5b-d9cb-469f-a165-7086772895xe",
            "non-hex character 'x' at position 35",
        ),
        (
            "0f8fad5b-d9cb-069f-a165-70867728950e",
            "wrong version nibble 0 at position 15, expected 1 to 8 (RFC 9562)",
        ),
        (
            "0f8fad5b-d9cb-469f-7165-70867728950e",
            "wrong variant: digit '7' at position 20, expected 8, 9, a or b (RFC 9562 variant bits 10)",
        ),
        (
            "00000000-0000-0000-0000-000000000000",
            "nil UUID (all zeros) is not a usable identifier",
        ),
        (
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "max UUID (all ones) is not a usable identifier",
        ),
    ];
    for (input, reason) in cases {
        let out = validate(&[input]);
        assert_eq!(out.status.code(), Some(1), "{input}");
        assert_eq!(stdout(&out), format!("invalid\t{input}\t{reason}\n"));
    }
}

#[test]
fn uuid_version_and_strict_narrow_what_is_accepted() {
    let v7 = "0190b4c2-7d3e-7a4b-8c5d-6e7f80910a1b";
    let out = validate(&["--uuid-version", "4", v7]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!("invalid\t{v7}\twrong version nibble 7 at position 15, expected 4\n")
    );
    assert_eq!(
        validate(&["--uuid-version", "7", v7]).status.code(),
        Some(0)
    );

    let upper = GOOD.to_uppercase();
    let out = validate(&["--strict", &upper]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!("invalid\t{upper}\tnot canonical: uppercase hex digit 'F' at position 2; strict mode accepts only lowercase hyphenated 8-4-4-4-12\n")
    );
    assert_eq!(validate(&["--strict", GOOD]).status.code(), Some(0));
}

#[test]
fn mixed_arguments_report_each_in_order_and_exit_1() {
    let out = validate(&[GOOD, TUTORIAL, &GOOD.replace('-', "")]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0], format!("valid\t{GOOD}"));
    assert!(lines[1].starts_with(&format!("invalid\t{TUTORIAL}\t")));
    assert_eq!(lines[2], format!("valid\t{GOOD}"));
}

#[test]
fn json_output_has_one_object_a_line() {
    let out = validate(&["--output", "json", &format!("urn:uuid:{GOOD}"), TUTORIAL]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let objects: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(
        objects[0],
        serde_json::json!({"input": format!("urn:uuid:{GOOD}"), "valid": true, "canonical": GOOD, "version": 4})
    );
    assert_eq!(
        objects[1],
        serde_json::json!({"input": TUTORIAL, "valid": false, "error": "group 5 has 14 hex digits, expected 12"})
    );
}

#[test]
fn stdin_mode_reads_one_a_line() {
    let input = format!("{GOOD}\r\n\n{}\n{TUTORIAL}", GOOD.to_uppercase());
    let out = validate_stdin(&[], &input);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!("valid\t{GOOD}\nvalid\t{GOOD}\ninvalid\t{TUTORIAL}\tgroup 5 has 14 hex digits, expected 12\n")
    );
    let all_good = validate_stdin(&["--output", "json"], &format!("{GOOD}\n{GOOD}\n"));
    assert_eq!(all_good.status.code(), Some(0));
    assert_eq!(stdout(&all_good).lines().count(), 2);
}

#[test]
fn generated_uuids_all_validate_through_a_pipe() {
    let gen = Command::new(env!("CARGO_BIN_EXE_cxone-uuid"))
        .args(["generate", "-n", "20000", "--format", "urn"])
        .output()
        .expect("generate");
    assert!(gen.status.success());
    let out = validate_stdin(
        &["--uuid-version", "4"],
        &String::from_utf8(gen.stdout).expect("UTF-8"),
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("valid\t"))
            .count(),
        20_000
    );
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        &["--output", "xml", GOOD][..],
        &["--uuid-version", "3", GOOD],
        &[],
    ] {
        let out = validate(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn help_shows_an_example() {
    let out = validate(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("Examples:"));
    assert!(help.contains("cxone-uuid validate 0f8fad5b-d9cb-469f-a165-70867728950e"));
}

#[test]
fn a_closed_stdout_ends_validate_quietly() {
    // `… | validate --output json | head -1`: the reader closing the pipe is not an error.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cxone-uuid"))
        .env_remove("RUST_LOG")
        .args(["validate", "--output", "json"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    drop(stdout);
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        for _ in 0..20_000 {
            if stdin
                .write_all(b"0f8fad5b-d9cb-469f-a165-70867728950e\n")
                .is_err()
            {
                break;
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
