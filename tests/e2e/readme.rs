//! Every example output the README shows is produced here: each `$ cxone-uuid …` line of a
//! `text` block is run and its output compared with the lines that follow it, so the README
//! cannot drift from the program again.

use std::path::Path;

use crate::support::*;

/// (command line, expected output) for every `$ cxone-uuid` example in a `text` block.
fn examples(readme: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut in_text = false;
    let mut current: Option<(String, Vec<String>)> = None;
    for line in readme.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            if let Some((cmd, lines)) = current.take() {
                out.push((cmd, lines.join("\n")));
            }
            in_text = !in_text && trimmed == "```text";
            continue;
        }
        if !in_text {
            continue;
        }
        if let Some(cmd) = trimmed.strip_prefix("$ cxone-uuid ") {
            if let Some((c, lines)) = current.take() {
                out.push((c, lines.join("\n")));
            }
            current = Some((cmd.to_string(), Vec::new()));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(line.to_string());
        }
    }
    out
}

#[tokio::test]
async fn every_readme_example_output_is_what_the_program_prints() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let found = examples(&readme);
    assert!(!found.is_empty(), "the README shows example outputs");
    for (cmd, expected) in found {
        let mut c = bin();
        c.args(cmd.split_whitespace());
        let out = output(c).await;
        let printed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            printed.trim_end(),
            expected.trim_end(),
            "README example `cxone-uuid {cmd}` prints something else"
        );
    }
}
