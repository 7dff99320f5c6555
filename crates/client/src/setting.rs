//! The names of the settings, so the library can say *which* one is missing or wrong and the
//! CLI can turn that into its own flag and environment variable.
//!
//! Key design decision: the library never names a flag or an environment variable (it is used
//! by programs that have neither); the CLI maps each [`Setting`] once, and a test there checks
//! every mapped flag exists.

use std::fmt;

/// A configuration setting an error can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Setting {
    /// Which platform's API.
    Provider,
    /// OAuth client id.
    ClientId,
    /// OAuth client secret.
    ClientSecret,
    /// The Data Action to execute (tutorial, Genesys).
    DataActionId,
    /// API base URL.
    BaseUrl,
    /// Token endpoint URL.
    TokenUrl,
    /// OAuth scope.
    Scope,
    /// Client authentication method at the token endpoint.
    AuthMethod,
    /// Name of the input carrying the UUID.
    InputName,
    /// Extra inputs.
    Inputs,
    /// Tutorial execute path template.
    PathTemplate,
    /// Genesys Cloud region.
    Region,
    /// Genesys output compared with the UUID sent.
    EchoField,
    /// CXone OpenID issuer.
    Issuer,
    /// CXone access key id.
    AccessKeyId,
    /// CXone access key secret.
    AccessKeySecret,
    /// CXone execute path.
    ExecutePath,
    /// CXone body template.
    BodyTemplate,
    /// CXone token flow (password grant or access-key endpoint).
    CxoneAuth,
    /// CXone area of the access-key token endpoint.
    Area,
    /// CXone tenant id.
    TenantId,
    /// Requests in flight.
    Concurrency,
    /// Request rate.
    Rate,
    /// Per-attempt timeout.
    Timeout,
}

impl Setting {
    /// What the setting is, in words, for messages of programs that have no flags.
    pub fn describe(self) -> &'static str {
        match self {
            Setting::Provider => "provider",
            Setting::ClientId => "client id",
            Setting::ClientSecret => "client secret",
            Setting::DataActionId => "data action id",
            Setting::BaseUrl => "API base URL",
            Setting::TokenUrl => "token URL",
            Setting::Scope => "scope",
            Setting::AuthMethod => "auth method",
            Setting::InputName => "input name",
            Setting::Inputs => "inputs",
            Setting::PathTemplate => "path template",
            Setting::Region => "Genesys region",
            Setting::EchoField => "echo field",
            Setting::Issuer => "issuer",
            Setting::AccessKeyId => "access key id",
            Setting::AccessKeySecret => "access key secret",
            Setting::ExecutePath => "execute path",
            Setting::BodyTemplate => "body template",
            Setting::CxoneAuth => "CXone auth",
            Setting::Area => "CXone area",
            Setting::TenantId => "CXone tenant id",
            Setting::Concurrency => "concurrency",
            Setting::Rate => "rate",
            Setting::Timeout => "timeout",
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}
