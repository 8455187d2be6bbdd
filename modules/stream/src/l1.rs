//! L1: per-node pre-aggregation (pipeline-and-storage.md §3). Every source is turned into
//! metric values by the [`Catalog`] and merged, by (stream, entity, time bucket), into the
//! table of the thread that analysed it; every `l1FlushPeriod` the tables are drained and their
//! merged metrics routed to L2.
//!
//! Each analysing thread owns a shard (a [`Sharded`] table that only the flusher also takes,
//! twice a second), so producers on different cores never contend. The tables are bounded:
//! once they hold more than their capacity of distinct rows, a receiver's settle waits until
//! the next flush has drained them — backpressure reaches the agent (its stream or request
//! waits) instead of memory growing or data being dropped.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hashbrown::DefaultHashBuilder;
use hashbrown::hash_table::{Entry, HashTable};
use oap_core::{Settle, SourceConsumer};
use oap_model::source::Source;
use oap_oal::catalog::{Metric, MetricSink};
use oap_oal::{Catalog, MetricValue, StreamId};
use oap_storage::Value;
use tokio::sync::Notify;

use crate::sharded::Sharded;

/// Distinct rows L1 holds, over all shards, before producers wait for a flush.
pub const DEFAULT_CAPACITY: usize = 200_000;

/// One thread's table of merged metrics.
#[derive(Default)]
struct Shard {
    table: HashTable<Metric>,
}

/// The L1 aggregation of one node.
pub struct L1 {
    catalog: Arc<Catalog>,
    hasher: DefaultHashBuilder,
    shards: Sharded<Shard>,
    /// Distinct rows held now, over all shards.
    held: AtomicUsize,
    capacity: usize,
    drained: Notify,
}

impl L1 {
    /// An L1 over `catalog` that makes producers wait above `capacity` distinct rows.
    pub fn new(catalog: Arc<Catalog>, capacity: usize) -> Self {
        Self {
            catalog,
            hasher: DefaultHashBuilder::default(),
            shards: Sharded::new(),
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
        let added = self.shards.with(|shard| {
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
        let mut metrics = Vec::new();
        self.shards.each(|shard| {
            let table = std::mem::take(&mut shard.table);
            self.held.fetch_sub(table.len(), Ordering::Relaxed);
            metrics.extend(table);
        });
        self.drained.notify_waiters();
        metrics
    }
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
