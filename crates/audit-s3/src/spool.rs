//! The durable local spool: where events live until S3 has confirmed them.
//!
//! One directory per destination holds segment files of stored lines
//! ([`cxone_uuid_audit::chain::encode_line`]):
//! - `open-FIRST.jsonl`: the segment being appended (fsynced by `sync`, the write-ahead point);
//! - `ready-FIRST-LAST.jsonl`: sealed, immutable, waiting for upload; deleted once S3 confirms.
//!
//! A segment never changes after it is sealed, so its object key (derived from its content) and
//! its bytes are the same on every upload attempt: a retry after a crash overwrites the same
//! object instead of creating a second one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use cxone_uuid_audit::chain::encode_line;
use cxone_uuid_audit::signing::Signing;
use cxone_uuid_audit::{AuditEvent, EventKind, Sealer, SyncMode};
use uuid::Uuid;

/// A sealed segment waiting for upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadySegment {
    pub(crate) path: PathBuf,
    pub(crate) first: u64,
    pub(crate) last: u64,
}

struct OpenSegment {
    file: File,
    path: PathBuf,
    first: u64,
    last: u64,
    run_id: Uuid,
    count: usize,
    opened: Instant,
    dirty: bool,
}

/// The appending side of the spool: seals events into the chain and writes them to segments.
pub(crate) struct Spool {
    dir: PathBuf,
    sync_mode: SyncMode,
    batch_events: usize,
    batch_interval: std::time::Duration,
    sealer: Sealer,
    sealed: Vec<AuditEvent>,
    open: Option<OpenSegment>,
    buf: Vec<u8>,
}

/// Where a spool with nothing in it continues from: the newest uploaded event and checkpoint.
#[derive(Debug, Default)]
pub(crate) struct Resume {
    pub(crate) head: Option<(u64, String)>,
    pub(crate) last_checkpoint: Option<AuditEvent>,
}

impl Spool {
    /// Opens (creating) `dir`, turns segments a crash left open into ready ones, and returns
    /// the spool with its chain resumed from the newest spooled event, or from `fallback`
    /// (the newest uploaded event) when the spool is empty.
    pub(crate) fn open(
        dir: &Path,
        sync_mode: SyncMode,
        batch_events: usize,
        batch_interval: std::time::Duration,
        fallback: Resume,
        signing: Option<&Signing>,
    ) -> io::Result<Self> {
        recover(dir)?;
        let spooled = spooled_head(dir)?;
        let checkpoint = match (signing, &spooled) {
            (Some(_), Some(_)) => spooled_checkpoint(dir)?.or(fallback.last_checkpoint),
            (Some(_), None) => fallback.last_checkpoint,
            (None, _) => None,
        };
        let head = spooled.or(fallback.head);
        Ok(Self {
            dir: dir.to_path_buf(),
            sync_mode,
            batch_events,
            batch_interval,
            sealer: Sealer::resume(head, signing, checkpoint.as_ref()),
            sealed: Vec::new(),
            open: None,
            buf: Vec::with_capacity(64 * 1024),
        })
    }

    /// `(seq, hash)` of the last sealed event.
    pub(crate) fn head(&self) -> (u64, String) {
        let chain = self.sealer.chain();
        (chain.last_seq(), chain.head_hash().to_string())
    }

    /// Writes the closing checkpoint (when signing), then seals the open segment.
    pub(crate) fn finish(&mut self) -> io::Result<bool> {
        if let Some(cp) = self.sealer.finish() {
            self.write_sealed(cp)?;
            self.write_buf()?;
        }
        if self.sync_mode != SyncMode::None {
            self.fsync_open()?;
        }
        self.roll()
    }

    /// Seals and writes `batch`. Returns whether a segment became ready for upload.
    pub(crate) fn append(&mut self, batch: Vec<AuditEvent>) -> io::Result<bool> {
        let mut rolled = false;
        let mut sealed = std::mem::take(&mut self.sealed);
        for ev in &batch {
            sealed.clear();
            self.sealer.seal(ev, &mut sealed);
            for ev in sealed.drain(..) {
                rolled |= self.write_sealed(ev)?;
            }
            if self.sync_mode == SyncMode::Always {
                self.fsync_open()?;
            }
        }
        self.sealed = sealed;
        self.write_buf()?;
        Ok(rolled)
    }

    /// Buffers one sealed event into the open segment, rolling first when the segment is full
    /// or belongs to another run (the run id is part of the object key).
    fn write_sealed(&mut self, ev: AuditEvent) -> io::Result<bool> {
        let must_roll = self.open.as_ref().is_some_and(|o| {
            (o.run_id != ev.run_id || o.count >= self.batch_events)
                && ev.event != EventKind::Checkpoint
        });
        let mut rolled = false;
        if must_roll {
            rolled = self.roll()?;
        }
        if self.open.is_none() {
            self.open = Some(self.create_segment(ev.seq, ev.run_id)?);
        }
        encode_line(&ev, &mut self.buf);
        if let Some(open) = &mut self.open {
            open.last = ev.seq;
            open.count += 1;
        }
        Ok(rolled)
    }

    /// Makes every appended event durable (per the sync mode), and seals the open segment when
    /// it is older than the batch interval. Returns whether a segment became ready.
    pub(crate) fn sync(&mut self) -> io::Result<bool> {
        if self.sync_mode != SyncMode::None {
            self.fsync_open()?;
        }
        self.roll_if_aged()
    }

    /// Seals the open segment once it is older than the batch interval.
    pub(crate) fn roll_if_aged(&mut self) -> io::Result<bool> {
        let aged = self
            .open
            .as_ref()
            .is_some_and(|o| o.opened.elapsed() >= self.batch_interval);
        if aged {
            return self.roll();
        }
        Ok(false)
    }

    /// Seals the open segment whatever its size (end of run, flush, batch age).
    pub(crate) fn roll(&mut self) -> io::Result<bool> {
        self.write_buf()?;
        let Some(open) = self.open.take() else {
            return Ok(false);
        };
        open.file.sync_data()?;
        let ready = self.dir.join(ready_name(open.first, open.last));
        std::fs::rename(&open.path, &ready)?;
        sync_dir(&self.dir)?;
        Ok(true)
    }

    fn write_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Some(open) = &mut self.open {
            open.file.write_all(&self.buf)?;
            open.dirty = true;
        }
        self.buf.clear();
        Ok(())
    }

    fn fsync_open(&mut self) -> io::Result<()> {
        self.write_buf()?;
        if let Some(open) = &mut self.open {
            if open.dirty {
                open.file.sync_data()?;
                open.dirty = false;
            }
        }
        Ok(())
    }

    fn create_segment(&self, first: u64, run_id: Uuid) -> io::Result<OpenSegment> {
        let path = self.dir.join(format!("open-{first:020}.jsonl"));
        let file = create_private(&path)?;
        // The file's existence must survive a crash as surely as its content.
        sync_dir(&self.dir)?;
        Ok(OpenSegment {
            file,
            path,
            first,
            last: first,
            run_id,
            count: 0,
            opened: Instant::now(),
            dirty: false,
        })
    }
}

fn ready_name(first: u64, last: u64) -> String {
    format!("ready-{first:020}-{last:020}.jsonl")
}

fn parse_ready_name(name: &str) -> Option<(u64, u64)> {
    let core = name.strip_prefix("ready-")?.strip_suffix(".jsonl")?;
    let (a, b) = core.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// One process at a time per spool: a second writer (or a `flush` during a run) could seal and
/// upload a segment the first is still appending to, and lose what it appends afterwards.
/// The lock is a file holding the owner's pid; a lock whose process is gone is taken over.
#[derive(Debug)]
pub(crate) struct SpoolLock {
    path: PathBuf,
}

impl SpoolLock {
    /// Takes the lock on `dir` (creating it), or returns the pid that holds it.
    pub(crate) fn acquire(dir: &Path) -> io::Result<Result<Self, u32>> {
        create_private_dir(dir)?;
        let path = dir.join("lock");
        for _ in 0..2 {
            let mut opts = OpenOptions::new();
            opts.write(true).create_new(true);
            match opts.open(&path) {
                Ok(mut f) => {
                    write!(f, "{}", std::process::id())?;
                    return Ok(Ok(Self { path }));
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if process_alive(pid) => return Ok(Err(pid)),
                        // Stale (its process is gone) or unreadable: take it over.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(format!(
            "cannot take the spool lock {}",
            path.display()
        )))
    }
}

impl Drop for SpoolLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn process_alive(pid: u32) -> bool {
    let proc_root = Path::new("/proc");
    if proc_root.is_dir() {
        proc_root.join(pid.to_string()).exists()
    } else {
        // Without /proc we cannot tell: assume the holder is alive (the safe answer).
        true
    }
}

/// Sealed segments in `dir`, oldest first. A missing directory is an empty spool.
pub(crate) fn ready_segments(dir: &Path) -> io::Result<Vec<ReadySegment>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if let Some((first, last)) = name.to_str().and_then(parse_ready_name) {
            out.push(ReadySegment {
                path: entry.path(),
                first,
                last,
            });
        }
    }
    out.sort_by_key(|s| s.first);
    Ok(out)
}

/// Creates `dir` (mode 0700) and seals every segment a crashed run left open. A partial last
/// line (a write cut short) is moved aside to `corrupt-FIRST-TIMESTAMP.jsonl` with a warning:
/// it was never synced, so no request went out on its strength.
pub(crate) fn recover(dir: &Path) -> io::Result<()> {
    create_private_dir(dir)?;
    let mut opened = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(first) = name
            .strip_prefix("open-")
            .and_then(|r| r.strip_suffix(".jsonl"))
            .and_then(|r| r.parse::<u64>().ok())
        {
            opened.push((first, entry.path()));
        }
    }
    for (first, path) in opened {
        let bytes = std::fs::read(&path)?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.6fZ");
            let aside = dir.join(format!("corrupt-{first:020}-{stamp}.jsonl"));
            std::fs::write(&aside, &bytes[whole..])?;
            tracing::warn!(
                "audit spool {}: partial last line moved aside to {}",
                path.display(),
                aside.display()
            );
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(whole as u64)?;
            f.sync_all()?;
        }
        if whole == 0 {
            std::fs::remove_file(&path)?;
            continue;
        }
        let last = last_event(&bytes[..whole])?.seq;
        std::fs::rename(&path, dir.join(ready_name(first, last)))?;
    }
    sync_dir(dir)
}

/// `(seq, hash)` of the newest spooled event, if any.
fn spooled_head(dir: &Path) -> io::Result<Option<(u64, String)>> {
    let Some(newest) = ready_segments(dir)?.into_iter().max_by_key(|s| s.last) else {
        return Ok(None);
    };
    let bytes = std::fs::read(&newest.path)?;
    let ev = last_event(&bytes)?;
    Ok(Some((ev.seq, ev.hash)))
}

/// The newest checkpoint in the spool, if any (its signature continues the signature chain).
fn spooled_checkpoint(dir: &Path) -> io::Result<Option<AuditEvent>> {
    for seg in ready_segments(dir)?.iter().rev() {
        if let Some(cp) = last_checkpoint_in(&std::fs::read(&seg.path)?) {
            return Ok(Some(cp));
        }
    }
    Ok(None)
}

/// The last checkpoint event among a segment's lines.
pub(crate) fn last_checkpoint_in(bytes: &[u8]) -> Option<AuditEvent> {
    bytes
        .split(|&b| b == b'\n')
        .rev()
        .filter(|l| l.windows(22).any(|w| w == b"\"event\":\"checkpoint\""))
        .find_map(|l| serde_json::from_slice(l).ok())
}

/// The last whole event of a segment's bytes.
pub(crate) fn last_event(bytes: &[u8]) -> io::Result<AuditEvent> {
    let line = bytes
        .split(|&b| b == b'\n')
        .rfind(|l| !l.is_empty())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "empty segment"))?;
    serde_json::from_slice(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The first event of a segment's bytes (its run and date name the object).
pub(crate) fn first_event(bytes: &[u8]) -> io::Result<AuditEvent> {
    let line = bytes
        .split(|&b| b == b'\n')
        .find(|l| !l.is_empty())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "empty segment"))?;
    serde_json::from_slice(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn create_private(path: &Path) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes renames and creations in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cxone_uuid_audit::chain::Verifier;
    use cxone_uuid_audit::EventKind;
    use std::time::Duration;

    fn events(run: Uuid, n: usize) -> Vec<AuditEvent> {
        (0..n)
            .map(|_| AuditEvent::new(EventKind::UuidGenerated, run))
            .collect()
    }

    fn verify_dir(dir: &Path) -> u64 {
        let mut v = Verifier::new();
        for seg in ready_segments(dir).unwrap() {
            for line in std::fs::read(&seg.path).unwrap().split(|&b| b == b'\n') {
                if !line.is_empty() {
                    v.feed_line(line).unwrap();
                }
            }
        }
        v.count()
    }

    #[test]
    fn segments_roll_by_count_and_run_and_chain_across_them() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        let mut s = Spool::open(
            &dir,
            SyncMode::Batch,
            4,
            Duration::from_secs(60),
            Resume::default(),
            None,
        )
        .unwrap();
        let run1 = Uuid::now_v7();
        s.append(events(run1, 10)).unwrap();
        s.append(events(Uuid::now_v7(), 2)).unwrap();
        s.sync().unwrap();
        s.roll().unwrap();
        let segs = ready_segments(&dir).unwrap();
        let ranges: Vec<_> = segs.iter().map(|s| (s.first, s.last)).collect();
        assert_eq!(ranges, vec![(1, 4), (5, 8), (9, 10), (11, 12)]);
        assert_eq!(verify_dir(&dir), 12);
    }

    #[test]
    fn a_crash_leaves_an_open_segment_that_is_recovered_and_continued() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        let run = Uuid::now_v7();
        {
            let mut s = Spool::open(
                &dir,
                SyncMode::Batch,
                100,
                Duration::from_secs(60),
                Resume::default(),
                None,
            )
            .unwrap();
            s.append(events(run, 3)).unwrap();
            s.sync().unwrap();
            // dropped without roll: a crash
        }
        // A torn write at the end.
        let open = dir.join(format!("open-{:020}.jsonl", 1));
        let mut f = OpenOptions::new().append(true).open(&open).unwrap();
        f.write_all(b"{\"schema\":1,\"se").unwrap();
        drop(f);

        let mut s = Spool::open(
            &dir,
            SyncMode::Batch,
            100,
            Duration::from_secs(60),
            Resume::default(),
            None,
        )
        .unwrap();
        assert_eq!(s.head().0, 3);
        s.append(events(run, 2)).unwrap();
        s.roll().unwrap();
        assert_eq!(verify_dir(&dir), 5);
        let corrupt = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("corrupt-")
            })
            .count();
        assert_eq!(corrupt, 1);
    }

    #[test]
    fn an_empty_spool_resumes_from_the_fallback_head() {
        let tmp = tempfile::tempdir().unwrap();
        let head = (41, "ab".repeat(32));
        let mut s = Spool::open(
            tmp.path(),
            SyncMode::Batch,
            100,
            Duration::from_secs(60),
            Resume {
                head: Some(head.clone()),
                last_checkpoint: None,
            },
            None,
        )
        .unwrap();
        s.append(events(Uuid::now_v7(), 1)).unwrap();
        s.roll().unwrap();
        let seg = &ready_segments(tmp.path()).unwrap()[0];
        assert_eq!((seg.first, seg.last), (42, 42));
        let ev = first_event(&std::fs::read(&seg.path).unwrap()).unwrap();
        assert_eq!(ev.prev_hash, head.1);
    }

    #[test]
    fn the_spool_lock_admits_one_holder_and_is_released_on_drop() {
        let tmp = tempfile::tempdir().unwrap();
        let lock = SpoolLock::acquire(tmp.path()).unwrap().unwrap();
        assert_eq!(
            SpoolLock::acquire(tmp.path()).unwrap().unwrap_err(),
            std::process::id()
        );
        drop(lock);
        let _again = SpoolLock::acquire(tmp.path()).unwrap().unwrap();
        // A lock left by a process that is gone is taken over.
        drop(_again);
        std::fs::write(tmp.path().join("lock"), "4294967295").unwrap();
        assert!(SpoolLock::acquire(tmp.path()).unwrap().is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn spool_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        let mut s = Spool::open(
            &dir,
            SyncMode::Batch,
            100,
            Duration::from_secs(60),
            Resume::default(),
            None,
        )
        .unwrap();
        s.append(events(Uuid::now_v7(), 1)).unwrap();
        s.roll().unwrap();
        let seg = &ready_segments(&dir).unwrap()[0];
        let mode = std::fs::metadata(&seg.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
