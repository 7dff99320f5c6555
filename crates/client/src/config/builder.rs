//! The builder: flat setters in any order, assembled into the provider's variant at `build`.

use std::time::Duration;

use secrecy::SecretString;

use super::{
    AuthMethod, ClientConfig, CxoneAuth, CxoneConfig, GenesysConfig, Provider, ProviderConfig,
    RateSpec, TutorialConfig,
};

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
    /// Asks Genesys to flatten outputs to dotted keys (`flatten=true`).
    pub fn with_flatten(mut self, flatten: bool) -> Self {
        self.genesys.flatten = flatten;
        self
    }
    /// Sets the CXone execute path.
    pub fn with_execute_path(mut self, path: impl Into<String>) -> Self {
        self.cxone.execute_path = Some(path.into());
        self
    }
    /// Sets how the CXone token is obtained.
    pub fn with_cxone_auth(mut self, auth: CxoneAuth) -> Self {
        self.cxone.auth = auth;
        self
    }
    /// Sets the CXone area of the access-key token endpoint (`na1`, `au1`, `eu1`).
    pub fn with_area(mut self, area: impl Into<String>) -> Self {
        self.cxone.area = Some(area.into());
        self
    }
    /// Sets the CXone tenant, for token answers that carry none.
    pub fn with_tenant_id(mut self, tenant: impl Into<String>) -> Self {
        self.cxone.tenant_id = Some(tenant.into());
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
    setter!(/// Adapts the requests in flight up to the concurrency (see [`crate::flow`]).
        with_adaptive_concurrency, adaptive_concurrency: bool);
    setter!(/// Sets the retry budget capacity (`None` disables it).
        with_retry_budget, retry_budget: Option<u32>);
    setter!(/// Sets what an attempt of unknown outcome leads to.
        with_on_ambiguous, on_ambiguous: super::OnAmbiguous);

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
