//! What the client needs: the settings every platform shares, flat in [`ClientConfig`], and what
//! only one platform knows in its own [`ProviderConfig`] variant with its own validation.
//!
//! Key design decision: the library reports *which* [`Setting`] is missing or wrong and never
//! names a flag or an environment variable; the CLI maps each setting to its own names. A
//! builder with flat setters keeps callers simple: it assembles the provider's variant at
//! [`ClientConfigBuilder::build`], so the order of calls does not matter.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;
pub use crate::rate::RateSpec;
pub use crate::setting::Setting;

/// Default issuer for CXone discovery.
pub const DEFAULT_ISSUER: &str = "https://cxone.niceincontact.com";
/// Default OAuth scope of the tutorial dialect.
pub const DEFAULT_SCOPE: &str = "data-actions:execute";
/// Default tutorial execute path; `{id}` is replaced by the action id.
pub const DEFAULT_PATH_TEMPLATE: &str = "/api/v2/data-actions/{id}/execute";
/// Default tutorial API base when neither `CXONE_BASE_URL` nor `CXONE_ENV` is given.
pub const DEFAULT_BASE_URL: &str = "https://api.nicecxone.com";

/// Which platform's API the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
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

/// The tutorial's own settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TutorialConfig {
    /// The Data Action to execute.
    pub action_id: Option<String>,
    /// Execute path template with `{id}`.
    pub path_template: String,
}

impl Default for TutorialConfig {
    fn default() -> Self {
        TutorialConfig {
            action_id: None,
            path_template: DEFAULT_PATH_TEMPLATE.to_string(),
        }
    }
}

impl TutorialConfig {
    fn missing(&self, for_execute: bool, missing: &mut Vec<Setting>) {
        if for_execute && empty(&self.action_id) {
            missing.push(Setting::DataActionId);
        }
    }
}

/// Genesys Cloud's own settings.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GenesysConfig {
    /// The Data Action to execute.
    pub action_id: Option<String>,
    /// Region domain, e.g. `mypurecloud.com`; explicit URLs win over it.
    pub region: Option<String>,
    /// The output compared with the UUID sent.
    pub echo_field: Option<String>,
    /// Use the `/test` variant of the execute endpoint.
    pub test_action: bool,
}

impl GenesysConfig {
    fn missing(&self, common: &ClientConfig, for_execute: bool, missing: &mut Vec<Setting>) {
        if empty(&self.region) && (empty(&common.token_url) || empty(&common.base_url)) {
            missing.push(Setting::Region);
        }
        if for_execute && empty(&self.action_id) {
            missing.push(Setting::DataActionId);
        }
    }

    fn check_values(&self) -> Result<(), Error> {
        if let Some(r) = self.region.as_deref() {
            if r.contains('/') || r.contains(':') || r.trim().is_empty() {
                return Err(Error::invalid(
                    Setting::Region,
                    format!(
                        "invalid Genesys region {r:?}: give the domain only, e.g. mypurecloud.com"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// NICE CXone's own settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CxoneConfig {
    /// OpenID issuer for discovery.
    pub issuer: String,
    /// Access key id (password grant username).
    pub access_key_id: Option<String>,
    /// Access key secret (password grant password).
    pub access_key_secret: Option<SecretString>,
    /// Execute path (relative to the discovered API host) or absolute URL.
    pub execute_path: Option<String>,
    /// JSON body template with `{{uuid}}` and `{{input.NAME}}` placeholders.
    pub body_template: Option<String>,
}

impl Default for CxoneConfig {
    fn default() -> Self {
        CxoneConfig {
            issuer: DEFAULT_ISSUER.to_string(),
            access_key_id: None,
            access_key_secret: None,
            execute_path: None,
            body_template: None,
        }
    }
}

impl CxoneConfig {
    fn missing(&self, for_execute: bool, missing: &mut Vec<Setting>) {
        if empty(&self.access_key_id) {
            missing.push(Setting::AccessKeyId);
        }
        if empty_secret(&self.access_key_secret) {
            missing.push(Setting::AccessKeySecret);
        }
        if for_execute && empty(&self.execute_path) {
            missing.push(Setting::ExecutePath);
        }
        if for_execute && empty(&self.body_template) {
            missing.push(Setting::BodyTemplate);
        }
    }

    fn check_values(&self, common: &ClientConfig, for_execute: bool) -> Result<(), Error> {
        check_setting_url(&self.issuer, Setting::Issuer)?;
        if let Some(p) = self.execute_path.as_deref() {
            if p.contains("://") {
                check_setting_url(p, Setting::ExecutePath)?;
            }
        }
        if for_execute {
            if let Some(t) = self.body_template.as_deref() {
                crate::template::check_template(t, &common.extra_inputs, &common.input_name)?;
            }
        }
        Ok(())
    }
}

/// What only one platform knows, with its own validation.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ProviderConfig {
    /// The tutorial's API.
    Tutorial(TutorialConfig),
    /// Genesys Cloud Data Actions.
    Genesys(GenesysConfig),
    /// NICE CXone with access keys and discovery.
    Cxone(CxoneConfig),
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig::Tutorial(TutorialConfig::default())
    }
}

impl ProviderConfig {
    /// Which platform this is.
    pub fn kind(&self) -> Provider {
        match self {
            ProviderConfig::Tutorial(_) => Provider::Tutorial,
            ProviderConfig::Genesys(_) => Provider::Genesys,
            ProviderConfig::Cxone(_) => Provider::Cxone,
        }
    }

    /// The Data Action id, for the platforms that have one.
    pub fn action_id(&self) -> Option<&str> {
        match self {
            ProviderConfig::Tutorial(t) => t.action_id.as_deref(),
            ProviderConfig::Genesys(g) => g.action_id.as_deref(),
            ProviderConfig::Cxone(_) => None,
        }
    }
}

/// All client settings. Build with [`ClientConfig::builder`]; secrets are [`SecretString`] so
/// `Debug` never shows them.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Which platform, with what only that platform knows.
    pub provider: ProviderConfig,
    /// OAuth client id (`CXONE_CLIENT_ID`, `GENESYS_CLIENT_ID`).
    pub client_id: Option<String>,
    /// OAuth client secret.
    pub client_secret: Option<SecretString>,
    /// API base URL; overrides region or discovery.
    pub base_url: Option<String>,
    /// Token URL; overrides the default, the region or discovery.
    pub token_url: Option<String>,
    /// OAuth scope; the tutorial dialect defaults to [`DEFAULT_SCOPE`], the others send none
    /// unless set.
    pub scope: Option<String>,
    /// Client authentication at the token endpoint; `None` picks the dialect's default
    /// (tutorial: post, genesys and cxone: basic).
    pub auth_method: Option<AuthMethod>,
    /// Name of the input carrying the UUID.
    pub input_name: String,
    /// Extra inputs sent with every request, in order.
    pub extra_inputs: Vec<(String, String)>,
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
            provider: ProviderConfig::default(),
            client_id: None,
            client_secret: None,
            base_url: None,
            token_url: None,
            scope: None,
            auth_method: None,
            input_name: "uuid".to_string(),
            extra_inputs: Vec::new(),
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
/// Platform settings may be given in any order; those of other platforms are ignored.
#[derive(Debug, Clone, Default)]
pub struct ClientConfigBuilder {
    config: ClientConfig,
    kind: Provider,
    tutorial: TutorialConfig,
    genesys: GenesysConfig,
    cxone: CxoneConfig,
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
    /// Sets the provider.
    pub fn provider(mut self, provider: Provider) -> Self {
        self.kind = provider;
        self
    }
    setter!(/// Sets the client id.
        opt with_client_id, client_id);
    /// Sets the client secret.
    pub fn with_client_secret(mut self, secret: impl Into<String>) -> Self {
        self.config.client_secret = Some(SecretString::from(secret.into()));
        self
    }
    /// Sets the CXone access key id.
    pub fn with_access_key_id(mut self, id: impl Into<String>) -> Self {
        self.cxone.access_key_id = Some(id.into());
        self
    }
    /// Sets the CXone access key secret.
    pub fn with_access_key_secret(mut self, secret: impl Into<String>) -> Self {
        self.cxone.access_key_secret = Some(SecretString::from(secret.into()));
        self
    }
    setter!(/// Sets the API base URL.
        opt with_base_url, base_url);
    setter!(/// Sets the token URL.
        opt with_token_url, token_url);
    /// Sets the CXone issuer.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.cxone.issuer = issuer.into();
        self
    }
    /// Sets the Genesys region.
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.genesys.region = Some(region.into());
        self
    }
    setter!(/// Sets the OAuth scope.
        opt with_scope, scope);
    /// Sets the client authentication method.
    pub fn with_auth_method(mut self, method: AuthMethod) -> Self {
        self.config.auth_method = Some(method);
        self
    }
    /// Sets the data action id (tutorial and Genesys).
    pub fn with_action_id(mut self, id: impl Into<String>) -> Self {
        let id = id.into();
        self.tutorial.action_id = Some(id.clone());
        self.genesys.action_id = Some(id);
        self
    }
    /// Sets the tutorial path template (`{id}` is the action id).
    pub fn with_path_template(mut self, template: impl Into<String>) -> Self {
        self.tutorial.path_template = template.into();
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
    /// Sets the Genesys echo field.
    pub fn with_echo_field(mut self, field: impl Into<String>) -> Self {
        self.genesys.echo_field = Some(field.into());
        self
    }
    /// Uses the Genesys `/test` endpoint.
    pub fn with_test_action(mut self, test: bool) -> Self {
        self.genesys.test_action = test;
        self
    }
    /// Sets the CXone execute path.
    pub fn with_execute_path(mut self, path: impl Into<String>) -> Self {
        self.cxone.execute_path = Some(path.into());
        self
    }
    /// Sets the CXone body template.
    pub fn with_body_template(mut self, template: impl Into<String>) -> Self {
        self.cxone.body_template = Some(template.into());
        self
    }
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
        let provider = match self.kind {
            Provider::Tutorial => ProviderConfig::Tutorial(self.tutorial),
            Provider::Genesys => ProviderConfig::Genesys(self.genesys),
            Provider::Cxone => ProviderConfig::Cxone(self.cxone),
        };
        ClientConfig {
            provider,
            ..self.config
        }
    }
}

fn empty(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(|v| v.trim().is_empty())
}

fn empty_secret(s: &Option<SecretString>) -> bool {
    s.as_ref().is_none_or(|v| v.expose_secret().is_empty())
}

impl ClientConfig {
    /// Starts a builder with the defaults.
    pub fn builder() -> ClientConfigBuilder {
        ClientConfigBuilder::default()
    }

    /// Which platform this configuration speaks to.
    pub fn provider_kind(&self) -> Provider {
        self.provider.kind()
    }

    /// The client authentication method in effect.
    pub fn effective_auth_method(&self) -> AuthMethod {
        self.auth_method.unwrap_or(match self.provider.kind() {
            Provider::Tutorial => AuthMethod::Post,
            Provider::Genesys | Provider::Cxone => AuthMethod::Basic,
        })
    }

    /// Checks everything `run` needs: credentials, action or execute template, and URLs.
    /// The error names every missing setting at once.
    pub fn validate(&self) -> Result<(), Error> {
        self.check(true)
    }

    /// Checks what fetching a token needs (the `token` command): no action id required.
    pub fn validate_for_token(&self) -> Result<(), Error> {
        self.check(false)
    }

    fn check(&self, for_execute: bool) -> Result<(), Error> {
        let mut missing = Vec::new();
        if empty(&self.client_id) {
            missing.push(Setting::ClientId);
        }
        if empty_secret(&self.client_secret) {
            missing.push(Setting::ClientSecret);
        }
        match &self.provider {
            ProviderConfig::Tutorial(t) => t.missing(for_execute, &mut missing),
            ProviderConfig::Genesys(g) => g.missing(self, for_execute, &mut missing),
            ProviderConfig::Cxone(c) => c.missing(for_execute, &mut missing),
        }
        if !missing.is_empty() {
            return Err(Error::missing(self.provider.kind().as_str(), missing));
        }

        if let Some(u) = self.base_url.as_deref() {
            check_setting_url(u, Setting::BaseUrl)?;
        }
        if let Some(u) = self.token_url.as_deref() {
            check_setting_url(u, Setting::TokenUrl)?;
        }
        match &self.provider {
            ProviderConfig::Tutorial(_) => {}
            ProviderConfig::Genesys(g) => g.check_values()?,
            ProviderConfig::Cxone(c) => c.check_values(self, for_execute)?,
        }
        if self.input_name.trim().is_empty() {
            return Err(Error::invalid(
                Setting::InputName,
                "the input name is empty",
            ));
        }
        if self.concurrency == 0 {
            return Err(Error::invalid(
                Setting::Concurrency,
                "concurrency must be at least 1",
            ));
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid(
                Setting::Timeout,
                "timeout must be greater than zero",
            ));
        }
        if let RateSpec::PerSecond(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(Error::invalid(
                    Setting::Rate,
                    format!("invalid rate {r}: must be a positive number of requests per second"),
                ));
            }
        }
        Ok(())
    }
}

/// [`check_url`] for a configured setting: the error names the setting.
fn check_setting_url(raw: &str, setting: Setting) -> Result<url::Url, Error> {
    check_url(raw, setting.describe()).map_err(|e| Error::invalid(setting, e.message()))
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
        assert!(e.is_config() && e.is_missing_settings());
        assert_eq!(
            e.settings(),
            [
                Setting::ClientId,
                Setting::ClientSecret,
                Setting::DataActionId
            ]
        );
        // token command does not need the action id
        let e = ClientConfig::default().validate_for_token().unwrap_err();
        assert!(!e.settings().contains(&Setting::DataActionId));

        let cx = ClientConfig::builder().provider(Provider::Cxone).build();
        let e = cx.validate().unwrap_err();
        for s in [
            Setting::AccessKeyId,
            Setting::AccessKeySecret,
            Setting::ExecutePath,
            Setting::BodyTemplate,
        ] {
            assert!(e.settings().contains(&s), "{s:?}: {e}");
        }
        let g = ClientConfig::builder().provider(Provider::Genesys).build();
        assert!(g
            .validate()
            .unwrap_err()
            .settings()
            .contains(&Setting::Region));
    }

    #[test]
    fn wrong_values_name_their_setting() {
        let c = ClientConfig::builder()
            .with_client_id("id")
            .with_client_secret("s")
            .with_action_id("a")
            .with_token_url("ftp://127.0.0.1/")
            .build();
        let e = c.validate().unwrap_err();
        assert_eq!(e.settings(), [Setting::TokenUrl]);
        assert!(!e.is_missing_settings());
        let c = ClientConfig::builder()
            .provider(Provider::Genesys)
            .with_client_id("id")
            .with_client_secret("s")
            .with_action_id("a")
            .with_region("https://mypurecloud.com")
            .build();
        assert_eq!(c.validate().unwrap_err().settings(), [Setting::Region]);
    }

    #[test]
    fn builder_order_does_not_matter() {
        let a = ClientConfig::builder()
            .with_region("mypurecloud.ie")
            .with_action_id("x")
            .provider(Provider::Genesys)
            .build();
        match &a.provider {
            ProviderConfig::Genesys(g) => {
                assert_eq!(g.region.as_deref(), Some("mypurecloud.ie"));
                assert_eq!(g.action_id.as_deref(), Some("x"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(a.provider.action_id(), Some("x"));
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
