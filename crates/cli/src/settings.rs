//! The CLI's names for the client library's settings: which flag and environment variable set
//! each [`Setting`], so an error names what the user can actually type.
//!
//! The library names settings, never flags (it has callers without any); this is the one place
//! the two meet, and a test walks the clap command tree to prove every flag named here exists.

use cxone_uuid_client::{Error, Provider, Setting};

use crate::exit::usage;

/// The flag and environment variables that set `setting` for `provider`, as `ENV (--flag)`.
pub(crate) fn where_set(setting: Setting, provider: Provider) -> String {
    let genesys = provider == Provider::Genesys;
    match setting {
        Setting::Provider => "CXONE_PROVIDER (--provider)".into(),
        Setting::ClientId if genesys => "GENESYS_CLIENT_ID or CXONE_CLIENT_ID (--client-id)".into(),
        Setting::ClientId => "CXONE_CLIENT_ID (--client-id)".into(),
        Setting::ClientSecret if genesys => {
            "GENESYS_CLIENT_SECRET or CXONE_CLIENT_SECRET (--client-secret-file)".into()
        }
        Setting::ClientSecret => "CXONE_CLIENT_SECRET (--client-secret-file)".into(),
        Setting::DataActionId => "CXONE_DATA_ACTION_ID (--data-action-id)".into(),
        Setting::BaseUrl => "CXONE_BASE_URL (--base-url)".into(),
        Setting::TokenUrl => "CXONE_TOKEN_URL (--token-url)".into(),
        Setting::Scope => "CXONE_SCOPE (--scope)".into(),
        Setting::AuthMethod => "--auth-method".into(),
        Setting::InputName => "--input-name".into(),
        Setting::Inputs => "--input".into(),
        Setting::PathTemplate => "--path-template".into(),
        Setting::Region => {
            "GENESYS_REGION (--region), or both CXONE_BASE_URL (--base-url) and CXONE_TOKEN_URL (--token-url)"
                .into()
        }
        Setting::EchoField => "--echo-field".into(),
        Setting::Issuer => "CXONE_ISSUER (--issuer)".into(),
        Setting::AccessKeyId => "CXONE_ACCESS_KEY_ID (--access-key-id)".into(),
        Setting::AccessKeySecret => {
            "CXONE_ACCESS_KEY_SECRET (--access-key-secret-file)".into()
        }
        Setting::ExecutePath => "--execute-path".into(),
        Setting::BodyTemplate => "--body-template".into(),
        Setting::CxoneAuth => "CXONE_AUTH (--cxone-auth)".into(),
        Setting::Area => {
            "CXONE_AREA (--area), or CXONE_TOKEN_URL (--token-url) for the access-key endpoint"
                .into()
        }
        Setting::TenantId => "CXONE_TENANT_ID (--tenant-id)".into(),
        Setting::Concurrency => "--concurrency".into(),
        Setting::Rate => "--rate".into(),
        Setting::Timeout => "--timeout".into(),
        other => other.describe().into(),
    }
}

/// Turns a client error into the CLI's: a configuration error exits 2 and names, for each
/// setting it is about, the flag and variable that set it.
pub(crate) fn client_error(e: Error, provider: Provider) -> anyhow::Error {
    if !e.is_config() {
        return anyhow::Error::new(e);
    }
    if e.is_missing_settings() {
        let names: Vec<String> = e
            .settings()
            .iter()
            .map(|s| where_set(*s, provider))
            .collect();
        return usage(format!(
            "missing required settings for provider {provider}: {}",
            names.join(", ")
        ));
    }
    match e.settings() {
        [setting] => usage(format!("{e} [set by {}]", where_set(*setting, provider))),
        _ => usage(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ALL: [Setting; 24] = [
        Setting::Provider,
        Setting::ClientId,
        Setting::ClientSecret,
        Setting::DataActionId,
        Setting::BaseUrl,
        Setting::TokenUrl,
        Setting::Scope,
        Setting::AuthMethod,
        Setting::InputName,
        Setting::Inputs,
        Setting::PathTemplate,
        Setting::Region,
        Setting::EchoField,
        Setting::Issuer,
        Setting::AccessKeyId,
        Setting::AccessKeySecret,
        Setting::ExecutePath,
        Setting::BodyTemplate,
        Setting::CxoneAuth,
        Setting::Area,
        Setting::TenantId,
        Setting::Concurrency,
        Setting::Rate,
        Setting::Timeout,
    ];

    fn flags_in(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = text;
        while let Some(i) = rest.find("--") {
            let name: String = rest[i + 2..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            out.push(name);
            rest = &rest[i + 2..];
        }
        out
    }

    #[test]
    fn every_mapped_flag_exists_on_run() {
        let cli = crate::command();
        let run = cli.find_subcommand("run").unwrap();
        let longs: Vec<&str> = run.get_arguments().filter_map(|a| a.get_long()).collect();
        for provider in [Provider::Tutorial, Provider::Genesys, Provider::Cxone] {
            for s in ALL {
                let text = where_set(s, provider);
                let flags = flags_in(&text);
                assert!(!flags.is_empty(), "{s:?} maps to no flag: {text}");
                for f in flags {
                    assert!(
                        longs.contains(&f.as_str()),
                        "--{f} (for {s:?}) is not a run flag"
                    );
                }
            }
        }
    }

    #[test]
    fn missing_settings_name_flags_and_variables() {
        let e = cxone_uuid_client::ClientConfig::default()
            .validate()
            .unwrap_err();
        let m = format!("{:#}", client_error(e, Provider::Tutorial));
        assert!(m.contains("CXONE_DATA_ACTION_ID (--data-action-id)"), "{m}");
        assert!(m.contains("CXONE_CLIENT_ID (--client-id)"), "{m}");
    }

    /// Every long flag of every command, recursively.
    fn all_longs(cmd: &clap::Command, out: &mut Vec<String>) {
        out.extend(
            cmd.get_arguments()
                .filter_map(|a| a.get_long())
                .map(str::to_string),
        );
        out.extend(["help", "version"].map(str::to_string));
        for sub in cmd.get_subcommands() {
            all_longs(sub, out);
        }
    }

    #[test]
    fn every_flag_named_in_a_message_exists() {
        // Scan the string literals of the client and the cli for `--flag`: a message or help
        // text that names a flag the program does not have sends the user the wrong way.
        let mut longs = Vec::new();
        all_longs(&crate::command(), &mut longs);
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut named = Vec::new();
        for dir in ["client/src", "cli/src"] {
            let mut stack = vec![root.join(dir)];
            while let Some(d) = stack.pop() {
                for entry in std::fs::read_dir(&d).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.extension().is_some_and(|e| e == "rs") {
                        let text = std::fs::read_to_string(&path).unwrap();
                        for literal in text.split('"').skip(1).step_by(2) {
                            for flag in flags_in(literal) {
                                named.push((flag, path.display().to_string()));
                            }
                        }
                    }
                }
            }
        }
        // Cargo's own flags, shown in build hints.
        let foreign = ["features", "no-default-features", "path", "release"];
        for (flag, file) in named {
            if flag.is_empty() || foreign.contains(&flag.as_str()) {
                continue;
            }
            assert!(
                longs.contains(&flag),
                "--{flag} named in {file} is no flag of cxone-uuid"
            );
        }
    }
}
