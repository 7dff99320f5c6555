//! The tutorial's API: client credentials at `$CXONE_BASE_URL/oauth2/token`, `POST
//! /api/v2/data-actions/{id}/execute` with `{"inputs": {...}}`, a `[{name, value}]` answer.

use std::borrow::Cow;

use async_trait::async_trait;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::{
    echo_check, encode_segment, inputs, join, parse_json, unexpected, Dialect, Endpoints, Outputs,
    PreparedRequest, TokenGrant, UuidBody,
};
use crate::config::{
    AuthMethod, ClientConfig, Provider, TutorialConfig, DEFAULT_BASE_URL, DEFAULT_SCOPE,
};
use crate::error::Error;
use crate::oauth::{grant_from_json, request_token, ClientAuth};

/// The line added when the tutorial's endpoint is not there: a user with a real tenant most
/// likely forgot `--provider`.
pub const NOT_THE_TUTORIAL_HINT: &str = "this is the tutorial's endpoint; a real NICE CXone \
     tenant needs --provider cxone, Genesys Cloud --provider genesys";

/// The output a tutorial action uses to echo the UUID.
pub const ECHO_OUTPUT: &str = "output_uuid";

/// The tutorial dialect.
#[derive(Debug)]
pub struct Tutorial {
    token_url: String,
    api_base: String,
    client_id: String,
    client_secret: SecretString,
    scope: String,
    auth: AuthMethod,
    execute_url: Option<String>,
    input_name: String,
    extra_inputs: Vec<(String, String)>,
    /// The execute body split around its UUID (see [`UuidBody`]).
    body: Option<UuidBody>,
}

impl Tutorial {
    /// Builds from a configuration validated for at least token use.
    pub fn new(c: &ClientConfig, t: &TutorialConfig) -> Result<Self, Error> {
        let api_base = c
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let token_url = c
            .token_url
            .clone()
            .unwrap_or_else(|| join(&api_base, "/oauth2/token"));
        let mut tutorial = Tutorial {
            execute_url: t.action_id.as_deref().map(|id| {
                join(
                    &api_base,
                    &t.path_template.replace("{id}", &encode_segment(id)),
                )
            }),
            token_url,
            api_base,
            client_id: c.client_id.clone().unwrap_or_default(),
            client_secret: c
                .client_secret
                .clone()
                .unwrap_or_else(|| SecretString::from(String::new())),
            scope: c.scope.clone().unwrap_or_else(|| DEFAULT_SCOPE.to_string()),
            auth: c.effective_auth_method(),
            input_name: c.input_name.clone(),
            extra_inputs: c.extra_inputs.clone(),
            body: None,
        };
        tutorial.body = UuidBody::split(|u| tutorial.render(u));
        Ok(tutorial)
    }

    /// The execute body for `uuid`, rendered in full.
    fn render(&self, uuid: &Uuid) -> Vec<u8> {
        let body = serde_json::json!({
            "inputs": inputs(&self.input_name, &self.extra_inputs, uuid)
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

/// The `[{name, value}]` outputs of a body, or why it is not one (public for the fuzz target
/// `tutorial_body`, which holds it to [`read_outputs_via_value`]).
///
/// The common case goes straight into its fields; anything that does not read so (not JSON,
/// not an array of objects with a string name and a value, a key given twice) takes the
/// general path, which words the error or reads it as before.
pub fn read_outputs(body: &[u8]) -> Result<Outputs, Error> {
    match serde_json::from_slice::<Vec<Item<'_>>>(body) {
        Ok(items) => Ok(Outputs {
            fields: items
                .into_iter()
                .map(|i| (i.name.into_owned(), i.value))
                .collect(),
        }),
        Err(_) => read_outputs_via_value(body),
    }
}

/// A body read as a JSON value first: the outputs, or the error that says what is wrong.
pub fn read_outputs_via_value(body: &[u8]) -> Result<Outputs, Error> {
    let v = parse_json(body)?;
    let Value::Array(items) = v else {
        return Err(unexpected(
            "expected a JSON array of {name, value} objects",
            body,
        ));
    };
    let mut fields = Vec::with_capacity(items.len());
    for item in &items {
        let name = item.get("name").and_then(|n| n.as_str());
        match (name, item.get("value")) {
            (Some(n), Some(val)) if item.is_object() => {
                fields.push((n.to_string(), val.clone()));
            }
            _ => {
                return Err(unexpected(
                    "an array element is not a {name, value} object",
                    body,
                ))
            }
        }
    }
    Ok(Outputs { fields })
}

/// One `{name, value}` output as the body has it: the name borrowed where it has no escapes,
/// the value whatever JSON it is (`null` included). Read by hand, not derived: a derived
/// struct also reads a JSON array as its fields in order (`["a", 1]`), which is no output
/// (found by the fuzz target `tutorial_body`). A missing or repeated `name` or `value` does
/// not read, and the general path words it (or, for a repeat, keeps the last, as it did).
struct Item<'a> {
    name: Cow<'a, str>,
    value: Value,
}

/// A string borrowed from the body where it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Item<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ItemVisitor(std::marker::PhantomData))
    }
}

struct ItemVisitor<'a>(std::marker::PhantomData<Item<'a>>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for ItemVisitor<'a> {
    type Value = Item<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a {name, value} object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Item<'a>, A::Error> {
        use serde::de::Error as _;
        let (mut name, mut value) = (None, None);
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            match &*key {
                "name" if name.is_none() => name = Some(map.next_value::<Text<'de>>()?.0),
                "value" if value.is_none() => value = Some(map.next_value::<Value>()?),
                "name" | "value" => return Err(A::Error::custom("a repeated field")),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        match (name, value) {
            (Some(name), Some(value)) => Ok(Item { name, value }),
            _ => Err(A::Error::custom("a missing field")),
        }
    }
}

#[async_trait]
impl Dialect for Tutorial {
    fn provider(&self) -> Provider {
        Provider::Tutorial
    }

    async fn fetch_token(&self, http: &reqwest::Client) -> Result<TokenGrant, Error> {
        let secret = self.client_secret.expose_secret();
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("scope", self.scope.as_str()),
        ];
        let auth = match self.auth {
            AuthMethod::Post => {
                form.push(("client_id", self.client_id.as_str()));
                form.push(("client_secret", secret));
                ClientAuth::InForm
            }
            AuthMethod::Basic => ClientAuth::Basic(&self.client_id, secret),
        };
        let hint = format!(
            "check CXONE_CLIENT_ID and CXONE_CLIENT_SECRET, and that the client may request the \
             scope {:?} (--scope); try --auth-method {} if the server expects the other method",
            self.scope,
            match self.auth {
                AuthMethod::Post => "basic",
                AuthMethod::Basic => "post",
            }
        );
        let v = request_token(http, &self.token_url, &form, auth, &hint).await?;
        grant_from_json(&v, &self.token_url)
    }

    fn prepare(&self, uuid: &Uuid) -> Result<PreparedRequest, Error> {
        let url = self.execute_url.clone().ok_or_else(|| {
            Error::missing(
                self.provider().as_str(),
                vec![crate::setting::Setting::DataActionId],
            )
        })?;
        Ok(PreparedRequest {
            method: Method::POST,
            url,
            body: UuidBody::for_uuid(self.body.as_ref(), uuid, |u| self.render(u)),
        })
    }

    fn parse(&self, uuid: &Uuid, body: &[u8]) -> Result<Outputs, Error> {
        let out = read_outputs(body)?;
        if let Some(echo) = out.get(ECHO_OUTPUT) {
            echo_check(uuid, ECHO_OUTPUT, Some(echo))?;
        }
        Ok(out)
    }

    fn failure_detail(&self, status: u16, _body: &[u8]) -> Option<String> {
        // The "; " the caller puts before a detail ends the server's line; the hint is its own.
        (status == 404).then(|| format!("\n{NOT_THE_TUTORIAL_HINT}"))
    }

    /// The default host `api.nicecxone.com` is the tutorial's: when it does not resolve or
    /// connect, the user most likely meant another platform.
    fn transport_hint(&self) -> Option<String> {
        (self.api_base == DEFAULT_BASE_URL).then(|| NOT_THE_TUTORIAL_HINT.to_string())
    }

    fn required_permission(&self) -> String {
        format!(
            "the scope {:?} (and permission to execute this data action)",
            self.scope
        )
    }

    fn endpoints(&self) -> Endpoints {
        Endpoints {
            token_endpoint: Some(self.token_url.clone()),
            api_base: Some(self.api_base.clone()),
            tenant_id: None,
            area: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::error::ErrorKind;

    fn dialect() -> Tutorial {
        let c = ClientConfig::builder()
            .with_client_id("id")
            .with_client_secret("s")
            .with_action_id("act 1")
            .with_base_url("http://127.0.0.1:9")
            .with_input("team", "a\"b")
            .build();
        let crate::config::ProviderConfig::Tutorial(t) = &c.provider else {
            panic!("not a tutorial configuration");
        };
        Tutorial::new(&c, t).unwrap()
    }

    #[test]
    fn request_shape() {
        let d = dialect();
        let u = Uuid::new_v4();
        let r = d.prepare(&u).unwrap();
        assert_eq!(
            r.url,
            "http://127.0.0.1:9/api/v2/data-actions/act%201/execute"
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["inputs"]["uuid"], u.hyphenated().to_string());
        assert_eq!(v["inputs"]["team"], "a\"b");
        // Filled in from the split body, byte for byte what a full render gives.
        assert!(d.body.is_some());
        assert_eq!(r.body, d.render(&u));
        assert_eq!(
            d.endpoints().token_endpoint.unwrap(),
            "http://127.0.0.1:9/oauth2/token"
        );
    }

    #[test]
    fn response_shapes() {
        let d = dialect();
        let u = Uuid::new_v4();
        let ok =
            format!(r#"[{{"name":"output_uuid","value":"{u}"}},{{"name":"status","value":"ok"}}]"#);
        let out = d.parse(&u, ok.as_bytes()).unwrap();
        assert_eq!(out.get("status").unwrap(), "ok");
        for bad in [
            &br#"{"name":"x","value":1}"#[..],
            b"<html>500</html>",
            b"[{\"name\":\"output_uuid\",\"val",
            b"[1,2]",
            b"",
        ] {
            let e = d.parse(&u, bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UnexpectedResponse);
            assert!(
                e.to_string().starts_with("unexpected response format"),
                "{e}"
            );
        }
        let other = Uuid::new_v4();
        let mismatch = format!(r#"[{{"name":"output_uuid","value":"{other}"}}]"#);
        let e = d.parse(&u, mismatch.as_bytes()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::EchoMismatch);
    }

    /// The direct read and the general one agree on every shape: the same fields, or the same
    /// error.
    #[test]
    fn the_direct_read_agrees_with_the_general_one() {
        let d = dialect();
        let u = Uuid::new_v4();
        for body in [
            format!(r#"[{{"name":"output_uuid","value":"{u}"}},{{"name":"n","value":null}}]"#),
            r#"[{"name":"a\u0041","value":{"x":[1,2]},"extra":true}]"#.to_string(),
            r#"[{"name":"a","value":1,"name":"b"}]"#.to_string(),
            r#"[{"name":"a"}]"#.to_string(),
            r#"[{"value":1}]"#.to_string(),
            r#"[{"name":7,"value":1}]"#.to_string(),
            r#"[]"#.to_string(),
            r#"[{"name":"a","value":1}] trailing"#.to_string(),
            // Found by the fuzz target: an array where an object belongs.
            r#"[["", [   ] ] ]"#.to_string(),
            r#"[{"name":"a","value":1,"value":2}]"#.to_string(),
            r#"[{"name":"a\"b","value":1}]"#.to_string(),
        ] {
            let direct = d.parse(&u, body.as_bytes()).map_err(|e| e.to_string());
            let general = read_outputs_via_value(body.as_bytes()).map_err(|e| e.to_string());
            assert_eq!(direct, general, "{body}");
        }
        let out = d
            .parse(&u, br#"[{"name":"a","value":1,"name":"b"}]"#)
            .unwrap();
        assert_eq!(out.fields, [("b".to_string(), Value::from(1))]);
        let out = d.parse(&u, br#"[{"name":"n","value":null}]"#).unwrap();
        assert_eq!(out.get("n"), Some(&Value::Null));
    }

    #[test]
    fn hints_point_at_the_provider_flag() {
        let d = dialect();
        assert!(d
            .failure_detail(404, b"")
            .unwrap()
            .contains("--provider cxone"));
        assert_eq!(d.failure_detail(500, b""), None);
        // A configured host is the user's own: no hint when it is unreachable.
        assert_eq!(d.transport_hint(), None);
        let c = ClientConfig::builder()
            .with_client_id("id")
            .with_client_secret("s")
            .build();
        let crate::config::ProviderConfig::Tutorial(t) = &c.provider else {
            panic!("not a tutorial configuration");
        };
        let default_host = Tutorial::new(&c, t).unwrap();
        assert!(default_host
            .transport_hint()
            .unwrap()
            .contains("--provider genesys"));
    }
}
