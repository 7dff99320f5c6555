//! End-to-end tests of the `cxone-uuid` binary, one module per topic, one test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod ambiguous;
mod audit;
mod durability;
mod features;
mod flow;
mod full_disk;
mod generate;
mod locks;
mod mock;
mod observe;
mod options;
mod platforms;
mod providers;
mod readme;
mod registry;
mod report;
mod resume;
mod run;
mod s3;
mod s3_import;
mod support;
mod validate;
