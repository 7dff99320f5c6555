//! The S3 transport: client setup, bucket check, checksummed uploads with retry, listing and
//! downloading objects.
//!
//! The SDK's own retries are off: `Store::upload_segment` retries with its own backoff, and
//! the error (transient or not) decides whether another attempt is worth it.

use std::io::Write;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{ChecksumAlgorithm, ChecksumMode, ObjectLockMode, ServerSideEncryption};
use base64::Engine as _;
use cxone_uuid_audit::AuditEvent;
use sha2::{Digest, Sha256};

use crate::config::{S3Config, Sse};
use crate::spool::{ReadySegment, Resume};
use crate::S3Error;

/// An uploaded object's place in the stream, parsed from its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    /// Full object key.
    pub key: String,
    /// First seq in the object.
    pub first: u64,
    /// Last seq in the object.
    pub last: u64,
}

/// The key of the object holding seqs `first..=last`, whose first event is `first_event`:
/// `PREFIX/YYYY/MM/DD/RUN_ID/FIRSTSEQ-LASTSEQ.jsonl.gz` with 20-digit sequence numbers so
/// keys sort in stream order. Derived from content only, so every retry uses the same key.
pub fn object_key(prefix: &str, first_event: &AuditEvent, first: u64, last: u64) -> String {
    let date = chrono::DateTime::parse_from_rfc3339(&first_event.timestamp)
        .map(|t| t.with_timezone(&chrono::Utc).format("%Y/%m/%d").to_string())
        // Events carry the timestamp the sealer stored; an unparseable one still gets a key.
        .unwrap_or_else(|_| "0000/00/00".to_string());
    let tail = format!(
        "{date}/{}/{first:020}-{last:020}.jsonl.gz",
        first_event.run_id
    );
    if prefix.is_empty() {
        tail
    } else {
        format!("{prefix}/{tail}")
    }
}

/// The seq range of a key in the documented layout under `prefix`; `None` for other objects.
pub fn parse_key(prefix: &str, key: &str) -> Option<ObjectRef> {
    let rest = if prefix.is_empty() {
        key
    } else {
        key.strip_prefix(prefix)?.strip_prefix('/')?
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let [y, m, d, run, file] = parts.as_slice() else {
        return None;
    };
    let dated = [(y, 4), (m, 2), (d, 2)]
        .iter()
        .all(|(s, n)| s.len() == *n && s.bytes().all(|b| b.is_ascii_digit()));
    if !dated || uuid::Uuid::parse_str(run).is_err() {
        return None;
    }
    let (a, b) = file.strip_suffix(".jsonl.gz")?.split_once('-')?;
    let (first, last): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
    (first <= last).then(|| ObjectRef {
        key: key.to_string(),
        first,
        last,
    })
}

/// gzip with a fixed header (no mtime, no name): the same segment always compresses to the
/// same bytes, so a re-upload after a crash carries the same checksum.
pub(crate) fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::default(),
    );
    enc.write_all(bytes)?;
    enc.finish()
}

fn gunzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len() * 4);
    std::io::copy(&mut flate2::read::GzDecoder::new(bytes), &mut out)?;
    Ok(out)
}

/// Base64 SHA-256, the form S3's `x-amz-checksum-sha256` takes.
pub(crate) fn sha256_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

/// One configured S3 client for one destination.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    endpoint: String,
    sse: Option<Sse>,
    object_lock_days: Option<u32>,
    max_attempts: u32,
    retry_base: Duration,
}

impl Store {
    /// Builds the client from the standard AWS chain (environment, profile, instance role).
    pub(crate) async fn connect(cfg: &S3Config) -> Self {
        let region = match &cfg.region {
            Some(r) => Region::new(r.clone()),
            None => RegionProviderChain::default_provider()
                .or_else(Region::new("us-east-1"))
                .region()
                .await
                .unwrap_or_else(|| Region::new("us-east-1")),
        };
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(region)
            .load()
            .await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(cfg.path_style)
            .retry_config(RetryConfig::standard().with_max_attempts(1))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .build(),
            );
        if let Some(ep) = &cfg.endpoint {
            builder = builder.endpoint_url(ep);
        }
        Self {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
            endpoint: cfg.endpoint.clone().unwrap_or_else(|| "AWS S3".to_string()),
            sse: cfg.sse.clone(),
            object_lock_days: cfg.object_lock_days,
            max_attempts: cfg.max_attempts,
            retry_base: cfg.retry_base,
        }
    }

    /// HeadBucket: a missing or forbidden bucket is a clear error before anything is written.
    pub(crate) async fn check_bucket(&self) -> Result<(), S3Error> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                match status {
                    Some(404) => Err(S3Error::BucketMissing {
                        bucket: self.bucket.clone(),
                        endpoint: self.endpoint.clone(),
                    }),
                    Some(403) => Err(S3Error::Config(format!(
                        "access to bucket {:?} at {} is denied: check the AWS credentials \
                         (AWS_PROFILE, AWS_ACCESS_KEY_ID, instance role) and the bucket policy",
                        self.bucket, self.endpoint
                    ))),
                    _ => Err(classify("HeadBucket", &self.bucket, err)),
                }
            }
        }
    }

    /// Uploads one sealed segment under its key, retrying transient failures with backoff.
    /// Returns the key once S3 has confirmed the object and its checksum.
    pub(crate) async fn upload_segment(&self, seg: &ReadySegment) -> Result<String, S3Error> {
        let bytes = tokio::fs::read(&seg.path)
            .await
            .map_err(|e| S3Error::io(&seg.path, e))?;
        let first = crate::spool::first_event(&bytes).map_err(|e| S3Error::io(&seg.path, e))?;
        let key = object_key(&self.prefix, &first, seg.first, seg.last);
        let body = gzip(&bytes).map_err(|e| S3Error::io(&seg.path, e))?;
        let checksum = sha256_b64(&body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.put(&key, body.clone(), &checksum, seg).await {
                Ok(()) => return Ok(key),
                Err(e) if e.is_transient() && attempt < self.max_attempts => {
                    let delay = self
                        .retry_base
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(Duration::from_secs(8));
                    tracing::debug!("upload of {key} failed ({e}); retrying in {delay:?}");
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        checksum: &str,
        seg: &ReadySegment,
    ) -> Result<(), S3Error> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .content_type("application/gzip")
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(checksum)
            .metadata("first-seq", seg.first.to_string())
            .metadata("last-seq", seg.last.to_string());
        match &self.sse {
            None => {}
            Some(Sse::Aes256) => req = req.server_side_encryption(ServerSideEncryption::Aes256),
            Some(Sse::Kms { key_id }) => {
                req = req.server_side_encryption(ServerSideEncryption::AwsKms);
                if let Some(id) = key_id {
                    req = req.ssekms_key_id(id);
                }
            }
        }
        if let Some(days) = self.object_lock_days {
            let until = std::time::SystemTime::now()
                + Duration::from_secs(u64::from(days).saturating_mul(86_400));
            req = req
                .object_lock_mode(ObjectLockMode::Compliance)
                .object_lock_retain_until_date(DateTime::from(until));
        }
        let out = req
            .send()
            .await
            .map_err(|e| classify("PutObject", key, e))?;
        // S3 verified our checksum before storing; an echo that differs means a store that did
        // not, and the spool copy must then be kept.
        match out.checksum_sha256() {
            Some(echo) if echo != checksum => Err(S3Error::S3 {
                op: "PutObject",
                target: key.to_string(),
                message: format!("stored checksum {echo} differs from the uploaded {checksum}"),
                transient: false,
            }),
            _ => Ok(()),
        }
    }

    /// Every object in the documented layout under the prefix, in stream order.
    pub(crate) async fn list(&self) -> Result<Vec<ObjectRef>, S3Error> {
        let list_prefix = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&list_prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| classify("ListObjectsV2", &self.bucket, e))?;
            for obj in resp.contents() {
                if let Some(r) = obj.key().and_then(|k| parse_key(&self.prefix, k)) {
                    out.push(r);
                }
            }
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| (a.first, a.last, &a.key).cmp(&(b.first, b.last, &b.key)));
        Ok(out)
    }

    /// Downloads an object (the SDK checks its SHA-256) and returns it decompressed.
    pub(crate) async fn get(&self, key: &str) -> Result<Vec<u8>, S3Error> {
        let resp = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(|e| classify("GetObject", key, e))?;
        // The SDK checks the stored SHA-256 while reading the body; a mismatch fails here.
        let body = resp.body.collect().await.map_err(|e| S3Error::Corrupt {
            key: key.to_string(),
            message: format!(
                "download failed or its bytes do not match the stored checksum: {}",
                DisplayErrorContext(&e)
            ),
        })?;
        gunzip(&body.into_bytes()).map_err(|e| S3Error::Corrupt {
            key: key.to_string(),
            message: format!("not gzip: {e}"),
        })
    }

    /// Where a new stream continues when the spool is empty: the newest uploaded event (from
    /// the object with the highest last seq) and the newest checkpoint in that object.
    pub(crate) async fn resume_point(&self) -> Result<Resume, S3Error> {
        let objects = self.list().await?;
        let Some(newest) = objects.iter().max_by_key(|o| o.last) else {
            return Ok(Resume::default());
        };
        let bytes = self.get(&newest.key).await?;
        let ev = crate::spool::last_event(&bytes).map_err(|e| S3Error::Corrupt {
            key: newest.key.clone(),
            message: e.to_string(),
        })?;
        Ok(Resume {
            head: Some((ev.seq, ev.hash)),
            last_checkpoint: crate::spool::last_checkpoint_in(&bytes),
        })
    }
}

/// Turns an SDK error into ours, deciding whether another attempt could succeed.
fn classify<E>(op: &'static str, target: &str, err: SdkError<E, HttpResponse>) -> S3Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let transient = match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            matches!(
                code,
                "SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable"
            ) || se.raw().status().is_server_error()
                || se.raw().status().as_u16() == 429
        }
        _ => false,
    };
    let message = match &err {
        SdkError::ServiceError(se) => match (se.err().code(), se.err().message()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.to_string(),
            _ => DisplayErrorContext(&err).to_string(),
        },
        _ => DisplayErrorContext(&err).to_string(),
    };
    S3Error::S3 {
        op,
        target: target.to_string(),
        message,
        transient,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cxone_uuid_audit::EventKind;

    #[test]
    fn keys_follow_the_documented_layout_and_parse_back() {
        let run = uuid::Uuid::now_v7();
        let mut ev = AuditEvent::new(EventKind::RunStarted, run);
        ev.timestamp = "2026-03-04T23:59:59.000001Z".into();
        let key = object_key("audit/prod", &ev, 1, 10_000);
        assert_eq!(
            key,
            format!(
                "audit/prod/2026/03/04/{run}/00000000000000000001-00000000000000010000.jsonl.gz"
            )
        );
        let r = parse_key("audit/prod", &key).unwrap();
        assert_eq!((r.first, r.last), (1, 10_000));
        assert!(parse_key("audit", &key).is_none());
        assert!(parse_key("", &key).is_none());
        assert_eq!(
            parse_key("", &object_key("", &ev, 5, 6)).map(|r| r.first),
            Some(5)
        );
    }

    #[test]
    fn gzip_is_deterministic_and_round_trips() {
        let a = gzip(b"hello\n").unwrap();
        let b = gzip(b"hello\n").unwrap();
        assert_eq!(a, b);
        assert_eq!(sha256_b64(&a), sha256_b64(&b));
        assert_eq!(gunzip(&a).unwrap(), b"hello\n");
    }
}
