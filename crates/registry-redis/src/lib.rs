//! A uniqueness registry in Redis, shared by every process and machine pointed at it.
//!
//! Key design decisions:
//! - **Atomic per UUID, one round trip per batch.** Each UUID is `SET prefix+id 1 NX [PX ttl]`;
//!   Redis runs commands one at a time, so of two callers offering one UUID exactly one gets `OK`
//!   (new) and the other nil (duplicate). A batch is one pipeline: the latency is paid once per
//!   batch, and a UUID repeated inside a batch is caught by the earlier `SET` in that pipeline.
//! - **Keys are the prefix plus the 16 raw bytes**, not 32 hex digits. Redis keys are
//!   binary-safe; raw bytes make a key 16 bytes shorter, which with the default prefix moves it
//!   from jemalloc's 48-byte class to the 32-byte one: about 16 bytes (some 20 %) less memory per
//!   UUID held, and less to send. The cost is that `redis-cli` shows escapes; to look one UUID up
//!   by hand, write its bytes as `"cxone-uuid:\x6b\xa7..."` or use [`RedisRegistry::key_for`].
//! - **Never a silent pass.** An unreachable server, a timeout or an error reply is
//!   [`RegistryError::Unavailable`](cxone_uuid_core::RegistryError::Unavailable) naming the
//!   URL (never its password); nothing is retried here, because a retried pipeline would find
//!   its own first attempt's keys and report false duplicates. The connection manager
//!   reconnects in the background for the next batch.
//!
//! # Redis Cluster and managed Redis
//! This registry speaks to **one** Redis endpoint; the cluster protocol (`MOVED`/`ASK`
//! redirects, hash slots) is not supported, and a pipeline whose keys land on several slots is
//! refused by a cluster node. What to do:
//! - Managed single-shard services (AWS ElastiCache / MemoryDB with cluster mode *disabled*,
//!   Azure Cache for Redis Basic/Standard/Premium without clustering, Google Memorystore
//!   Basic/Standard, Redis Cloud "non-clustered"): use the primary endpoint, with `rediss://`
//!   when in-transit encryption is on, e.g. `rediss://:PASSWORD@primary.example:6380/0`
//!   (`rediss://USER:PASSWORD@…` for ACL users). Never point it at a read replica: writes fail
//!   there and generation stops.
//! - A server certificate from a private CA: export `SSL_CERT_FILE=/path/to/ca.pem` (the
//!   system's roots are read from there instead).
//! - Proxy-fronted clusters (Redis Enterprise / Redis Cloud with its proxy, Azure Enterprise
//!   tiers, Envoy or twemproxy in front of a cluster) accept pipelines of keys on many slots: use
//!   the proxy's endpoint as above.
//! - A raw Redis Cluster (cluster mode enabled, no proxy): run a dedicated single-shard Redis
//!   (or a primary/replica pair with failover) for the registry. Its load is one small `SET` per
//!   UUID, far below what one shard serves. Putting a hash tag in the prefix (e.g.
//!   `--registry-prefix '{cxone-uuid}:'`) would pin every key to one slot, but this client
//!   still does not follow redirects after a failover, so it is not supported.
//! - Use a database (`/DB`) or a prefix per environment so test runs never mark production UUIDs
//!   as used. Without `--registry-ttl` keys never expire; with it, a UUID is remembered for that
//!   long only. Under memory pressure, an eviction policy other than `noeviction` would silently
//!   forget UUIDs: give the registry a `noeviction` instance (writes then fail loudly when full).
#![deny(missing_docs)]

mod builder;
mod registry;

pub use builder::{OpenError, RedisRegistryBuilder};
pub use registry::RedisRegistry;

/// The key prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "cxone-uuid:";
