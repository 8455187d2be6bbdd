//! L1: per-node pre-aggregation (docs/reference/pipeline-and-storage.md §3). Every source is turned
//! into metric values by the [`Catalog`] and merged, by (stream group, entity, time bucket), into
//! the table of the thread that analysed it — one lookup per source for all the metrics of its
//! scope; every `l1FlushPeriod` the tables are drained and their merged metrics routed to L2.
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
use oap_oal::Catalog;
use oap_oal::catalog::{GroupId, Metric, MetricSink, Slot};
use tokio::sync::Notify;

use crate::sharded::Sharded;

/// Distinct rows L1 holds, over all shards, before producers wait for a flush.
pub const DEFAULT_CAPACITY: usize = 200_000;

/// One thread's table of merged metrics.
#[derive(Default)]
struct Shard {
    table: HashTable<Group>,
    /// Rows (filled slots) in the table.
    rows: usize,
}

/// The rows of one stream group for an entity and bucket.
struct Group {
    group: GroupId,
    time_bucket: i64,
    entity_id: Arc<str>,
    slots: Box<[Option<Slot>]>,
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
            let added =
                self.catalog.aggregate(source, &mut ShardSink { table: &mut shard.table, hasher: &self.hasher });
            shard.rows += added;
            added
        });
        if added > 0 {
            self.held.fetch_add(added, Ordering::Relaxed);
        }
    }

    /// Takes every merged metric out of every shard.
    pub fn drain(&self) -> Vec<Metric> {
        let mut metrics = Vec::new();
        self.shards.each(|shard| {
            let rows = std::mem::take(&mut shard.rows);
            self.held.fetch_sub(rows, Ordering::Relaxed);
            metrics.reserve(rows);
            for group in shard.table.drain() {
                let streams = self.catalog.group_streams(group.group);
                for (&stream, slot) in streams.iter().zip(group.slots.into_vec()) {
                    let Some(Slot { fixed, value }) = slot else { continue };
                    let entity_id = group.entity_id.clone();
                    metrics.push(Metric { stream, entity_id, time_bucket: group.time_bucket, fixed, value });
                }
            }
        });
        self.drained.notify_waiters();
        metrics
    }
}

fn key_hash(hasher: &DefaultHashBuilder, group: GroupId, time_bucket: i64, entity_id: &str) -> u64 {
    let mut state = hasher.build_hasher();
    group.hash(&mut state);
    time_bucket.hash(&mut state);
    entity_id.hash(&mut state);
    state.finish()
}

/// A shard's table seen as the catalog's sink.
struct ShardSink<'a> {
    table: &'a mut HashTable<Group>,
    hasher: &'a DefaultHashBuilder,
}

impl MetricSink for ShardSink<'_> {
    fn group(&mut self, group: GroupId, slots: usize, entity_id: &str, time_bucket: i64) -> &mut [Option<Slot>] {
        let hasher = self.hasher;
        let hash = key_hash(hasher, group, time_bucket, entity_id);
        let same =
            |held: &Group| held.group == group && held.time_bucket == time_bucket && *held.entity_id == *entity_id;
        let rehash = |held: &Group| key_hash(hasher, held.group, held.time_bucket, &held.entity_id);
        match self.table.entry(hash, same, rehash) {
            Entry::Occupied(occupied) => &mut occupied.into_mut().slots,
            Entry::Vacant(vacant) => {
                let slots = (0..slots).map(|_| None).collect();
                let held = Group { group, time_bucket, entity_id: entity_id.into(), slots };
                &mut vacant.insert(held).into_mut().slots
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
