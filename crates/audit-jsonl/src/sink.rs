//! The write side: appending sealed lines with group commit, rotation and the anchor file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use cxone_uuid_audit::chain::encode_line;
use cxone_uuid_audit::signing::Signing;
use cxone_uuid_audit::{AuditError, AuditEvent, AuditSink, EventKind, Sealer, SyncMode};

use crate::files::{
    anchor_path, last_checkpoint, last_line, last_line_end, open_append, read_anchor,
    recover_partial_line, segment_path, segments, sync_dir, write_atomically,
};
use crate::io_err;

/// How a [`JsonlSink`] writes.
// Debug as derived: Signing's own Debug never shows the private key.
#[derive(Clone, Default, Debug)]
pub struct JsonlOptions {
    /// Whether `sync` fsyncs (`None`: it only flushes to the OS).
    pub sync: SyncMode,
    /// Rotate when the current file reaches this many MiB.
    pub rotate_mb: Option<u64>,
    /// Sign checkpoints (at close, and every `signing.every` events).
    pub signing: Option<Signing>,
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
    /// Set by the first failed write: the file was cut back to its last complete line and the
    /// sealer is ahead of it, so nothing more may be written.
    failed: Option<String>,
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
                failed: None,
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
        // A panic elsewhere does not change the head: read it through a poisoned lock too.
        let g = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (
            g.sealer.chain().last_seq(),
            g.sealer.chain().head_hash().to_string(),
        )
    }

    /// After a failed write: drops what the buffer still holds (it was never written, and
    /// dropping the writer would try again), cuts the file back to its last complete line and
    /// syncs it, and refuses every later write. Returns the error to report.
    fn fail(&self, g: &mut Inner, e: AuditError) -> AuditError {
        let cut = (|| -> std::io::Result<u64> {
            let dup = g.file.get_ref().try_clone()?;
            let (file, _unwritten) =
                std::mem::replace(&mut g.file, BufWriter::with_capacity(256 * 1024, dup))
                    .into_parts();
            let end = last_line_end(&self.path)?;
            if file.metadata()?.len() > end {
                file.set_len(end)?;
            }
            file.sync_data()?;
            Ok(end)
        })();
        let what = match cut {
            Ok(end) => {
                g.size = end;
                format!("{e}; the trail ends at its last complete line")
            }
            Err(cut) => {
                format!("{e}; cutting the trail back to its last complete line failed too: {cut}")
            }
        };
        tracing::error!("{} stopped: {what}", self.describe());
        g.failed = Some(what);
        e
    }

    fn refuse_if_failed(&self, g: &Inner) -> Result<(), AuditError> {
        AuditError::refuse_after(self.describe(), g.failed.as_deref())
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
        self.refuse_if_failed(g)?;
        let err = io_err(&self.path);
        for ev in batch {
            g.line.clear();
            let checkpoint = g.sealer.seal_line(ev, &mut g.line);
            let Inner { file, line, .. } = &mut *g;
            if let Err(e) = file.write_all(line) {
                return Err(self.fail(g, err(e)));
            }
            g.size += g.line.len() as u64;
            if let Some(cp) = checkpoint {
                let mut anchor = Vec::new();
                encode_line(&cp, &mut anchor);
                g.pending_anchor = Some(anchor);
            }
            if g.rotate_bytes.is_some_and(|max| g.size >= max) {
                if let Err(e) = self.rotate(g) {
                    return Err(self.fail(g, err(e)));
                }
            }
        }
        Ok(())
    }

    async fn sync(&self) -> Result<(), AuditError> {
        let err = io_err(&self.path);
        let (file, anchor) = {
            let mut g = self.lock()?;
            self.refuse_if_failed(&g)?;
            if let Err(e) = g.file.flush() {
                return Err(self.fail(&mut g, err(e)));
            }
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
        // The anchor names a checkpoint in the trail: the trail is made durable before it even
        // with --audit-sync none, or a power loss would read as a cut tail (tampering).
        let fsync = self.sync_mode != SyncMode::None || anchor.is_some();
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
        .map_err(|e| {
            // The kernel may have lost written pages: cut back to what is whole on disk.
            let e = err(e);
            match self.lock() {
                Ok(mut g) => self.fail(&mut g, e),
                Err(_) => e,
            }
        })
    }

    async fn close(&self) -> Result<(), AuditError> {
        {
            let mut g = self.lock()?;
            if g.closed {
                return Ok(());
            }
            let g = &mut *g;
            g.closed = true;
            // After a failed write the trail stays as it was cut: no closing checkpoint.
            self.refuse_if_failed(g)?;
            if let Some(cp) = g.sealer.finish() {
                g.sealed.push(cp);
                if let Err(e) = self.write_sealed(g) {
                    return Err(self.fail(g, e));
                }
            }
        }
        self.sync().await
    }

    fn describe(&self) -> String {
        format!("jsonl:{}", self.path.display())
    }
}
