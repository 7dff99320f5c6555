//! `cxone-uuid audit import`: a JSONL trail or an S3 archive into SQLite, verified as it goes.
//!
//! One `Importer` does the checking for both sources: every line is fed to the verifier, lines
//! the database already holds are compared with its head instead of stored, and the transaction
//! is committed only when the whole source verified. An S3 archive is read one object at a time
//! (each checked against its stored SHA-256), so memory stays at one object whatever the
//! archive's size; `--run-id`, `--since` and `--until` choose a contiguous run of objects by
//! their keys, and a database that starts mid-chain records where (its anchor).

use std::path::PathBuf;
use std::process::ExitCode;

use uuid::Uuid;

use crate::s3_args::S3Args;

pub(crate) const IMPORT_HELP: &str = "\
Loads a JSONL trail (with its rotated files) or an S3 archive into SQLite, keeping its seq and
hashes and verifying the chain as it goes (and, for S3, each object's stored SHA-256). Nothing
is committed unless everything read verifies. Importing again into the same database adds only
the events after its head.

From S3, --run-id, --since and --until choose which objects are read (object keys carry the day
of their first event and the run id); the objects from the first to the last chosen are read
whole, so the copy may hold a little more than the period, and a copy that starts mid-archive
records where it starts (audit verify says so).

Examples:
  cxone-uuid audit import cxone_uuid_audit.jsonl --db trail.db
  cxone-uuid audit import s3://bucket/trails --s3-region eu-west-1 --since 2026-03-01 \\
      --until 2026-03-31 --db march.db";

/// Arguments of `audit import`.
#[derive(clap::Args, Debug)]
#[cfg_attr(not(feature = "audit-sqlite"), allow(dead_code))] // read only by sqlite builds
pub(crate) struct ImportArgs {
    /// The trail: a JSONL file (PATH or jsonl:PATH) or an archive (s3://BUCKET/PREFIX).
    #[arg(value_name = "TRAIL")]
    trail: String,
    /// The SQLite database to load into (created if absent).
    #[arg(long, value_name = "PATH")]
    db: PathBuf,
    /// S3 only: read the objects of this run.
    #[arg(long, value_name = "RUN_ID")]
    run_id: Option<Uuid>,
    /// S3 only: read from the objects that may hold events on this day or later (RFC 3339 UTC,
    /// or a day such as 2026-03-01).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// S3 only: read up to the objects whose first event is on this day or earlier.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    #[command(flatten)]
    s3: S3Args,
}

/// `audit import`: see [`IMPORT_HELP`].
pub(crate) async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
    #[cfg(feature = "audit-sqlite")]
    return imp::import(args).await;
    #[cfg(not(feature = "audit-sqlite"))]
    {
        let _ = args;
        Err(crate::exit::usage(
            "this build has no sqlite sink; rebuild with --features audit-sqlite",
        ))
    }
}

#[cfg(feature = "audit-sqlite")]
// A build with neither source (no jsonl, no s3) has nothing to import from.
#[cfg_attr(
    not(any(feature = "jsonl", feature = "s3")),
    allow(dead_code, unused_imports)
)]
mod imp {
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;

    use anyhow::Context as _;
    #[cfg(feature = "s3")]
    use cxone_uuid_audit::BreakReason;
    use cxone_uuid_audit::{AuditError, AuditEvent, AuditSink as _, Verifier};
    use cxone_uuid_audit_sqlite::SqliteSink;

    use super::ImportArgs;
    use crate::exit::{usage, FAILURE};
    use crate::s3_args::S3Args;

    pub(crate) async fn import(args: ImportArgs) -> anyhow::Result<ExitCode> {
        let is_s3 = args.trail.starts_with("s3://");
        if !is_s3 {
            for (flag, given) in [
                ("--run-id", args.run_id.is_some()),
                ("--since", args.since.is_some()),
                ("--until", args.until.is_some()),
            ] {
                if given {
                    return Err(usage(format!(
                    "{flag} chooses objects of an S3 archive; a JSONL trail ({}) is imported whole: drop {flag}",
                    args.trail
                )));
                }
            }
        }
        let since = day_of("--since", args.since.as_deref())?;
        let until = day_of("--until", args.until.as_deref())?;
        let db = crate::audit_cmd::sqlite_path(&args.db);
        let _lock = crate::trail_lock::lock_specs(
            &[format!("sqlite:{}", db.display())],
            &S3Args::default(),
            "import into another --db",
        )?;
        let created = !db.exists();
        let result = if is_s3 {
            import_s3(&args, &db, since, until).await
        } else {
            let path = PathBuf::from(args.trail.strip_prefix("jsonl:").unwrap_or(&args.trail));
            let target = db.clone();
            tokio::task::spawn_blocking(move || import_jsonl(&path, &target)).await?
        };
        if result.is_err() && created {
            // Nothing was committed: leave no empty database behind to be mistaken for a trail.
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = db.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
        match result {
            Ok(done) => {
                println!(
                    "ok: imported {} events into {} ({} already present), chain intact, head {}",
                    done.added,
                    db.display(),
                    done.skipped,
                    done.head
                );
                if let Some(note) = done.note {
                    println!("{note}");
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => match e.downcast_ref::<AuditError>() {
                Some(AuditError::Chain { seq, reason, at }) => {
                    println!(
                        "FAILED: nothing imported: chain broken at seq {seq}: {reason}{}",
                        at.as_ref().map(|a| format!(" ({a})")).unwrap_or_default()
                    );
                    Ok(ExitCode::from(FAILURE))
                }
                _ => Err(e),
            },
        }
    }

    /// `YYYY-MM-DD` of a `--since`/`--until` value (a day, or an RFC 3339 time whose first ten
    /// characters are its day).
    fn day_of(flag: &str, value: Option<&str>) -> anyhow::Result<Option<String>> {
        let Some(v) = value else { return Ok(None) };
        let day = v.get(..10).unwrap_or(v);
        chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d").map_err(|_| {
            usage(format!(
                "{flag} {v:?} is not a day or a time: give 2026-03-01 or 2026-03-01T00:00:00Z"
            ))
        })?;
        Ok(Some(day.to_string()))
    }

    /// What an import did.
    struct Done {
        added: u64,
        skipped: u64,
        head: String,
        note: Option<String>,
    }

    /// Verifies lines and stores those after the database's head, in one transaction.
    struct Importer {
        sink: SqliteSink,
        db: PathBuf,
        db_seq: u64,
        db_hash: String,
        verifier: Verifier,
        batch: Vec<AuditEvent>,
        added: u64,
        skipped: u64,
        /// Where the break is reported (the object being read).
        at: Option<String>,
    }

    impl Importer {
        fn open(db: &Path) -> anyhow::Result<Self> {
            let sink =
                SqliteSink::open(db, Default::default()).map_err(|e| usage(e.to_string()))?;
            let (db_seq, db_hash) = sink.head();
            Ok(Self {
                sink,
                db: db.to_path_buf(),
                db_seq,
                db_hash,
                verifier: Verifier::new(),
                batch: Vec::with_capacity(4096),
                added: 0,
                skipped: 0,
                at: None,
            })
        }

        /// Verifies from `(seq, hash)` instead of the genesis hash: the source is read from the
        /// middle of its chain. The database must already hold that seq (checked at `seq`), or be
        /// empty, when it becomes a partial copy anchored there.
        #[cfg(feature = "s3")]
        fn start_at(&mut self, seq: u64, hash: &str, source: &str) -> anyhow::Result<()> {
            if self.db_seq == 0 && seq > 0 {
                self.sink
                    .set_anchor(seq + 1, hash, source)
                    .map_err(crate::sinks::lift)?;
            } else if seq > self.db_seq {
                return Err(usage(format!(
                    "{} ends at seq {} but what was chosen to import starts at seq {}: the events \
                 between would be missing; import without --run-id/--since, or into a new --db",
                    self.db.display(),
                    self.db_seq,
                    seq + 1
                )));
            } else if seq == self.db_seq && hash != self.db_hash {
                return Err(self.different_trail());
            }
            self.verifier = Verifier::resume(Some((seq, hash.to_string())));
            Ok(())
        }

        fn different_trail(&self) -> anyhow::Error {
            usage(format!(
            "{} already holds a different trail (its seq {} differs): import into a new database",
            self.db.display(),
            self.db_seq
        ))
        }

        fn feed_line(&mut self, line: &[u8]) -> anyhow::Result<()> {
            self.verifier.feed_line(line).map_err(|brk| {
                let mut e = AuditError::from(brk);
                if let AuditError::Chain { at, .. } = &mut e {
                    at.clone_from(&self.at);
                }
                e
            })?;
            let (seq, hash) = self.verifier.head();
            if seq < self.db_seq {
                self.skipped += 1;
                return Ok(());
            }
            if seq == self.db_seq {
                if hash != self.db_hash {
                    return Err(self.different_trail());
                }
                self.skipped += 1;
                return Ok(());
            }
            self.batch
                .push(serde_json::from_slice(line).context("parse a verified line")?);
            if self.batch.len() == self.batch.capacity() {
                self.flush()?;
            }
            Ok(())
        }

        fn flush(&mut self) -> anyhow::Result<()> {
            self.sink
                .insert_sealed(&self.batch)
                .map_err(crate::sinks::lift)?;
            self.added += self.batch.len() as u64;
            self.batch.clear();
            Ok(())
        }

        /// Commits, when everything fed verified and reached the database's head.
        fn finish(mut self) -> anyhow::Result<Done> {
            self.flush()?;
            let summary = self.verifier.finish(None).map_err(AuditError::from)?;
            if summary.last_seq < self.db_seq {
                return Err(usage(format!(
                    "{} is ahead of the trail read (seq {} > {}): nothing to import",
                    self.db.display(),
                    self.db_seq,
                    summary.last_seq
                )));
            }
            // Commit: everything read verified.
            tokio::runtime::Handle::current()
                .block_on(self.sink.sync())
                .map_err(crate::sinks::lift)?;
            Ok(Done {
                added: self.added,
                skipped: self.skipped,
                head: summary.head,
                note: None,
            })
        }
    }

    #[cfg(feature = "jsonl")]
    fn import_jsonl(jsonl: &Path, db: &Path) -> anyhow::Result<Done> {
        let mut reader = cxone_uuid_audit_jsonl::JsonlReader::open(jsonl)
            .with_context(|| format!("cannot read {}", jsonl.display()))?;
        let mut importer = Importer::open(db)?;
        let mut line = Vec::with_capacity(1024);
        while reader.next_line(&mut line)? {
            importer.feed_line(&line)?;
        }
        importer.finish()
    }

    #[cfg(not(feature = "jsonl"))]
    fn import_jsonl(_: &Path, _: &Path) -> anyhow::Result<Done> {
        Err(usage(
            "this build has no jsonl sink; rebuild with --features jsonl",
        ))
    }

    #[cfg(feature = "s3")]
    async fn import_s3(
        args: &ImportArgs,
        db: &Path,
        since: Option<String>,
        until: Option<String>,
    ) -> anyhow::Result<Done> {
        use cxone_uuid_audit_s3::{Archive, Selection};
        let uri = cxone_uuid_audit_s3::S3Config::from_uri(&args.trail)
            .map_err(|e| usage(e.to_string()))?;
        let cfg = crate::s3_args::s3_config(&uri.bucket, &uri.prefix, &args.s3)?;
        let source = cfg.uri();
        let archive = Archive::open(&cfg)
            .await
            .map_err(|e| crate::s3_args::lift_s3(&source, e))?;
        let selection = Selection::new(args.run_id, since, until);
        let chosen = archive.select(&selection).to_vec();
        if chosen.is_empty() {
            return Err(usage(format!(
                "{source} holds no object{}: check the address{}",
                if selection.is_all() {
                    ""
                } else {
                    " for that --run-id/--since/--until"
                },
                if selection.is_all() {
                    ""
                } else {
                    " and the filters"
                },
            )));
        }
        let db = db.to_path_buf();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Done> {
        let mut importer = Importer::open(&db)?;
        let head = importer.db_seq;
        let mut prev_key: Option<String> = None;
        let mut started = false;
        let (first_seq, mut last_seq) = (chosen[0].first, 0);
        for obj in chosen.iter().filter(|o| o.last >= head) {
            let expected = importer.verifier.head().0 + 1;
            if started && obj.first != expected {
                let what = if obj.first > expected {
                    format!(
                        "seqs {expected}-{} are missing: no object holds them",
                        obj.first - 1
                    )
                } else {
                    format!("it repeats seqs {}-{} of an earlier object", obj.first, expected - 1)
                };
                return Err(AuditError::Chain {
                    seq: expected.min(obj.first),
                    reason: BreakReason::Other(what),
                    at: Some(match &prev_key {
                        Some(p) => format!("between object {p} and object {}", obj.key),
                        None => format!("object {}", obj.key),
                    }),
                }
                .into());
            }
            let bytes = match handle.block_on(archive.fetch(obj)) {
                Ok(b) => b,
                // A bad checksum or an object that does not unzip: a break at its first seq,
                // reported as the chain's are.
                Err(cxone_uuid_audit_s3::S3Error::Corrupt { key, message }) => {
                    return Err(AuditError::Chain {
                        seq: obj.first,
                        reason: BreakReason::Other(message),
                        at: Some(format!("object {key}")),
                    }
                    .into())
                }
                Err(e) => return Err(crate::s3_args::lift_s3(&source, e)),
            };
            if !started {
                started = true;
                if obj.first > 1 || head > 0 {
                    let first = cxone_uuid_audit_s3::first_event(&bytes).map_err(|e| {
                        AuditError::Chain {
                            seq: 0,
                            reason: BreakReason::Unparseable(e.to_string()),
                            at: Some(format!("object {}", obj.key)),
                        }
                    })?;
                    if obj.first == 1 {
                        importer.verifier = Verifier::new();
                    } else if selection.is_all() && head == 0 {
                        return Err(AuditError::Chain {
                            seq: 1,
                            reason: BreakReason::Other(format!(
                                "seqs 1-{} are missing: no object holds them",
                                obj.first - 1
                            )),
                            at: Some(format!("before object {}", obj.key)),
                        }
                        .into());
                    } else {
                        importer.start_at(obj.first - 1, &first.prev_hash, &source)?;
                    }
                }
            }
            importer.at = Some(format!("object {}", obj.key));
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                importer.feed_line(line)?;
            }
            if importer.verifier.head().0 != obj.last {
                return Err(AuditError::Chain {
                    seq: importer.verifier.head().0,
                    reason: BreakReason::Other(format!(
                        "the key names seqs {}-{} but the object ends at seq {}",
                        obj.first,
                        obj.last,
                        importer.verifier.head().0
                    )),
                    at: Some(format!("object {}", obj.key)),
                }
                .into());
            }
            last_seq = obj.last;
            prev_key = Some(obj.key.clone());
        }
        let partial = first_seq > 1 && head == 0;
        let mut done = importer.finish()?;
        if partial {
            done.note = Some(format!(
                "partial copy: seqs {first_seq}-{last_seq} of {source}; the events before seq {first_seq} stay in the archive"
            ));
        }
        Ok(done)
    })
    .await?
    }

    #[cfg(not(feature = "s3"))]
    async fn import_s3(
        _: &ImportArgs,
        _: &Path,
        _: Option<String>,
        _: Option<String>,
    ) -> anyhow::Result<Done> {
        Err(usage(
            "this build has no s3 sink; rebuild with --features s3",
        ))
    }
}
