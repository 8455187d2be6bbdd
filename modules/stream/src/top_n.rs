//! The top-N records (docs/reference/pipeline-and-storage.md §7): of the slow database statements
//! and cache commands analysis reports, each node keeps, per entity and minute, the 50 slowest, and
//! hands them to the record writer every `topNReportPeriod`.
//!
//! Samples are kept per analysing thread ([`Sharded`]), so producers never contend; a sample is
//! built (its strings copied) only when it is among the slowest its thread has seen for its
//! entity and minute. A report merges the threads' lists: the node's 50 slowest of a minute are
//! among the union of every thread's 50 slowest.
//!
//! Like SkyWalking's, the lists live in memory until the report: a graceful stop reports them,
//! a crash loses at most one period of these samples (never a count or a metric).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use crate::record_stream::RecordStream;
use hashbrown::{Equivalent, HashMap};
use oap_core::{Settle, SourceConsumer};
use oap_model::ids;
use oap_model::source::{CacheOperation, Source};
use oap_oal::Catalog;
use oap_storage::builtin::top_n::{self, TopNRecord};
use oap_storage::{ModelRef, Write};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::sharded::Sharded;

/// How many samples an entity keeps per minute.
pub const KEEP: usize = 50;

/// The four top-N streams, in the order of [`top_n::models`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `top_n_database_statement`, by database.
    DatabaseStatement = 0,
    /// `top_n_service_database_statement`, by calling service.
    ServiceDatabaseStatement = 1,
    /// `top_n_cache_read_command`, by cache.
    CacheRead = 2,
    /// `top_n_cache_write_command`, by cache.
    CacheWrite = 3,
}

impl Kind {
    /// Whether the entity is a real (normal) service: only the calling service is.
    fn normal(self) -> bool {
        self == Kind::ServiceDatabaseStatement
    }
}

/// Whose list a sample joins: a stream, a minute, and the entity's service name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    kind: Kind,
    minute: i64,
    name: String,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        KeyRef { kind: self.kind, minute: self.minute, name: &self.name }.hash(state);
    }
}

/// A [`Key`] borrowed from a source, to look a list up without copying the name.
#[derive(Hash)]
struct KeyRef<'a> {
    kind: Kind,
    minute: i64,
    name: &'a str,
}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.kind == key.kind && self.minute == key.minute && self.name == key.name
    }
}

/// One slow statement or command, ordered by latency (ties by id, so the order is total).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sample {
    latency: i64,
    id: String,
    statement: String,
    trace_id: String,
    time_bucket: i64,
    timestamp: i64,
}

impl Ord for Sample {
    fn cmp(&self, other: &Self) -> Ordering {
        self.latency.cmp(&other.latency).then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialOrd for Sample {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The slowest samples of one list, the fastest of them on top.
type Slowest = BinaryHeap<Reverse<Sample>>;

/// One thread's lists.
#[derive(Default)]
struct Shard {
    lists: HashMap<Key, Slowest>,
}

impl Shard {
    /// Keeps the sample `make` builds if it is among the [`KEEP`] slowest of its list.
    fn offer(&mut self, key: KeyRef<'_>, latency: i64, id: &dyn Fn() -> String, make: impl FnOnce(String) -> Sample) {
        let list = match self.lists.get_mut(&key) {
            Some(list) => list,
            None => self
                .lists
                .entry(Key { kind: key.kind, minute: key.minute, name: key.name.to_owned() })
                .or_insert_with(|| BinaryHeap::with_capacity(KEEP)),
        };
        if list.len() < KEEP {
            list.push(Reverse(make(id())));
            return;
        }
        let Some(mut fastest) = list.peek_mut() else { return };
        // The id breaks ties only; it is built when the latency alone does not decide.
        let id = match latency.cmp(&fastest.0.latency) {
            Ordering::Less => return,
            Ordering::Greater => id(),
            Ordering::Equal => {
                let id = id();
                if id >= fastest.0.id {
                    return;
                }
                id
            }
        };
        *fastest = Reverse(make(id));
    }
}

/// The top-N buffers of a node, as the dispatcher feeds them.
pub struct TopN {
    shards: Sharded<Shard>,
    /// Per [`Kind`]: its model, or `None` where `disable(...)` switched it off.
    models: [Option<ModelRef>; 4],
}

impl TopN {
    /// Buffers for the top-N streams `catalog` does not disable.
    pub fn new(catalog: &Catalog) -> Self {
        let models = top_n::models().map(|model| (!catalog.is_disabled(&model.name)).then_some(model));
        Self { shards: Sharded::new(), models }
    }

    /// Whether any top-N stream is on.
    pub fn is_enabled(&self) -> bool {
        self.models.iter().any(Option::is_some)
    }

    fn on(&self, kind: Kind) -> bool {
        self.models[kind as usize].is_some()
    }

    /// Takes every list out of every thread and merges them into the records to write: per
    /// entity and minute, the [`KEEP`] slowest.
    pub fn take(&self) -> Vec<Write> {
        let mut merged: HashMap<Key, Vec<Sample>> = HashMap::new();
        self.shards.each(|shard| {
            for (key, list) in shard.lists.drain() {
                merged.entry(key).or_default().extend(list.into_iter().map(|Reverse(sample)| sample));
            }
        });
        let mut writes = Vec::new();
        for (key, mut samples) in merged {
            let Some(model) = &self.models[key.kind as usize] else { continue };
            if samples.len() > KEEP {
                samples.select_nth_unstable_by(KEEP - 1, |a, b| b.cmp(a));
                samples.truncate(KEEP);
            }
            let entity_id = ids::service_id(&key.name, key.kind.normal());
            writes.extend(samples.into_iter().map(|sample| {
                let record = TopNRecord {
                    id: sample.id,
                    statement: sample.statement,
                    latency: sample.latency,
                    trace_id: sample.trace_id,
                    entity_id: entity_id.clone(),
                    time_bucket: sample.time_bucket,
                    timestamp: sample.timestamp,
                };
                Write::Insert(model.clone(), record.into_row())
            }));
        }
        writes
    }
}

impl SourceConsumer for TopN {
    fn accept(&self, source: &Source<'_>) {
        match source {
            Source::DatabaseSlowStatement(slow) => {
                let id = || format!("{}-{}", slow.segment_id, slow.span_id);
                let latency = i64::from(slow.latency);
                let sample = |id| Sample {
                    latency,
                    id,
                    statement: slow.statement.to_owned(),
                    trace_id: slow.trace_id.to_owned(),
                    time_bucket: slow.time_bucket,
                    timestamp: slow.timestamp,
                };
                let minute = slow.time_bucket / 100;
                self.shards.with(|shard| {
                    for (kind, name) in [
                        (Kind::DatabaseStatement, slow.database_name),
                        (Kind::ServiceDatabaseStatement, slow.service_name),
                    ] {
                        if self.on(kind) {
                            shard.offer(KeyRef { kind, minute, name }, latency, &id, sample);
                        }
                    }
                });
            }
            Source::CacheSlowAccess(slow) => {
                let kind = match slow.operation {
                    CacheOperation::Read => Kind::CacheRead,
                    CacheOperation::Write => Kind::CacheWrite,
                    CacheOperation::Others => return,
                };
                if !self.on(kind) {
                    return;
                }
                let id = || format!("{}-{}", slow.segment_id, slow.span_id);
                let latency = i64::from(slow.latency);
                let sample = |id| Sample {
                    latency,
                    id,
                    statement: format!("{} {}", slow.command, slow.key),
                    trace_id: slow.trace_id.to_owned(),
                    time_bucket: slow.time_bucket,
                    timestamp: slow.timestamp,
                };
                let key = KeyRef { kind, minute: slow.time_bucket / 100, name: &slow.cache_name };
                self.shards.with(|shard| shard.offer(key, latency, &id, sample));
            }
            _ => {}
        }
    }

    fn settle(&self) -> Option<Settle> {
        None
    }
}

/// The task that hands the lists to the record writer every `topNReportPeriod`.
pub struct TopNReport {
    top_n: Arc<TopN>,
    records: Arc<RecordStream>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl TopNReport {
    /// Reports `top_n` into `records` every `period`, the first one `period` after now.
    pub fn start(top_n: Arc<TopN>, records: Arc<RecordStream>, period: Duration) -> Self {
        let stop = CancellationToken::new();
        let task = tokio::spawn(report_every(top_n.clone(), records.clone(), period, stop.clone()));
        Self { top_n, records, stop, task }
    }

    /// Stops the timer and reports what is held.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
        report(&self.top_n, &self.records);
    }
}

fn report(top_n: &TopN, records: &RecordStream) {
    let writes = top_n.take();
    let count = writes.len();
    if !records.enqueue(writes) {
        warn!(count, "the record writer has stopped: top-N samples were not written");
    }
}

async fn report_every(top_n: Arc<TopN>, records: Arc<RecordStream>, period: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => report(&top_n, &records),
        }
    }
}

#[cfg(test)]
mod tests;
