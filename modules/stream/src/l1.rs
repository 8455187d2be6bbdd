//! L1: per-node pre-aggregation (pipeline-and-storage.md §3). Every source is turned into
//! metric values by the [`Catalog`] and merged, by (stream, entity, time bucket), into the
//! table of the thread that analysed it; every `l1FlushPeriod` the tables are drained and their
//! merged metrics routed to L2.
//!
//! Each analysing thread owns a shard (a table behind a mutex only the flusher also takes,
//! twice a second), so producers on different cores never contend. The tables are bounded:
//! once they hold more than their capacity of distinct rows, a receiver's settle waits until
//! the next flush has drained them — backpressure reaches the agent (its stream or request
//! waits) instead of memory growing or data being dropped.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::DefaultHashBuilder;
use hashbrown::hash_table::{Entry, HashTable};
use oap_core::{Settle, SourceConsumer};
use oap_model::source::Source;
use oap_oal::catalog::{Metric, MetricSink};
use oap_oal::{Catalog, MetricValue, StreamId};
use oap_storage::Value;
use tokio::sync::Notify;

/// Distinct rows L1 holds, over all shards, before producers wait for a flush.
pub const DEFAULT_CAPACITY: usize = 200_000;

static NEXT_L1: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's shard of every live L1, by the L1's number.
    static SHARDS: RefCell<Vec<(u64, Arc<Mutex<Shard>>)>> = const { RefCell::new(Vec::new()) };
}

/// One thread's table of merged metrics.
#[derive(Default)]
struct Shard {
    table: HashTable<Metric>,
}

/// The L1 aggregation of one node.
pub struct L1 {
    number: u64,
    catalog: Arc<Catalog>,
    hasher: DefaultHashBuilder,
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
    /// Distinct rows held now, over all shards.
    held: AtomicUsize,
    capacity: usize,
    drained: Notify,
}

impl L1 {
    /// An L1 over `catalog` that makes producers wait above `capacity` distinct rows.
    pub fn new(catalog: Arc<Catalog>, capacity: usize) -> Self {
        Self {
            number: NEXT_L1.fetch_add(1, Ordering::Relaxed),
            catalog,
            hasher: DefaultHashBuilder::default(),
            shards: Mutex::new(Vec::new()),
            held: AtomicUsize::new(0),
            capacity: capacity.max(1),
            drained: Notify::new(),
        }
    }

    /// Distinct rows held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Merges what `source` contributes into this thread's shard.
    pub fn accept(&self, source: &Source<'_>) {
        let added = self.with_shard(|shard| {
            let mut sink = ShardSink { shard, hasher: &self.hasher, added: 0 };
            self.catalog.aggregate(source, &mut sink);
            sink.added
        });
        if added > 0 {
            self.held.fetch_add(added, Ordering::Relaxed);
        }
    }

    /// Takes every merged metric out of every shard.
    pub fn drain(&self) -> Vec<Metric> {
        let shards: Vec<Arc<Mutex<Shard>>> = lock(&self.shards).clone();
        let mut metrics = Vec::new();
        for shard in shards {
            let table = std::mem::take(&mut lock(&shard).table);
            self.held.fetch_sub(table.len(), Ordering::Relaxed);
            metrics.extend(table);
        }
        self.drained.notify_waiters();
        metrics
    }

    fn with_shard<R>(&self, work: impl FnOnce(&mut Shard) -> R) -> R {
        SHARDS.with_borrow_mut(|shards| {
            let at = match shards.iter().position(|(number, _)| *number == self.number) {
                Some(at) => at,
                None => {
                    // Shards of L1s that are gone are held only here: let them go.
                    shards.retain(|(_, shard)| Arc::strong_count(shard) > 1);
                    let shard = Arc::new(Mutex::new(Shard::default()));
                    lock(&self.shards).push(shard.clone());
                    shards.push((self.number, shard));
                    shards.len() - 1
                }
            };
            work(&mut lock(&shards[at].1))
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn key_hash(hasher: &DefaultHashBuilder, stream: StreamId, time_bucket: i64, entity_id: &str) -> u64 {
    let mut state = hasher.build_hasher();
    stream.hash(&mut state);
    time_bucket.hash(&mut state);
    entity_id.hash(&mut state);
    state.finish()
}

/// A shard seen as the catalog's sink.
struct ShardSink<'a> {
    shard: &'a mut Shard,
    hasher: &'a DefaultHashBuilder,
    added: usize,
}

impl MetricSink for ShardSink<'_> {
    fn entry(
        &mut self,
        stream: StreamId,
        entity_id: &str,
        time_bucket: i64,
        new: &mut dyn FnMut() -> (Vec<Value>, MetricValue),
    ) -> &mut MetricValue {
        let hasher = self.hasher;
        let hash = key_hash(hasher, stream, time_bucket, entity_id);
        let same = |metric: &Metric| {
            metric.stream == stream && metric.time_bucket == time_bucket && metric.entity_id == entity_id
        };
        let rehash = |metric: &Metric| key_hash(hasher, metric.stream, metric.time_bucket, &metric.entity_id);
        match self.shard.table.entry(hash, same, rehash) {
            Entry::Occupied(occupied) => &mut occupied.into_mut().value,
            Entry::Vacant(vacant) => {
                self.added += 1;
                let (fixed, value) = new();
                let metric = Metric { stream, entity_id: entity_id.to_owned(), time_bucket, fixed, value };
                &mut vacant.insert(metric).into_mut().value
            }
        }
    }
}

/// A shared L1, as the dispatcher subscribes it: its settle can wait for a flush.
#[derive(Clone)]
pub struct L1Handle(pub Arc<L1>);

impl SourceConsumer for L1Handle {
    fn accept(&self, source: &Source<'_>) {
        self.0.accept(source);
    }

    fn settle(&self) -> Option<Settle> {
        if self.0.held() <= self.0.capacity {
            return None;
        }
        let l1 = self.0.clone();
        Some(Box::pin(async move {
            loop {
                let drained = l1.drained.notified();
                if l1.held() <= l1.capacity {
                    return Ok(());
                }
                drained.await;
            }
        }))
    }
}

#[cfg(test)]
mod tests;
