//! An in-process [`Registry`]: open addressing over 16-byte keys, about 23 bytes per UUID.
//!
//! Design, for the memory budget (≤ 24 bytes per UUID at 10 million; a `HashSet<u128>` needs
//! 28.5 and peaks near 42 while it grows):
//! * Slots are bare `u128`s; the nil UUID (never generated) marks an empty slot, so there is no
//!   per-slot metadata. Offering the nil UUID still works: it is tracked by a flag.
//! * The hash is the UUID's own bits folded to 64 and multiplied by an odd constant: v4 bits are
//!   already uniform, the multiply keeps v7 (whose top bits are a clock) and hand-made UUIDs
//!   from clustering. The slot is picked by fastrange (`(h * cap) >> 64`), so capacities need
//!   not be powers of two and [`MemoryRegistry::with_capacity`] sizes to a load of 0.7.
//! * The table is split into 64 segments, picked by the hash's top bits, that grow one at a time
//!   (by 1.5× once a segment passes a load of 0.75): a growth step holds one segment twice, not
//!   the whole table. Sized with `with_capacity(n)` and holding n: 16 / 0.7 ≈ 23 bytes per UUID
//!   (measured by the `core` bench). Grown from empty: 21.3 to 32 bytes per UUID, peak one
//!   segment (1/64 of the table) above that.
//! * A batch is inserted in order, and while one key is inserted the home slot of the key
//!   [`AHEAD`] places on is prefetched (`safe_arch::prefetch_t0`, a hint that never faults,
//!   wrapped safely by a kept crate, so the workspace's ban on `unsafe` holds), so the
//!   misses to the table overlap instead of coming one at a time. It replaced two passes over
//!   chunks of 256 keys (first only read each home slot, then probe and insert): `generate -n
//!   10000000` on the 2-core VM, four alternating runs, 0.37–0.42 against 0.42–0.55 s, user
//!   CPU 0.65–0.68 against 0.75–0.78 s. 8 keys ahead was slower (0.41–0.42 s), 32 the same as
//!   16. Where no prefetch exists (not x86-64) the slot is read ahead instead. What is left is
//!   the memory: at 1 million UUIDs (a 23 MB table) `generate` spends about 40 ns of CPU a
//!   UUID, at 10 million (229 MB) about 66, and `perf annotate` puts 80% of the insert's
//!   samples on its load of the slot and 68% of the loop's own on the prefetch: the core has
//!   as many misses in flight as it can take (on a VM a TLB miss also walks the host's page
//!   tables; this VM has no performance counters to count them).
//! * A sized table lives in anonymous mappings (`memmap2`, one a half), advised to use
//!   transparent huge pages and faulted in before the first insert. At 10 million UUIDs the
//!   table is 229 MB: in 4 KiB pages every insert also missed the TLB, and the first write to
//!   each of its 56,000 pages trapped into the kernel in the middle of the insert loop.
//!   Faulted in at once, in 2 MiB pages where the kernel allows (`madvise` mode, the usual
//!   default), `generate -n 10000000` took 0.8 of the time it took on the heap (1.05 against
//!   1.26 s, best of three on the 2-core VM; zeroing the pages, which any fresh table pays, is
//!   most of what is left), at the same peak memory: only the mapping's last partial huge page
//!   is not huge. Huge pages without faulting in first were slower than the heap: each 2 MiB
//!   fault then lands in the insert loop. A large table's two halves are faulted in on two
//!   threads at once ([`Half::pair`]): on a VM whose host takes freed memory back, the zeroing
//!   alone took a quarter of a fresh `generate -n 10000000`. Sorting a batch by home slot
//!   before inserting (radix partitioning, as hash joins do) was tried and gave nothing here:
//!   a batch is far sparser than the table, so the sorted accesses still land on a new cache
//!   line each (a batch large enough to share lines would break the memory budget). A table
//!   that outgrows its size moves the segment that overflows to the heap.
//! * What one core cannot overlap, two can: the table is kept in two halves, picked by the
//!   hash's top bit, each with its own mapping and lock. A batch is split between them in order
//!   (each half sees its keys in the batch's order, so the answers are those of inserting key
//!   by key), and when both halves of it hold at least [`PARALLEL_MIN`] keys the upper one is
//!   inserted on a helper thread while the caller inserts the lower. In a standalone copy, 10
//!   million inserts took 24 ns a key on two threads against 44 on one; the split must not
//!   branch per key (the half is random: a branch mispredicts every other key, 15.6 ns a key
//!   spent on the split alone), and the helper lives across batches rather than being started
//!   for each. `generate -n 10000000`, five alternating runs: 0.77 of the time of the
//!   single-threaded table (medians 0.63 against 0.82 s). The helper is started with the first
//!   batch large enough, only where a second core exists, and stops with the registry; small
//!   batches (`run`'s) stay on the caller's thread. Hand-written: rayon's `join` would do the
//!   hand-off, but it is not otherwise in the tree and brings a pool of a thread per core for
//!   one helper; a thread and two channels are the whole of it.

use std::ops::Range;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use async_trait::async_trait;
use memmap2::MmapMut;
use uuid::Uuid;

use crate::registry::{Novelty, Registry, RegistryError};

const SEGMENT_BITS: u32 = 6;
const SEGMENTS: usize = 1 << SEGMENT_BITS;
/// Segments in each half of the table (the hash's top bit picks the half).
const HALF_SEGMENTS: usize = SEGMENTS / 2;
const MIN_SEGMENT: usize = 16;
/// How many keys ahead of the insert a key's home slot is prefetched: enough to cover a
/// miss to memory at the insert loop's pace, few enough that the lines are still in L1.
const AHEAD: usize = 16;
/// Keys of a batch split into halves at a time: bounds the split buffers' memory, and keeps
/// positions in a `u32`.
const PIECE: usize = 1 << 20;
/// The fewest keys in each half of a piece for the upper half to go to the helper thread:
/// below it, handing over costs more than the second core wins.
const PARALLEL_MIN: usize = 4096;
/// The least size of each half for the two to be mapped and faulted in on two threads
/// ([`Half::pair`]): below it, starting a thread costs more than the second core wins.
const PARALLEL_FAULT_MIN: usize = 16 << 20;
/// UUIDs per call that the registry asks of a streaming caller (`generate`): large enough that
/// both halves of each batch pass [`PARALLEL_MIN`], small enough to stay a few MB.
const PREFERRED_BATCH: usize = 1 << 15;

/// An in-memory uniqueness registry for one process. Forgets everything when dropped.
#[derive(Debug)]
pub struct MemoryRegistry {
    inner: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    /// The segments whose hash's top bit is 0, and those whose top bit is 1. Each half has its
    /// own arena and lock, so the two halves of a batch are written from two threads at once
    /// (module docs). A half's lock is taken under the table's, or by the helper while the
    /// caller, holding the table's, waits for its answer: it is never contended.
    halves: [Arc<Mutex<Half>>; 2],
    has_nil: bool,
    /// Keys held, the nil UUID included.
    len: u64,
    /// The thread that inserts a large piece's upper half.
    helper: Helper,
    /// Split buffers, kept between batches: each half's keys, and where each came from in
    /// the piece.
    keys: [Vec<u128>; 2],
    from: [Vec<u32>; 2],
}

/// Half the segments, with their arena.
#[derive(Debug)]
struct Half {
    /// Every segment of a sized half, in one mapping (module docs); `None` when grown from
    /// empty or when the mapping could not be made.
    arena: Option<MmapMut>,
    segments: Vec<Segment>,
}

/// Whether the helper thread runs.
#[derive(Debug)]
enum Helper {
    /// Not yet needed: started with the first piece large enough.
    Idle,
    Running(Worker),
    /// One core only, the thread could not be started, or it stopped: every piece is inserted
    /// on the caller's thread.
    Off,
}

/// The helper thread and its two channels: keys in, the keys back with the positions of
/// those already held.
#[derive(Debug)]
struct Worker {
    jobs: Option<mpsc::Sender<Vec<u128>>>,
    answers: mpsc::Receiver<(Vec<u128>, Vec<u32>)>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        // Closing the job channel ends the thread's loop; it holds no job between batches.
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Helper {
    /// The running worker, started on first use where a second core is there to run it.
    fn worker(&mut self, upper: &Arc<Mutex<Half>>) -> Option<&mut Worker> {
        if matches!(self, Helper::Idle) {
            *self = if second_core() {
                Worker::start(Arc::clone(upper)).map_or(Helper::Off, Helper::Running)
            } else {
                Helper::Off
            };
        }
        match self {
            Helper::Running(w) => Some(w),
            _ => None,
        }
    }
}

impl Worker {
    fn start(upper: Arc<Mutex<Half>>) -> Option<Self> {
        let (jobs, job_rx) = mpsc::channel::<Vec<u128>>();
        let (answer_tx, answers) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("registry-insert".into())
            .spawn(move || {
                for keys in job_rx {
                    let held = lock(&upper).insert_all(&keys);
                    if answer_tx.send((keys, held)).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Worker {
            jobs: Some(jobs),
            answers,
            thread: Some(thread),
        })
    }
}

/// A half's lock. A panic while holding it cannot leave a half-written slot (a slot write is
/// one store), so the half is still consistent.
fn lock(half: &Mutex<Half>) -> MutexGuard<'_, Half> {
    half.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Debug)]
struct Segment {
    slots: Slots,
    len: usize,
}

/// Where a segment's slots are.
#[derive(Debug)]
enum Slots {
    Heap(Vec<u128>),
    /// A range of the table's arena, in slots.
    Arena(Range<usize>),
}

/// The arena's bytes as slots. Anonymous mappings are page aligned and the arena is made a
/// whole number of slots long, so the cast cannot fail for an arena this module made.
fn arena_slots(arena: &mut Option<MmapMut>) -> &mut [u128] {
    match arena {
        Some(map) => bytemuck::try_cast_slice_mut(&mut map[..]).unwrap_or_default(),
        None => &mut [],
    }
}

#[inline]
fn hash(key: u128) -> u64 {
    let fold = (key as u64) ^ ((key >> 64) as u64).rotate_left(29);
    fold.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

#[inline]
fn fastrange(h: u64, n: usize) -> usize {
    ((u128::from(h) * n as u128) >> 64) as usize
}

#[inline]
fn home(h: u64, cap: usize) -> usize {
    fastrange(h << SEGMENT_BITS, cap)
}

#[inline]
fn segment_of(h: u64) -> usize {
    (h >> (64 - SEGMENT_BITS)) as usize
}

impl Segment {
    fn on_heap(cap: usize) -> Self {
        Self {
            slots: Slots::Heap(vec![0; cap.max(MIN_SEGMENT)]),
            len: 0,
        }
    }

    #[inline]
    fn slots<'a>(&'a self, arena: &'a [u128]) -> &'a [u128] {
        match &self.slots {
            Slots::Heap(v) => v,
            Slots::Arena(r) => arena.get(r.clone()).unwrap_or_default(),
        }
    }

    /// Inserts a non-nil key; false when it was already there.
    #[inline]
    fn insert(&mut self, arena: &mut [u128], key: u128, h: u64) -> bool {
        let cap = match &self.slots {
            Slots::Heap(v) => v.len(),
            Slots::Arena(r) => r.len(),
        };
        if (self.len + 1) * 4 > cap * 3 {
            self.grow(arena);
        }
        let slots = match &mut self.slots {
            Slots::Heap(v) => &mut v[..],
            Slots::Arena(r) => &mut arena[r.clone()],
        };
        let cap = slots.len();
        let mut i = home(h, cap);
        loop {
            let s = slots[i];
            if s == key {
                return false;
            }
            if s == 0 {
                slots[i] = key;
                self.len += 1;
                return true;
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
    }

    /// Moves the keys into a heap table 1.5 times the size (an arena segment leaves its range
    /// unused: a sized table only grows when its size was wrong).
    fn grow(&mut self, arena: &mut [u128]) {
        let old = self.slots(arena).len();
        let new_cap = (old * 3 / 2).max(MIN_SEGMENT);
        let old = std::mem::replace(&mut self.slots, Slots::Heap(vec![0; new_cap]));
        self.len = 0;
        let old_keys: &[u128] = match &old {
            Slots::Heap(v) => v,
            Slots::Arena(r) => &arena[r.clone()],
        };
        for &key in old_keys.iter().filter(|&&k| k != 0) {
            self.insert(&mut [], key, hash(key));
        }
    }
}

impl Half {
    /// The two halves of a table of `cap` slots a segment. Where a second core exists and the
    /// table is large, the upper half is mapped and faulted in on a thread of its own while
    /// this one does the lower: on a VM whose host takes freed memory back (free page
    /// reporting), a fresh table's pages are first faulted on the host too, and 229 MB took
    /// 165 ms on one thread against 96 on two (the 2-core VM, a C loop over the same
    /// mapping, three cold rounds each); with the host's pages still there, 20 against 11.
    /// `generate -n 10000000` spent a quarter of its time in that zeroing, with every other
    /// thread idle.
    fn pair(cap: usize) -> [Half; 2] {
        let bytes = cap
            .saturating_mul(HALF_SEGMENTS)
            .saturating_mul(size_of::<u128>());
        if bytes < PARALLEL_FAULT_MIN || !second_core() {
            return [Half::sized(cap), Half::sized(cap)];
        }
        std::thread::scope(|scope| {
            let upper = std::thread::Builder::new()
                .name("registry-map".into())
                .spawn_scoped(scope, || Half::sized(cap));
            let lower = Half::sized(cap);
            // A thread that could not start or panicked: map that half here instead.
            let upper = upper
                .ok()
                .and_then(|t| t.join().ok())
                .unwrap_or_else(|| Half::sized(cap));
            [lower, upper]
        })
    }

    /// A half of `cap` slots a segment: in one mapping, or on the heap where none is made.
    fn sized(cap: usize) -> Self {
        let arena = if cap == 0 {
            None
        } else {
            map_arena(HALF_SEGMENTS, cap)
        };
        let segments = (0..HALF_SEGMENTS)
            .map(|i| match (&arena, cap) {
                (_, 0) => Segment {
                    slots: Slots::Heap(Vec::new()),
                    len: 0,
                },
                (Some(_), _) => Segment {
                    slots: Slots::Arena(i * cap..(i + 1) * cap),
                    len: 0,
                },
                (None, _) => Segment::on_heap(cap),
            })
            .collect();
        Half { arena, segments }
    }

    /// Inserts non-nil `keys` in order, the home slot of the key [`AHEAD`] places on asked
    /// for while this one is inserted ([`prefetch`]); answers the positions of those already
    /// held (earlier in `keys` included).
    fn insert_all(&mut self, keys: &[u128]) -> Vec<u32> {
        let mut held = Vec::new();
        let Half { arena, segments } = self;
        let arena = arena_slots(arena);
        for (j, &key) in keys.iter().enumerate() {
            if let Some(&next) = keys.get(j + AHEAD) {
                prefetch(segments, arena, next);
            }
            let h = hash(key);
            if !segments[half_segment(h)].insert(arena, key, h) {
                // Below PIECE, so it fits.
                held.push(j as u32);
            }
        }
        held
    }

    /// Whether non-nil `key`, hashed to `h`, is held.
    fn contains(&mut self, key: u128, h: u64) -> bool {
        let Half { arena, segments } = self;
        let slots = segments[half_segment(h)].slots(arena_slots(arena));
        let cap = slots.len();
        if cap == 0 {
            return false;
        }
        let mut i = home(h, cap);
        loop {
            match slots[i] {
                0 => return false,
                s if s == key => return true,
                _ => {
                    i += 1;
                    if i == cap {
                        i = 0;
                    }
                }
            }
        }
    }

    /// Bytes held: the arena, the segment headers and heap slots.
    fn bytes(&self) -> usize {
        self.arena.as_ref().map_or(0, |m| m.len())
            + self.segments.capacity() * size_of::<Segment>()
            + self
                .segments
                .iter()
                .map(|s| match &s.slots {
                    Slots::Heap(v) => v.capacity() * size_of::<u128>(),
                    Slots::Arena(_) => 0,
                })
                .sum::<usize>()
    }
}

/// The segment within its half.
#[inline]
fn half_segment(h: u64) -> usize {
    segment_of(h) % HALF_SEGMENTS
}

/// The half a hash belongs to (its top bit).
#[inline]
fn half_of(h: u64) -> usize {
    (h >> 63) as usize
}

/// Asks for `key`'s home slot to be brought into the cache, without waiting for it: the
/// inserts that follow overlap their misses instead of taking them one at a time.
#[inline]
fn prefetch(segments: &[Segment], arena: &[u128], key: u128) {
    let h = hash(key);
    let slots = segments[half_segment(h)].slots(arena);
    prefetch_slot(slots, home(h, slots.len()));
}

/// x86-64: a prefetch instruction (a hint: it never faults and the core does not wait for it).
#[cfg(target_arch = "x86_64")]
#[inline]
fn prefetch_slot(slots: &[u128], at: usize) {
    if let Some(slot) = slots.get(at) {
        safe_arch::prefetch_t0(slot);
    }
}

/// Elsewhere (no stable safe prefetch): a load whose value is kept alive, which the core
/// still issues ahead of the inserts before it.
#[cfg(not(target_arch = "x86_64"))]
#[inline]
fn prefetch_slot(slots: &[u128], at: usize) {
    std::hint::black_box(slots.get(at).copied());
}

impl Table {
    /// Checks and inserts one piece (at most [`PIECE`] keys), writing each answer to `out`.
    ///
    /// The piece is split by half, in order, without a branch per key (the half is random,
    /// so a branch would mispredict every other key: 15.6 ns a key against about 2 in a
    /// standalone copy). The upper half goes to the helper thread when both halves are
    /// large, while this thread inserts the lower; else both are inserted here. Each key
    /// lives in one half, and each half takes its keys in the piece's order, so the answers
    /// are those of inserting the piece key by key.
    fn insert_piece(&mut self, ids: &[Uuid], out: &mut [Novelty]) {
        let Table {
            halves,
            has_nil,
            len,
            helper,
            keys,
            from,
        } = self;
        let [lo, hi] = keys;
        let [lo_from, hi_from] = from;
        // Every key is written to both sides and kept on one, so each side needs room for the
        // whole piece. Grown only, never cleared: only the first `nl` / `nh` entries are read,
        // and zeroing 1.3 MB of buffers a batch was 2% of `generate`'s calling thread.
        for v in [&mut *lo, &mut *hi] {
            room_for(v, ids.len());
        }
        for v in [&mut *lo_from, &mut *hi_from] {
            room_for(v, ids.len());
        }
        let (mut nl, mut nh) = (0, 0);
        for (i, id) in ids.iter().enumerate() {
            let key = id.as_u128();
            if key == 0 {
                // Never generated: offered by hand, and tracked by a flag.
                if *has_nil {
                    out[i] = Novelty::Duplicate;
                } else {
                    *has_nil = true;
                    *len += 1;
                }
                continue;
            }
            let up = half_of(hash(key));
            lo[nl] = key;
            hi[nh] = key;
            // Below PIECE, so it fits.
            lo_from[nl] = i as u32;
            hi_from[nh] = i as u32;
            nl += 1 - up;
            nh += up;
        }
        // The upper keys may go to the helper as a whole vector.
        hi.truncate(nh);
        let lo = &lo[..nl];
        let mut mark = |keys: &[u128], from: &[u32], held: &[u32]| {
            for &j in held {
                out[from[j as usize] as usize] = Novelty::Duplicate;
            }
            *len += (keys.len() - held.len()) as u64;
        };
        let [lower, upper] = &*halves;
        // Whether the upper half went to the helper, and whether the helper is gone.
        let (mut sent, mut gone) = (false, false);
        if nl >= PARALLEL_MIN && nh >= PARALLEL_MIN {
            if let Some(w) = helper.worker(upper) {
                match w.jobs.as_ref().map(|jobs| jobs.send(std::mem::take(hi))) {
                    Some(Ok(())) => sent = true,
                    Some(Err(back)) => {
                        *hi = back.0;
                        gone = true;
                    }
                    None => gone = true,
                }
            }
        }
        let held = lock(lower).insert_all(lo);
        mark(lo, lo_from, &held);
        let answer = match helper {
            Helper::Running(w) if sent => w.answers.recv().ok(),
            _ => None,
        };
        match answer {
            Some((keys, held)) => {
                mark(&keys, hi_from, &held);
                *hi = keys;
            }
            None => {
                if sent {
                    // The helper stopped holding the upper half (it panicked): this thread
                    // inserts it. Keys the helper had already put in answer as duplicates,
                    // the safe answer (the caller makes another UUID), never as new twice.
                    *hi = hi_from[..nh]
                        .iter()
                        .map(|&i| ids[i as usize].as_u128())
                        .collect();
                    gone = true;
                }
                if gone {
                    *helper = Helper::Off;
                }
                let held = lock(upper).insert_all(hi);
                mark(hi, hi_from, &held);
            }
        }
    }
}

/// Whether a second core is there to run the helper thread or map a half.
fn second_core() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
}

/// Grows `v` to at least `n` entries, keeping what it holds: a split buffer is overwritten
/// from the start, so only its length matters.
fn room_for<T: Copy + Default>(v: &mut Vec<T>, n: usize) {
    if v.len() < n {
        v.resize(n, T::default());
    }
}

/// One zeroed mapping for `segments` segments of `cap` slots, faulted in (module docs); `None`
/// where the system will not map it, and the table then lives on the heap.
fn map_arena(segments: usize, cap: usize) -> Option<MmapMut> {
    let bytes = segments.checked_mul(cap)?.checked_mul(size_of::<u128>())?;
    let mut map = MmapMut::map_anon(bytes).ok()?;
    // Advice only: where huge pages are off or unknown the table keeps 4 KiB pages.
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::HugePage);
    let slots: &mut [u128] = bytemuck::try_cast_slice_mut(&mut map[..]).ok()?;
    // Fault every page in now, in order, rather than one at a time inside the insert loop.
    // The stores keep the zeros a fresh mapping already has.
    const PAGE_SLOTS: usize = 4096 / size_of::<u128>();
    for i in (0..slots.len()).step_by(PAGE_SLOTS) {
        slots[i] = 0;
    }
    Some(map)
}

impl Default for MemoryRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRegistry {
    /// An empty registry that grows as needed (see the module docs for its memory use).
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// A registry sized once to hold `expected` UUIDs at about 23 bytes each, without growing.
    /// Sizing is capped at 2^26 UUIDs (1.5 GB); beyond that it grows.
    pub fn with_capacity(expected: usize) -> Self {
        let expected = expected.min(1 << 26);
        let per = expected.div_ceil(SEGMENTS);
        // Load 0.7, plus four standard deviations of a segment's share so none has to grow.
        let slack = 4 * (per as f64).sqrt() as usize + 8;
        let cap = if expected == 0 {
            0
        } else {
            per * 10 / 7 + slack
        };
        Self {
            inner: Mutex::new(Table {
                halves: Half::pair(cap).map(|h| Arc::new(Mutex::new(h))),
                has_nil: false,
                len: 0,
                helper: Helper::Idle,
                keys: Default::default(),
                from: Default::default(),
            }),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave a half-written slot (a slot write is one
        // store), so the table is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Synchronous check-and-insert, the body of the [`Registry`] method.
    pub fn insert_batch(&self, ids: &[Uuid]) -> Vec<Novelty> {
        let mut table = self.table();
        let mut out = vec![Novelty::New; ids.len()];
        for (piece, out) in ids.chunks(PIECE).zip(out.chunks_mut(PIECE)) {
            table.insert_piece(piece, out);
        }
        out
    }

    /// Whether `id` is held.
    pub fn contains(&self, id: &Uuid) -> bool {
        let key = id.as_u128();
        let table = self.table();
        if key == 0 {
            return table.has_nil;
        }
        let h = hash(key);
        let held = lock(&table.halves[half_of(h)]).contains(key, h);
        held
    }

    /// How many UUIDs are held.
    pub fn count(&self) -> u64 {
        self.table().len
    }

    /// Bytes held by the table (the arenas, heap slots and segment headers), for the memory
    /// report.
    pub fn heap_bytes(&self) -> usize {
        let t = self.table();
        let bytes = t.halves.iter().map(|h| lock(h).bytes()).sum();
        bytes
    }

    /// [`Self::heap_bytes`] divided by the number of UUIDs held (0 when empty).
    pub fn bytes_per_uuid(&self) -> f64 {
        let n = self.count();
        if n == 0 {
            0.0
        } else {
            self.heap_bytes() as f64 / n as f64
        }
    }
}

#[async_trait]
impl Registry for MemoryRegistry {
    async fn check_and_insert(&self, ids: &[Uuid]) -> Result<Vec<Novelty>, RegistryError> {
        Ok(self.insert_batch(ids))
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }

    async fn len(&self) -> Result<Option<u64>, RegistryError> {
        Ok(Some(self.count()))
    }

    fn preferred_batch(&self) -> usize {
        PREFERRED_BATCH
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn answers_like_a_hash_set_while_growing() {
        let reg = MemoryRegistry::new();
        let mut model = HashSet::new();
        // Sequential keys (a worst case for a weak hash) and repeats, well past several growths.
        let ids: Vec<Uuid> = (0..50_000u128)
            .chain(0..1000)
            .chain([u128::MAX, 0, 0])
            .map(Uuid::from_u128)
            .collect();
        let answers = reg.insert_batch(&ids);
        for (id, a) in ids.iter().zip(answers) {
            let expected = if model.insert(*id) {
                Novelty::New
            } else {
                Novelty::Duplicate
            };
            assert_eq!(a, expected, "{id}");
        }
        assert_eq!(reg.count(), model.len() as u64);
        assert!(model.iter().all(|id| reg.contains(id)));
        assert!(!reg.contains(&Uuid::from_u128(77_777)));
    }

    #[test]
    fn a_sized_registry_offered_more_than_its_size_still_answers_like_a_hash_set() {
        // Sized for 1,000 (its segments live in the arena), offered 40 times that: every
        // segment overflows to the heap, and what was in the arena moves with it.
        let reg = MemoryRegistry::with_capacity(1000);
        assert!(
            reg.table().halves.iter().all(|h| lock(h).arena.is_some()),
            "a sized table is mapped"
        );
        let ids: Vec<Uuid> = (1..40_000u128)
            .map(|i| Uuid::from_u128(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)))
            .collect();
        let (first, rest) = ids.split_at(900);
        assert!(reg.insert_batch(first).iter().all(|a| *a == Novelty::New));
        assert!(reg.insert_batch(rest).iter().all(|a| *a == Novelty::New));
        assert!(reg
            .insert_batch(&ids)
            .iter()
            .all(|a| *a == Novelty::Duplicate));
        assert_eq!(reg.count(), ids.len() as u64);
        assert!(ids.iter().all(|id| reg.contains(id)));
        assert!(!reg.contains(&Uuid::from_u128(7)));
        let t = reg.table();
        assert!(t.halves.iter().all(|h| lock(h)
            .segments
            .iter()
            .all(|s| matches!(s.slots, Slots::Heap(_)))));
    }

    #[test]
    fn duplicates_within_one_batch_are_new_then_duplicate() {
        let reg = MemoryRegistry::with_capacity(10);
        let a = Uuid::from_u128(0xdead_beef);
        assert_eq!(
            reg.insert_batch(&[a, a]),
            vec![Novelty::New, Novelty::Duplicate]
        );
        assert_eq!(reg.insert_batch(&[a]), vec![Novelty::Duplicate]);
    }

    #[test]
    fn sized_registry_stays_under_24_bytes_per_uuid() {
        let n = 1_000_000;
        let reg = MemoryRegistry::with_capacity(n);
        let before = reg.heap_bytes();
        let mut ids = Vec::new();
        crate::Generator::new(crate::UuidVersion::V4)
            .fill(&mut ids, n)
            .unwrap();
        assert!(reg.insert_batch(&ids).iter().all(|a| *a == Novelty::New));
        assert_eq!(reg.heap_bytes(), before, "a sized registry must not grow");
        let bpu = reg.bytes_per_uuid();
        assert!(bpu <= 24.0, "{bpu} bytes per UUID");
    }

    /// Keys that repeat within a batch and across batches, large enough that each half of a
    /// piece goes to its own thread; and the nil UUID among them.
    fn big_batches() -> Vec<Vec<Uuid>> {
        let mix =
            |i: u128| Uuid::from_u128(i.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835));
        let first: Vec<Uuid> = (1..40_000u128).chain(1..100).map(mix).collect();
        let second: Vec<Uuid> = (30_000..70_000u128)
            .map(mix)
            .chain([Uuid::nil(), Uuid::nil()])
            .collect();
        vec![first, second]
    }

    fn expected(model: &mut HashSet<Uuid>, batch: &[Uuid]) -> Vec<Novelty> {
        batch
            .iter()
            .map(|id| {
                if model.insert(*id) {
                    Novelty::New
                } else {
                    Novelty::Duplicate
                }
            })
            .collect()
    }

    #[test]
    fn large_batches_split_across_threads_answer_like_a_hash_set() {
        for reg in [MemoryRegistry::with_capacity(70_000), MemoryRegistry::new()] {
            let mut model = HashSet::new();
            for batch in big_batches() {
                assert_eq!(reg.insert_batch(&batch), expected(&mut model, &batch));
            }
            assert_eq!(reg.count(), model.len() as u64);
            assert!(model.iter().all(|id| reg.contains(id)));
            assert_eq!(
                matches!(reg.table().helper, Helper::Running(_)),
                second_core(),
                "the helper runs where there is a second core"
            );
        }
    }

    /// A helper that takes the upper half and stops without answering (as one that panicked
    /// would): the caller inserts that half itself and answers the same, and later batches
    /// stay on the caller's thread.
    #[test]
    fn a_helper_that_stops_mid_batch_loses_no_key() {
        let reg = MemoryRegistry::with_capacity(70_000);
        let (jobs, job_rx) = mpsc::channel::<Vec<u128>>();
        let (answer_tx, answers) = mpsc::channel::<(Vec<u128>, Vec<u32>)>();
        let thread = std::thread::spawn(move || {
            let _ = job_rx.recv();
        });
        reg.table().helper = Helper::Running(Worker {
            jobs: Some(jobs),
            answers,
            thread: Some(thread),
        });
        // No answer will ever come.
        drop(answer_tx);
        let mut model = HashSet::new();
        for batch in big_batches() {
            assert_eq!(reg.insert_batch(&batch), expected(&mut model, &batch));
        }
        assert_eq!(reg.count(), model.len() as u64);
        assert!(matches!(reg.table().helper, Helper::Off));
    }
}
