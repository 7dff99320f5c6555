//! Append-only JSONL audit sink: one sealed event a line, group commit, crash recovery, rotation.
//!
//! Key design decision: the file is the chain. Nothing else is needed to resume it: on open the
//! sink reads only the last whole line to continue `seq` and `prev_hash`, and a partial last
//! line (a kill -9 mid-write) is moved aside to `PATH.corrupt-<timestamp>` rather than repaired,
//! so no byte anyone wrote is ever silently dropped. Lines are the canonical form plus `hash`
//! ([`cxone_uuid_audit::chain::encode_line`]), so verifying hashes the stored bytes directly.
//!
//! Rotation (`rotate_mb`) renames the full file to the next free `PATH.N` (so `PATH.1` is the
//! oldest segment) and starts a new `PATH`; the chain continues across segments. With a signing
//! key, the latest checkpoint is also kept in `PATH.checkpoint` (written only after the trail
//! holding it is durable) so a tail cut before it is detectable.
#![deny(missing_docs)]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cxone_uuid_audit::chain::encode_line;
use cxone_uuid_audit::signing::Signing;
use cxone_uuid_audit::{
    AuditError, AuditEvent, AuditSink, AuditSource, EventKind, Sealer, SyncMode, Verifier,
    VerifySummary,
};
use ed25519_dalek::VerifyingKey;

/// How a [`JsonlSink`] writes.
#[derive(Clone, Default)]
pub struct JsonlOptions {
    /// Whether `sync` fsyncs (`None`: it only flushes to the OS).
    pub sync: SyncMode,
    /// Rotate when the current file reaches this many MiB.
    pub rotate_mb: Option<u64>,
    /// Sign checkpoints (at close, and every `signing.every` events).
    pub signing: Option<Signing>,
}

impl std::fmt::Debug for JsonlOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlOptions")
            .field("sync", &self.sync)
            .field("rotate_mb", &self.rotate_mb)
            .field("signing", &self.signing)
            .finish()
    }
}

/// The append-only JSONL sink.
pub struct JsonlSink {
    path: PathBuf,
    sync_mode: SyncMode,
    recovered: Option<PathBuf>,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    file: BufWriter<File>,
    size: u64,
    rotate_bytes: Option<u64>,
    next_segment: u64,
    sealer: Sealer,
    sealed: Vec<AuditEvent>,
    line: Vec<u8>,
    /// The latest checkpoint appended but not yet durable: the anchor is written after the sync.
    pending_anchor: Option<Vec<u8>>,
    closed: bool,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        sink: format!("jsonl:{}", path.display()),
        source,
    }
}

impl JsonlSink {
    /// Opens (or creates, mode 0600) the trail at `path`, recovering from a partial last line
    /// and resuming the chain from the last whole event.
    pub fn open(path: impl AsRef<Path>, opts: JsonlOptions) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let err = io_err(&path);
        let recovered = recover_partial_line(&path).map_err(&err)?;
        if let Some(moved) = &recovered {
            tracing::warn!(
                "audit trail {} ended in a partial line (an interrupted write); moved it to {} and continuing from the last whole event",
                path.display(),
                moved.display()
            );
        }
        let segs = segments(&path).map_err(&err)?;
        let next_segment = segs.iter().filter_map(|(n, _)| *n).max().unwrap_or(0) + 1;
        let mut head = None;
        for (_, seg) in segs.iter().rev() {
            if let Some(line) = last_line(seg).map_err(&err)? {
                let ev: AuditEvent =
                    serde_json::from_slice(&line).map_err(|e| AuditError::Config {
                        sink: format!("jsonl:{}", path.display()),
                        message: format!(
                            "the last line of {} is not an audit event ({e}); check it with `cxone-uuid audit verify`",
                            seg.display()
                        ),
                    })?;
                head = Some((ev.seq, ev.hash));
                break;
            }
        }
        // The checkpoint to chain the next signature to: the anchor, else the trail's last one.
        let checkpoint = match opts.signing {
            Some(_) => match read_anchor(&path) {
                Some(ev) => Some(ev),
                None if head.is_some() => last_checkpoint(&path).map_err(&err)?,
                None => None,
            },
            None => None,
        };
        let file = open_append(&path).map_err(&err)?;
        let size = file.metadata().map_err(&err)?.len();
        let rotate_bytes = opts
            .rotate_mb
            .filter(|&mb| mb > 0)
            .map(|mb| mb.saturating_mul(1024 * 1024));
        drop(err);
        Ok(Self {
            sync_mode: opts.sync,
            recovered,
            inner: Arc::new(Mutex::new(Inner {
                file: BufWriter::with_capacity(256 * 1024, file),
                size,
                rotate_bytes,
                next_segment,
                sealer: Sealer::resume(head, opts.signing.as_ref(), checkpoint.as_ref()),
                sealed: Vec::with_capacity(1024),
                line: Vec::with_capacity(1024),
                pending_anchor: None,
                closed: false,
            })),
            path,
        })
    }

    /// Where a partial last line found on open was moved, if there was one.
    pub fn recovered(&self) -> Option<&Path> {
        self.recovered.as_deref()
    }

    /// `(seq, hash)` of the last event sealed (seq 0 for an empty trail).
    pub fn head(&self) -> (u64, String) {
        match self.inner.lock() {
            Ok(g) => (
                g.sealer.chain().last_seq(),
                g.sealer.chain().head_hash().to_string(),
            ),
            Err(_) => (0, String::new()),
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, AuditError> {
        self.inner.lock().map_err(|_| AuditError::Backend {
            sink: self.describe(),
            message: "an earlier write panicked".into(),
        })
    }

    fn write_sealed(&self, g: &mut Inner) -> Result<(), AuditError> {
        let err = io_err(&self.path);
        let sealed = std::mem::take(&mut g.sealed);
        for ev in &sealed {
            g.line.clear();
            encode_line(ev, &mut g.line);
            let Inner { file, line, .. } = &mut *g;
            file.write_all(line).map_err(&err)?;
            g.size += g.line.len() as u64;
            if ev.event == EventKind::Checkpoint {
                g.pending_anchor = Some(g.line.clone());
            }
            if g.rotate_bytes.is_some_and(|max| g.size >= max) {
                self.rotate(g).map_err(&err)?;
            }
        }
        g.sealed = sealed;
        g.sealed.clear();
        Ok(())
    }

    fn rotate(&self, g: &mut Inner) -> std::io::Result<()> {
        g.file.flush()?;
        g.file.get_ref().sync_all()?;
        let target = segment_path(&self.path, g.next_segment);
        if target.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("cannot rotate: {} already exists", target.display()),
            ));
        }
        std::fs::rename(&self.path, &target)?;
        sync_dir(&self.path);
        g.next_segment += 1;
        g.file = BufWriter::with_capacity(256 * 1024, open_append(&self.path)?);
        g.size = 0;
        Ok(())
    }
}

#[async_trait]
impl AuditSink for JsonlSink {
    async fn append(&self, batch: &[AuditEvent]) -> Result<(), AuditError> {
        let mut g = self.lock()?;
        if g.closed {
            return Err(AuditError::Closed {
                sink: self.describe(),
                what: cxone_uuid_audit::Closable::Sink,
            });
        }
        let g = &mut *g;
        let err = io_err(&self.path);
        for ev in batch {
            g.line.clear();
            let checkpoint = g.sealer.seal_line(ev, &mut g.line);
            let Inner { file, line, .. } = &mut *g;
            file.write_all(line).map_err(&err)?;
            g.size += g.line.len() as u64;
            if let Some(cp) = checkpoint {
                let mut anchor = Vec::new();
                encode_line(&cp, &mut anchor);
                g.pending_anchor = Some(anchor);
            }
            if g.rotate_bytes.is_some_and(|max| g.size >= max) {
                self.rotate(g).map_err(&err)?;
            }
        }
        Ok(())
    }

    async fn sync(&self) -> Result<(), AuditError> {
        let err = io_err(&self.path);
        let (file, anchor) = {
            let mut g = self.lock()?;
            g.file.flush().map_err(&err)?;
            if self.sync_mode == SyncMode::None && g.pending_anchor.is_none() {
                return Ok(());
            }
            (
                g.file.get_ref().try_clone().map_err(&err)?,
                g.pending_anchor.take(),
            )
        };
        // fsync off the async threads; appends may continue meanwhile (they are not ours to wait for).
        let anchor_path = anchor_path(&self.path);
        let fsync = self.sync_mode != SyncMode::None;
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if fsync {
                file.sync_data()?;
            }
            if let Some(line) = anchor {
                write_atomically(&anchor_path, &line)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| AuditError::Backend {
            sink: self.describe(),
            message: format!("fsync task failed: {e}"),
        })?
        .map_err(&err)
    }

    async fn close(&self) -> Result<(), AuditError> {
        {
            let mut g = self.lock()?;
            if g.closed {
                return Ok(());
            }
            let g = &mut *g;
            if let Some(cp) = g.sealer.finish() {
                g.sealed.push(cp);
                self.write_sealed(g)?;
            }
            g.closed = true;
        }
        self.sync().await
    }

    fn describe(&self) -> String {
        format!("jsonl:{}", self.path.display())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    opts.open(path)
}

fn sync_dir(path: &Path) {
    // Makes a rename durable; best effort (not every platform can open a directory).
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    sync_dir(path);
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// `PATH.N`, the N-th rotated segment (1 is the oldest).
pub fn segment_path(path: &Path, n: u64) -> PathBuf {
    with_suffix(path, &format!(".{n}"))
}

/// `PATH.checkpoint`, the latest signed checkpoint kept beside the trail.
pub fn anchor_path(path: &Path) -> PathBuf {
    with_suffix(path, ".checkpoint")
}

/// The trail's files in chain order: `PATH.1`, `PATH.2`, …, then `PATH` (numbered `None`).
/// Missing files are skipped.
pub fn segments(path: &Path) -> std::io::Result<Vec<(Option<u64>, PathBuf)>> {
    let mut out = Vec::new();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(out);
    };
    let prefix = format!("{name}.");
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                let entry = entry?;
                let fname = entry.file_name();
                let Some(fname) = fname.to_str() else {
                    continue;
                };
                if let Some(n) = fname
                    .strip_prefix(&prefix)
                    .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|rest| rest.parse::<u64>().ok())
                {
                    out.push((Some(n), segment_path(path, n)));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    }
    out.sort();
    if path.exists() {
        out.push((None, path.to_path_buf()));
    }
    Ok(out)
}

/// Moves a partial last line (no trailing newline) to `PATH.corrupt-<timestamp>` and truncates
/// the file after its last whole line. Returns where it went.
pub fn recover_partial_line(path: &Path) -> std::io::Result<Option<PathBuf>> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    let keep = match last_newline(&mut f, len)? {
        Some(pos) if pos + 1 == len => return Ok(None),
        Some(pos) => pos + 1,
        None => 0,
    };
    let mut partial = Vec::new();
    f.seek(SeekFrom::Start(keep))?;
    f.read_to_end(&mut partial)?;
    let stamp: String = cxone_uuid_audit::now_rfc3339_micros()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let aside = with_suffix(path, &format!(".corrupt-{stamp}"));
    write_atomically(&aside, &partial)?;
    f.set_len(keep)?;
    f.sync_all()?;
    Ok(Some(aside))
}

/// Position of the last `\n` in the first `len` bytes, reading backwards in chunks.
fn last_newline(f: &mut File, len: u64) -> std::io::Result<Option<u64>> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + i as u64));
        }
        end = start;
    }
    Ok(None)
}

/// The last whole line of `path` (without its newline), if any.
fn last_line(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(None);
    }
    // The final byte is a newline after recovery; find the one before it.
    let end = match last_newline(&mut f, len)? {
        Some(p) => p,
        None => len,
    };
    let start = match last_newline(&mut f, end)? {
        Some(p) => p + 1,
        None => 0,
    };
    let mut line = vec![0u8; (end - start) as usize];
    f.seek(SeekFrom::Start(start))?;
    f.read_exact(&mut line)?;
    Ok(if line.is_empty() { None } else { Some(line) })
}

/// The checkpoint kept beside the trail, if there is a readable one.
pub fn read_anchor(path: &Path) -> Option<AuditEvent> {
    let bytes = std::fs::read(anchor_path(path)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn last_checkpoint(path: &Path) -> std::io::Result<Option<AuditEvent>> {
    let mut reader = JsonlReader::open(path)?;
    let mut line = Vec::new();
    let mut last = None;
    while reader.next_line(&mut line)? {
        const NEEDLE: &[u8] = b"\"event\":\"checkpoint\"";
        if line.windows(NEEDLE.len()).any(|w| w == NEEDLE) {
            if let Ok(ev) = serde_json::from_slice::<AuditEvent>(&line) {
                if ev.event == EventKind::Checkpoint {
                    last = Some(ev);
                }
            }
        }
    }
    Ok(last)
}

/// Streams the lines of a trail across its segments, in chain order.
pub struct JsonlReader {
    segments: std::vec::IntoIter<(Option<u64>, PathBuf)>,
    current: Option<(PathBuf, BufReader<File>)>,
}

impl JsonlReader {
    /// Opens the trail at `path` (with its rotated segments). Errors if there is no file at all.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let segs = segments(path)?;
        if segs.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no audit trail at {}", path.display()),
            ));
        }
        Ok(Self {
            segments: segs.into_iter(),
            current: None,
        })
    }

    /// The segment being read.
    pub fn current_file(&self) -> Option<&Path> {
        self.current.as_ref().map(|(p, _)| p.as_path())
    }

    /// Reads the next line into `buf` (without the newline); false at the end.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        loop {
            if self.current.is_none() {
                match self.segments.next() {
                    Some((_, p)) => {
                        let f = File::open(&p)?;
                        self.current = Some((p, BufReader::with_capacity(256 * 1024, f)));
                    }
                    None => return Ok(false),
                }
            }
            if let Some((_, r)) = &mut self.current {
                buf.clear();
                if r.read_until(b'\n', buf)? == 0 {
                    self.current = None;
                    continue;
                }
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                return Ok(true);
            }
        }
    }

    /// Reads and parses the next event. A line that does not parse is an error naming its file.
    pub fn next_event(&mut self) -> Result<Option<AuditEvent>, AuditError> {
        let mut buf = Vec::new();
        let more = self.next_line(&mut buf).map_err(|source| AuditError::Io {
            sink: self.describe(),
            source,
        })?;
        if !more {
            return Ok(None);
        }
        serde_json::from_slice(&buf)
            .map(Some)
            .map_err(|e| AuditError::Backend {
                sink: self.describe(),
                message: format!("unparseable line: {e}"),
            })
    }

    fn describe(&self) -> String {
        format!(
            "jsonl:{}",
            self.current_file()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )
    }
}

impl Iterator for JsonlReader {
    type Item = Result<AuditEvent, AuditError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_event().transpose()
    }
}

/// Verifies the whole trail at `path` (all segments): [`JsonlSource::verify`].
pub fn verify(path: &Path, public_key: Option<VerifyingKey>) -> Result<VerifySummary, AuditError> {
    JsonlSource::new(path).verify(public_key)
}

/// The trail at a path (with its rotated segments), read back.
#[derive(Debug, Clone)]
pub struct JsonlSource {
    path: PathBuf,
}

impl JsonlSource {
    /// The trail at `path`; nothing is opened until it is read.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_path_buf(),
        }
    }
}

impl AuditSource for JsonlSource {
    fn describe(&self) -> String {
        format!("jsonl:{}", self.path.display())
    }

    fn exists(&self) -> Result<bool, AuditError> {
        Ok(!segments(&self.path).map_err(io_err(&self.path))?.is_empty())
    }

    /// Every event across the segments. Only the very last line may be partial (a crash
    /// mid-write, which the next writer moves aside): it is skipped; a bad line anywhere else
    /// is damage, [`AuditError::Damaged`].
    fn visit(
        &self,
        f: &mut dyn FnMut(&AuditEvent) -> Result<(), AuditError>,
    ) -> Result<(), AuditError> {
        let err = io_err(&self.path);
        let mut reader = JsonlReader::open(&self.path).map_err(&err)?;
        let mut line = Vec::new();
        let mut bad: Option<String> = None;
        while reader.next_line(&mut line).map_err(&err)? {
            if let Some(why) = bad.take() {
                return Err(AuditError::Damaged {
                    sink: self.describe(),
                    message: format!(
                        "{} holds an unparseable line before its end ({why}); check it with `cxone-uuid audit verify`",
                        self.path.display()
                    ),
                });
            }
            match serde_json::from_slice::<AuditEvent>(&line) {
                Ok(ev) => f(&ev)?,
                Err(e) => bad = Some(e.to_string()),
            }
        }
        Ok(())
    }

    fn checkpoint(&self) -> Result<Option<AuditEvent>, AuditError> {
        Ok(read_anchor(&self.path))
    }

    /// Hashes the stored lines as they are (no parse for lines in the stored form), and names
    /// the segment file of a break. With `public_key`, checkpoints are checked too against the
    /// anchor kept beside the trail.
    fn verify(&self, public_key: Option<VerifyingKey>) -> Result<VerifySummary, AuditError> {
        let path = &self.path;
        let mut reader = JsonlReader::open(path).map_err(io_err(path))?;
        let mut verifier = Verifier::new();
        if let Some(key) = public_key {
            verifier = verifier.with_public_key(key);
        }
        let mut line = Vec::with_capacity(1024);
        let chain_err = |b: cxone_uuid_audit::ChainBreak, file: Option<&Path>| AuditError::Chain {
            seq: b.seq,
            reason: b.reason,
            at: file.map(|f| format!("in {}", f.display())),
        };
        while reader.next_line(&mut line).map_err(io_err(path))? {
            if let Err(b) = verifier.feed_line(&line) {
                return Err(chain_err(b, reader.current_file()));
            }
        }
        let anchor = read_anchor(path);
        verifier
            .finish(anchor.as_ref())
            .map_err(|b| chain_err(b, None))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use cxone_uuid_audit::{BreakReason, CheckpointError};
    use uuid::Uuid;

    fn ev(i: u64) -> AuditEvent {
        let mut e = AuditEvent::new(EventKind::UuidGenerated, Uuid::nil());
        e.uuid = Some(Uuid::new_v4());
        e.attempts = Some(i as u32);
        e
    }

    async fn write(path: &Path, opts: JsonlOptions, n: u64) {
        let sink = JsonlSink::open(path, opts).unwrap();
        let batch: Vec<_> = (0..n).map(ev).collect();
        sink.append(&batch).await.unwrap();
        sink.close().await.unwrap();
    }

    #[tokio::test]
    async fn appends_resume_the_chain_across_opens_and_file_is_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        write(&p, JsonlOptions::default(), 3).await;
        write(&p, JsonlOptions::default(), 2).await;
        let s = verify(&p, None).unwrap();
        assert_eq!(s.events, 5);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn a_partial_last_line_is_moved_aside_and_the_chain_continues() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        write(&p, JsonlOptions::default(), 3).await;
        // A kill -9 in the middle of a write.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"schema\":1,\"seq\":4,\"times").unwrap();
        drop(f);
        assert!(
            verify(&p, None).is_err(),
            "the partial line is not an event"
        );
        let sink = JsonlSink::open(&p, JsonlOptions::default()).unwrap();
        let aside = sink.recovered().unwrap().to_path_buf();
        assert!(aside.to_string_lossy().contains(".corrupt-"));
        assert_eq!(
            std::fs::read(&aside).unwrap(),
            b"{\"schema\":1,\"seq\":4,\"times"
        );
        sink.append(&[ev(9)]).await.unwrap();
        sink.close().await.unwrap();
        let s = verify(&p, None).unwrap();
        assert_eq!(s.events, 4);
    }

    #[tokio::test]
    async fn rotation_keeps_one_chain_across_segments() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.jsonl");
        let opts = JsonlOptions {
            rotate_mb: Some(1),
            ..Default::default()
        };
        // ~250 bytes an event: 10k events make two or three segments.
        write(&p, opts.clone(), 6000).await;
        write(&p, opts, 4000).await;
        let segs = segments(&p).unwrap();
        assert!(segs.len() >= 2, "{segs:?}");
        assert_eq!(segs[0].0, Some(1));
        let s = verify(&p, None).unwrap();
        assert_eq!(s.events, 10_000);
        // Deleting a middle or first segment is a gap.
        std::fs::remove_file(segment_path(&p, 1)).unwrap();
        let err = verify(&p, None).unwrap_err();
        assert!(matches!(err, AuditError::Chain { .. }), "{err}");
    }

    #[tokio::test]
    async fn signed_trail_checkpoints_and_anchor() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        let key = Arc::new(cxone_uuid_audit::signing::generate_signing_key().unwrap());
        let opts = JsonlOptions {
            signing: Some(Signing {
                key: key.clone(),
                every: Some(4),
            }),
            ..Default::default()
        };
        write(&p, opts.clone(), 10).await;
        write(&p, opts, 3).await;
        let s = verify(&p, Some(key.verifying_key())).unwrap();
        let signed = s.signed.unwrap();
        assert_eq!(signed.unsigned_after, 0);
        assert_eq!(signed.checkpoints, 4); // 4, 8, close(10), close(13)
                                           // Cut the tail before the last checkpoint: the anchor exposes it.
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let cut = lines[..lines.len() - 4].join("\n") + "\n";
        std::fs::write(&p, cut).unwrap();
        assert!(verify(&p, None).is_ok(), "a bare chain cannot see the cut");
        let err = verify(&p, Some(key.verifying_key())).unwrap_err();
        assert!(
            matches!(
                err,
                AuditError::Chain {
                    reason: BreakReason::Checkpoint(CheckpointError::TailCut { .. }),
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn record_durable_returns_with_the_line_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.jsonl");
        let sink = JsonlSink::open(&p, JsonlOptions::default()).unwrap();
        let w = cxone_uuid_audit::AuditWriter::spawn(Box::new(sink), SyncMode::Batch);
        for i in 0..100 {
            w.record(ev(i)).await.unwrap();
        }
        let mut submitted = ev(7);
        submitted.event = EventKind::ActionSubmitted;
        w.record_durable(submitted).await.unwrap();
        // Before close: everything recorded so far is in the file, in order, verifiable.
        assert_eq!(verify(&p, None).unwrap().events, 101);
        let last: AuditEvent =
            serde_json::from_str(std::fs::read_to_string(&p).unwrap().lines().last().unwrap())
                .unwrap();
        assert_eq!(last.event, EventKind::ActionSubmitted);
        w.close().await.unwrap();
    }

    #[tokio::test]
    async fn reader_streams_events_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        write(&p, JsonlOptions::default(), 5).await;
        let seqs: Vec<u64> = JsonlReader::open(&p)
            .unwrap()
            .map(|e| e.unwrap().seq)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    }
}
