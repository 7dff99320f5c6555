//! Row 6a: the SQLite registry as `generate` uses it, on a file that already holds many UUIDs.

use super::json::Json;
use super::proc::{measure, Stdout};
use super::report::{human, Row};
use super::runner::remove_trail;
use super::Bench;

/// Row 6a: the SQLite registry's checks per second through `generate`.
const SQLITE_REGISTRY_MIN: f64 = 100_000.0;
/// Why row 6a can miss.
const WHY_SQLITE_REGISTRY: &str =
    "each batch is one commit that writes every B-tree page its random keys touched; \
    the file holding more UUIDs spreads a batch over more pages";

impl Bench {
    /// Row 6a: the SQLite registry as `generate` uses it, on a file that already holds
    /// `sqlite_registry` UUIDs (the first run fills it, the second is timed).
    pub(super) fn registries(&mut self) {
        let n = self.sizes.sqlite_registry;
        let mut row = Row::new(
            "6a",
            format!("generate -n {n} --registry sqlite:FILE, the file holding {n} already"),
        );
        row.unit = "checks/s";
        row.target = format!("≥ {SQLITE_REGISTRY_MIN} checks/s");
        row.ratio_unit = "of target";
        row.why = WHY_SQLITE_REGISTRY;
        row.anchor = format!("target {} checks/s", human(SQLITE_REGISTRY_MIN));
        let file = self.dir.join("registry.db");
        // The file and its -wal / -shm companions.
        remove_trail(&file);
        let spec = format!("sqlite:{}", file.display());
        let job = self
            .job()
            .args(["generate", "-n", &n.to_string(), "--registry", &spec]);
        let fill = measure(
            "registry-sqlite-fill",
            &job,
            Stdout::Null,
            self.timeout(n as f64 / 50_000.0),
            &self.logs,
        );
        let timed = fill.and_then(|_| {
            measure(
                "registry-sqlite",
                &job,
                Stdout::Null,
                self.timeout(n as f64 / 50_000.0),
                &self.logs,
            )
        });
        match timed {
            Ok(o) => {
                let rate = n as f64 / o.wall.as_secs_f64();
                self.figure("sqlite_registry_checks_per_s", Json::Num(rate));
                row.value = Some(rate);
                row.ratio = Some(rate / SQLITE_REGISTRY_MIN);
                row.met = Some(rate >= SQLITE_REGISTRY_MIN);
                row.note = "wall time incl. process start and output; default durability \
                    (synchronous=FULL), batches of the registry's preferred 32,768"
                    .into();
            }
            Err(e) => row = row.failed(&e),
        }
        self.push(row);
    }
}
