//! Which platform, and what only that platform knows: each provider's settings with their own
//! validation, so a new platform adds a variant here instead of fields every other one carries.

use std::fmt;
use std::str::FromStr;

use secrecy::SecretString;

use super::{
    check_setting_url, empty, empty_secret, ClientConfig, DEFAULT_ISSUER, DEFAULT_PATH_TEMPLATE,
};
use crate::error::Error;
use crate::setting::Setting;

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
    pub(super) fn missing(&self, for_execute: bool, missing: &mut Vec<Setting>) {
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
    /// Send `flatten=true`: outputs come back with dotted keys.
    pub flatten: bool,
}

impl GenesysConfig {
    pub(super) fn missing(
        &self,
        common: &ClientConfig,
        for_execute: bool,
        missing: &mut Vec<Setting>,
    ) {
        if empty(&self.region) && (empty(&common.token_url) || empty(&common.base_url)) {
            missing.push(Setting::Region);
        }
        if for_execute && empty(&self.action_id) {
            missing.push(Setting::DataActionId);
        }
    }

    pub(super) fn check_values(&self) -> Result<(), Error> {
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

/// How the CXone dialect obtains its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CxoneAuth {
    /// OAuth password grant: the access key as username/password, with a registered
    /// application's client id and secret (NICE's back-end flow,
    /// <https://developer.niceincontact.com/Documentation/APIAuthenticationAndAuthorization>).
    #[default]
    Password,
    /// NICE's access-key token endpoint (UserHub): `POST
    /// https://{area}.nice-incontact.com/authentication/v1/token/access-key` with the access key
    /// as JSON, no client id or secret
    /// (<https://developer.niceincontact.com/Documentation/UserHubGettingStarted>).
    AccessKey,
}

impl CxoneAuth {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            CxoneAuth::Password => "password",
            CxoneAuth::AccessKey => "access-key",
        }
    }
}

impl FromStr for CxoneAuth {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim().to_ascii_lowercase().as_str() {
            "password" => Ok(CxoneAuth::Password),
            "access-key" | "access_key" | "accesskey" => Ok(CxoneAuth::AccessKey),
            other => Err(Error::invalid(
                Setting::CxoneAuth,
                format!("unknown CXone auth {other:?}: use password or access-key"),
            )),
        }
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
    /// How the token is obtained.
    pub auth: CxoneAuth,
    /// Area of the access-key token endpoint, e.g. `na1`, `au1`, `eu1`.
    pub area: Option<String>,
    /// The tenant, where the token answer carries none.
    pub tenant_id: Option<String>,
}

impl Default for CxoneConfig {
    fn default() -> Self {
        CxoneConfig {
            issuer: DEFAULT_ISSUER.to_string(),
            access_key_id: None,
            access_key_secret: None,
            execute_path: None,
            body_template: None,
            auth: CxoneAuth::Password,
            area: None,
            tenant_id: None,
        }
    }
}

impl CxoneConfig {
    /// Whether this flow needs a registered OAuth client (only the password grant does).
    pub fn needs_client(&self) -> bool {
        self.auth == CxoneAuth::Password
    }

    pub(super) fn missing(
        &self,
        common: &ClientConfig,
        for_execute: bool,
        missing: &mut Vec<Setting>,
    ) {
        if self.auth == CxoneAuth::AccessKey && empty(&self.area) && empty(&common.token_url) {
            missing.push(Setting::Area);
        }
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

    pub(super) fn check_values(
        &self,
        common: &ClientConfig,
        for_execute: bool,
    ) -> Result<(), Error> {
        check_setting_url(&self.issuer, Setting::Issuer)?;
        if let Some(a) = self.area.as_deref() {
            let ok =
                !a.trim().is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !ok {
                return Err(Error::invalid(
                    Setting::Area,
                    format!("invalid CXone area {a:?}: give the area only, e.g. na1, au1, eu1"),
                ));
            }
        }
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
