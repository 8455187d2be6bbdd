//! The `pipeline` module: everything between the source dispatcher and the store, built and
//! started in one place (docs/reference/pipeline-and-storage.md §1–9):
//!
//! - [`provider`]: the module and its provider, which owns the running pipeline;
//! - [`work`]: what it starts — the models installed, the metrics and record streams subscribed,
//!   the peers followed, the data keeper on its timer — and the order it stops them in;
//! - [`journal`]: each message a receiver takes, counted in an L1 epoch and appended to the
//!   node's ingest log (docs/durable-ingest.md); [`replay`]: what the log holds analysed again
//!   at start; [`log_keeper`]: the log cut once stored; [`crash_point`]: where the durability
//!   tests kill the process;
//! - [`l1`]: per-thread pre-aggregation of sources into metrics, bounded, flushed every
//!   `l1FlushPeriod`;
//! - [`route`]: each metric to its aggregator by the hash of its entity id;
//! - [`remote`]: the aggregators on other nodes of a cluster, and the service taking their
//!   metrics; [`remote_intake`]: those metrics logged and counted once, across restarts;
//! - [`l2`]: merge with storage, persist every `persistentPeriod`, roll minutes up into hours
//!   and days;
//! - [`metrics_stream`]: the three wired together;
//! - [`record_stream`]: segment records to the store, each call settled once they are stored;
//! - [`retry`]: writing a batch until it is stored, counted;
//! - [`top_n`]: the slowest statements and cache commands per entity and minute, reported every
//!   `topNReportPeriod`;
//! - [`ttl`]: the data keeper that drops expired days;
//! - [`sharded`]: per-thread state, which L1 and the top-N buffers are built on.
//!
//! The metric definitions it aggregates by are core's catalog (`oap_core::catalog`); the store
//! is whatever the `storage` module registered.

pub mod crash_point;
pub mod journal;
pub mod l1;
pub mod l2;
pub mod log_keeper;
pub mod metrics_stream;
pub mod provider;
pub mod record_stream;
pub mod remote;
pub mod remote_intake;
pub mod replay;
pub mod retry;
pub mod route;
pub mod sharded;
pub mod top_n;
pub mod ttl;
pub mod work;

#[cfg(test)]
mod testing;

pub use self::provider::{MODULE_NAME, PipelineProviderFactory, module_definition};
pub use self::work::StreamWork;
