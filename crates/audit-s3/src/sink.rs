//! [`S3Sink`] (spool + background uploader), [`flush`] and [`verify`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cxone_uuid_audit::chain::Verifier;
use cxone_uuid_audit::{AuditError, AuditEvent, AuditSink};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::S3Config;
use crate::spool::{self, ready_segments, Resume, Spool, SpoolLock};
use crate::upload::{ObjectRef, Store};
use crate::S3Error;
use cxone_uuid_audit::signing::Signing;

/// How often the uploader looks for segments that aged past the batch interval.
const TICK: Duration = Duration::from_secs(1);
/// Pause after a failed upload round before the uploader tries again (doubles, capped).
const OUTAGE_PAUSE: Duration = Duration::from_secs(5);
const OUTAGE_PAUSE_MAX: Duration = Duration::from_secs(60);

/// The S3 archive sink: durable in the local spool, archived to S3 in the background.
pub struct S3Sink {
    inner: Arc<Inner>,
    task: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<SpoolLock>>,
}

struct Inner {
    spool: Mutex<Spool>,
    store: Store,
    dir: PathBuf,
    uri: String,
    upload_lock: tokio::sync::Mutex<()>,
    warned: AtomicBool,
    closed: AtomicBool,
    wake: Notify,
    stop: Notify,
}

impl S3Sink {
    /// Checks the bucket exists (a clear error before the run starts), recovers the spool, and
    /// resumes the chain from the newest spooled event or, with an empty spool, from the newest
    /// object under the prefix. Segments left by an earlier run are uploaded in the background.
    ///
    /// Must be called inside a Tokio runtime (the uploader is a task on it).
    pub async fn open(cfg: S3Config, signing: Option<Signing>) -> Result<Self, S3Error> {
        cfg.validate()?;
        let dir = cfg.spool_dir();
        let uri = cfg.uri();
        let store = Store::connect(&cfg).await;
        let lock = take_lock(&dir)?;
        blocking(&dir, {
            let dir = dir.clone();
            move || spool::recover(&dir)
        })
        .await?;
        let spooled = !ready_segments(&dir)
            .map_err(|e| S3Error::io(&dir, e))?
            .is_empty();
        match store.check_bucket().await {
            Ok(()) => {}
            // The spool knows the chain head, so an unreachable S3 need not stop the run.
            Err(e) if e.is_transient() && spooled => tracing::warn!(
                "{uri}: S3 is not reachable ({e}); events stay in the spool {} until it is",
                dir.display()
            ),
            Err(e) => return Err(e),
        }
        let fallback = if spooled {
            Resume::default()
        } else {
            store.resume_point().await?
        };
        let spool = blocking(&dir, {
            let dir = dir.clone();
            move || {
                Spool::open(
                    &dir,
                    cfg.sync_mode,
                    cfg.batch_events,
                    cfg.batch_interval,
                    fallback,
                    signing.as_ref(),
                )
            }
        })
        .await?;
        let inner = Arc::new(Inner {
            spool: Mutex::new(spool),
            store,
            dir,
            uri,
            upload_lock: tokio::sync::Mutex::new(()),
            warned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            wake: Notify::new(),
            stop: Notify::new(),
        });
        if spooled {
            inner.wake.notify_one();
        }
        let task = tokio::spawn(uploader(inner.clone()));
        Ok(Self {
            inner,
            task: Mutex::new(Some(task)),
            lock: Mutex::new(Some(lock)),
        })
    }

    /// `(seq, hash)` of the last event sealed into this stream.
    pub fn head(&self) -> Result<(u64, String), AuditError> {
        Ok(self.inner.lock_spool()?.head())
    }
}

impl Drop for S3Sink {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock() {
            if let Some(t) = task.take() {
                t.abort();
            }
        }
    }
}

impl Inner {
    fn lock_spool(&self) -> Result<MutexGuard<'_, Spool>, AuditError> {
        self.spool.lock().map_err(|_| AuditError::Backend {
            sink: self.uri.clone(),
            message: "the spool lock was poisoned by an earlier panic".into(),
        })
    }

    /// Runs `f` on the spool off the async threads (it may fsync).
    async fn with_spool<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Spool) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, AuditError> {
        let me = self.clone();
        let res = tokio::task::spawn_blocking(move || {
            let mut spool = me.lock_spool()?;
            f(&mut spool).map_err(|source| AuditError::Io {
                sink: me.uri.clone(),
                source,
            })
        })
        .await;
        match res {
            Ok(r) => r,
            Err(e) => Err(AuditError::Backend {
                sink: self.uri.clone(),
                message: format!("spool task failed: {e}"),
            }),
        }
    }

    /// Uploads every ready segment; warns once per outage when S3 fails.
    async fn upload_round(&self) -> bool {
        let _one_at_a_time = self.upload_lock.lock().await;
        let mut uploaded = Vec::new();
        match upload_ready(&self.store, &self.dir, &mut uploaded).await {
            Ok(()) => {
                if !uploaded.is_empty() && self.warned.swap(false, Ordering::Relaxed) {
                    tracing::warn!("{}: S3 uploads work again", self.uri);
                }
                true
            }
            Err(e) => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "{}: upload failed ({e}); events are safe in the spool {} and are uploaded \
                         when S3 answers again, by the next run, or by `cxone-uuid audit flush {}`",
                        self.uri,
                        self.dir.display(),
                        self.uri
                    );
                }
                false
            }
        }
    }
}

/// The background uploader: wakes when a segment is sealed or every tick, seals aged segments,
/// uploads, and pauses (doubling) while S3 is failing.
async fn uploader(inner: Arc<Inner>) {
    let mut pause_until: Option<Instant> = None;
    let mut pause = OUTAGE_PAUSE;
    loop {
        tokio::select! {
            _ = inner.stop.notified() => return,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(TICK) => {
                if let Err(e) = inner.with_spool(|s| s.roll_if_aged()).await {
                    tracing::warn!("{e}");
                }
            }
        }
        if pause_until.is_some_and(|t| Instant::now() < t) {
            continue;
        }
        if inner.upload_round().await {
            pause_until = None;
            pause = OUTAGE_PAUSE;
        } else {
            pause_until = Some(Instant::now() + pause);
            pause = (pause * 2).min(OUTAGE_PAUSE_MAX);
        }
    }
}

/// Uploads ready segments oldest first, deleting each only after S3 confirmed it.
async fn upload_ready(
    store: &Store,
    dir: &Path,
    uploaded: &mut Vec<ObjectRef>,
) -> Result<(), S3Error> {
    for seg in ready_segments(dir).map_err(|e| S3Error::io(dir, e))? {
        let key = store.upload_segment(&seg).await?;
        tokio::fs::remove_file(&seg.path)
            .await
            .map_err(|e| S3Error::io(&seg.path, e))?;
        spool::sync_dir(dir).map_err(|e| S3Error::io(dir, e))?;
        tracing::debug!("uploaded {key}");
        uploaded.push(ObjectRef {
            key,
            first: seg.first,
            last: seg.last,
        });
    }
    Ok(())
}

fn take_lock(dir: &Path) -> Result<SpoolLock, S3Error> {
    match SpoolLock::acquire(dir).map_err(|e| S3Error::io(dir, e))? {
        Ok(lock) => Ok(lock),
        Err(pid) => Err(S3Error::Config(format!(
            "the spool {} is in use by another cxone-uuid process (pid {pid}): wait for it to \
             finish, or give this one its own --s3-spool",
            dir.display()
        ))),
    }
}

async fn blocking<T: Send + 'static>(
    dir: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, S3Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|e| S3Error::io(dir, e)),
        Err(e) => Err(S3Error::io(dir, std::io::Error::other(e.to_string()))),
    }
}

#[async_trait]
impl AuditSink for S3Sink {
    async fn append(&self, batch: &[AuditEvent]) -> Result<(), AuditError> {
        if self.inner.closed.load(Ordering::Relaxed) {
            return Err(AuditError::Closed {
                sink: self.inner.uri.clone(),
                what: cxone_uuid_audit::Closable::Sink,
            });
        }
        let batch = batch.to_vec();
        if self.inner.with_spool(move |s| s.append(batch)).await? {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    async fn sync(&self) -> Result<(), AuditError> {
        if self.inner.with_spool(|s| s.sync()).await? {
            self.inner.wake.notify_one();
        }
        Ok(())
    }

    /// Syncs and seals the last segment, stops the uploader and uploads what is left. An S3
    /// failure here is a warning, not an error: the events are durable in the spool.
    async fn close(&self) -> Result<(), AuditError> {
        if self.inner.closed.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.with_spool(|s| s.finish()).await?;
        self.inner.stop.notify_one();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
        self.inner.upload_round().await;
        if let Ok(mut lock) = self.lock.lock() {
            lock.take();
        }
        Ok(())
    }

    fn describe(&self) -> String {
        self.inner.uri.clone()
    }
}

/// What [`flush`] did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct FlushReport {
    /// Objects uploaded, oldest first.
    pub uploaded: Vec<ObjectRef>,
    /// Segments still in the spool (non-zero only when an upload failed).
    pub remaining: usize,
}

impl FlushReport {
    /// Events uploaded.
    pub fn events(&self) -> u64 {
        self.uploaded.iter().map(|o| o.last - o.first + 1).sum()
    }
}

/// Uploads everything in the destination's spool, including segments a crashed run left open.
/// Run it when no run is writing to the same spool. Fails with the first upload error after
/// retries; what was uploaded before stays uploaded.
pub async fn flush(cfg: &S3Config) -> Result<FlushReport, S3Error> {
    cfg.validate()?;
    let dir = cfg.spool_dir();
    let store = Store::connect(cfg).await;
    if !dir.exists() {
        return Ok(FlushReport::default());
    }
    let _lock = take_lock(&dir)?;
    blocking(&dir, {
        let dir = dir.clone();
        move || spool::recover(&dir)
    })
    .await?;
    store.check_bucket().await?;
    let mut report = FlushReport::default();
    upload_ready(&store, &dir, &mut report.uploaded).await?;
    report.remaining = ready_segments(&dir)
        .map_err(|e| S3Error::io(&dir, e))?
        .len();
    Ok(report)
}

/// A range of seqs no object holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gap {
    /// First missing seq.
    pub first_missing: u64,
    /// Last missing seq.
    pub last_missing: u64,
    /// The object before the gap (none when the gap starts at seq 1).
    pub after: Option<String>,
    /// The object after the gap.
    pub before: String,
}

/// Where the chain stopped verifying.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Broken {
    /// The object holding the bad event.
    pub key: String,
    /// The first bad seq.
    pub seq: u64,
    /// Why, in words.
    pub reason: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Objects in the documented layout under the prefix.
    pub objects: usize,
    /// Events verified.
    pub events: u64,
    /// The last seq reached.
    pub last_seq: u64,
    /// The head hash.
    pub head: String,
    /// Missing ranges, in order.
    pub gaps: Vec<Gap>,
    /// Objects whose range another object already covers (should never exist).
    pub duplicates: Vec<String>,
    /// The first break in the chain, if any (verification stops there).
    pub broken: Option<Broken>,
    /// Checkpoint events seen (signatures are not checked here).
    pub checkpoints: u64,
    /// Segments still waiting in the local spool for this destination.
    pub spooled: usize,
    /// With a public key: what the signed checkpoints prove.
    pub signed: Option<cxone_uuid_audit::signing::SignedSummary>,
    /// With a public key, a chain intact to its end but not proven by it (no checkpoint signed
    /// by that key); a bad checkpoint inside the chain is in `broken`.
    pub unproven: Option<cxone_uuid_audit::ChainBreak>,
}

impl VerifyReport {
    /// No gap, no duplicate, no break.
    pub fn is_intact(&self) -> bool {
        self.gaps.is_empty() && self.duplicates.is_empty() && self.broken.is_none()
    }
}

/// Lists, downloads (checksums checked), orders and verifies the chain across every object
/// under the prefix. A missing range is reported as a [`Gap`] and verification continues after
/// it, so one lost object does not hide a later edit.
pub async fn verify(cfg: &S3Config) -> Result<VerifyReport, S3Error> {
    verify_signed(cfg, None).await
}

/// As [`verify`], also checking every signed checkpoint with `key` (when given), as a local
/// trail's verify does: a checkpoint signed by another key or edited breaks the chain there.
pub async fn verify_signed(
    cfg: &S3Config,
    key: Option<ed25519_dalek::VerifyingKey>,
) -> Result<VerifyReport, S3Error> {
    let with_key = |v: Verifier| match key {
        Some(k) => v.with_public_key(k),
        None => v,
    };
    cfg.validate()?;
    let store = Store::connect(cfg).await;
    store.check_bucket().await?;
    let objects = store.list().await?;
    let mut report = VerifyReport {
        objects: objects.len(),
        spooled: ready_segments(&cfg.spool_dir()).map_or(0, |s| s.len()),
        ..VerifyReport::default()
    };
    let mut verifier = with_key(Verifier::new());
    let mut counted = 0;
    let mut prev_key: Option<String> = None;
    'objects: for obj in objects {
        let expected = verifier.head().0 + 1;
        if obj.first < expected {
            report.duplicates.push(obj.key);
            continue;
        }
        let bytes = match store.get(&obj.key).await {
            Ok(b) => b,
            Err(S3Error::Corrupt { message, .. }) => {
                report.broken = Some(Broken {
                    key: obj.key,
                    seq: expected,
                    reason: message,
                });
                break;
            }
            Err(e) => return Err(e),
        };
        if obj.first > expected {
            report.gaps.push(Gap {
                first_missing: expected,
                last_missing: obj.first - 1,
                after: prev_key.clone(),
                before: obj.key.clone(),
            });
            let prev_hash = match spool::first_event(&bytes) {
                Ok(ev) => ev.prev_hash,
                Err(e) => {
                    report.broken = Some(Broken {
                        key: obj.key,
                        seq: obj.first,
                        reason: format!("unreadable first event: {e}"),
                    });
                    break;
                }
            };
            counted += verifier.count();
            let old = std::mem::replace(
                &mut verifier,
                with_key(Verifier::resume(Some((obj.first - 1, prev_hash)))),
            );
            report.checkpoints += old.finish(None).map_or(0, |s| s.checkpoints);
        }
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if let Err(brk) = verifier.feed_line(line) {
                report.broken = Some(Broken {
                    key: obj.key,
                    seq: brk.seq,
                    reason: brk.reason.to_string(),
                });
                break 'objects;
            }
        }
        if verifier.head().0 != obj.last {
            report.broken = Some(Broken {
                seq: verifier.head().0,
                reason: format!(
                    "the key names seqs {}-{} but the object ends at seq {}",
                    obj.first,
                    obj.last,
                    verifier.head().0
                ),
                key: obj.key,
            });
            break;
        }
        prev_key = Some(obj.key);
    }
    report.events = counted + verifier.count();
    let (last_seq, head) = verifier.head();
    report.last_seq = last_seq;
    report.head = head.to_string();
    match verifier.finish(None) {
        Ok(summary) => {
            report.checkpoints += summary.checkpoints;
            report.signed = summary.signed;
        }
        Err(brk) => report.unproven = Some(brk),
    }
    Ok(report)
}
