//! A NICE CXone / Genesys Cloud stand-in with fault injection, for tests, the demo and benchmarks.
//!
//! Key decision: faults are data, not code. A [`MockConfig`] names the dialect, the credentials
//! it accepts and every fault (rate limit, latency, random failures, malformed bodies) plus two
//! deterministic scripts: [`MockConfig::script`] answers the k-th attempt *for one UUID* (its
//! Idempotency-Key) with step k, so a test can say "500, then 429 with Retry-After 2, then 200"
//! for every UUID regardless of concurrency; [`MockConfig::token_script`] does the same for the
//! token endpoint. Scripts have a text form ([`parse_script`]) shared by tests and the
//! `cxone-uuid mock --script` flag. The server records every execute attempt ([`Recorded`]),
//! readable in-process with [`MockServer::recorded`] or over HTTP at `GET /__mock/recorded`.
//!
//! Execute pipeline, in order: bearer token (401), every limit (429, see `--limit`: token
//! bucket, fixed window, per-token window, concurrency cap; with quota headers if asked), Content-Type (415), body
//! and UUID (400), Idempotency-Key (tutorial only, 400), then the script step for this key, else
//! a random failure, else the configured malformed body, else success. Only attempts that pass
//! the checks advance the script; every attempt is recorded.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use cxone_uuid_mock::{parse_script, MockConfig, MockServer};
//!
//! let config = MockConfig {
//!     script: parse_script("500,429:ra=1,200").expect("valid script"),
//!     ..MockConfig::default()
//! };
//! let server = MockServer::start(config, "127.0.0.1:0".parse().expect("address")).await?;
//! // Point a client at server.base_url() / server.token_url(), then:
//! assert!(server.recorded().execute_requests.is_empty());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod config;
mod execute;
mod limits;
mod outage;
mod respond;
mod server;
mod state;
mod token;

pub use config::{
    format_script, parse_script, DiscoveryFault, GenesysLimit, Malformed, MockConfig, ParseError,
    Provider, Step, CXONE_ACCESS_KEY_TOKEN_PATH, DEFAULT_CXONE_EXECUTE_PATH,
};
pub use limits::{Limit, LimitHeaders};
pub use outage::OutageProxy;
pub use server::MockServer;
pub use state::{Recorded, RecordedRequest};
