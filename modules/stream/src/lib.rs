//! The streams from sources to storage, as every storage provider runs them once its store is
//! open (docs/reference/pipeline-and-storage.md §1–7):
//!
//! - [`definitions`]: the OAL scripts and apdex thresholds read at start into a catalog;
//! - [`l1`]: per-thread pre-aggregation of sources into metrics, bounded, flushed every
//!   `l1FlushPeriod`;
//! - [`route`]: each metric to its aggregator by the hash of its entity id;
//! - [`remote`]: the aggregators on other nodes of a cluster, and the service taking their
//!   metrics;
//! - [`l2`]: merge with storage, persist every `persistentPeriod`, roll minutes up into hours
//!   and days;
//! - [`metrics_stream`]: the three wired together;
//! - [`top_n`]: the slowest statements and cache commands per entity and minute, reported every
//!   `topNReportPeriod`;
//! - [`sharded`]: per-thread state, which L1 and the top-N buffers are built on;
//! - [`work`]: what a provider starts — the models installed, the metrics and record streams
//!   subscribed, the TTL keeper on its timer.

pub mod definitions;
pub mod l1;
pub mod l2;
pub mod metrics_stream;
pub mod remote;
pub mod route;
pub mod sharded;
pub mod top_n;
pub mod work;

#[cfg(test)]
mod testing;

pub use self::work::{StoreModule, StreamWork};
