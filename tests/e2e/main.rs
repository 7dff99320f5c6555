//! End-to-end tests of the `cxone-uuid` binary, one module per topic, one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod support;
mod run;
mod durability;
mod providers;
mod mock;
mod generate;
mod validate;
mod registry;
mod audit;
mod s3;
