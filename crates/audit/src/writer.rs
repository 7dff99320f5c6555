//! Group commit: many producers, one background task, one sync per batch.
//!
//! Producers queue events; the task drains everything queued at that moment into one batch,
//! appends it, and syncs once for every `record_durable` caller waiting in it. Under load a
//! single fsync therefore covers many tasks' write-ahead records, which is what keeps the
//! write-ahead rule (a UUID's `action_submitted` is durable before its POST) cheap.
//!
//! A caller that keeps many durable records queued ahead of need (as `run` does) can also ask
//! the task to hold a sync back briefly until enough waiters share it ([`GroupCommit`]), as
//! PostgreSQL's `commit_delay` does: fewer, larger syncs for the same durability.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::{AuditError, AuditEvent, AuditSink, Closable, SyncMode};

/// Most events appended in one batch.
const MAX_BATCH: usize = 8192;
/// Queue depth before `record` waits (backpressure instead of unbounded memory).
const QUEUE: usize = 16 * 1024;
/// Plain records are synced at least this often in `batch` mode, even with no one waiting.
const IDLE_SYNC: Duration = Duration::from_millis(200);

type Reply = oneshot::Sender<Result<(), Failure>>;

/// Why the background task could not do what a caller waits for; shared by every waiter of a
/// batch, so the sink's error is behind an `Arc`.
#[derive(Debug, Clone)]
enum Failure {
    /// The sink failed on this batch (or on close).
    Now(Arc<AuditError>),
    /// The sink failed on an earlier batch, so this one was not written.
    Earlier(Arc<AuditError>),
    /// The writer was closed.
    Closed,
}

/// When a batch with durable waiters is synced.
///
/// Every fsync is a round trip to the disk (on a VM, several exits to the hypervisor), so a
/// caller with work staged ahead gains throughput by letting a sync wait for company; a caller
/// that has nothing else to do while it waits only loses latency. The default syncs at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// Sync as soon as this many `record_durable` callers are waiting (1: at once).
    pub waiters: usize,
    /// ...or once the batch's first waiter has waited this long, however many there are.
    pub max_delay: Duration,
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self {
            waiters: 1,
            max_delay: Duration::ZERO,
        }
    }
}

enum Cmd {
    Record(AuditEvent),
    Records(Vec<AuditEvent>),
    Durable(AuditEvent, Reply),
    Close(Reply),
}

/// Where a writer's records go.
#[derive(Clone)]
enum To {
    /// The background task.
    Task(mpsc::Sender<Cmd>),
    /// Nowhere ([`AuditWriter::discard`]); set once closed, so later records fail as a closed
    /// task's do.
    Nothing(Arc<AtomicBool>),
}

/// A cloneable handle to the background writer of one sink (usually a [`crate::Fanout`]).
#[derive(Clone)]
pub struct AuditWriter {
    to: To,
    failed: Arc<OnceLock<Arc<AuditError>>>,
    name: Arc<str>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("sink", &self.name)
            .finish()
    }
}

impl AuditWriter {
    /// Starts the background task on the current tokio runtime; every sync happens as soon as
    /// someone waits for it.
    pub fn spawn(sink: Box<dyn AuditSink>, mode: SyncMode) -> Self {
        Self::spawn_grouped(sink, mode, GroupCommit::default())
    }

    /// Like [`AuditWriter::spawn`], but in `batch` mode a sync waits (bounded by
    /// `group.max_delay`) until `group.waiters` durable records share it.
    pub fn spawn_grouped(sink: Box<dyn AuditSink>, mode: SyncMode, group: GroupCommit) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        let failed = Arc::new(OnceLock::new());
        let name: Arc<str> = sink.describe().into();
        tokio::spawn(run(sink, mode, group, rx, failed.clone()));
        Self {
            to: To::Task(tx),
            failed,
            name,
        }
    }

    /// A writer with nothing to write to (`--audit none`): records return at once and no task
    /// runs. A task with an empty sink cost every record a wake-up of another runtime thread
    /// (and the write-ahead record a round trip through it), on the path of every request.
    pub fn discard() -> Self {
        Self {
            to: To::Nothing(Arc::default()),
            failed: Arc::new(OnceLock::new()),
            name: "none".into(),
        }
    }

    /// The channel to the task, or the answer of a writer without one.
    fn sender(&self) -> Result<Option<&mpsc::Sender<Cmd>>, AuditError> {
        match &self.to {
            To::Task(tx) => Ok(Some(tx)),
            To::Nothing(closed) if closed.load(Ordering::SeqCst) => Err(self.closed()),
            To::Nothing(_) => Ok(None),
        }
    }

    fn err(&self, failure: Failure) -> AuditError {
        let sink = self.name.to_string();
        match failure {
            Failure::Now(cause) => AuditError::Writer {
                sink,
                earlier: false,
                cause,
            },
            Failure::Earlier(cause) => AuditError::Writer {
                sink,
                earlier: true,
                cause,
            },
            Failure::Closed => AuditError::Closed {
                sink,
                what: Closable::Writer,
            },
        }
    }

    fn check(&self) -> Result<(), AuditError> {
        // An atomic load on the path of every record (a mutex here cost a lock round trip).
        match self.failed.get() {
            Some(cause) => Err(self.err(Failure::Earlier(cause.clone()))),
            None => Ok(()),
        }
    }

    fn closed(&self) -> AuditError {
        self.err(Failure::Closed)
    }

    /// Queues `event`; it becomes durable with the next synced batch. Errors once the sink
    /// has failed, so producers stop early.
    pub async fn record(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.send(Cmd::Record(event)).await
    }

    /// Queues `events` in order, as one message: a producer with many at once (a generated
    /// batch's `uuid_generated` records) takes the channel once, not once per event.
    pub async fn record_all(&self, events: Vec<AuditEvent>) -> Result<(), AuditError> {
        if events.is_empty() {
            return self.check();
        }
        self.send(Cmd::Records(events)).await
    }

    /// Hands `cmd` to the task, unless the sink has failed or there is no task.
    async fn send(&self, cmd: Cmd) -> Result<(), AuditError> {
        self.check()?;
        let Some(tx) = self.sender()? else {
            return Ok(());
        };
        tx.send(cmd).await.map_err(|_| self.closed())
    }

    /// Queues `event` and returns once it (and everything queued before it) is durable
    /// according to the sync mode. This is the write-ahead step.
    pub async fn record_durable(&self, event: AuditEvent) -> Result<(), AuditError> {
        self.check()?;
        let Some(tx) = self.sender()? else {
            return Ok(());
        };
        let (reply, done) = oneshot::channel();
        tx.send(Cmd::Durable(event, reply))
            .await
            .map_err(|_| self.closed())?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(self.err(why)),
            Err(_) => Err(self.closed()),
        }
    }

    /// Writes what is queued, lets the sink close (final checkpoint, sync) and stops the task.
    pub async fn close(&self) -> Result<(), AuditError> {
        let tx = match &self.to {
            To::Task(tx) => tx,
            To::Nothing(closed) if closed.swap(true, Ordering::SeqCst) => return Err(self.closed()),
            To::Nothing(_) => return Ok(()),
        };
        let (reply, done) = oneshot::channel();
        tx.send(Cmd::Close(reply))
            .await
            .map_err(|_| self.closed())?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(self.err(why)),
            Err(_) => Err(self.closed()),
        }
    }
}

async fn run(
    sink: Box<dyn AuditSink>,
    mode: SyncMode,
    group: GroupCommit,
    mut rx: mpsc::Receiver<Cmd>,
    failed: Arc<OnceLock<Arc<AuditError>>>,
) {
    let mut batch: Vec<AuditEvent> = Vec::with_capacity(1024);
    let mut waiters: Vec<Reply> = Vec::new();
    let mut dirty = false;
    let mut last_sync = Instant::now();
    // The first failure sticks.
    let fail = |why: &Arc<AuditError>| {
        let _ = failed.set(why.clone());
    };
    let sticky = || failed.get().cloned();
    loop {
        let first = if dirty && mode == SyncMode::Batch {
            match tokio::time::timeout(IDLE_SYNC, rx.recv()).await {
                Ok(cmd) => cmd,
                Err(_) => {
                    // Idle: make the plain records durable too.
                    if sticky().is_none() {
                        if let Err(e) = sink.sync().await {
                            fail(&Arc::new(e));
                        }
                    }
                    dirty = false;
                    last_sync = Instant::now();
                    continue;
                }
            }
        } else {
            rx.recv().await
        };
        let Some(first) = first else {
            // Every handle dropped without close: still close the sink cleanly.
            let _ = sink.close().await;
            return;
        };
        let mut closing = None;
        let take = |cmd: Cmd,
                    batch: &mut Vec<AuditEvent>,
                    waiters: &mut Vec<Reply>,
                    closing: &mut Option<Reply>| match cmd {
            Cmd::Record(ev) => batch.push(ev),
            Cmd::Records(evs) => batch.extend(evs),
            Cmd::Durable(ev, r) => {
                batch.push(ev);
                waiters.push(r);
            }
            Cmd::Close(r) => *closing = Some(r),
        };
        take(first, &mut batch, &mut waiters, &mut closing);
        while closing.is_none() && batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(cmd) => take(cmd, &mut batch, &mut waiters, &mut closing),
                Err(_) => break,
            }
        }
        if mode == SyncMode::Batch && !waiters.is_empty() && waiters.len() < group.waiters {
            // Commit delay: the waiters are already queued, so the delay runs from now.
            let deadline = tokio::time::Instant::now() + group.max_delay;
            while closing.is_none() && waiters.len() < group.waiters && batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(cmd)) => take(cmd, &mut batch, &mut waiters, &mut closing),
                    // Deadline passed, or every handle is gone: sync what we have.
                    Ok(None) | Err(_) => break,
                }
            }
        }

        let result: Result<(), Failure> = match sticky() {
            Some(why) => Err(Failure::Earlier(why)),
            None => write(
                &*sink,
                mode,
                &batch,
                !waiters.is_empty(),
                &mut dirty,
                &mut last_sync,
            )
            .await
            .map_err(|e| Failure::Now(Arc::new(e))),
        };
        if let Err(Failure::Now(why)) = &result {
            fail(why);
        }
        batch.clear();
        for w in waiters.drain(..) {
            let _ = w.send(result.clone());
        }
        if let Some(reply) = closing {
            let closed = match sticky() {
                Some(why) => {
                    // Still release the store, but report the earlier failure.
                    let _ = sink.close().await;
                    Err(Failure::Now(why))
                }
                None => sink.close().await.map_err(|e| Failure::Now(Arc::new(e))),
            };
            // Later calls see a closed channel (closed before replying, so no call can slip in).
            rx.close();
            while let Ok(cmd) = rx.try_recv() {
                if let Cmd::Durable(_, r) | Cmd::Close(r) = cmd {
                    let _ = r.send(Err(Failure::Closed));
                }
            }
            let _ = reply.send(closed);
            return;
        }
    }
}

async fn write(
    sink: &dyn AuditSink,
    mode: SyncMode,
    batch: &[AuditEvent],
    waiting: bool,
    dirty: &mut bool,
    last_sync: &mut Instant,
) -> Result<(), AuditError> {
    if batch.is_empty() {
        return Ok(());
    }
    match mode {
        SyncMode::Always => {
            for ev in batch {
                sink.append(std::slice::from_ref(ev)).await?;
                sink.sync().await?;
            }
            *last_sync = Instant::now();
        }
        SyncMode::Batch => {
            sink.append(batch).await?;
            *dirty = true;
            if waiting || last_sync.elapsed() >= IDLE_SYNC {
                sink.sync().await?;
                *dirty = false;
                *last_sync = Instant::now();
            }
        }
        SyncMode::None => sink.append(batch).await?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::EventKind;
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting {
        appended: AtomicUsize,
        syncs: AtomicUsize,
        synced: AtomicUsize,
        closed: AtomicUsize,
        fail_sync: bool,
        /// The UUIDs appended, and those a completed sync covered: what was appended when
        /// the sync began, not what arrived while it ran.
        appended_ids: std::sync::Mutex<Vec<uuid::Uuid>>,
        synced_ids: std::sync::Mutex<std::collections::HashSet<uuid::Uuid>>,
    }

    #[async_trait]
    impl AuditSink for Counting {
        async fn append(&self, batch: &[AuditEvent]) -> Result<(), AuditError> {
            self.appended_ids
                .lock()
                .unwrap()
                .extend(batch.iter().filter_map(|e| e.uuid));
            self.appended.fetch_add(batch.len(), Ordering::SeqCst);
            Ok(())
        }
        async fn sync(&self) -> Result<(), AuditError> {
            if self.fail_sync {
                return Err(AuditError::Io {
                    sink: "t".into(),
                    source: std::io::Error::other("disk full"),
                });
            }
            let covered = self.appended.load(Ordering::SeqCst);
            let ids = self.appended_ids.lock().unwrap().clone();
            // A slow fsync lets many waiters pile up behind it.
            tokio::time::sleep(Duration::from_millis(5)).await;
            self.syncs.fetch_add(1, Ordering::SeqCst);
            self.synced.store(covered, Ordering::SeqCst);
            self.synced_ids.lock().unwrap().extend(ids);
            Ok(())
        }
        async fn close(&self) -> Result<(), AuditError> {
            self.closed.fetch_add(1, Ordering::SeqCst);
            self.sync().await
        }
        fn describe(&self) -> String {
            "counting".into()
        }
    }

    fn ev() -> AuditEvent {
        AuditEvent::new(EventKind::ActionSubmitted, uuid::Uuid::nil())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn durable_records_share_syncs_and_return_after_them() {
        let sink = Arc::new(Counting::default());
        let w = AuditWriter::spawn(Box::new(sink.clone()), SyncMode::Batch);
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let w = w.clone();
            let sink = sink.clone();
            tasks.push(tokio::spawn(async move {
                w.record(ev()).await.unwrap();
                let mut mine = ev();
                let id = uuid::Uuid::new_v4();
                mine.uuid = Some(id);
                w.record_durable(mine).await.unwrap();
                // Our own record, not just some record, is covered by a completed sync.
                assert!(
                    sink.synced_ids.lock().unwrap().contains(&id),
                    "record_durable returned before its record was synced"
                );
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        w.close().await.unwrap();
        assert_eq!(sink.appended.load(Ordering::SeqCst), 400);
        assert_eq!(sink.closed.load(Ordering::SeqCst), 1);
        let syncs = sink.syncs.load(Ordering::SeqCst);
        assert!(
            syncs < 200,
            "group commit: {syncs} syncs for 200 durable records"
        );
        assert!(
            matches!(w.record(ev()).await, Err(AuditError::Closed { .. })),
            "closed"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_grouped_sync_waits_for_company_and_one_sync_covers_them_all() {
        let sink = Arc::new(Counting::default());
        let group = GroupCommit {
            waiters: 16,
            max_delay: Duration::from_secs(30),
        };
        let w = AuditWriter::spawn_grouped(Box::new(sink.clone()), SyncMode::Batch, group);
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move { w.record_durable(ev()).await }));
            // Waiters arrive one by one, as a run's staged records do.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        // Without grouping the first waiter would be synced alone and the rest behind it.
        assert_eq!(sink.syncs.load(Ordering::SeqCst), 1);
        assert_eq!(sink.synced.load(Ordering::SeqCst), 16);
        w.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_grouped_sync_does_not_wait_past_its_delay_for_company_that_never_comes() {
        let sink = Arc::new(Counting::default());
        let group = GroupCommit {
            waiters: 64,
            max_delay: Duration::from_millis(20),
        };
        let w = AuditWriter::spawn_grouped(Box::new(sink.clone()), SyncMode::Batch, group);
        tokio::time::timeout(Duration::from_secs(10), w.record_durable(ev()))
            .await
            .expect("a lone waiter is synced once the delay has passed")
            .unwrap();
        assert_eq!(sink.synced.load(Ordering::SeqCst), 1);
        // Closing while a grouped sync would still wait does not wait for company either.
        let pending = {
            let w = w.clone();
            tokio::spawn(async move { w.record_durable(ev()).await })
        };
        tokio::task::yield_now().await;
        tokio::time::timeout(Duration::from_secs(10), w.close())
            .await
            .expect("close is not held back by the delay")
            .unwrap();
        let _ = pending.await.unwrap();
        assert_eq!(sink.appended.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_the_waiter_and_every_later_record() {
        let sink = Arc::new(Counting {
            fail_sync: true,
            ..Default::default()
        });
        let w = AuditWriter::spawn(Box::new(sink), SyncMode::Batch);
        let err = w.record_durable(ev()).await.unwrap_err();
        assert!(
            matches!(&err, AuditError::Writer { earlier: false, cause, .. }
                if matches!(**cause, AuditError::Io { .. })),
            "{err}"
        );
        assert!(matches!(
            w.record(ev()).await,
            Err(AuditError::Writer { earlier: true, .. })
        ));
        assert!(w.record_durable(ev()).await.is_err());
        assert!(w.close().await.is_err());
    }

    #[tokio::test]
    async fn a_batch_of_records_is_written_whole_and_in_order() {
        let sink = Arc::new(Counting::default());
        let w = AuditWriter::spawn(Box::new(sink.clone()), SyncMode::Batch);
        let ids: Vec<uuid::Uuid> = (0..300).map(|_| uuid::Uuid::new_v4()).collect();
        let tagged = |id: &uuid::Uuid| {
            let mut e = ev();
            e.uuid = Some(*id);
            e
        };
        w.record_all(ids[..100].iter().map(tagged).collect())
            .await
            .unwrap();
        w.record_all(Vec::new()).await.unwrap();
        w.record_durable(tagged(&ids[100])).await.unwrap();
        w.record_all(ids[101..].iter().map(tagged).collect())
            .await
            .unwrap();
        w.close().await.unwrap();
        assert_eq!(*sink.appended_ids.lock().unwrap(), ids);
        assert!(matches!(
            w.record_all(vec![ev()]).await,
            Err(AuditError::Closed { .. })
        ));
    }

    /// Plain records become durable once the writer has been quiet for [`IDLE_SYNC`], counted
    /// from the last record, not from the first.
    #[tokio::test(start_paused = true)]
    async fn plain_records_are_synced_after_a_quiet_spell() {
        let sink = Arc::new(Counting::default());
        let w = AuditWriter::spawn(Box::new(sink.clone()), SyncMode::Batch);
        let synced = || sink.synced.load(Ordering::SeqCst);
        w.record(ev()).await.unwrap();
        tokio::time::sleep(IDLE_SYNC * 3 / 4).await;
        assert_eq!(synced(), 0, "not quiet long enough yet");
        w.record(ev()).await.unwrap();
        tokio::time::sleep(IDLE_SYNC * 3 / 4).await;
        assert_eq!(synced(), 0, "the second record restarted the quiet spell");
        tokio::time::sleep(IDLE_SYNC / 2).await;
        assert_eq!(synced(), 2, "both synced after a quiet spell");
        let syncs = sink.syncs.load(Ordering::SeqCst);
        tokio::time::sleep(IDLE_SYNC * 5).await;
        assert_eq!(
            sink.syncs.load(Ordering::SeqCst),
            syncs,
            "nothing dirty, no sync"
        );
        w.close().await.unwrap();
    }

    #[tokio::test]
    async fn always_syncs_every_event() {
        let sink = Arc::new(Counting::default());
        let w = AuditWriter::spawn(Box::new(sink.clone()), SyncMode::Always);
        for _ in 0..3 {
            w.record(ev()).await.unwrap();
        }
        w.record_durable(ev()).await.unwrap();
        assert_eq!(sink.syncs.load(Ordering::SeqCst), 4);
        w.close().await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_writer_with_nothing_to_write_to_answers_at_once_and_runs_no_task() {
        let w = AuditWriter::discard();
        let tasks = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        assert_eq!(tasks, 0, "no background task");
        w.record(ev()).await.unwrap();
        w.record_durable(ev()).await.unwrap();
        // A clone shares the closed state, as clones of a task-backed writer share its channel.
        let other = w.clone();
        w.close().await.unwrap();
        let after = other.record(ev()).await.unwrap_err();
        assert!(matches!(after, AuditError::Closed { .. }), "{after}");
        assert!(w.record_durable(ev()).await.is_err());
        assert!(
            w.close().await.is_err(),
            "closed twice, as a task-backed writer"
        );
    }
}
