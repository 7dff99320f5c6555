//! `--config PATH`: a TOML file with defaults for every setting of the command it is given to,
//! each under its flag's name with underscores (`count = 500`, `audit = ["jsonl:t.jsonl",
//! "sqlite:t.db"]`, `concurrency = 8`, `checkpoint_every = 10000`).
//!
//! Precedence is flags, then environment, then the file, then built-in defaults. clap already
//! resolves the first two and knows where each value came from, so the file is applied by
//! turning each of its keys that neither set into the flag itself and parsing once more: every
//! value then goes through the same parser, range check and message as on the command line,
//! and a new flag is a new config key without a line here. The connection settings
//! (`client_id`, `inputs`, the secrets, ...) are read by `config.rs`, which knows their
//! provider-specific environment variables; this module only checks that they are known keys.

use std::ffi::OsString;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command};

use crate::exit::usage;

/// Keys `config.rs` reads itself (see its `FileConfig`): the connection settings, and `rate`,
/// whose file value gets a message naming the file.
pub(crate) const CONNECTION_KEYS: &[&str] = &[
    "rate",
    "provider",
    "client_id",
    "client_secret",
    "client_secret_file",
    "data_action_id",
    "env",
    "base_url",
    "token_url",
    "scope",
    "auth_method",
    "input_name",
    "inputs",
    "path_template",
    "region",
    "echo_field",
    "test_action",
    "flatten",
    "cxone_auth",
    "area",
    "tenant_id",
    "issuer",
    "access_key_id",
    "access_key_secret",
    "access_key_secret_file",
    "execute_path",
    "body_template",
];

/// Keys that cannot come from a file: the file itself, and what only makes sense per call.
const NOT_IN_A_FILE: &[&str] = &["config", "help", "version"];

/// The argument list with the file's settings added for the subcommand `matches` chose, or
/// `None` when it was given no `--config`. `cmd` is the whole command tree.
pub(crate) fn with_file_settings(
    cmd: &Command,
    matches: &ArgMatches,
    argv: &[OsString],
) -> anyhow::Result<Option<Vec<OsString>>> {
    let Some((name, sub)) = matches.subcommand() else {
        return Ok(None);
    };
    let Ok(Some(path)) = sub.try_get_one::<std::path::PathBuf>("config") else {
        return Ok(None);
    };
    let Some(sub_cmd) = cmd.find_subcommand(name) else {
        return Ok(None);
    };
    let table = read_table(path)?;
    let mut extra: Vec<OsString> = Vec::new();
    for (key, value) in &table {
        if CONNECTION_KEYS.contains(&key.as_str()) {
            continue;
        }
        let arg = sub_cmd
            .get_arguments()
            .filter(|a| !NOT_IN_A_FILE.contains(&a.get_id().as_str()))
            .find(|a| a.get_long().is_some_and(|l| l.replace('-', "_") == *key));
        let Some(arg) = arg else {
            return Err(usage(format!(
                "config file {}: unknown key {key:?}: keys are the flags of `{name}` with \
                 underscores (e.g. count, concurrency, rate, audit, client_id, data_action_id); \
                 see `cxone-uuid {name} --help`",
                path.display()
            )));
        };
        let id = arg.get_id().as_str();
        if matches!(
            sub.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue; // flags and environment win over the file
        }
        let flag = format!("--{}", arg.get_long().unwrap_or(key));
        let is_switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
        let values: Vec<&toml::Value> = match value {
            toml::Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        let repeatable = matches!(arg.get_action(), ArgAction::Append | ArgAction::Count);
        if values.len() > 1 && !repeatable {
            return Err(usage(format!(
                "config file {}: {key} takes one value, not a list",
                path.display()
            )));
        }
        for v in values {
            let text = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) if is_switch => {
                    if *b {
                        extra.push(OsString::from(&flag));
                    }
                    continue;
                }
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(usage(format!(
                        "config file {}: {key} = {other} is not a value {flag} takes",
                        path.display()
                    )))
                }
            };
            if is_switch {
                return Err(usage(format!(
                    "config file {}: {key} is a switch: write {key} = true or false",
                    path.display()
                )));
            }
            extra.push(OsString::from(format!("{flag}={text}")));
        }
    }
    if extra.is_empty() {
        return Ok(None);
    }
    // Inserted right after the subcommand's name, so anything after `--` stays last.
    let at = argv
        .iter()
        .position(|a| a.to_str() == Some(name))
        .map_or(argv.len(), |i| i + 1);
    let mut out = argv[..at].to_vec();
    out.extend(extra);
    out.extend_from_slice(&argv[at..]);
    Ok(Some(out))
}

fn read_table(path: &Path) -> anyhow::Result<toml::Table> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage(format!(
            "cannot read config file {}: {e}: check the path given to --config",
            path.display()
        ))
    })?;
    toml::from_str(&text)
        .map_err(|e| usage(format!("config file {} is not valid: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn argv(s: &[&str]) -> Vec<OsString> {
        s.iter().map(OsString::from).collect()
    }

    #[test]
    fn every_run_flag_is_a_key_and_flags_and_environment_win() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "count = 7\nconcurrency = 3\naudit = [\"jsonl:a.jsonl\", \"sqlite:a.db\"]\n\
             resume = true\nmax_retries = 5\nclient_id = \"x\"\n",
        )
        .unwrap();
        let cmd = crate::command();
        let a = argv(&[
            "cxone-uuid",
            "run",
            "--config",
            p.to_str().unwrap(),
            "--max-retries",
            "1",
        ]);
        let m = cmd.clone().try_get_matches_from(&a).unwrap();
        let out = with_file_settings(&cmd, &m, &a).unwrap().unwrap();
        let text: Vec<String> = out
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        for part in [
            "--count=7",
            "--concurrency=3",
            "--audit=jsonl:a.jsonl",
            "--audit=sqlite:a.db",
            "--resume",
        ] {
            assert!(
                text.contains(&part.to_string()),
                "{part} missing from {text:?}"
            );
        }
        assert!(
            !text.iter().any(|t| t.starts_with("--max-retries=")),
            "the flag wins: {text:?}"
        );
        assert!(
            !text.iter().any(|t| t.starts_with("--client-id")),
            "config.rs reads it"
        );
        assert!(cmd.try_get_matches_from(&out).is_ok());
    }

    #[test]
    fn an_unknown_key_names_itself_and_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "cuont = 7\n").unwrap();
        let cmd = crate::command();
        let a = argv(&["cxone-uuid", "token", "--config", p.to_str().unwrap()]);
        let m = cmd.clone().try_get_matches_from(&a).unwrap();
        let e = with_file_settings(&cmd, &m, &a).unwrap_err().to_string();
        assert!(e.contains("unknown key \"cuont\""), "{e}");
        assert!(e.contains("cxone-uuid token --help"), "{e}");
    }
}
