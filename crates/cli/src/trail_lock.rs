//! One writer per trail.
//!
//! Two processes appending to one trail each continue the chain from the head they read, so
//! the trail ends with two events of the same seq and no longer verifies. Every command that
//! writes a trail (`run`, `demo`, `audit import`, `audit flush`) therefore takes an exclusive
//! advisory lock on a file beside it before it sends or writes anything, and a second writer
//! stops with exit 2. Readers (`audit verify`, `audit query`) take no lock: the sinks' own
//! formats already let them read while a run appends.
//!
//! The lock is `fs4`'s `try_lock` (flock on Unix, LockFileEx on Windows; the standard library's
//! own needs Rust 1.89, above our MSRV): the kernel drops it when its process dies, so `kill -9`
//! never leaves a stale lock. The file (`PATH.lock`, or `SPOOL.lock` beside an S3 destination's
//! spool directory) stays after the run: removing it would race with a process that has opened
//! it but not yet locked it. It holds the holder's pid, so the message can name the process.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use crate::exit::usage;
use crate::s3_args::S3Args;
use crate::sinks::{parse, SinkSpec};

/// Locks held for as long as this value lives.
#[must_use = "the locks are released when this is dropped"]
pub(crate) struct TrailLocks {
    _held: Vec<File>,
}

/// Locks every trail in `specs` that this process will write (`none` needs none). `fix` ends
/// the message a second writer gets, e.g. "choose another --audit path".
pub(crate) fn lock_specs(specs: &[String], s3: &S3Args, fix: &str) -> anyhow::Result<TrailLocks> {
    let mut held = Vec::new();
    for text in specs {
        let lock = match parse(text)? {
            SinkSpec::None => continue,
            SinkSpec::Jsonl(path) | SinkSpec::Sqlite(path) => beside(&path),
            SinkSpec::S3 { bucket, prefix } => spool_lock(&bucket, &prefix, s3),
        };
        held.push(lock_file(text, &lock, fix)?);
    }
    Ok(TrailLocks { _held: held })
}

/// `PATH.lock`.
fn beside(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

#[cfg(feature = "s3")]
fn spool_lock(bucket: &str, prefix: &str, s3: &S3Args) -> PathBuf {
    let dir = cxone_uuid_audit_s3::S3Config::new(bucket, prefix)
        .with_spool(&s3.s3_spool)
        .spool_dir();
    beside(&dir)
}

#[cfg(not(feature = "s3"))]
fn spool_lock(bucket: &str, prefix: &str, s3: &S3Args) -> PathBuf {
    // Unreachable in practice: `sinks::check_built` refuses an S3 sink in such a build first.
    beside(&s3.s3_spool.join(bucket).join(prefix))
}

/// Takes the lock on `lock` for the trail named `spec`, recording this process's pid in it.
pub(crate) fn lock_file(spec: &str, lock: &Path, fix: &str) -> anyhow::Result<File> {
    if let Some(dir) = lock.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            usage(format!(
                "{spec}: cannot create {} for its lock file: {e}",
                dir.display()
            ))
        })?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock)
        .map_err(|e| {
            usage(format!(
                "{spec}: cannot open its lock file {}: {e}",
                lock.display()
            ))
        })?;
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let holder = match file.read_to_string(&mut text) {
                Ok(_) => match text.trim().parse::<u32>() {
                    Ok(pid) => format!("another cxone-uuid process (pid {pid})"),
                    Err(_) => "another cxone-uuid process".to_string(),
                },
                Err(_) => "another cxone-uuid process".to_string(),
            };
            return Err(usage(format!(
                "{spec} is being written by {holder}; wait for it or {fix}"
            )));
        }
        Err(fs4::TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {
            tracing::warn!(
                "{spec}: this file system cannot lock {}; make sure no other process writes the trail",
                lock.display()
            );
            return Ok(file);
        }
        Err(fs4::TryLockError::Error(e)) => {
            return Err(usage(format!(
                "{spec}: cannot lock {}: {e}",
                lock.display()
            )))
        }
    }
    // The pid is only for the message a second writer prints: failing to write it is harmless.
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{}", std::process::id()));
    Ok(file)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_second_lock_on_a_trail_names_the_holder_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let spec = format!("jsonl:{}", dir.path().join("t.jsonl").display());
        let first = lock_specs(
            std::slice::from_ref(&spec),
            &S3Args::default(),
            "choose another --audit path",
        )
        .unwrap();
        let err = lock_specs(
            std::slice::from_ref(&spec),
            &S3Args::default(),
            "choose another --audit path",
        )
        .err()
        .unwrap();
        assert!(err.chain().any(|e| e.is::<crate::exit::UsageError>()));
        assert_eq!(
            err.to_string(),
            format!(
                "{spec} is being written by another cxone-uuid process (pid {}); wait for it or choose another --audit path",
                std::process::id()
            )
        );
        drop(first);
        // Released with its holder: the next writer gets it.
        let _again = lock_specs(&[spec], &S3Args::default(), "x").unwrap();
    }

    #[test]
    fn none_takes_no_lock_and_the_lock_file_sits_beside_the_trail() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("sub").join("t.db");
        let spec = format!("sqlite:{}", db.display());
        let _held = lock_specs(&["none".to_string(), spec], &S3Args::default(), "x").unwrap();
        assert!(dir.path().join("sub").join("t.db.lock").exists());
    }
}
