//! Everything the client needs, as one plain struct the CLI fills from flags, environment and
//! TOML; [`ClientConfig::validate`] checks it before any request is sent.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;

use crate::error::Error;
pub use crate::rate::RateSpec;

/// Default issuer for CXone discovery.
pub const DEFAULT_ISSUER: &str = "https://cxone.niceincontact.com";
/// Default OAuth scope of the tutorial dialect.
pub const DEFAULT_SCOPE: &str = "data-actions:execute";
/// Default tutorial execute path; `{id}` is replaced by the action id.
pub const DEFAULT_PATH_TEMPLATE: &str = "/api/v2/data-actions/{id}/execute";
/// Default tutorial API base when neither `CXONE_BASE_URL` nor `CXONE_ENV` is given.
pub const DEFAULT_BASE_URL: &str = "https://api.nicecxone.com";

/// Which platform's API the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// The tutorial's API: client credentials, `/api/v2/data-actions/{id}/execute`.
    #[default]
    Tutorial,
    /// Genesys Cloud Data Actions.
    Genesys,
    /// NICE CXone with access keys and discovery.
    Cxone,
}

impl Provider {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Tutorial => "tutorial",
            Provider::Genesys => "genesys",
            Provider::Cxone => "cxone",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tutorial" => Ok(Provider::Tutorial),
            "genesys" => Ok(Provider::Genesys),
            "cxone" => Ok(Provider::Cxone),
            other => Err(Error::config(format!(
                "unknown provider {other:?}: use tutorial, genesys or cxone"
            ))),
        }
    }
}

/// How the OAuth client id and secret reach the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// In the form body (`client_id`, `client_secret`).
    Post,
    /// As HTTP Basic authentication.
    Basic,
}

impl FromStr for AuthMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "post" => Ok(AuthMethod::Post),
            "basic" => Ok(AuthMethod::Basic),
            other => Err(Error::config(format!(
                "unknown auth method {other:?}: use post or basic"
            ))),
        }
    }
}

/// All client settings. Build with [`ClientConfig::builder`] or fill the public fields from
/// [`Default`]; secrets are [`SecretString`] so `Debug` never shows them.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Which platform's API.
    pub provider: Provider,
    /// OAuth client id (`CXONE_CLIENT_ID`, `GENESYS_CLIENT_ID`).
    pub client_id: Option<String>,
    /// OAuth client secret.
    pub client_secret: Option<SecretString>,
    /// CXone access key id (password grant username).
    pub access_key_id: Option<String>,
    /// CXone access key secret (password grant password).
    pub access_key_secret: Option<SecretString>,
    /// API base URL (`CXONE_BASE_URL` / `--api-url`); overrides region or discovery.
    pub base_url: Option<String>,
    /// Token URL; overrides the default, the region or discovery.
    pub token_url: Option<String>,
    /// CXone issuer for discovery.
    pub issuer: String,
    /// Genesys region, e.g. `mypurecloud.com`.
    pub region: Option<String>,
    /// OAuth scope; the tutorial dialect defaults to [`DEFAULT_SCOPE`], the others send none
    /// unless set.
    pub scope: Option<String>,
    /// Client authentication at the token endpoint; `None` picks the dialect's default
    /// (tutorial: post, genesys and cxone: basic).
    pub auth_method: Option<AuthMethod>,
    /// Data action id (tutorial, genesys).
    pub action_id: Option<String>,
    /// Tutorial execute path template with `{id}`.
    pub path_template: String,
    /// Name of the input carrying the UUID.
    pub input_name: String,
    /// Extra inputs sent with every request, in order.
    pub extra_inputs: Vec<(String, String)>,
    /// Genesys: output field compared with the UUID sent.
    pub echo_field: Option<String>,
    /// Genesys: use the `/test` variant of the execute endpoint.
    pub test_action: bool,
    /// CXone: execute path (relative to the discovered API host) or absolute URL.
    pub execute_path: Option<String>,
    /// CXone: JSON body template with `{{uuid}}` and `{{input.NAME}}` placeholders.
    pub body_template: Option<String>,
    /// Retries after the first attempt (3 → at most 4 attempts).
    pub max_retries: u32,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// A Retry-After longer than this fails the UUID instead of waiting.
    pub max_retry_after: Duration,
    /// Exponential backoff base.
    pub backoff_base: Duration,
    /// Exponential backoff cap.
    pub backoff_cap: Duration,
    /// Rate control.
    pub rate: RateSpec,
    /// Requests in flight; sizes the connection pool.
    pub concurrency: usize,
    /// Retry budget capacity (token bucket, AWS standard mode: a retry costs 5, a timeout 10,
    /// a success refunds 1). `None` disables the budget.
    pub retry_budget: Option<u32>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            provider: Provider::Tutorial,
            client_id: None,
            client_secret: None,
            access_key_id: None,
            access_key_secret: None,
            base_url: None,
            token_url: None,
            issuer: DEFAULT_ISSUER.to_string(),
            region: None,
            scope: None,
            auth_method: None,
            action_id: None,
            path_template: DEFAULT_PATH_TEMPLATE.to_string(),
            input_name: "uuid".to_string(),
            extra_inputs: Vec::new(),
            echo_field: None,
            test_action: false,
            execute_path: None,
            body_template: None,
            max_retries: 3,
            timeout: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            rate: RateSpec::Auto,
            concurrency: 4,
            retry_budget: Some(500),
        }
    }
}

/// Builder for [`ClientConfig`]: `ClientConfig::builder().provider(..).with_max_retries(3).build()`.
#[derive(Debug, Clone, Default)]
pub struct ClientConfigBuilder {
    config: ClientConfig,
}

macro_rules! setter {
    ($(#[$m:meta])* $name:ident, $field:ident: $ty:ty) => {
        $(#[$m])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.config.$field = value;
            self
        }
    };
    ($(#[$m:meta])* opt $name:ident, $field:ident) => {
        $(#[$m])*
        pub fn $name(mut self, value: impl Into<String>) -> Self {
            self.config.$field = Some(value.into());
            self
        }
    };
}

impl ClientConfigBuilder {
    setter!(/// Sets the provider.
        provider, provider: Provider);
    setter!(/// Sets the client id.
        opt with_client_id, client_id);
    /// Sets the client secret.
    pub fn with_client_secret(mut self, secret: impl Into<String>) -> Self {
        self.config.client_secret = Some(SecretString::from(secret.into()));
        self
    }
    setter!(/// Sets the CXone access key id.
        opt with_access_key_id, access_key_id);
    /// Sets the CXone access key secret.
    pub fn with_access_key_secret(mut self, secret: impl Into<String>) -> Self {
        self.config.access_key_secret = Some(SecretString::from(secret.into()));
        self
    }
    setter!(/// Sets the API base URL.
        opt with_base_url, base_url);
    setter!(/// Sets the token URL.
        opt with_token_url, token_url);
    /// Sets the CXone issuer.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.config.issuer = issuer.into();
        self
    }
    setter!(/// Sets the Genesys region.
        opt with_region, region);
    setter!(/// Sets the OAuth scope.
        opt with_scope, scope);
    /// Sets the client authentication method.
    pub fn with_auth_method(mut self, method: AuthMethod) -> Self {
        self.config.auth_method = Some(method);
        self
    }
    setter!(/// Sets the data action id.
        opt with_action_id, action_id);
    /// Sets the tutorial path template (`{id}` is the action id).
    pub fn with_path_template(mut self, template: impl Into<String>) -> Self {
        self.config.path_template = template.into();
        self
    }
    /// Sets the name of the UUID input.
    pub fn with_input_name(mut self, name: impl Into<String>) -> Self {
        self.config.input_name = name.into();
        self
    }
    /// Adds an extra input.
    pub fn with_input(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.extra_inputs.push((name.into(), value.into()));
        self
    }
    setter!(/// Sets the Genesys echo field.
        opt with_echo_field, echo_field);
    setter!(/// Uses the Genesys `/test` endpoint.
        with_test_action, test_action: bool);
    setter!(/// Sets the CXone execute path.
        opt with_execute_path, execute_path);
    setter!(/// Sets the CXone body template.
        opt with_body_template, body_template);
    setter!(/// Sets the number of retries after the first attempt.
        with_max_retries, max_retries: u32);
    setter!(/// Sets the per-attempt timeout.
        with_timeout, timeout: Duration);
    setter!(/// Sets the longest Retry-After the client waits.
        with_max_retry_after, max_retry_after: Duration);
    setter!(/// Sets the backoff base.
        with_backoff_base, backoff_base: Duration);
    setter!(/// Sets the backoff cap.
        with_backoff_cap, backoff_cap: Duration);
    setter!(/// Sets the rate control.
        with_rate, rate: RateSpec);
    setter!(/// Sets the concurrency (pool size).
        with_concurrency, concurrency: usize);
    setter!(/// Sets the retry budget capacity (`None` disables it).
        with_retry_budget, retry_budget: Option<u32>);

    /// Returns the configuration; call [`ClientConfig::validate`] (or [`crate::Client::new`],
    /// which does) before use.
    pub fn build(self) -> ClientConfig {
        self.config
    }
}

impl ClientConfig {
    /// Starts a builder with the defaults.
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder::default()
    }

    /// The client authentication method in effect.
    pub fn effective_auth_method(&self) -> AuthMethod {
        self.auth_method.unwrap_or(match self.provider {
            Provider::Tutorial => AuthMethod::Post,
            Provider::Genesys | Provider::Cxone => AuthMethod::Basic,
        })
    }

    /// Checks everything `run` needs: credentials, action or execute template, and URLs.
    /// The error names every missing variable at once.
    pub fn validate(&self) -> Result<(), Error> {
        self.check(true)
    }

    /// Checks what fetching a token needs (the `token` command): no action id required.
    pub fn validate_for_token(&self) -> Result<(), Error> {
        self.check(false)
    }

    fn check(&self, for_execute: bool) -> Result<(), Error> {
        let mut missing: Vec<&str> = Vec::new();
        let empty = |s: &Option<String>| s.as_deref().is_none_or(|v| v.trim().is_empty());
        let empty_secret = |s: &Option<SecretString>| {
            use secrecy::ExposeSecret;
            s.as_ref().is_none_or(|v| v.expose_secret().is_empty())
        };
        match self.provider {
            Provider::Tutorial => {
                if empty(&self.client_id) {
                    missing.push("CXONE_CLIENT_ID (--client-id)");
                }
                if empty_secret(&self.client_secret) {
                    missing.push("CXONE_CLIENT_SECRET (--client-secret-file)");
                }
                if for_execute && empty(&self.action_id) {
                    missing.push("CXONE_DATA_ACTION_ID (--action-id)");
                }
            }
            Provider::Genesys => {
                if empty(&self.client_id) {
                    missing.push("GENESYS_CLIENT_ID or CXONE_CLIENT_ID (--client-id)");
                }
                if empty_secret(&self.client_secret) {
                    missing.push("GENESYS_CLIENT_SECRET or CXONE_CLIENT_SECRET");
                }
                if empty(&self.region) && (empty(&self.token_url) || empty(&self.base_url)) {
                    missing.push(
                        "GENESYS_REGION (--region), or both CXONE_BASE_URL and CXONE_TOKEN_URL",
                    );
                }
                if for_execute && empty(&self.action_id) {
                    missing.push("CXONE_DATA_ACTION_ID (--action-id)");
                }
            }
            Provider::Cxone => {
                if empty(&self.client_id) {
                    missing.push("CXONE_CLIENT_ID (--client-id)");
                }
                if empty_secret(&self.client_secret) {
                    missing.push("CXONE_CLIENT_SECRET (--client-secret-file)");
                }
                if empty(&self.access_key_id) {
                    missing.push("CXONE_ACCESS_KEY_ID (--access-key-id)");
                }
                if empty_secret(&self.access_key_secret) {
                    missing.push("CXONE_ACCESS_KEY_SECRET");
                }
                if for_execute && empty(&self.execute_path) {
                    missing.push("--execute-path (CXONE_EXECUTE_PATH)");
                }
                if for_execute && empty(&self.body_template) {
                    missing.push("--body-template (CXONE_BODY_TEMPLATE)");
                }
            }
        }
        if !missing.is_empty() {
            return Err(Error::config(format!(
                "missing required settings for provider {}: {}",
                self.provider,
                missing.join(", ")
            )));
        }

        if let Some(u) = self.base_url.as_deref() {
            check_url(u, "API base URL (CXONE_BASE_URL)")?;
        }
        if let Some(u) = self.token_url.as_deref() {
            check_url(u, "token URL (CXONE_TOKEN_URL)")?;
        }
        if self.provider == Provider::Cxone {
            check_url(&self.issuer, "issuer (--issuer)")?;
            if let Some(p) = self.execute_path.as_deref() {
                if p.contains("://") {
                    check_url(p, "execute path (--execute-path)")?;
                }
            }
        }
        if self.provider == Provider::Genesys {
            if let Some(r) = self.region.as_deref() {
                if r.contains('/') || r.contains(':') || r.trim().is_empty() {
                    return Err(Error::config(format!(
                        "invalid Genesys region {r:?}: give the domain only, e.g. mypurecloud.com"
                    )));
                }
            }
        }
        if self.input_name.trim().is_empty() {
            return Err(Error::config("the input name (--input-name) is empty"));
        }
        if self.concurrency == 0 {
            return Err(Error::config("concurrency must be at least 1"));
        }
        if self.timeout.is_zero() {
            return Err(Error::config("timeout must be greater than zero"));
        }
        if let RateSpec::PerSecond(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(Error::config(format!(
                    "invalid rate {r}: must be a positive number of requests per second"
                )));
            }
        }
        if self.provider == Provider::Cxone && for_execute {
            if let Some(t) = self.body_template.as_deref() {
                crate::template::check_template(t, &self.extra_inputs, &self.input_name)?;
            }
        }
        Ok(())
    }
}

/// Refuses anything but `https://`, except `http://` to a loopback host (127.0.0.0/8, ::1,
/// localhost), so credentials and tokens never cross a network in clear text. Called on
/// configured and discovered URLs alike.
pub fn check_url(raw: &str, what: &str) -> Result<url::Url, Error> {
    let parsed = url::Url::parse(raw.trim())
        .map_err(|e| Error::config(format!("{what} {raw:?} is not a valid URL: {e}")))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // Do not echo the URL: its user-info may be a secret.
        return Err(Error::config(format!(
            "{what} must not contain a user name or password; pass credentials with their own settings"
        )));
    }
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" => {
            if is_loopback(&parsed) {
                Ok(parsed)
            } else {
                Err(Error::config(format!(
                    "{what} {raw} uses http:// to a non-loopback host: credentials would travel \
                     unencrypted; use https:// (http:// is allowed only for 127.0.0.0/8, ::1 and localhost)"
                )))
            }
        }
        other => Err(Error::config(format!(
            "{what} {raw:?} has unsupported scheme {other:?}: use https://"
        ))),
    }
}

/// True when the URL's host is 127.0.0.0/8, ::1 or localhost.
pub fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost"
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => {
            // An IPv4-mapped address (::ffff:127.0.0.1) is loopback too.
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn loopback_rule() {
        for ok in [
            "http://127.0.0.1:8080/x",
            "http://127.9.8.7",
            "http://[::1]:9/",
            "http://localhost/",
            "http://LOCALHOST.:80",
            "https://example.com",
            "https://10.0.0.1",
        ] {
            assert!(check_url(ok, "url").is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com",
            "http://10.0.0.1",
            "http://128.0.0.1",
            "http://localhost.example.com",
            "http://[::2]/",
            "ftp://127.0.0.1",
            "not a url",
            "https://user:hunter2@example.com/",
        ] {
            let e = check_url(bad, "API base URL").unwrap_err();
            assert!(e.is_config(), "{bad}");
            assert!(e.to_string().contains("API base URL"), "{e}");
            assert!(!e.to_string().contains("hunter2"));
        }
    }

    #[test]
    fn missing_values_are_all_named() {
        let e = ClientConfig::default().validate().unwrap_err();
        assert!(e.is_config());
        let m = e.to_string();
        for name in [
            "CXONE_CLIENT_ID",
            "CXONE_CLIENT_SECRET",
            "CXONE_DATA_ACTION_ID",
        ] {
            assert!(m.contains(name), "{m}");
        }
        // token command does not need the action id
        let e = ClientConfig::default().validate_for_token().unwrap_err();
        assert!(!e.to_string().contains("CXONE_DATA_ACTION_ID"));

        let cx = ClientConfig::builder().provider(Provider::Cxone).build();
        let m = cx.validate().unwrap_err().to_string();
        for name in [
            "CXONE_ACCESS_KEY_ID",
            "CXONE_ACCESS_KEY_SECRET",
            "--execute-path",
            "--body-template",
        ] {
            assert!(m.contains(name), "{m}");
        }
        let g = ClientConfig::builder().provider(Provider::Genesys).build();
        assert!(g
            .validate()
            .unwrap_err()
            .to_string()
            .contains("GENESYS_REGION"));
    }

    #[test]
    fn http_to_remote_is_refused() {
        let c = ClientConfig::builder()
            .with_client_id("id")
            .with_client_secret("s3cr3t")
            .with_action_id("a")
            .with_base_url("http://api.example.com")
            .build();
        let e = c.validate().unwrap_err();
        assert!(e.is_config());
        assert!(e.to_string().contains("http://"));
        assert!(!e.to_string().contains("s3cr3t"));
    }

    #[test]
    fn debug_hides_secrets() {
        let c = ClientConfig::builder()
            .with_client_id("id")
            .with_client_secret("very-secret-value")
            .with_access_key_secret("another-secret-value")
            .build();
        let d = format!("{c:?}");
        assert!(!d.contains("very-secret-value"));
        assert!(!d.contains("another-secret-value"));
    }

    #[test]
    fn parse_specs() {
        assert_eq!("auto".parse::<RateSpec>().unwrap(), RateSpec::Auto);
        assert_eq!("2.5".parse::<RateSpec>().unwrap(), RateSpec::PerSecond(2.5));
        assert!("0".parse::<RateSpec>().is_err());
        assert!("-1".parse::<RateSpec>().is_err());
        assert_eq!("Basic".parse::<AuthMethod>().unwrap(), AuthMethod::Basic);
        assert_eq!("cxone".parse::<Provider>().unwrap(), Provider::Cxone);
        assert_eq!(
            ClientConfig::default().effective_auth_method(),
            AuthMethod::Post
        );
    }
}
