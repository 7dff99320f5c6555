//! Genesys Cloud Data Actions: client credentials at `https://login.{region}/oauth/token` with
//! HTTP Basic, `POST https://api.{region}/api/v2/integrations/actions/{id}/execute` (or
//! `/test`) with the inputs as a flat object, a JSON object answer.
//!
//! Limits: `client.credentials.token.rate.per.minute` is 300 requests per client-credentials
//! token per minute, a limit on requests made *with* a token, not on the token endpoint
//! (<https://developer.genesys.cloud/organization/organization/limits#platform-api>), so
//! `--rate auto` starts there. Every 429 carries `Retry-After` in whole seconds and an
//! `ErrorBody` (normalized 10 Nov 2021, API-5464), sometimes with the `limit` that refused;
//! every response carries `ININ-Correlation-Id`, which the body's `contextId` repeats. Execute
//! and `/test` need any of `integrations:action:execute`, `bridge:actions:execute`, and take
//! `flatten=true` (platform-client-sdk-javascript `build/docs/IntegrationsApi.md`).

use async_trait::async_trait;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use uuid::Uuid;

use super::genesys_body::{ErrorBody, TestExecutionResult};
use super::{
    echo_check, encode_segment, inputs, join, parse_json, unexpected, Dialect, Endpoints, Outputs,
    PreparedRequest, ResponseIds, TokenGrant, UuidBody,
};
use crate::config::{AuthMethod, ClientConfig, GenesysConfig, Provider};
use crate::error::{Error, ErrorKind};
use crate::http::excerpt;
use crate::oauth::{grant_from_json, request_token, ClientAuth};
use crate::setting::Setting;

/// The Genesys Cloud dialect.
#[derive(Debug)]
pub struct Genesys {
    token_url: String,
    api_base: String,
    client_id: String,
    client_secret: SecretString,
    scope: Option<String>,
    auth: AuthMethod,
    execute_url: Option<String>,
    input_name: String,
    extra_inputs: Vec<(String, String)>,
    echo_field: Option<String>,
    test_action: bool,
    flatten: bool,
    /// The execute body split around its UUID (see [`UuidBody`]).
    body: Option<UuidBody>,
}

/// The documented per-token quota, requests per second (300 per minute), where `--rate auto`
/// starts for Genesys.
pub const TOKEN_RATE_PER_SECOND: f64 = 300.0 / 60.0;

impl Genesys {
    /// Builds from a validated configuration: explicit URLs win over the region's.
    pub fn new(c: &ClientConfig, g: &GenesysConfig) -> Result<Self, Error> {
        let region = g.region.as_deref().map(str::trim);
        let api_base = match (&c.base_url, region) {
            (Some(u), _) => u.clone(),
            (None, Some(r)) => format!("https://api.{r}"),
            (None, None) => return Err(Error::missing("genesys", vec![Setting::Region])),
        };
        let token_url = match (&c.token_url, region) {
            (Some(u), _) => u.clone(),
            (None, Some(r)) => format!("https://login.{r}/oauth/token"),
            (None, None) => return Err(Error::missing("genesys", vec![Setting::Region])),
        };
        let verb = if g.test_action { "test" } else { "execute" };
        let query = if g.flatten { "?flatten=true" } else { "" };
        let mut genesys = Genesys {
            execute_url: g.action_id.as_deref().map(|id| {
                join(
                    &api_base,
                    &format!(
                        "/api/v2/integrations/actions/{}/{verb}{query}",
                        encode_segment(id)
                    ),
                )
            }),
            token_url,
            api_base,
            client_id: c.client_id.clone().unwrap_or_default(),
            client_secret: c
                .client_secret
                .clone()
                .unwrap_or_else(|| SecretString::from(String::new())),
            scope: c.scope.clone(),
            auth: c.effective_auth_method(),
            input_name: c.input_name.clone(),
            extra_inputs: c.extra_inputs.clone(),
            echo_field: g.echo_field.clone(),
            test_action: g.test_action,
            flatten: g.flatten,
            body: None,
        };
        genesys.body = UuidBody::split(|u| genesys.render(u));
        Ok(genesys)
    }

    /// The execute body for `uuid`, rendered in full: the inputs object itself.
    fn render(&self, uuid: &Uuid) -> Vec<u8> {
        serde_json::to_vec(&inputs(&self.input_name, &self.extra_inputs, uuid)).unwrap_or_default()
    }
}

/// Renders `/test` step results as one line, with the top-level error last.
fn steps(v: &Value) -> Option<String> {
    TestExecutionResult::from_value(v)?.describe()
}

#[async_trait]
impl Dialect for Genesys {
    fn provider(&self) -> Provider {
        Provider::Genesys
    }

    async fn fetch_token(&self, http: &reqwest::Client) -> Result<TokenGrant, Error> {
        let secret = self.client_secret.expose_secret();
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = &self.scope {
            form.push(("scope", s.as_str()));
        }
        let auth = match self.auth {
            AuthMethod::Basic => ClientAuth::Basic(&self.client_id, secret),
            AuthMethod::Post => {
                form.push(("client_id", self.client_id.as_str()));
                form.push(("client_secret", secret));
                ClientAuth::InForm
            }
        };
        let hint = "check GENESYS_CLIENT_ID and GENESYS_CLIENT_SECRET (an OAuth client with the \
                    Client Credentials grant), GENESYS_REGION (the client belongs to one region), \
                    and that the client's roles and scope (if --scope is set) allow it";
        let v = request_token(http, &self.token_url, &form, auth, hint).await?;
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
        let v = parse_json(body)?;
        let result = if self.test_action {
            let ok = v.get("success").and_then(|s| s.as_bool());
            if ok != Some(true) {
                let detail = steps(&v).unwrap_or_else(|| excerpt(body, 200));
                return Err(Error::new(
                    ErrorKind::ActionFailed,
                    format!("the data action test failed: {detail}"),
                ));
            }
            v.get("finalResult").cloned().unwrap_or(Value::Null)
        } else {
            v
        };
        if !result.is_object() {
            return Err(unexpected("expected a JSON object", body));
        }
        if let Some(field) = &self.echo_field {
            let found = if self.flatten {
                // Flattened outputs have dotted keys: match the name literally.
                result.get(field.as_str())
            } else {
                let mut cur = Some(&result);
                for part in field.split('.') {
                    cur = cur.and_then(|c| c.get(part));
                }
                cur
            };
            echo_check(uuid, field, found)?;
        }
        Ok(Outputs::from_value(result))
    }

    fn required_permission(&self) -> String {
        "any of the permissions integrations:action:execute or bridge:actions:execute (a role \
         granting Integrations > Action > Execute) for this OAuth client"
            .to_string()
    }

    fn endpoints(&self) -> Endpoints {
        Endpoints {
            token_endpoint: Some(self.token_url.clone()),
            api_base: Some(self.api_base.clone()),
            tenant_id: None,
            area: None,
        }
    }

    fn failure_detail(&self, _status: u16, body: &[u8]) -> Option<String> {
        if !self.test_action {
            return None;
        }
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| steps(&v))
    }

    /// `ININ-Correlation-Id`, else the ErrorBody's `contextId` (the same value in Genesys's
    /// example), else a generic request id.
    fn correlation_id(&self, ids: &ResponseIds, body: &[u8]) -> Option<String> {
        ids.inin_correlation_id
            .clone()
            .or_else(|| {
                ErrorBody::parse(body)
                    .and_then(|e| e.context_id)
                    .and_then(|c| crate::http::safe_id(&c))
            })
            .or_else(|| ids.request_id.clone())
    }

    fn refusing_limit(&self, body: &[u8]) -> Option<String> {
        ErrorBody::parse(body)?.limit?.describe()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn genesys(c: &ClientConfig) -> Result<Genesys, Error> {
        match &c.provider {
            crate::config::ProviderConfig::Genesys(g) => Genesys::new(c, g),
            other => panic!("not a Genesys configuration: {other:?}"),
        }
    }

    fn cfg(test: bool) -> ClientConfig {
        ClientConfig::builder()
            .provider(Provider::Genesys)
            .with_client_id("id")
            .with_client_secret("s")
            .with_region("mypurecloud.ie")
            .with_action_id("custom_-_abc")
            .with_echo_field("uuid")
            .with_test_action(test)
            .build()
    }

    #[test]
    fn region_urls_and_body() {
        let d = genesys(&cfg(false)).unwrap();
        let ep = d.endpoints();
        assert_eq!(
            ep.token_endpoint.unwrap(),
            "https://login.mypurecloud.ie/oauth/token"
        );
        assert_eq!(ep.api_base.unwrap(), "https://api.mypurecloud.ie");
        let u = Uuid::new_v4();
        let r = d.prepare(&u).unwrap();
        assert_eq!(
            r.url,
            "https://api.mypurecloud.ie/api/v2/integrations/actions/custom_-_abc/execute"
        );
        assert!(d.body.is_some());
        assert_eq!(r.body, d.render(&u));
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v, serde_json::json!({"uuid": u.to_string()}));
        let t = genesys(&cfg(true)).unwrap();
        assert!(t.prepare(&u).unwrap().url.ends_with("/test"));
    }

    #[test]
    fn parse_object_and_echo() {
        let d = genesys(&cfg(false)).unwrap();
        let u = Uuid::new_v4();
        let ok = format!(r#"{{"uuid":"{u}","status":"ok"}}"#);
        assert_eq!(
            d.parse(&u, ok.as_bytes()).unwrap().get("status").unwrap(),
            "ok"
        );
        let e = d.parse(&u, br#"[{"name":"a","value":1}]"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedResponse);
        let e = d.parse(&u, br#"{"status":"ok"}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::EchoMismatch);
    }

    #[test]
    fn test_variant_reports_steps() {
        let d = genesys(&cfg(true)).unwrap();
        let u = Uuid::new_v4();
        let ok = format!(
            r#"{{"operations":[{{"step":1,"name":"resolve","success":true}}],"success":true,"finalResult":{{"uuid":"{u}"}}}}"#
        );
        assert!(d.parse(&u, ok.as_bytes()).is_ok());
        let bad = br#"{"operations":[{"step":1,"name":"resolve","success":true},{"step":2,"name":"execute","success":false,"error":"remote 500"}],"success":false}"#;
        let e = d.parse(&u, bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ActionFailed);
        let m = e.to_string();
        assert!(m.contains("step 2 execute: failed: remote 500"), "{m}");
        let top = br#"{"operations":[{"step":1,"name":"execute","success":false,"error":{"message":"remote 500","code":"internal.server.error"}}],"error":{"message":"the action failed"},"success":false}"#;
        let m = d.parse(&u, top).unwrap_err().to_string();
        assert!(
            m.contains("step 1 execute: failed: remote 500; error: the action failed"),
            "{m}"
        );
    }

    #[test]
    fn flatten_asks_for_dotted_keys_and_echo_matches_them_literally() {
        let mut c = cfg(false);
        if let crate::config::ProviderConfig::Genesys(g) = &mut c.provider {
            g.flatten = true;
            g.echo_field = Some("record.id".into());
        }
        let d = genesys(&c).unwrap();
        let u = Uuid::new_v4();
        assert!(d
            .prepare(&u)
            .unwrap()
            .url
            .ends_with("/execute?flatten=true"));
        let flat = format!(r#"{{"record.id":"{u}"}}"#);
        assert!(d.parse(&u, flat.as_bytes()).is_ok());
        let nested = format!(r#"{{"record":{{"id":"{u}"}}}}"#);
        assert_eq!(
            d.parse(&u, nested.as_bytes()).unwrap_err().kind(),
            ErrorKind::EchoMismatch
        );
    }

    #[test]
    fn correlation_and_limit_from_headers_or_body() {
        let d = genesys(&cfg(false)).unwrap();
        let body = br#"{"status":429,"contextId":"ctx-1","limit":{"key":"requests.volume.max","value":10}}"#;
        let none = ResponseIds::default();
        assert_eq!(d.correlation_id(&none, body).unwrap(), "ctx-1");
        let header = ResponseIds {
            inin_correlation_id: Some("hdr-1".into()),
            request_id: None,
        };
        assert_eq!(d.correlation_id(&header, body).unwrap(), "hdr-1");
        assert_eq!(d.refusing_limit(body).unwrap(), "requests.volume.max = 10");
        assert_eq!(d.refusing_limit(b"{}"), None);
    }
}
