//! The read side of an archive: its objects in stream order, a contiguous part of them chosen by
//! date or run, and each object's events fetched one object at a time (checksum checked), so an
//! import of a year of trail holds one object in memory, never the archive.

use uuid::Uuid;

use crate::config::S3Config;
use crate::upload::{ObjectRef, Store};
use crate::S3Error;

impl ObjectRef {
    /// The UTC day of the object's first event, `YYYY-MM-DD`, from its key.
    pub fn day(&self) -> String {
        let parts: Vec<&str> = self.key.rsplit('/').take(5).collect();
        match parts.as_slice() {
            [_, _, d, m, y] => format!("{y}-{m}-{d}"),
            _ => String::new(),
        }
    }

    /// The run that wrote the object's first event, from its key.
    pub fn run_id(&self) -> Option<Uuid> {
        self.key
            .rsplit('/')
            .nth(1)
            .and_then(|r| Uuid::parse_str(r).ok())
    }
}

/// The first event of an object's JSONL bytes (what [`Archive::fetch`] returns): where a chain
/// read from the middle of an archive starts.
pub fn first_event(bytes: &[u8]) -> std::io::Result<cxone_uuid_audit::AuditEvent> {
    crate::spool::first_event(bytes)
}

/// The day after `day` (`YYYY-MM-DD`); the day itself when it does not parse.
fn next_day(day: &str) -> String {
    chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.succ_opt())
        .map_or_else(|| day.to_string(), |d| d.format("%Y-%m-%d").to_string())
}

/// Which objects to read. Days are `YYYY-MM-DD` (UTC); a filter left `None` does not restrict.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Selection {
    /// Objects of this run.
    pub run_id: Option<Uuid>,
    /// Objects that may hold events on or after this day.
    pub since_day: Option<String>,
    /// Objects whose first event is on or before this day.
    pub until_day: Option<String>,
}

impl Selection {
    /// A selection by run and days (each may be `None`).
    pub fn new(run_id: Option<Uuid>, since_day: Option<String>, until_day: Option<String>) -> Self {
        Self {
            run_id,
            since_day,
            until_day,
        }
    }

    /// Whether nothing is restricted (the whole archive).
    pub fn is_all(&self) -> bool {
        self.run_id.is_none() && self.since_day.is_none() && self.until_day.is_none()
    }
}

/// An archive's objects, listed once, and the connection to fetch them.
#[derive(Debug)]
pub struct Archive {
    store: Store,
    objects: Vec<ObjectRef>,
}

impl Archive {
    /// Checks the bucket and lists the objects in the documented layout, in seq order.
    pub async fn open(cfg: &S3Config) -> Result<Self, S3Error> {
        cfg.validate()?;
        let store = Store::connect(cfg).await;
        store.check_bucket().await?;
        let objects = store.list().await?;
        Ok(Self { store, objects })
    }

    /// Every object, in seq order.
    pub fn objects(&self) -> &[ObjectRef] {
        &self.objects
    }

    /// The contiguous run of objects the selection covers: from the first object that may hold
    /// a selected event to the last one, everything between included (a chain can only be
    /// verified without holes). An object's key carries the day of its *first* event, so the
    /// object before the first one dated `since_day` or later is taken too: it may run into
    /// that day. Empty when nothing matches.
    pub fn select(&self, sel: &Selection) -> &[ObjectRef] {
        select_in(&self.objects, sel)
    }

    /// The object's events as JSONL bytes: downloaded with its stored SHA-256 checked, and
    /// unzipped. A mismatch is [`S3Error::Corrupt`] naming the key.
    pub async fn fetch(&self, obj: &ObjectRef) -> Result<Vec<u8>, S3Error> {
        self.store.get(&obj.key).await
    }
}

/// [`Archive::select`] over a listing.
fn select_in<'a>(objs: &'a [ObjectRef], sel: &Selection) -> &'a [ObjectRef] {
    let chosen = |i: usize| {
        let o = &objs[i];
        // Object i's events all come before object i + 1's first event; the last object's
        // span a batch interval at most, so they end the day after its first at the latest.
        let reaches_since = sel
            .since_day
            .as_deref()
            .is_none_or(|since| match objs.get(i + 1) {
                Some(next) => next.day().as_str() >= since,
                None => next_day(&o.day()).as_str() >= since,
            });
        reaches_since
            && sel.run_id.is_none_or(|r| o.run_id() == Some(r))
            && sel
                .until_day
                .as_deref()
                .is_none_or(|u| o.day().as_str() <= u)
    };
    let Some(first) = (0..objs.len()).find(|&i| chosen(i)) else {
        return &[];
    };
    let last = (first..objs.len())
        .rev()
        .find(|&i| chosen(i))
        .unwrap_or(first);
    &objs[first..=last]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const RUN_A: &str = "0192f0c4-0000-7000-8000-00000000000a";
    const RUN_B: &str = "0192f0c4-0000-7000-8000-00000000000b";

    fn obj(day: &str, run: &str, first: u64, last: u64) -> ObjectRef {
        let day = day.replace('-', "/");
        ObjectRef {
            key: format!("p/{day}/{run}/{first:020}-{last:020}.jsonl.gz"),
            first,
            last,
        }
    }

    fn listing() -> Vec<ObjectRef> {
        vec![
            obj("2026-03-30", RUN_A, 1, 10),
            obj("2026-03-31", RUN_A, 11, 20),
            obj("2026-04-01", RUN_A, 21, 30),
            obj("2026-04-01", RUN_B, 31, 40),
            obj("2026-04-03", RUN_B, 41, 50),
        ]
    }

    fn firsts(objs: &[ObjectRef]) -> Vec<u64> {
        objs.iter().map(|o| o.first).collect()
    }

    #[test]
    fn keys_give_their_day_and_run() {
        let o = obj("2026-03-30", RUN_A, 1, 10);
        assert_eq!(o.day(), "2026-03-30");
        assert_eq!(o.run_id(), Some(Uuid::parse_str(RUN_A).unwrap()));
    }

    #[test]
    fn a_period_takes_the_object_running_into_it_and_stops_at_its_last_day() {
        let all = listing();
        let sel = |since: Option<&str>, until: Option<&str>| {
            firsts(select_in(
                &all,
                &Selection::new(None, since.map(String::from), until.map(String::from)),
            ))
        };
        assert_eq!(sel(None, None), vec![1, 11, 21, 31, 41]);
        // 2026-03-31's object may run into April.
        assert_eq!(sel(Some("2026-04-01"), None), vec![11, 21, 31, 41]);
        assert_eq!(sel(Some("2026-03-31"), Some("2026-03-31")), vec![1, 11]);
        assert_eq!(sel(Some("2026-04-02"), Some("2026-04-02")), vec![31]);
        // The last object reaches the day after its own at most.
        assert_eq!(sel(Some("2026-04-04"), None), vec![41]);
        assert!(sel(Some("2026-04-05"), None).is_empty());
        assert!(sel(None, Some("2026-03-01")).is_empty());
    }

    #[test]
    fn a_run_takes_its_objects_and_nothing_between_is_skipped() {
        let all = listing();
        let run = |r: &str| Selection::new(Some(Uuid::parse_str(r).unwrap()), None, None);
        assert_eq!(firsts(select_in(&all, &run(RUN_B))), vec![31, 41]);
        assert_eq!(firsts(select_in(&all, &run(RUN_A))), vec![1, 11, 21]);
        let with_day = Selection::new(
            Some(Uuid::parse_str(RUN_A).unwrap()),
            Some("2026-04-01".into()),
            None,
        );
        assert_eq!(firsts(select_in(&all, &with_day)), vec![11, 21]);
    }
}
