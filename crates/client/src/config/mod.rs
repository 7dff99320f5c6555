//! What the client needs: the settings every platform shares, flat in [`ClientConfig`], and what
//! only one platform knows in its own [`ProviderConfig`] variant with its own validation.
//!
//! Key design decision: the library reports *which* [`Setting`] is missing or wrong and never
//! names a flag or an environment variable; the CLI maps each setting to its own names. A
//! builder with flat setters keeps callers simple: it assembles the provider's variant at
//! [`ClientConfigBuilder::build`], so the order of calls does not matter.

mod builder;
mod provider;
mod url;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

use crate::error::Error;
pub use crate::rate::RateSpec;
pub use crate::setting::Setting;
pub use builder::ClientConfigBuilder;
pub use provider::{
    AuthMethod, CxoneAuth, CxoneConfig, GenesysConfig, Provider, ProviderConfig, TutorialConfig,
};
pub use url::{check_url, is_loopback};

/// Default issuer for CXone discovery.
pub const DEFAULT_ISSUER: &str = "https://cxone.niceincontact.com";
/// Default OAuth scope of the tutorial dialect.
pub const DEFAULT_SCOPE: &str = "data-actions:execute";
/// Default tutorial execute path; `{id}` is replaced by the action id.
pub const DEFAULT_PATH_TEMPLATE: &str = "/api/v2/data-actions/{id}/execute";
/// Default tutorial API base when neither `CXONE_BASE_URL` nor `CXONE_ENV` is given.
pub const DEFAULT_BASE_URL: &str = "https://api.nicecxone.com";

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
    /// Requests in flight; sizes the connection pool. With `adaptive_concurrency`, the most
    /// the adaptive window may reach.
    pub concurrency: usize,
    /// Adapt the number of requests in flight (see [`crate::flow`]) up to `concurrency`.
    pub adaptive_concurrency: bool,
    /// Retry budget capacity (token bucket, AWS standard mode: a retry costs 5, a timeout 10,
    /// a success refunds 1). `None` disables the budget.
    pub retry_budget: Option<u32>,
    /// What an attempt whose outcome is unknown (a timeout or a connection lost after the
    /// request was written, 500, 502, 504) leads to.
    pub on_ambiguous: OnAmbiguous,
}

/// Neither Genesys Cloud nor CXone honours an idempotency key, so an attempt whose outcome is
/// unknown may have run the action; retrying it may run it twice. The choice is the user's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnAmbiguous {
    /// Retry it as any failed attempt (the tool's behaviour before the choice existed): the
    /// action must tolerate running twice for one UUID.
    #[default]
    Retry,
    /// End the UUID as failed, saying it may have executed; nothing resends it.
    Fail,
}

impl std::str::FromStr for OnAmbiguous {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "retry" => Ok(OnAmbiguous::Retry),
            "fail" => Ok(OnAmbiguous::Fail),
            other => Err(Error::new(
                crate::ErrorKind::Config,
                format!("unknown --on-ambiguous {other:?}: use retry or fail"),
            )),
        }
    }
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
            adaptive_concurrency: false,
            retry_budget: Some(500),
            on_ambiguous: OnAmbiguous::Retry,
        }
    }
}

pub(super) fn empty(s: &Option<String>) -> bool {
    s.as_deref().is_none_or(|v| v.trim().is_empty())
}

pub(super) fn empty_secret(s: &Option<SecretString>) -> bool {
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
        let needs_client = match &self.provider {
            ProviderConfig::Cxone(c) => c.needs_client(),
            _ => true,
        };
        if needs_client && empty(&self.client_id) {
            missing.push(Setting::ClientId);
        }
        if needs_client && empty_secret(&self.client_secret) {
            missing.push(Setting::ClientSecret);
        }
        match &self.provider {
            ProviderConfig::Tutorial(t) => t.missing(for_execute, &mut missing),
            ProviderConfig::Genesys(g) => g.missing(self, for_execute, &mut missing),
            ProviderConfig::Cxone(c) => c.missing(self, for_execute, &mut missing),
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
            ProviderConfig::Genesys(g) => g.check_values(self)?,
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
        if let RateSpec::Fixed(r) = self.rate {
            if !(r.count.is_finite() && r.count > 0.0) {
                return Err(Error::invalid(
                    Setting::Rate,
                    format!(
                        "invalid rate {r}: use {}, with R a positive number",
                        crate::rate::RATE_FORMS
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// [`check_url`] for a configured setting: the error names the setting.
pub(super) fn check_setting_url(raw: &str, setting: Setting) -> Result<::url::Url, Error> {
    check_url(raw, setting.describe()).map_err(|e| Error::invalid(setting, e.message()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cxone_access_key_needs_no_client_but_an_area_or_token_url() {
        let base = || {
            ClientConfig::builder()
                .provider(Provider::Cxone)
                .with_access_key_id("k")
                .with_access_key_secret("s")
                .with_cxone_auth(CxoneAuth::AccessKey)
        };
        let e = base().build().validate_for_token().unwrap_err();
        assert_eq!(e.settings(), [Setting::Area]);
        assert!(base().with_area("na1").build().validate_for_token().is_ok());
        assert!(base()
            .with_token_url("http://127.0.0.1:9/authentication/v1/token/access-key")
            .build()
            .validate_for_token()
            .is_ok());
        let e = base()
            .with_area("na1/x")
            .build()
            .validate_for_token()
            .unwrap_err();
        assert_eq!(e.settings(), [Setting::Area]);
        // The password grant still needs the registered application.
        let e = base()
            .with_cxone_auth(CxoneAuth::Password)
            .build()
            .validate_for_token()
            .unwrap_err();
        assert_eq!(e.settings(), [Setting::ClientId, Setting::ClientSecret]);
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
    fn a_genesys_region_takes_both_urls_or_neither() {
        let base = || {
            ClientConfig::builder()
                .provider(Provider::Genesys)
                .with_client_id("id")
                .with_client_secret("s")
                .with_action_id("a")
                .with_region("mypurecloud.ie")
        };
        assert!(base().build().validate().is_ok());
        let both = base()
            .with_base_url("https://api.example.com")
            .with_token_url("https://login.example.com/oauth/token")
            .build();
        assert!(both.validate().is_ok());
        let e = base()
            .with_base_url("https://api.example.com")
            .build()
            .validate()
            .unwrap_err();
        assert_eq!(e.settings(), [Setting::BaseUrl]);
        assert_eq!(
            e.to_string(),
            "a Genesys region sets both the API and the token URL, but the API base URL is given \
             without the token URL: give the token URL too, or unset the API base URL so the region sets both"
        );
        let e = base()
            .with_token_url("https://login.example.com/oauth/token")
            .build()
            .validate_for_token()
            .unwrap_err();
        assert_eq!(e.settings(), [Setting::TokenUrl]);
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
        assert_eq!(
            "2.5".parse::<RateSpec>().unwrap(),
            RateSpec::Fixed(crate::rate::Rate::per_second(2.5))
        );
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
