//! What the S3 sink is pointed at and how it behaves; parsed and checked before anything runs.

use std::path::PathBuf;
use std::time::Duration;

use cxone_uuid_audit::SyncMode;

use crate::S3Error;

/// Default spool directory, relative to the working directory.
pub const DEFAULT_SPOOL: &str = ".cxone-uuid/spool";
/// Default number of events per uploaded object.
pub const DEFAULT_BATCH_EVENTS: usize = 10_000;
/// Default age after which a partly filled object is uploaded anyway.
pub const DEFAULT_BATCH_SECS: u64 = 60;

/// Server-side encryption requested for every uploaded object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sse {
    /// `AES256`: S3-managed keys.
    Aes256,
    /// `aws:kms`, with the key id (the bucket's default KMS key when `None`).
    Kms {
        /// KMS key id or ARN.
        key_id: Option<String>,
    },
}

impl Sse {
    /// Parses the `--s3-sse` value (`AES256` or `aws:kms`) with an optional `--s3-kms-key-id`.
    pub fn parse(value: &str, kms_key_id: Option<&str>) -> Result<Self, S3Error> {
        match value {
            "AES256" | "aes256" => match kms_key_id {
                None => Ok(Self::Aes256),
                Some(_) => Err(S3Error::Config(
                    "--s3-kms-key-id needs --s3-sse aws:kms (it was AES256)".into(),
                )),
            },
            "aws:kms" => Ok(Self::Kms {
                key_id: kms_key_id.map(str::to_string),
            }),
            other => Err(S3Error::Config(format!(
                "--s3-sse {other:?} is not supported: use AES256 or aws:kms"
            ))),
        }
    }
}

/// Everything the S3 sink, `flush` and `verify` need. Build with [`S3Config::new`] and the
/// `with_*` methods; [`S3Config::validate`] runs before any network call.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// S3-compatible endpoint URL; AWS when `None`.
    pub endpoint: Option<String>,
    /// Region; the AWS chain's region (else `us-east-1`) when `None`.
    pub region: Option<String>,
    /// Path-style addressing (`http://host/bucket/key`).
    pub path_style: bool,
    /// Root of the local spool; this destination uses a subdirectory of it.
    pub spool_root: PathBuf,
    /// Events per object.
    pub batch_events: usize,
    /// Age after which a partly filled object is uploaded.
    pub batch_interval: Duration,
    /// Server-side encryption.
    pub sse: Option<Sse>,
    /// COMPLIANCE-mode Object Lock retention in days.
    pub object_lock_days: Option<u32>,
    /// When appended events are fsynced to the spool.
    pub sync_mode: SyncMode,
    /// Upload attempts per object before the uploader gives up until its next round.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt, capped at 8 s.
    pub retry_base: Duration,
}

impl S3Config {
    /// A destination with every other setting at its default.
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        let prefix: String = prefix.into();
        Self {
            bucket: bucket.into(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint: None,
            region: None,
            path_style: false,
            spool_root: PathBuf::from(DEFAULT_SPOOL),
            batch_events: DEFAULT_BATCH_EVENTS,
            batch_interval: Duration::from_secs(DEFAULT_BATCH_SECS),
            sse: None,
            object_lock_days: None,
            sync_mode: SyncMode::Batch,
            max_attempts: 4,
            retry_base: Duration::from_millis(250),
        }
    }

    /// Parses `s3://BUCKET/PREFIX` (the prefix may be empty or nested).
    pub fn from_uri(uri: &str) -> Result<Self, S3Error> {
        let rest = uri.strip_prefix("s3://").ok_or_else(|| {
            S3Error::Config(format!("{uri:?} is not an s3://BUCKET/PREFIX address"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(S3Error::Config(format!(
                "{uri:?} has no bucket: write s3://BUCKET/PREFIX"
            )));
        }
        Ok(Self::new(bucket, prefix))
    }

    /// Sets the endpoint URL.
    pub fn with_endpoint(mut self, endpoint: Option<String>) -> Self {
        self.endpoint = endpoint;
        self
    }
    /// Sets the region.
    pub fn with_region(mut self, region: Option<String>) -> Self {
        self.region = region;
        self
    }
    /// Turns path-style addressing on or off.
    pub fn with_path_style(mut self, on: bool) -> Self {
        self.path_style = on;
        self
    }
    /// Sets the spool root directory.
    pub fn with_spool(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_root = dir.into();
        self
    }
    /// Sets the events per object.
    pub fn with_batch_events(mut self, n: usize) -> Self {
        self.batch_events = n;
        self
    }
    /// Sets the age after which a partial object is uploaded.
    pub fn with_batch_interval(mut self, d: Duration) -> Self {
        self.batch_interval = d;
        self
    }
    /// Sets server-side encryption.
    pub fn with_sse(mut self, sse: Option<Sse>) -> Self {
        self.sse = sse;
        self
    }
    /// Sets COMPLIANCE retention days.
    pub fn with_object_lock_days(mut self, days: Option<u32>) -> Self {
        self.object_lock_days = days;
        self
    }
    /// Sets the spool's sync mode.
    pub fn with_sync_mode(mut self, mode: SyncMode) -> Self {
        self.sync_mode = mode;
        self
    }
    /// Sets upload attempts per round and the first retry delay.
    pub fn with_retry(mut self, max_attempts: u32, base: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.retry_base = base;
        self
    }

    /// `s3://BUCKET/PREFIX`, for messages.
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    /// Checks what can be checked offline: bucket name, endpoint scheme, batch sizes.
    pub fn validate(&self) -> Result<(), S3Error> {
        let b = &self.bucket;
        let valid_chars = b
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-');
        if b.len() < 3 || b.len() > 63 || !valid_chars {
            return Err(S3Error::Config(format!(
                "{b:?} is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-')"
            )));
        }
        if let Some(ep) = &self.endpoint {
            check_endpoint(ep)?;
        }
        if self.batch_events == 0 {
            return Err(S3Error::Config(
                "--s3-batch-events must be at least 1".into(),
            ));
        }
        if self.batch_interval.is_zero() {
            return Err(S3Error::Config("--s3-batch-secs must be at least 1".into()));
        }
        if self.object_lock_days == Some(0) {
            return Err(S3Error::Config(
                "--s3-object-lock-days must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// This destination's own spool directory: the chain of one bucket/prefix never mixes with
    /// another's. The prefix is percent-encoded into one path component.
    pub fn spool_dir(&self) -> PathBuf {
        let mut name = String::new();
        if self.prefix.is_empty() {
            name.push('%');
        }
        for c in self.prefix.bytes() {
            if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'.' {
                name.push(char::from(c));
            } else {
                name.push_str(&format!("%{c:02X}"));
            }
        }
        if name.starts_with('.') {
            name.replace_range(0..1, "%2E");
        }
        self.spool_root.join(&self.bucket).join(name)
    }
}

/// Plain `http://` is allowed only to loopback, where nothing crosses a network.
fn check_endpoint(endpoint: &str) -> Result<(), S3Error> {
    if endpoint.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = endpoint.strip_prefix("http://") else {
        return Err(S3Error::Config(format!(
            "--s3-endpoint {endpoint:?} must start with https:// (or http:// to loopback)"
        )));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(S3Error::Config(format!(
            "--s3-endpoint {endpoint:?}: plain http:// is allowed only to loopback; use https://"
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn uri_parses_bucket_and_nested_prefix() {
        let c = S3Config::from_uri("s3://my-bucket/a/b/").unwrap();
        assert_eq!((c.bucket.as_str(), c.prefix.as_str()), ("my-bucket", "a/b"));
        let c = S3Config::from_uri("s3://my-bucket").unwrap();
        assert_eq!(c.prefix, "");
        assert!(S3Config::from_uri("s3:///x").is_err());
        assert!(S3Config::from_uri("jsonl:x").is_err());
    }

    #[test]
    fn http_only_to_loopback() {
        for ok in [
            "http://127.0.0.1:9000",
            "http://localhost:1/",
            "http://[::1]:5000",
            "https://s3.example.com",
        ] {
            check_endpoint(ok).unwrap();
        }
        for bad in [
            "http://10.0.0.1:9000",
            "http://s3.example.com",
            "ftp://127.0.0.1",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sse_values() {
        assert_eq!(Sse::parse("AES256", None).unwrap(), Sse::Aes256);
        assert_eq!(
            Sse::parse("aws:kms", Some("k1")).unwrap(),
            Sse::Kms {
                key_id: Some("k1".into())
            }
        );
        assert!(Sse::parse("AES256", Some("k1")).is_err());
        assert!(Sse::parse("rot13", None).is_err());
    }

    #[test]
    fn spool_dirs_differ_per_prefix() {
        let a = S3Config::new("b-1", "a/b").spool_dir();
        let b = S3Config::new("b-1", "a_b").spool_dir();
        let c = S3Config::new("b-1", "").spool_dir();
        let d = S3Config::new("b-1", "%").spool_dir();
        assert_ne!(a, b);
        assert_ne!(c, d);
        assert_eq!(a.file_name().unwrap(), "a%2Fb");
    }
}
