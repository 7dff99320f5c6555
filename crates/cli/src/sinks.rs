//! Audit sink specs to backends: the one place every backend is wired.
//!
//! [`backend`] is one explicit `match` over [`SinkSpec`], one `#[cfg(feature = …)]` arm per
//! backend and a fallback arm that says which feature to rebuild with. Everything else (open
//! every sink, verify a trail, read what is pending) goes through the [`Backend`] it returns, so
//! adding a backend is one crate and one arm here.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;

use cxone_uuid_audit::signing::Signing;
use cxone_uuid_audit::{
    AuditError, AuditSink, AuditSource, Fanout, Pending, SyncMode, VerifySummary,
};
use ed25519_dalek::VerifyingKey;

use crate::exit::usage;
use crate::s3_args::S3Args;

/// A parsed `--audit` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SinkSpec {
    /// `jsonl:PATH`
    Jsonl(PathBuf),
    /// `sqlite:PATH`
    Sqlite(PathBuf),
    /// `s3://BUCKET/PREFIX`
    S3 {
        /// The bucket.
        bucket: String,
        /// The key prefix, without a trailing slash (may be empty).
        prefix: String,
    },
    /// `none`: no audit trail.
    None,
}

impl SinkSpec {
    /// The kind of sink, as a spec names it.
    fn kind(&self) -> &'static str {
        match self {
            Self::Jsonl(_) => "jsonl",
            Self::Sqlite(_) => "sqlite",
            Self::S3 { .. } => "s3",
            Self::None => "none",
        }
    }

    /// The cargo feature that builds this backend in.
    fn feature(&self) -> &'static str {
        match self {
            Self::Jsonl(_) => "jsonl",
            Self::Sqlite(_) => "audit-sqlite",
            Self::S3 { .. } => "s3",
            Self::None => "",
        }
    }
}

impl SinkSpec {
    /// Parses `s`; `offer_none` says whether the message for an unknown form offers `none`
    /// (writing: yes; reading a trail: no, it names nothing to read).
    fn parse_offering(s: &str, offer_none: bool) -> Result<Self, String> {
        let path = |rest: &str, kind: &str| {
            if rest.is_empty() {
                Err(format!("audit sink {s:?} has no path: use {kind}:PATH"))
            } else {
                Ok(PathBuf::from(rest))
            }
        };
        if s == "none" {
            Ok(Self::None)
        } else if let Some(rest) = s.strip_prefix("jsonl:") {
            path(rest, "jsonl").map(Self::Jsonl)
        } else if let Some(rest) = s.strip_prefix("sqlite:") {
            path(rest, "sqlite").map(Self::Sqlite)
        } else if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "audit sink {s:?} has no bucket: use s3://BUCKET/PREFIX"
                ));
            }
            Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_end_matches('/').to_string(),
            })
        } else if let Some(kind) = bare_kind(s) {
            // A bare path with a known extension: `trail.jsonl`, `trail.db`, `trail.sqlite`.
            Ok(kind(PathBuf::from(s)))
        } else {
            let none = if offer_none { " or none" } else { "" };
            Err(format!(
                "unknown audit trail {s:?}: use jsonl:PATH, sqlite:PATH, s3://BUCKET/PREFIX{none}, \
                 or a path ending in .jsonl, .db or .sqlite"
            ))
        }
    }
}

/// The backend a bare path's extension names.
fn bare_kind(s: &str) -> Option<fn(PathBuf) -> SinkSpec> {
    let ext = Path::new(s).extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "jsonl" => Some(SinkSpec::Jsonl),
        "db" | "sqlite" | "sqlite3" => Some(SinkSpec::Sqlite),
        _ => None,
    }
}

impl FromStr for SinkSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_offering(s, true)
    }
}

/// A trail to read (`audit verify`, `--resume`): `none` names nothing to read, so it is
/// neither accepted nor offered.
pub(crate) fn parse_trail(spec: &str) -> anyhow::Result<SinkSpec> {
    match SinkSpec::parse_offering(spec, false).map_err(usage)? {
        SinkSpec::None => Err(usage(
            "`none` names no trail to read: give jsonl:PATH, sqlite:PATH or s3://BUCKET/PREFIX",
        )),
        other => Ok(other),
    }
}

/// How sinks write, from the `run` flags.
#[derive(Clone, Default)]
pub(crate) struct SinkOptions {
    /// When events are made durable.
    pub(crate) sync: SyncMode,
    /// Signs checkpoints when set.
    pub(crate) signing: Option<Signing>,
    /// Rotate JSONL files at this size in MiB.
    pub(crate) rotate_mb: Option<u64>,
}

// Written out rather than derived: a build with only some sinks reads only some of these fields,
// and a derived Debug does not count as a read, so such a build would flag the rest as dead.
impl std::fmt::Debug for SinkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkOptions")
            .field("sync", &self.sync)
            .field("signing", &self.signing)
            .field("rotate_mb", &self.rotate_mb)
            .finish()
    }
}

pub(crate) fn parse(spec: &str) -> anyhow::Result<SinkSpec> {
    spec.parse::<SinkSpec>().map_err(usage)
}

/// A boxed future, so that [`Backend`] stays object-safe.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the cli asks of one audit backend. Made only by [`backend`].
pub(crate) trait Backend: Send + Sync {
    /// Opens the write side, for `run`.
    fn open_sink<'a>(
        &'a self,
        opts: &'a SinkOptions,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn AuditSink>>>;

    /// The read side, for `run --resume`; `None` for an archive that is read back through a
    /// local trail (S3).
    fn source(&self) -> Option<Box<dyn AuditSource>>;

    /// Verifies the trail; a broken chain is an [`AuditError::Chain`] in the error.
    fn verify(
        &self,
        public_key: Option<VerifyingKey>,
    ) -> BoxFuture<'_, anyhow::Result<VerifySummary>> {
        let source = self.source();
        Box::pin(async move {
            let Some(source) = source else {
                return Err(usage("this trail cannot be read back here"));
            };
            tokio::task::spawn_blocking(move || source.verify(public_key))
                .await?
                .map_err(lift)
        })
    }
}

/// The backend `text` names (`None` for the `none` sink), or a usage error naming the feature
/// to rebuild with. Opens nothing.
#[cfg_attr(
    not(any(feature = "jsonl", feature = "audit-sqlite", feature = "s3")),
    allow(unreachable_code, unused_variables) // a build with no sink: every arm returns
)]
pub(crate) fn backend(text: &str, s3: &S3Args) -> anyhow::Result<Option<Box<dyn Backend>>> {
    let _ = s3; // unused in builds without s3
    let backend: Box<dyn Backend> = match parse(text)? {
        SinkSpec::None => return Ok(None),
        #[cfg(feature = "jsonl")]
        SinkSpec::Jsonl(path) => local(
            text,
            cxone_uuid_audit_jsonl::JsonlSource::new(&path),
            move |o| {
                cxone_uuid_audit_jsonl::JsonlSink::open(
                    &path,
                    cxone_uuid_audit_jsonl::JsonlOptions {
                        sync: o.sync,
                        rotate_mb: o.rotate_mb,
                        signing: o.signing.clone(),
                    },
                )
            },
        ),
        #[cfg(feature = "audit-sqlite")]
        SinkSpec::Sqlite(path) => local(
            text,
            cxone_uuid_audit_sqlite::SqliteSource::new(&path),
            move |o| {
                cxone_uuid_audit_sqlite::SqliteSink::open(
                    &path,
                    cxone_uuid_audit_sqlite::SqliteOptions {
                        sync: o.sync,
                        signing: o.signing.clone(),
                    },
                )
            },
        ),
        #[cfg(feature = "s3")]
        SinkSpec::S3 { bucket, prefix } => {
            Box::new(crate::s3_args::S3Backend::new(bucket, prefix, s3.clone()))
        }
        #[allow(unreachable_patterns)] // in builds with every backend
        other => {
            return Err(usage(format!(
                "this build has no {} sink; rebuild with --features {}",
                other.kind(),
                other.feature()
            )))
        }
    };
    Ok(Some(backend))
}

/// A trail in a local file: its source, and how to open a sink on it.
#[cfg_attr(
    not(any(feature = "jsonl", feature = "audit-sqlite")),
    allow(dead_code)
)]
struct Local<S, F> {
    spec: String,
    source: S,
    open: F,
}

#[cfg_attr(
    not(any(feature = "jsonl", feature = "audit-sqlite")),
    allow(dead_code)
)]
fn local<S, K, F>(spec: &str, source: S, open: F) -> Box<dyn Backend>
where
    S: AuditSource + Clone + 'static,
    K: AuditSink + 'static,
    F: Fn(&SinkOptions) -> Result<K, AuditError> + Send + Sync + 'static,
{
    Box::new(Local {
        spec: spec.to_string(),
        source,
        open,
    })
}

impl<S, K, F> Backend for Local<S, F>
where
    S: AuditSource + Clone + 'static,
    K: AuditSink + 'static,
    F: Fn(&SinkOptions) -> Result<K, AuditError> + Send + Sync + 'static,
{
    fn open_sink<'a>(
        &'a self,
        opts: &'a SinkOptions,
    ) -> BoxFuture<'a, anyhow::Result<Box<dyn AuditSink>>> {
        Box::pin(async move {
            match (self.open)(opts) {
                Ok(sink) => Ok(Box::new(sink) as Box<dyn AuditSink>),
                // Nothing has been sent yet: a sink that cannot be opened is a configuration error.
                Err(e) => Err(usage(format!("cannot open audit sink {}: {e}", self.spec))),
            }
        })
    }

    fn source(&self) -> Option<Box<dyn AuditSource>> {
        Some(Box::new(self.source.clone()))
    }
}

/// An audit error as the cli reports it. A driver's error ([`AuditError::Store`]) is already
/// spelled out in the message, so it is reported as that message alone rather than once more
/// as its source; every other kind keeps its sources (and stays matchable, e.g. `Chain`).
pub(crate) fn lift(e: AuditError) -> anyhow::Error {
    match e {
        AuditError::Store { .. } => anyhow::anyhow!("{e}"),
        other => anyhow::Error::new(other),
    }
}

/// Checks that every spec parses and that this build has its sink, before anything is opened:
/// a missing feature must not leave a registry or another sink's file half-created.
pub(crate) fn check_built(specs: &[String]) -> anyhow::Result<()> {
    for text in specs {
        backend(text, &S3Args::default())?;
    }
    Ok(())
}

/// Opens every sink in `specs` (`none` adds nothing) as one fan-out.
pub(crate) async fn open_all(
    specs: &[String],
    opts: &SinkOptions,
    s3: &S3Args,
) -> anyhow::Result<Fanout> {
    let backends = specs
        .iter()
        .map(|text| backend(text, s3))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut sinks: Vec<Box<dyn AuditSink>> = Vec::new();
    for backend in backends.iter().flatten() {
        sinks.push(backend.open_sink(opts).await?);
    }
    Ok(Fanout(sinks))
}

/// Verifies the trail named by `spec`. A broken chain is an [`AuditError::Chain`] in the error.
pub(crate) async fn verify(
    spec: &str,
    public_key: Option<VerifyingKey>,
    s3: &S3Args,
) -> anyhow::Result<VerifySummary> {
    must_exist(spec, &parse_trail(spec)?)?;
    match backend(spec, s3)? {
        Some(backend) => backend.verify(public_key).await,
        None => Err(usage("there is nothing to verify in the `none` sink")),
    }
}

/// A local trail that is not there is a wrong argument (exit 2), said once, not a broken trail.
fn must_exist(spec: &str, trail: &SinkSpec) -> anyhow::Result<()> {
    let (path, what) = match trail {
        SinkSpec::Jsonl(p) => (p, "file"),
        SinkSpec::Sqlite(p) => (p, "database"),
        _ => return Ok(()),
    };
    let rotated = matches!(trail, SinkSpec::Jsonl(_)) && has_rotated_segments(path);
    if path.exists() || rotated {
        return Ok(());
    }
    Err(usage(format!(
        "{spec}: no such trail: there is no {what} {}; check the path (a run writes \
         jsonl:cxone_uuid_audit.jsonl in its working directory unless given --audit)",
        path.display()
    )))
}

#[cfg(feature = "jsonl")]
fn has_rotated_segments(path: &Path) -> bool {
    cxone_uuid_audit_jsonl::segments(path).is_ok_and(|s| !s.is_empty())
}

#[cfg(not(feature = "jsonl"))]
fn has_rotated_segments(_: &Path) -> bool {
    false
}

/// UUIDs with `action_submitted` but no terminal event, in submission order, read from the first
/// local trail in `specs` (every sink holds the same events).
pub(crate) async fn pending_submissions(
    specs: &[String],
    s3: &S3Args,
) -> anyhow::Result<Vec<Pending>> {
    for text in specs {
        // `none`, and an archive read back through a local trail, have nothing to read here.
        let Some(source) = backend(text, s3)?.and_then(|b| b.source()) else {
            continue;
        };
        return tokio::task::spawn_blocking(move || source.pending())
            .await?
            .map_err(lift);
    }
    Err(usage(
        "--resume needs a local audit trail to read: pass --audit jsonl:PATH or --audit sqlite:PATH",
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bare_paths_with_a_known_extension_name_their_backend() {
        assert_eq!(
            "t/trail.jsonl".parse(),
            Ok(SinkSpec::Jsonl("t/trail.jsonl".into()))
        );
        for p in ["trail.db", "trail.sqlite", "trail.SQLITE3"] {
            assert_eq!(p.parse(), Ok(SinkSpec::Sqlite(p.into())));
        }
        let e = "trail.txt".parse::<SinkSpec>().unwrap_err();
        assert!(e.contains("or none,"), "{e}");
        let e = parse_trail("trail.txt").unwrap_err().to_string();
        assert!(!e.contains("none"), "{e}");
        assert!(e.contains("a path ending in .jsonl, .db or .sqlite"), "{e}");
        assert!(parse_trail("none").is_err());
    }

    #[test]
    fn specs_parse() {
        assert_eq!("none".parse(), Ok(SinkSpec::None));
        assert_eq!(
            "jsonl:a/b.jsonl".parse(),
            Ok(SinkSpec::Jsonl("a/b.jsonl".into()))
        );
        assert_eq!("sqlite:x.db".parse(), Ok(SinkSpec::Sqlite("x.db".into())));
        assert_eq!(
            "s3://bkt/some/prefix/".parse(),
            Ok(SinkSpec::S3 {
                bucket: "bkt".into(),
                prefix: "some/prefix".into()
            })
        );
        assert_eq!(
            "s3://bkt".parse(),
            Ok(SinkSpec::S3 {
                bucket: "bkt".into(),
                prefix: String::new()
            })
        );
        assert!("jsonl:".parse::<SinkSpec>().is_err());
        assert!("s3:///x".parse::<SinkSpec>().is_err());
        assert!("ftp://x"
            .parse::<SinkSpec>()
            .unwrap_err()
            .contains("jsonl:PATH"));
    }
}
