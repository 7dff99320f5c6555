//! End-to-end tests of the `cxone-uuid` binary, one module per topic, one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod audit;
mod durability;
mod features;
mod flow;
mod generate;
mod mock;
mod options;
mod platforms;
mod providers;
mod readme;
mod registry;
mod run;
mod s3;
mod support;
mod validate;
