//! CXone body templates: `{{uuid}}` and `{{input.NAME}}` placeholders filled with JSON-escaped
//! values.
//!
//! Key design decision: placeholders are substituted as escaped text inside a JSON template
//! the user wrote (not by building a JSON value), so any request shape CXone's many APIs take
//! can be expressed, while escaping keeps an input value from breaking out of its string.
//! It sits below the configuration so a template is checked before anything is sent.

use serde_json::Value;
use uuid::Uuid;

use crate::error::Error;

/// Replaces `{{uuid}}` and `{{input.NAME}}` with JSON-escaped values (without quotes: the
/// template supplies them, e.g. `{"p": "{{uuid}}"}`). An unknown placeholder is a config error.
pub fn render_template(
    template: &str,
    uuid: &Uuid,
    inputs: &[(String, String)],
    input_name: &str,
) -> Result<String, Error> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| {
            Error::config("body template has an unclosed {{ placeholder (--body-template)")
        })?;
        let name = after[..end].trim();
        let value = if name == "uuid" {
            uuid.hyphenated().to_string()
        } else if let Some(input) = name.strip_prefix("input.") {
            if input == input_name {
                uuid.hyphenated().to_string()
            } else {
                inputs
                    .iter()
                    .rev()
                    .find(|(k, _)| k == input)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        Error::config(format!(
                            "body template uses {{{{input.{input}}}}} but no --input {input}=VALUE is given"
                        ))
                    })?
            }
        } else {
            return Err(Error::config(format!(
                "body template has an unknown placeholder {{{{{name}}}}}: use {{{{uuid}}}} or {{{{input.NAME}}}}"
            )));
        };
        out.push_str(&json_escape(&value));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// Checks a template renders to valid JSON with every placeholder known (run by `validate`).
pub fn check_template(
    template: &str,
    inputs: &[(String, String)],
    input_name: &str,
) -> Result<(), Error> {
    let rendered = render_template(template, &Uuid::nil(), inputs, input_name)?;
    serde_json::from_str::<Value>(&rendered).map_err(|e| {
        Error::config(format!(
            "body template is not valid JSON after substitution ({e}); quote string placeholders: \"{{{{uuid}}}}\""
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn template_escaping() {
        let u = Uuid::new_v4();
        let inputs = vec![("note".to_string(), "he said \"hi\"\n\\ }}".to_string())];
        let t = r#"{"skill": "{{ input.note }}", "p": ["{{uuid}}", "{{input.uuid}}"]}"#;
        let s = render_template(t, &u, &inputs, "uuid").unwrap();
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["skill"], "he said \"hi\"\n\\ }}");
        assert_eq!(v["p"][0], u.to_string());
        assert_eq!(v["p"][1], u.to_string());
        // injection attempt stays inside the string
        let evil = vec![(
            "x".to_string(),
            "\", \"admin\": true, \"y\": \"".to_string(),
        )];
        let s = render_template(r#"{"a":"{{input.x}}"}"#, &u, &evil, "uuid").unwrap();
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);

        assert!(render_template("{{input.nope}}", &u, &[], "uuid")
            .unwrap_err()
            .is_config());
        assert!(render_template("{{what}}", &u, &[], "uuid")
            .unwrap_err()
            .is_config());
        assert!(render_template("{{uuid", &u, &[], "uuid")
            .unwrap_err()
            .is_config());
        assert!(check_template(r#"{"a": {{uuid}}}"#, &[], "uuid").is_err());
        assert!(check_template(r#"{"a": "{{uuid}}"}"#, &[], "uuid").is_ok());
    }
}
