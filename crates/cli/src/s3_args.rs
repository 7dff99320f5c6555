//! Flags of the S3 archive sink, shared by `run`, `audit verify` and `audit flush`, and the
//! functions that turn them into the sink, a verification and a flush.
//!
//! The flags exist in every build so scripts parse the same everywhere; using an `s3://` sink in
//! a build without the `s3` feature exits 2 naming the feature to rebuild with.

use std::path::PathBuf;

/// S3 sink settings, in every build so that scripts parse the same everywhere.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct S3Args {
    /// S3-compatible endpoint URL (plain http:// only to loopback).
    #[arg(long, env = "CXONE_S3_ENDPOINT")]
    pub(crate) s3_endpoint: Option<String>,
    /// AWS region of the bucket (default: the AWS chain's region, else us-east-1).
    #[arg(long, env = "CXONE_S3_REGION")]
    pub(crate) s3_region: Option<String>,
    /// Use path-style addressing (most S3-compatible servers need it).
    #[arg(long)]
    pub(crate) s3_path_style: bool,
    /// Local spool: events are durable here before they are uploaded (one subdirectory per
    /// bucket and prefix).
    #[arg(long, value_name = "DIR", default_value = ".cxone-uuid/spool")]
    pub(crate) s3_spool: PathBuf,
    /// Events per uploaded object.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) s3_batch_events: u64,
    /// Upload a partly filled object after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) s3_batch_secs: u64,
    /// Server-side encryption of every object.
    #[arg(long, value_name = "ALGORITHM", value_parser = ["AES256", "aws:kms"])]
    pub(crate) s3_sse: Option<String>,
    /// KMS key id or ARN for --s3-sse aws:kms (default: the bucket's KMS key).
    #[arg(long, value_name = "ID", requires = "s3_sse")]
    pub(crate) s3_kms_key_id: Option<String>,
    /// Object Lock retention in COMPLIANCE mode for N days (the bucket needs Object Lock).
    #[arg(long, value_name = "DAYS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) s3_object_lock_days: Option<u32>,
}

impl Default for S3Args {
    /// The same values clap gives when no flag is passed.
    fn default() -> Self {
        Self {
            s3_endpoint: None,
            s3_region: None,
            s3_path_style: false,
            s3_spool: PathBuf::from(".cxone-uuid/spool"),
            s3_batch_events: 10_000,
            s3_batch_secs: 60,
            s3_sse: None,
            s3_kms_key_id: None,
            s3_object_lock_days: None,
        }
    }
}

/// Arguments of `audit flush`.
#[derive(clap::Args, Debug)]
#[cfg_attr(not(feature = "s3"), allow(dead_code))] // read only by the s3 build
pub(crate) struct FlushArgs {
    /// The archive: s3://BUCKET/PREFIX.
    #[arg(value_name = "SINK")]
    pub(crate) sink: String,
    #[command(flatten)]
    pub(crate) s3: S3Args,
}

/// `audit flush s3://BUCKET/PREFIX`: parses the address, then [`flush`].
#[cfg(feature = "s3")]
pub(crate) async fn flush_cmd(args: FlushArgs) -> anyhow::Result<std::process::ExitCode> {
    let cfg = cxone_uuid_audit_s3::S3Config::from_uri(&args.sink)
        .map_err(|e| crate::exit::usage(e.to_string()))?;
    // A run still writing this destination uploads its own spool.
    let _lock = crate::trail_lock::lock_specs(
        std::slice::from_ref(&args.sink),
        &args.s3,
        "let that run upload its spool",
    )?;
    flush(&cfg.bucket, &cfg.prefix, &args.s3).await
}

#[cfg(feature = "s3")]
mod imp {
    use std::process::ExitCode;
    use std::time::Duration;

    use cxone_uuid_audit::{AuditError, AuditSink, AuditSource, BreakReason, VerifySummary};
    use cxone_uuid_audit_s3::{S3Config, S3Error, S3Sink, Sse};
    use ed25519_dalek::VerifyingKey;

    use super::S3Args;
    use crate::exit::usage;
    use crate::sinks::{Backend, BoxFuture, SinkOptions};

    pub(crate) fn config(bucket: &str, prefix: &str, args: &S3Args) -> anyhow::Result<S3Config> {
        let sse = match &args.s3_sse {
            Some(v) => Some(
                Sse::parse(v, args.s3_kms_key_id.as_deref()).map_err(|e| usage(e.to_string()))?,
            ),
            None => None,
        };
        let cfg = S3Config::new(bucket, prefix)
            .with_endpoint(args.s3_endpoint.clone())
            .with_region(args.s3_region.clone())
            .with_path_style(args.s3_path_style)
            .with_spool(&args.s3_spool)
            .with_batch_events(usize::try_from(args.s3_batch_events).unwrap_or(usize::MAX))
            .with_batch_interval(Duration::from_secs(args.s3_batch_secs))
            .with_sse(sse)
            .with_object_lock_days(args.s3_object_lock_days);
        cfg.validate().map_err(|e| usage(e.to_string()))?;
        Ok(cfg)
    }

    /// Settings and a missing bucket are configuration errors (exit 2, nothing was sent);
    /// an unreachable S3 is a failure (exit 1).
    pub(crate) fn lift(uri: &str, e: S3Error) -> anyhow::Error {
        match e {
            S3Error::Config(_) | S3Error::BucketMissing { .. } => usage(format!("{uri}: {e}")),
            e => anyhow::Error::new(e).context(uri.to_string()),
        }
    }

    /// The S3 archive as the cli uses it: written through its spool, verified object by
    /// object, and never read back for `--resume` (the local trail beside it is).
    pub(crate) struct S3Backend {
        bucket: String,
        prefix: String,
        args: S3Args,
    }

    impl S3Backend {
        pub(crate) fn new(bucket: String, prefix: String, args: S3Args) -> Self {
            Self {
                bucket,
                prefix,
                args,
            }
        }
    }

    impl Backend for S3Backend {
        fn open_sink<'a>(
            &'a self,
            opts: &'a SinkOptions,
        ) -> BoxFuture<'a, anyhow::Result<Box<dyn AuditSink>>> {
            Box::pin(open_sink(&self.bucket, &self.prefix, &self.args, opts))
        }

        fn source(&self) -> Option<Box<dyn AuditSource>> {
            None
        }

        fn verify(
            &self,
            public_key: Option<VerifyingKey>,
        ) -> BoxFuture<'_, anyhow::Result<VerifySummary>> {
            Box::pin(
                async move { verify(&self.bucket, &self.prefix, &self.args, public_key).await },
            )
        }
    }

    /// Opens the S3 sink for `run`: checks the bucket, recovers the spool, resumes the chain.
    async fn open_sink(
        bucket: &str,
        prefix: &str,
        args: &S3Args,
        opts: &SinkOptions,
    ) -> anyhow::Result<Box<dyn AuditSink>> {
        let cfg = config(bucket, prefix, args)?.with_sync_mode(opts.sync);
        let uri = cfg.uri();
        let sink = S3Sink::open(cfg, opts.signing.clone())
            .await
            .map_err(|e| lift(&format!("cannot open audit sink {uri}"), e))?;
        Ok(Box::new(sink))
    }

    /// `audit verify s3://…`: every object downloaded, ordered and checked. Gaps and duplicates
    /// are printed one a line; the first problem comes back as an [`cxone_uuid_audit::AuditError::Chain`].
    async fn verify(
        bucket: &str,
        prefix: &str,
        args: &S3Args,
        public_key: Option<VerifyingKey>,
    ) -> anyhow::Result<VerifySummary> {
        let cfg = config(bucket, prefix, args)?;
        let uri = cfg.uri();
        let report = cxone_uuid_audit_s3::verify_signed(&cfg, public_key)
            .await
            .map_err(|e| lift(&uri, e))?;
        if report.spooled > 0 {
            eprintln!(
                "note: {} segment(s) for {uri} are still in the local spool {}: \
                 `cxone-uuid audit flush {uri}` uploads them",
                report.spooled,
                cfg.spool_dir().display()
            );
        }
        for gap in &report.gaps {
            println!(
                "gap: seq {}..={} missing: no object between {} and {}",
                gap.first_missing,
                gap.last_missing,
                gap.after.as_deref().unwrap_or("the start of the trail"),
                gap.before
            );
        }
        for dup in &report.duplicates {
            println!("duplicate: {dup} repeats seqs another object holds");
        }
        if let Some(b) = &report.broken {
            return Err(AuditError::Chain {
                seq: b.seq,
                reason: BreakReason::Other(b.reason.clone()),
                at: Some(format!("object {}", b.key)),
            }
            .into());
        }
        if let Some(gap) = report.gaps.first() {
            return Err(AuditError::Chain {
                seq: gap.first_missing,
                reason: BreakReason::Gaps {
                    count: report.gaps.len(),
                    first_missing: gap.first_missing,
                    last_missing: gap.last_missing,
                    before: gap.before.clone(),
                },
                at: None,
            }
            .into());
        }
        if let Some(dup) = report.duplicates.first() {
            return Err(AuditError::Chain {
                seq: report.last_seq,
                reason: BreakReason::Duplicate { key: dup.clone() },
                at: None,
            }
            .into());
        }
        if let Some(brk) = report.unproven {
            return Err(AuditError::Chain {
                seq: brk.seq,
                reason: brk.reason,
                at: None,
            }
            .into());
        }
        Ok(VerifySummary {
            events: report.events,
            last_seq: report.last_seq,
            head: report.head,
            checkpoints: report.checkpoints,
            signed: report.signed,
        })
    }

    /// `audit flush s3://…`: uploads what the spool holds. Exit 0 when the spool is empty
    /// afterwards; an upload failure is an error (exit 1) and leaves the rest in the spool.
    pub(crate) async fn flush(
        bucket: &str,
        prefix: &str,
        args: &S3Args,
    ) -> anyhow::Result<ExitCode> {
        let cfg = config(bucket, prefix, args)?;
        let uri = cfg.uri();
        let report = cxone_uuid_audit_s3::flush(&cfg).await.map_err(|e| {
            lift(&uri, e).context(format!(
                "events stay in the spool {}; run the flush again when S3 answers",
                cfg.spool_dir().display()
            ))
        })?;
        for obj in &report.uploaded {
            println!("uploaded {} (seq {}..={})", obj.key, obj.first, obj.last);
        }
        println!(
            "flushed: {} events in {} objects to {uri}; {} segments left in the spool",
            report.events(),
            report.uploaded.len(),
            report.remaining
        );
        Ok(if report.remaining == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(crate::exit::FAILURE)
        })
    }
}

#[cfg(feature = "s3")]
pub(crate) use imp::{config as s3_config, flush, lift as lift_s3, S3Backend};
