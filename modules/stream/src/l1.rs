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
//!
//! Flushes are numbered: epoch `E` is what was merged between two of them
//! (docs/durable-ingest.md). A shard keeps one table per open epoch — two at most, the one a
//! flush is closing and the next — and a thread marks its shard while it merges the sources of
//! one message (an *entry*, [`L1::open_entry`] … [`L1::close_entry`]), so that a flush takes an
//! epoch whole: [`L1::close_epoch`] makes the next epoch current, and [`L1::take_epoch`] takes the
//! closed epoch's tables, shard by shard, once no shard is inside an entry of it.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hashbrown::DefaultHashBuilder;
use hashbrown::hash_table::{Entry, HashTable};
use oap_core::{Settle, SourceConsumer};
use oap_model::source::Source;
use oap_oal::catalog::{GroupId, Metric, MetricSink, Slot};
use oap_oal::entity::OwnedEntityKey;
use oap_oal::{Catalog, EntityKey};
use tokio::sync::Notify;

use crate::sharded::Sharded;

/// Distinct rows L1 holds, over all shards, before producers wait for a flush.
pub const DEFAULT_CAPACITY: usize = 200_000;

/// One thread's tables of merged metrics, one per open epoch.
#[derive(Default)]
struct Shard {
    tables: [Table; 2],
    /// The epoch of the entry this thread is merging now, if it is inside one.
    entry: Option<u64>,
}

#[derive(Default)]
struct Table {
    groups: HashTable<Group>,
    /// The epoch whose metrics the table holds (meaningful while it holds any).
    epoch: u64,
    /// Rows (filled slots) in the table.
    rows: usize,
    /// Metrics another node aggregated already and routed here (a cluster's remote batches),
    /// held as they came: they only need the epoch, not merging.
    passthrough: Vec<Metric>,
}

impl Table {
    fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.passthrough.is_empty()
    }
}

impl Shard {
    /// The table of `epoch` among a shard's `tables`: the one holding it, else an empty one. (At
    /// most two epochs are open at once — the one a flush is taking and the current one — so one
    /// of the two is.)
    fn table(tables: &mut [Table; 2], epoch: u64) -> &mut Table {
        let at = tables
            .iter()
            .position(|table| table.epoch == epoch)
            .or_else(|| tables.iter().position(Table::is_empty))
            .unwrap_or_else(|| {
                // Unreachable while flushes take each epoch whole before closing the next; should
                // it happen, merging into the older epoch's table keeps the counts right and only
                // delays them a flush.
                debug_assert!(false, "no table free for epoch {epoch}");
                usize::from(tables[1].epoch < tables[0].epoch)
            });
        let table = &mut tables[at];
        table.epoch = epoch;
        table
    }
}

/// The rows of one stream group for an entity and bucket.
struct Group {
    group: GroupId,
    time_bucket: i64,
    /// What the entity's id is built from: a source finds its group by these names, without
    /// building the id.
    key: OwnedEntityKey,
    /// The hash the group is filed under.
    hash: u64,
    /// The entity's id, built once per group.
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
    /// The epoch new merges belong to.
    current: AtomicU64,
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
            current: AtomicU64::new(1),
        }
    }

    /// Makes epochs start past `epoch` (what an earlier run of the node used).
    pub fn start_after(&self, epoch: u64) {
        self.current.fetch_max(epoch + 1, Ordering::SeqCst);
    }

    /// Begins an entry on this thread: until [`L1::close_entry`], what it merges counts in the
    /// returned epoch, and no flush takes that epoch. Must be closed on the same thread, without
    /// an `await` in between.
    pub fn open_entry(&self) -> u64 {
        self.shards.with(|shard| {
            let epoch = self.current.load(Ordering::SeqCst);
            shard.entry = Some(epoch);
            epoch
        })
    }

    /// Begins an entry of a past `epoch` on this thread (a message the ingest log holds,
    /// replayed at start): what it merges counts in that epoch, which must be older than the
    /// current one and be taken by [`L1::take_epoch`] like any closed epoch. At most two such
    /// epochs may be held at once.
    pub fn open_entry_at(&self, epoch: u64) {
        self.shards.with(|shard| shard.entry = Some(epoch));
    }

    /// Ends this thread's entry.
    pub fn close_entry(&self) {
        self.shards.with(|shard| shard.entry = None);
    }

    /// Ends the current epoch: merges from now on belong to the next one, numbered by the
    /// clock (`now_ms`) and never below the last plus one. Returns the epoch closed.
    pub fn close_epoch(&self, now_ms: u64) -> u64 {
        let mut closing = self.current.load(Ordering::SeqCst);
        loop {
            let next = now_ms.max(closing + 1);
            match self.current.compare_exchange(closing, next, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return closing,
                Err(seen) => closing = seen,
            }
        }
    }

    /// Moves the metrics of closed epoch `epoch` out of every shard that is not inside an entry
    /// of it into `metrics`; true once every shard is done (call again until it is — entries
    /// last microseconds).
    pub fn take_epoch(&self, epoch: u64, metrics: &mut Vec<Metric>) -> bool {
        let mut done = true;
        self.shards.each(|shard| {
            if shard.entry.is_some_and(|open| open <= epoch) {
                done = false;
                return;
            }
            for table in &mut shard.tables {
                if table.epoch == epoch {
                    self.take_table(table, metrics);
                }
            }
        });
        self.drained.notify_waiters();
        done
    }

    /// Distinct rows held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Merges what `source` contributes into this thread's shard: into the epoch of the entry
    /// the thread is inside, else the current one.
    pub fn accept(&self, source: &Source<'_>) {
        let added = self.shards.with(|shard| {
            let epoch = shard.entry.unwrap_or_else(|| self.current.load(Ordering::SeqCst));
            let table = Shard::table(&mut shard.tables, epoch);
            let mut sink = ShardSink { table: &mut table.groups, hasher: &self.hasher };
            let added = self.catalog.aggregate(source, &mut sink);
            table.rows += added;
            added
        });
        if added > 0 {
            self.held.fetch_add(added, Ordering::Relaxed);
        }
    }

    /// Adds metrics aggregated elsewhere (a batch another node routed here) to this thread's
    /// shard as they are: into the epoch of the entry the thread is inside, else the current one.
    /// They count against the capacity like merged rows.
    pub fn accept_metrics(&self, metrics: Vec<Metric>) {
        let added = metrics.len();
        self.shards.with(|shard| {
            let epoch = shard.entry.unwrap_or_else(|| self.current.load(Ordering::SeqCst));
            let table = Shard::table(&mut shard.tables, epoch);
            if table.passthrough.is_empty() {
                table.passthrough = metrics;
            } else {
                table.passthrough.extend(metrics);
            }
        });
        self.held.fetch_add(added, Ordering::Relaxed);
    }

    /// Waits while L1 holds more than its capacity (until a flush drains it).
    async fn room(&self) {
        loop {
            let drained = self.drained.notified();
            if self.held() <= self.capacity {
                return;
            }
            drained.await;
        }
    }

    /// Takes every merged metric out of every shard, whatever its epoch (at a stop, once nothing
    /// comes in any more).
    pub fn drain(&self) -> Vec<Metric> {
        let mut metrics = Vec::new();
        self.shards.each(|shard| {
            for table in &mut shard.tables {
                self.take_table(table, &mut metrics);
            }
        });
        self.drained.notify_waiters();
        metrics
    }

    fn take_table(&self, table: &mut Table, metrics: &mut Vec<Metric>) {
        let epoch = table.epoch;
        let rows = std::mem::take(&mut table.rows);
        let passed = std::mem::take(&mut table.passthrough);
        self.held.fetch_sub(rows + passed.len(), Ordering::Relaxed);
        metrics.reserve(rows + passed.len());
        metrics.extend(passed.into_iter().map(|metric| Metric { epoch, ..metric }));
        for group in table.groups.drain() {
            let streams = self.catalog.group_streams(group.group);
            for (&stream, slot) in streams.iter().zip(group.slots.into_vec()) {
                let Some(Slot { fixed, value }) = slot else { continue };
                let entity_id = group.entity_id.clone();
                metrics.push(Metric { stream, entity_id, time_bucket: group.time_bucket, fixed, value, epoch });
            }
        }
    }
}

/// A shard's table seen as the catalog's sink.
struct ShardSink<'a> {
    table: &'a mut HashTable<Group>,
    hasher: &'a DefaultHashBuilder,
}

impl MetricSink for ShardSink<'_> {
    fn group(&mut self, group: GroupId, slots: usize, entity: &EntityKey<'_>, time_bucket: i64) -> &mut [Option<Slot>] {
        let hash = self.hasher.hash_one((group, time_bucket, entity));
        let same = |held: &Group| {
            held.hash == hash && held.group == group && held.time_bucket == time_bucket && held.key.is(entity)
        };
        match self.table.entry(hash, same, |held| held.hash) {
            Entry::Occupied(occupied) => &mut occupied.into_mut().slots,
            Entry::Vacant(vacant) => {
                let slots = (0..slots).map(|_| None).collect();
                let key = OwnedEntityKey::of(entity);
                let held = Group { group, time_bucket, key, hash, entity_id: entity.id().into(), slots };
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
            l1.room().await;
            Ok(())
        }))
    }
}

#[cfg(test)]
mod tests;
