//! NICE CXone: OAuth password grant over an API user's access key, with discovery.
//!
//! 1. `{issuer}/.well-known/openid-configuration` → `token_endpoint`;
//! 2. `POST token_endpoint` with `grant_type=password`, `username` = access key id, `password` =
//!    access key secret, the application's client id/secret by HTTP Basic (or in the form);
//! 3. `tenantId` from the `id_token`'s payload;
//! 4. `{issuer}/.well-known/cxone-configuration?tenantId=…` → `api_endpoint`, `area`.
//!
//! With `CxoneAuth::AccessKey` steps 1 and 2 are instead one `POST
//! https://{area}.nice-incontact.com/authentication/v1/token/access-key` with JSON
//! `{"accessKeyId", "accessKeySecret"}` and no client id or secret (NICE's UserHub flow,
//! <https://developer.niceincontact.com/Documentation/UserHubGettingStarted>; areas `na1`,
//! `au1`, `eu1`). Its answer documents `access_token` only; the tenant is read from the
//! `id_token`'s or the `access_token`'s `tenantId` claim as third-party clients do, else from
//! the configured tenant id.
//!
//! Results are cached for the run. CXone has no generic execute endpoint, so the path and the
//! body come from the configuration (`--execute-path`, `--body-template`).

use std::sync::RwLock;

use async_trait::async_trait;
use base64::Engine;
use reqwest::header::ACCEPT;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{join, parse_json, Dialect, Endpoints, Outputs, PreparedRequest, TokenGrant};
use crate::config::{check_url, AuthMethod, ClientConfig, CxoneAuth, CxoneConfig, Provider};
use crate::error::{Error, ErrorKind};
use crate::http::{excerpt, exchange, server_message};
use crate::oauth::{grant_from_json, request_token, request_token_json, ClientAuth};
pub use crate::template::{check_template, render_template};

/// What discovery found about the tenant.
#[derive(Debug, Clone, Default)]
struct Tenant {
    tenant_id: Option<String>,
    api_endpoint: Option<String>,
    area: Option<String>,
}

/// The CXone dialect.
#[derive(Debug)]
pub struct Cxone {
    issuer: String,
    token_url_override: Option<String>,
    api_override: Option<String>,
    client_id: String,
    client_secret: SecretString,
    access_key_id: String,
    access_key_secret: SecretString,
    scope: Option<String>,
    auth: AuthMethod,
    execute_path: Option<String>,
    body_template: Option<String>,
    input_name: String,
    extra_inputs: Vec<(String, String)>,
    token_endpoint: OnceCell<String>,
    tenant: RwLock<Option<Tenant>>,
    cxone_auth: CxoneAuth,
    area: Option<String>,
    tenant_override: Option<String>,
}

impl Cxone {
    /// Builds from a validated configuration. No request is sent until the first token.
    pub fn new(c: &ClientConfig, x: &CxoneConfig) -> Result<Self, Error> {
        Ok(Cxone {
            issuer: x.issuer.trim_end_matches('/').to_string(),
            token_url_override: c.token_url.clone(),
            api_override: c.base_url.clone(),
            client_id: c.client_id.clone().unwrap_or_default(),
            client_secret: c
                .client_secret
                .clone()
                .unwrap_or_else(|| SecretString::from(String::new())),
            access_key_id: x.access_key_id.clone().unwrap_or_default(),
            access_key_secret: x
                .access_key_secret
                .clone()
                .unwrap_or_else(|| SecretString::from(String::new())),
            scope: c.scope.clone(),
            auth: c.effective_auth_method(),
            execute_path: x.execute_path.clone(),
            body_template: x.body_template.clone(),
            input_name: c.input_name.clone(),
            extra_inputs: c.extra_inputs.clone(),
            token_endpoint: OnceCell::new(),
            tenant: RwLock::new(None),
            cxone_auth: x.auth,
            area: x.area.clone(),
            tenant_override: x.tenant_id.clone(),
        })
    }

    /// The access-key token endpoint: `--token-url`, else the area's.
    fn access_key_url(&self) -> String {
        self.token_url_override.clone().unwrap_or_else(|| {
            format!(
                "https://{}.nice-incontact.com/authentication/v1/token/access-key",
                self.area.as_deref().unwrap_or("na1").trim()
            )
        })
    }

    async fn fetch_access_key_token(&self, http: &reqwest::Client) -> Result<TokenGrant, Error> {
        let url = self.access_key_url();
        let body = serde_json::json!({
            "accessKeyId": self.access_key_id,
            "accessKeySecret": self.access_key_secret.expose_secret(),
        });
        let hint = "check CXONE_ACCESS_KEY_ID and CXONE_ACCESS_KEY_SECRET (an API user's access \
                    key) and the area the tenant lives in (--area, e.g. na1, au1, eu1)";
        let v = request_token_json(http, &url, &body, hint).await?;
        let grant = grant_from_json(&v, &url)?;
        let id_token = v.get("id_token").and_then(|t| t.as_str());
        let access = v.get("access_token").and_then(|t| t.as_str());
        self.discover_tenant(http, &url, id_token, access).await?;
        Ok(grant)
    }

    async fn token_endpoint(&self, http: &reqwest::Client) -> Result<String, Error> {
        if let Some(u) = &self.token_url_override {
            return Ok(u.clone());
        }
        self.token_endpoint
            .get_or_try_init(|| async {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let doc = get_json(http, &url).await?;
                let ep = doc
                    .get("token_endpoint")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| {
                        discovery(&url, "the document has no token_endpoint".to_string())
                    })?;
                check_url(ep, "discovered token_endpoint")
                    .map_err(|e| discovery(&url, e.to_string()))?;
                Ok(ep.to_string())
            })
            .await
            .cloned()
    }

    async fn discover_tenant(
        &self,
        http: &reqwest::Client,
        token_url: &str,
        id_token: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<(), Error> {
        if self
            .tenant
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return Ok(());
        }
        let tenant_id = id_token
            .and_then(|t| jwt_claim(t, "tenantId"))
            .or_else(|| access_token.and_then(|t| jwt_claim(t, "tenantId")))
            .or_else(|| self.tenant_override.clone());
        let mut tenant = Tenant {
            tenant_id: tenant_id.clone(),
            ..Tenant::default()
        };
        if self.api_override.is_none() {
            let Some(tid) = tenant_id else {
                return Err(discovery(
                    token_url,
                    if id_token.is_some() {
                        "the id_token has no tenantId claim (is the access key an API user's? \
                         --tenant-id gives the tenant)"
                    } else {
                        "the token answer has no id_token to read the tenantId from (--tenant-id \
                         gives the tenant)"
                    }
                    .to_string(),
                ));
            };
            let mut url =
                url::Url::parse(&format!("{}/.well-known/cxone-configuration", self.issuer))
                    .map_err(|e| {
                        Error::config(format!("issuer {:?} is not a valid URL: {e}", self.issuer))
                    })?;
            url.query_pairs_mut().append_pair("tenantId", &tid);
            let url = url.to_string();
            let doc = get_json(http, &url).await?;
            let api = doc
                .get("api_endpoint")
                .and_then(|v| v.as_str())
                .ok_or_else(|| discovery(&url, "the document has no api_endpoint".to_string()))?;
            check_url(api, "discovered api_endpoint")
                .map_err(|e| discovery(&url, e.to_string()))?;
            tenant.api_endpoint = Some(api.to_string());
            tenant.area = doc.get("area").and_then(|v| v.as_str()).map(str::to_string);
        }
        if tenant.area.is_none() {
            tenant.area = self.area.clone();
        }
        *self.tenant.write().unwrap_or_else(|p| p.into_inner()) = Some(tenant);
        Ok(())
    }

    fn api_base(&self) -> Option<String> {
        self.api_override.clone().or_else(|| {
            self.tenant
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .and_then(|t| t.api_endpoint.clone())
        })
    }
}

fn discovery(url: &str, what: String) -> Error {
    Error::new(
        ErrorKind::Discovery,
        format!("CXone discovery failed at {url}: {what}"),
    )
}

/// GETs a discovery document. Transport errors and 5xx stay transient (the token loop retries
/// them); 4xx and bodies that are not JSON objects are discovery errors naming the URL.
async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, Error> {
    let request = http
        .request(Method::GET, url)
        .header(ACCEPT, "application/json");
    let answer = exchange(request, "CXone discovery request to", url).await?;
    let status = answer.status;
    let (body, oversized) = (answer.body, answer.oversized);
    if (500..=599).contains(&status) || status == 429 {
        return Err(Error::new(
            ErrorKind::TokenUnavailable,
            format!(
                "CXone discovery at {url} answered HTTP {status}: {}",
                server_message(&body)
            ),
        )
        .with_status(status));
    }
    if !(200..300).contains(&status) {
        return Err(discovery(
            url,
            format!("HTTP {status}: {} (check --issuer)", server_message(&body)),
        )
        .with_status(status));
    }
    if oversized {
        return Err(discovery(
            url,
            "the document is larger than 1 MiB".to_string(),
        ));
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(discovery(
            url,
            format!("the document is not a JSON object: {}", excerpt(&body, 80)),
        )),
    }
}

/// Reads one string claim from a JWT's payload.
///
/// No signature check: the token comes straight from the token endpoint over TLS and the
/// claim only tells us which tenant's discovery document to fetch; the API validates the token.
pub fn jwt_claim(jwt: &str, claim: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let trimmed = payload.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    match v.get(claim)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[async_trait]
impl Dialect for Cxone {
    fn provider(&self) -> Provider {
        Provider::Cxone
    }

    async fn fetch_token(&self, http: &reqwest::Client) -> Result<TokenGrant, Error> {
        if self.cxone_auth == CxoneAuth::AccessKey {
            return self.fetch_access_key_token(http).await;
        }
        let url = self.token_endpoint(http).await?;
        let secret = self.client_secret.expose_secret();
        let mut form = vec![
            ("grant_type", "password"),
            ("username", self.access_key_id.as_str()),
            ("password", self.access_key_secret.expose_secret()),
        ];
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
        let hint = "check CXONE_ACCESS_KEY_ID and CXONE_ACCESS_KEY_SECRET (an API user's access \
                    key) and the registered application's CXONE_CLIENT_ID and CXONE_CLIENT_SECRET; \
                    check the --scope if set; try --auth-method post if the application expects its \
                    credentials in the form";
        let v = request_token(http, &url, &form, auth, hint).await?;
        let grant = grant_from_json(&v, &url)?;
        let id_token = v.get("id_token").and_then(|t| t.as_str());
        let access = v.get("access_token").and_then(|t| t.as_str());
        self.discover_tenant(http, &url, id_token, access).await?;
        Ok(grant)
    }

    fn prepare(&self, uuid: &Uuid) -> Result<PreparedRequest, Error> {
        let path = self.execute_path.as_deref().ok_or_else(|| {
            Error::config("--execute-path is not set: CXone needs the path to call (e.g. a Studio script start)")
        })?;
        let template = self.body_template.as_deref().ok_or_else(|| {
            Error::config(
                "--body-template is not set: CXone needs the JSON body to send, with {{uuid}}",
            )
        })?;
        let url = if path.contains("://") {
            path.to_string()
        } else {
            let base = self.api_base().ok_or_else(|| {
                Error::new(
                    ErrorKind::Discovery,
                    "the CXone API host is not known yet (discovery has not run)",
                )
            })?;
            join(&base, path)
        };
        let body = render_template(template, uuid, &self.extra_inputs, &self.input_name)?;
        Ok(PreparedRequest {
            method: Method::POST,
            url,
            body: body.into_bytes(),
        })
    }

    fn parse(&self, _uuid: &Uuid, body: &[u8]) -> Result<Outputs, Error> {
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Outputs::default());
        }
        match parse_json(body)? {
            map @ Value::Object(_) => Ok(Outputs::from_value(map)),
            other => Ok(Outputs {
                fields: vec![("body".to_string(), other)],
            }),
        }
    }

    fn required_permission(&self) -> String {
        "the permission for this API call in the API user's role (CXone Admin > Security > Roles)"
            .to_string()
    }

    /// A 404 on the execute call is most often a wrong `--execute-path` (the script-start
    /// version is tenant-dependent).
    fn failure_detail(&self, status: u16, _body: &[u8]) -> Option<String> {
        (status == 404).then(|| {
            "check --execute-path (e.g. /incontactapi/services/v31.0/scripts/start; the API \
             version in the path depends on the tenant)"
                .to_string()
        })
    }

    fn endpoints(&self) -> Endpoints {
        let tenant = self
            .tenant
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default();
        Endpoints {
            token_endpoint: match self.cxone_auth {
                CxoneAuth::AccessKey => Some(self.access_key_url()),
                CxoneAuth::Password => self
                    .token_url_override
                    .clone()
                    .or_else(|| self.token_endpoint.get().cloned()),
            },
            api_base: self.api_base(),
            tenant_id: tenant.tenant_id,
            area: tenant.area,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn jwt(payload: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode("unsigned")
        )
    }

    #[test]
    fn jwt_payload_decode() {
        let t = jwt(r#"{"tenantId":"11111111-2222-4333-8444-555555555555","sub":"x"}"#);
        assert_eq!(
            jwt_claim(&t, "tenantId").unwrap(),
            "11111111-2222-4333-8444-555555555555"
        );
        assert_eq!(jwt_claim(&t, "missing"), None);
        // padded payload still reads
        let padded = format!(
            "h.{}.s",
            base64::engine::general_purpose::URL_SAFE.encode(r#"{"tenantId":"t1"}"#)
        );
        assert_eq!(jwt_claim(&padded, "tenantId").unwrap(), "t1");
        for garbage in ["", "abc", "a.!!!.c", "a.bm90IGpzb24.c"] {
            assert_eq!(jwt_claim(garbage, "tenantId"), None, "{garbage}");
        }
    }

    #[test]
    fn parse_accepts_json_or_empty() {
        let d = Cxone::new(&ClientConfig::default(), &CxoneConfig::default()).unwrap();
        let u = Uuid::new_v4();
        assert!(d.parse(&u, b"").unwrap().fields.is_empty());
        assert_eq!(d.parse(&u, br#"{"contactId":1}"#).unwrap().fields.len(), 1);
        assert_eq!(
            d.parse(&u, b"<html>").unwrap_err().kind(),
            ErrorKind::UnexpectedResponse
        );
    }
}
