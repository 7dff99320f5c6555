//! OAuth and Data Action client for cxone-uuid: submits each UUID to a platform's action,
//! reliably and fast.
//!
//! Key design decision: what differs between platforms (token acquisition, request building,
//! response parsing) sits behind one small object-safe [`Dialect`] trait (tutorial, Genesys
//! Cloud, NICE CXone); everything that must behave the same everywhere wraps it once in
//! [`Client`]: a single-flight token cache, one keep-alive pool, a rate limiter (fixed or
//! AIMD) and a pure, unit-tested [`RetryPolicy`] with a shared retry budget. Secrets are
//! `SecretString`s and no error, log line or `Debug` output contains them.
//!
//! ```no_run
//! # async fn demo() -> Result<(), cxone_uuid_client::ClientError> {
//! use cxone_uuid_client::{Client, ClientConfig};
//! let config = ClientConfig::builder()
//!     .with_client_id("demo-client")
//!     .with_client_secret("demo-secret")
//!     .with_action_id("my-action")
//!     .with_base_url("http://127.0.0.1:8080")
//!     .build();
//! config.validate()?;
//! let client = Client::new(config)?;
//! let report = client.execute(uuid::Uuid::new_v4()).await;
//! println!("{:?} after {} attempt(s)", report.outcome.is_ok(), report.attempts);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod config;
pub mod dialect;
mod direct;
pub mod error;
mod execute;
pub mod flow;
mod http;
mod oauth;
pub mod quota;
pub mod rate;
pub mod retry;
pub mod setting;
mod template;
mod token;

pub use config::{
    AuthMethod, ClientConfig, ClientConfigBuilder, CxoneAuth, CxoneConfig, GenesysConfig,
    OnAmbiguous, Provider, ProviderConfig, RateSpec, TutorialConfig,
};
pub use dialect::{Dialect, Endpoints, Outputs};
pub use error::{ClientError, Error, ErrorKind, ExecuteError};
pub use execute::{Client, ExecuteReport, TokenInfo, AMBIGUOUS_PREFIX};
pub use flow::Limits;
pub use http::MAX_BODY;
pub use retry::{RetryBudget, RetryPolicy};
pub use setting::Setting;
