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
//! * Batches are looked up in two passes over chunks: the first only reads each home slot
//!   (independent loads the CPU overlaps), the second probes and inserts in order, mostly from
//!   cache. That is the "prefetch" without `unsafe`.

use std::sync::Mutex;

use async_trait::async_trait;
use uuid::Uuid;

use crate::registry::{Novelty, Registry, RegistryError};

const SEGMENT_BITS: u32 = 6;
const SEGMENTS: usize = 1 << SEGMENT_BITS;
const MIN_SEGMENT: usize = 16;
/// Chunk of a batch whose home slots are touched before probing (fits in L1/L2).
const CHUNK: usize = 256;

/// An in-memory uniqueness registry for one process. Forgets everything when dropped.
#[derive(Debug)]
pub struct MemoryRegistry {
    inner: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    segments: Vec<Segment>,
    has_nil: bool,
    len: u64,
}

#[derive(Debug, Default)]
struct Segment {
    slots: Vec<u128>,
    len: usize,
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

impl Segment {
    fn with_slots(cap: usize) -> Self {
        Self {
            slots: vec![0; cap.max(MIN_SEGMENT)],
            len: 0,
        }
    }

    /// Inserts a non-nil key; false when it was already there.
    #[inline]
    fn insert(&mut self, key: u128, h: u64) -> bool {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let cap = self.slots.len();
        let mut i = home(h, cap);
        loop {
            let s = self.slots[i];
            if s == key {
                return false;
            }
            if s == 0 {
                self.slots[i] = key;
                self.len += 1;
                return true;
            }
            i += 1;
            if i == cap {
                i = 0;
            }
        }
    }

    fn grow(&mut self) {
        let new_cap = (self.slots.len() * 3 / 2).max(MIN_SEGMENT);
        let old = std::mem::replace(&mut self.slots, vec![0; new_cap]);
        self.len = 0;
        for key in old.into_iter().filter(|&k| k != 0) {
            self.insert(key, hash(key));
        }
    }
}

impl Table {
    #[inline]
    fn insert(&mut self, key: u128) -> bool {
        if key == 0 {
            let new = !self.has_nil;
            self.has_nil = true;
            self.len += u64::from(new);
            return new;
        }
        let h = hash(key);
        let new = self.segments[(h >> (64 - SEGMENT_BITS)) as usize].insert(key, h);
        self.len += u64::from(new);
        new
    }

    /// Reads each key's home slot so the misses overlap; the value is only kept alive.
    #[inline]
    fn touch(&self, keys: &[Uuid]) -> u128 {
        let mut acc = 0u128;
        for k in keys {
            let h = hash(k.as_u128());
            let seg = &self.segments[(h >> (64 - SEGMENT_BITS)) as usize];
            let cap = seg.slots.len();
            if cap > 0 {
                acc ^= seg.slots[home(h, cap)];
            }
        }
        acc
    }
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
        let segments = (0..SEGMENTS)
            .map(|_| {
                if cap == 0 {
                    Segment::default()
                } else {
                    Segment::with_slots(cap)
                }
            })
            .collect();
        Self {
            inner: Mutex::new(Table {
                segments,
                has_nil: false,
                len: 0,
            }),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock cannot leave a half-written slot (a slot write is one
        // store), so the table is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Synchronous check-and-insert, the body of the [`Registry`] method.
    pub fn insert_batch(&self, ids: &[Uuid]) -> Vec<Novelty> {
        let mut table = self.table();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            std::hint::black_box(table.touch(chunk));
            for id in chunk {
                out.push(if table.insert(id.as_u128()) {
                    Novelty::New
                } else {
                    Novelty::Duplicate
                });
            }
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
        let seg = &table.segments[(h >> (64 - SEGMENT_BITS)) as usize];
        let cap = seg.slots.len();
        if cap == 0 {
            return false;
        }
        let mut i = home(h, cap);
        loop {
            match seg.slots[i] {
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

    /// How many UUIDs are held.
    pub fn count(&self) -> u64 {
        self.table().len
    }

    /// Heap bytes held by the table (slots and segment headers), for the memory report.
    pub fn heap_bytes(&self) -> usize {
        let t = self.table();
        t.segments.capacity() * std::mem::size_of::<Segment>()
            + t.segments
                .iter()
                .map(|s| s.slots.capacity() * std::mem::size_of::<u128>())
                .sum::<usize>()
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
}
