//! Flags of the S3 archive sink, shared by `run`, `audit verify` and `audit flush`.
//!
//! The flags exist in every build so scripts parse the same everywhere; using an `s3://` sink in
//! a build without the `s3` feature exits 2 naming the feature to rebuild with.

/// S3 sink settings (issue 5).
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct S3Args {
    /// S3-compatible endpoint URL (plain http:// only to loopback).
    #[arg(long, env = "CXONE_S3_ENDPOINT")]
    pub(crate) s3_endpoint: Option<String>,
    /// AWS region of the bucket.
    #[arg(long, env = "CXONE_S3_REGION")]
    pub(crate) s3_region: Option<String>,
    /// Use path-style addressing (most S3-compatible servers need it).
    #[arg(long)]
    pub(crate) s3_path_style: bool,
}
