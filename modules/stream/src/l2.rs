//! L2: merge with storage and persist (docs/reference/pipeline-and-storage.md §5, §6). Metrics
//! routed to this node are merged per (stream, entity, bucket) in one of `prepareThreads`
//! partitions, each a task that owns its state — no locks. Every `persistentPeriod` (first after
//! 5 s) a partition runs a round:
//!
//! 1. the round's minute increments are rolled up into their hours (one pending row for the
//!    hour and the day: a coarse round rolls it up again into its day);
//! 2. a stream at a time, 2,000 rows at a time: rows the session cache lacks are read with
//!    one multi-get — except fresh minutes (newer than the node's start, than the session
//!    timeout and than any minute whose row the cache dropped), which cannot be stored yet;
//! 3. each increment is merged into its stored total and written: an update of a cached row, an
//!    insert of a new one; nothing is written for a row that did not change (a relation's
//!    component set) or may not be updated (first write wins). Working in batches keeps what a
//!    round builds (rows to write, keys to read) to one batch, whatever the round holds;
//! 4. hour and day increments go through the same steps every 4th round;
//! 5. cache entries untouched for `storageSessionTimeout` (×4 for hours and days) are evicted,
//!    and more while the cache and the increments together hold more than `l2MaxRows`: rows of
//!    closed minutes first, then of hours and days, then any (they are read again when needed).
//!
//! The increments alone are held within `l2MaxRows` too: when an arrival brings them to it, a
//! round persisting every level runs at once, and arrivals wait in the partition's queue — of two
//! batches — and then in L1, which makes the receivers wait.
//!
//! Writes go through `write_checked_until_stored`: a store that is down is retried until it is
//! back, and the partition's queue fills meanwhile, so L1 and then the receivers wait. A write
//! that fails for good evicts its rows from the cache and keeps their increments: the next round
//! reads the rows again and merges each increment where the row lacks its epoch (as after a
//! conflict, below), so a row never claims an epoch whose increment it lacks. A read that fails
//! for good defers its increments to the next round rather than guessing that storage holds
//! nothing.
//!
//! A row of an updatable stream is written on a condition (`Write::Checked`): that it is stored
//! as it was read, or absent if it was not found — on Elasticsearch, `_seq_no` and
//! `_primary_term`. When the cluster's node list changes, two nodes may hold increments of one
//! row for a moment; a write that finds the row changed is a conflict
//! (`metrics_l2_conflict_count`): the next round reads the row again and merges the increment
//! where the row lacks its epoch of this node — which also keeps a write that was stored but
//! answered too late (and so sent again) from counting twice. The embedded store belongs to one
//! process and writes such rows as they are.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::retry::{Outage, OutageLog, WriteTelemetry, write_checked_until_stored};
use crate::ttl::first_kept_day;
use async_trait::async_trait;
use hashbrown::HashMap;
use hashbrown::hash_map::Entry;
use oap_model::{Granularity, TimeBucket, TimeBuckets, now_ms, rolled_up};
use oap_oal::MetricValue;
use oap_oal::catalog::{Metric, Stream, WriterEpochs};
use oap_oal::{Catalog, StreamId};
use oap_storage::Value;
use oap_storage::{Expect, Model, Row, RowKey, RowVersion, Storage, StorageError, Write, Written, day_of};
use oap_telemetry::Counter;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::route::{Aggregator, AggregatorError};

/// Rows per multi-get and per write batch.
const BATCH: usize = 2000;
/// Batches a partition's queue holds before senders wait. A batch is a flush's share (up to an
/// epoch's distinct rows, megabytes at load): what waits beyond this waits merged in L1.
const QUEUE: usize = 2;
/// The delay before the first round.
const FIRST_ROUND: Duration = Duration::from_secs(5);
/// Hour and day rows are persisted every this many rounds.
const COARSE_EVERY: u64 = 4;

/// How L2 persists.
#[derive(Debug, Clone)]
pub struct L2Config {
    /// `persistentPeriod`: between the end of one round and the start of the next.
    pub persistent_period: Duration,
    /// `storageSessionTimeout`: how long an untouched minute row stays cached.
    pub session_timeout: Duration,
    /// Roll minutes up into hours.
    pub hour: bool,
    /// Roll minutes up into days.
    pub day: bool,
    /// `metricsDataTTL`, days: older rows arriving late are dropped.
    pub ttl_days: i64,
    /// `prepareThreads`: partitions persisting in parallel.
    pub partitions: usize,
    /// This node's lasting identity: the epochs of its metrics are kept in a row under it.
    pub node: u64,
    /// `l2MaxRows`: the most metric rows L2 holds, over its partitions — stored totals kept to
    /// spare a read, and increments not written yet. Past it a round drops cached totals (they
    /// are read again when needed); when increments alone reach it, a round writes them at once
    /// and arrivals wait for it.
    pub max_rows: usize,
}

/// The counters of L2.
#[derive(Clone)]
pub struct L2Telemetry {
    /// Metric writes.
    pub writes: WriteTelemetry,
    /// Rows that arrived older than the TTL.
    pub expired: Counter,
    /// Reads of stored rows that failed for good (their increments wait a round).
    pub read_errors: Counter,
    /// Conditional writes that met a row another writer had changed (read again, merged again).
    pub conflicts: Counter,
    /// Per partition, in order: the rounds it completed (see [`RoundTelemetry`]). A partition
    /// past the end counts nowhere.
    pub rounds: Vec<RoundTelemetry>,
}

/// The rounds one partition completed: `metrics_l2_round_count{partition, level}`. A round
/// persists everything that had reached the partition when it began, so two completed rounds
/// after a moment cover every metric handed to L2 before it — which is how a test (or an
/// operator) knows that what was sent is stored without guessing a time.
#[derive(Clone)]
pub struct RoundTelemetry {
    /// Every completed round (`level="minute"`: minutes persisted).
    pub minute: Counter,
    /// Completed rounds that also persisted hours and days (`level="all"`).
    pub all: Counter,
}

impl RoundTelemetry {
    /// The counters of partition `partition` in `telemetry`.
    pub fn new(
        telemetry: &dyn oap_telemetry::MetricsCreator,
        partition: usize,
    ) -> Result<Self, oap_telemetry::TelemetryError> {
        let partition = partition.to_string();
        let help = "L2 rounds a partition completed; level=all when hours and days were persisted too";
        Ok(Self {
            minute: telemetry.counter(
                "metrics_l2_round_count",
                help,
                &[("partition", &partition), ("level", "minute")],
            )?,
            all: telemetry.counter("metrics_l2_round_count", help, &[("partition", &partition), ("level", "all")])?,
        })
    }
}

enum Command {
    Metrics(Vec<Metric>),
    /// Metrics replayed from the ingest log: each level takes only what its row lacks.
    Replayed(Vec<Metric>),
    /// Every metric of this epoch meant for the partition has arrived.
    EpochDone(u64),
    Flush(oneshot::Sender<()>),
    /// Entities may have changed owner: what is cached may be stale, and this minute's rows
    /// may have been written by another node.
    OwnersChanged(i64),
    Stop,
}

/// How far past now rows are read again after the cluster's node list changed, ms.
const OWNER_CHANGE_MARGIN_MS: i64 = 5 * 60_000;

/// The L2 of a node: its partitions.
pub struct L2 {
    senders: Vec<mpsc::Sender<Command>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    buckets: TimeBuckets,
    /// Per partition: the last epoch whose metrics it has persisted at every level.
    persisted: Arc<[AtomicU64]>,
    /// Picks an entity's partition. Any hash serves that is the same for an entity while the
    /// process lives (partitions are in memory only); this one reads the id's bytes eight at a
    /// time, where the routing hash between nodes is Java's, one UTF-16 unit at a time.
    partitioner: hashbrown::DefaultHashBuilder,
}

impl L2 {
    /// Starts the partitions over `storage`.
    pub fn start(
        catalog: Arc<Catalog>,
        storage: Arc<dyn Storage>,
        config: L2Config,
        metrics: L2Telemetry,
        buckets: TimeBuckets,
    ) -> Arc<Self> {
        let fresh_after = buckets.minute(now_ms()).unwrap_or(0);
        let (mut senders, mut tasks) = (Vec::new(), Vec::new());
        let persisted: Arc<[AtomicU64]> = (0..config.partitions.max(1)).map(|_| AtomicU64::new(0)).collect();
        for index in 0..config.partitions.max(1) {
            let (sender, receiver) = mpsc::channel(QUEUE);
            let partition = Partition {
                index,
                persisted: persisted.clone(),
                received_epoch: 0,
                deferred: false,
                replayed_minutes: Increments::new(),
                conflicted: Default::default(),
                rounds_done: metrics.rounds.get(index).cloned(),
                catalog: catalog.clone(),
                storage: storage.clone(),
                config: config.clone(),
                metrics: metrics.clone(),
                buckets: buckets.clone(),
                fresh_after,
                pending: [Increments::new(), Increments::new(), Increments::new()],
                rolled: Increments::new(),
                cache: HashMap::new(),
                entities: Entities::default(),
                max_rows: (config.max_rows / config.partitions.max(1)).max(1),
                evicted_minute: i64::MIN,
                began: Instant::now(),
                rounds: 0,
            };
            senders.push(sender);
            tasks.push(tokio::spawn(partition.run(receiver)));
        }
        let partitioner = hashbrown::DefaultHashBuilder::default();
        Arc::new(Self { senders, tasks: Mutex::new(tasks), buckets, persisted, partitioner })
    }

    /// The last epoch every partition has persisted at every level (0 before the first).
    pub fn persisted_epoch(&self) -> u64 {
        self.persisted.iter().map(|epoch| epoch.load(Ordering::Acquire)).min().unwrap_or(0)
    }

    /// Persists everything held, at every level, now; returns once it is stored.
    pub async fn flush(&self) {
        let mut waits = Vec::new();
        for sender in &self.senders {
            let (done, wait) = oneshot::channel();
            if sender.send(Command::Flush(done)).await.is_ok() {
                waits.push(wait);
            }
        }
        for wait in waits {
            let _ = wait.await;
        }
    }

    /// Says that the cluster's node list changed, so entities may have moved between
    /// aggregators: the cache of stored rows is dropped and rows of this minute are read again
    /// — and of the next few, for agents whose clocks run ahead — before they are written
    /// (another node may have written them).
    pub async fn owners_changed(&self) {
        // Agents' clocks may run ahead: the next few minutes may have been written too.
        let minute = self.buckets.minute(now_ms() + OWNER_CHANGE_MARGIN_MS).unwrap_or(i64::MAX);
        for sender in &self.senders {
            let _ = sender.send(Command::OwnersChanged(minute)).await;
        }
    }

    /// Persists everything held and stops the partitions; metrics sent later are refused.
    pub async fn stop(&self) {
        for sender in &self.senders {
            let _ = sender.send(Command::Stop).await;
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }

    /// `metrics` by partition. The metrics of one entity come in a run (L1 hands a group's
    /// together, sharing its id): the id is hashed once per run, not once per metric.
    fn split(&self, metrics: Vec<Metric>) -> Vec<Vec<Metric>> {
        let mut batches: Vec<Vec<Metric>> = self.senders.iter().map(|_| Vec::new()).collect();
        let mut last: Option<(Arc<str>, usize)> = None;
        for metric in metrics {
            let partition = match &last {
                Some((entity, partition)) if Arc::ptr_eq(entity, &metric.entity_id) => *partition,
                _ => {
                    let partition = self.partition_of(&metric.entity_id);
                    last = Some((metric.entity_id.clone(), partition));
                    partition
                }
            };
            batches[partition].push(metric);
        }
        batches
    }

    fn partition_of(&self, entity_id: &str) -> usize {
        use std::hash::BuildHasher as _;
        // The high bits: independent of the routing hash that chose this node among others.
        ((self.partitioner.hash_one(entity_id) >> 32) as usize) % self.senders.len()
    }
}

#[async_trait]
impl Aggregator for L2 {
    async fn epoch_done(&self, epoch: u64) -> Result<(), AggregatorError> {
        for sender in &self.senders {
            sender.send(Command::EpochDone(epoch)).await.map_err(|_| AggregatorError::Stopped("L2"))?;
        }
        Ok(())
    }

    /// Takes metrics replayed from the ingest log (docs/durable-ingest.md §6): each is merged,
    /// per level — minute, hour, day — only into a row whose stored epoch is below the metric's
    /// (a row at or past it holds the contribution already). The rows are read before merging.
    async fn take_replayed(&self, metrics: Vec<Metric>) -> Result<(), AggregatorError> {
        let batches = self.split(metrics);
        for (sender, batch) in self.senders.iter().zip(batches) {
            if !batch.is_empty() {
                sender.send(Command::Replayed(batch)).await.map_err(|_| AggregatorError::Stopped("L2"))?;
            }
        }
        Ok(())
    }

    async fn take(&self, metrics: Vec<Metric>) -> Result<(), AggregatorError> {
        let batches = self.split(metrics);
        for (sender, batch) in self.senders.iter().zip(batches) {
            if !batch.is_empty() {
                sender.send(Command::Metrics(batch)).await.map_err(|_| AggregatorError::Stopped("L2"))?;
            }
        }
        Ok(())
    }
}

/// A row's identity in L2: a metadata row (not time-relative) has one row whatever the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    stream: StreamId,
    bucket: i64,
    entity: Entity,
}

impl Key {
    /// The key of `metric`'s row, whose entity is `entity` (interned from its id).
    fn of(metric: &Metric, stream: &Stream, entity: Entity) -> Self {
        Self::at(metric.stream, stream, metric.time_bucket, entity)
    }

    /// The key of the row of `entity` in `time_bucket` of stream `id` (`stream`).
    fn at(id: StreamId, stream: &Stream, time_bucket: i64, entity: Entity) -> Self {
        let bucket = if stream.time_relative() { time_bucket } else { 0 };
        Self { stream: id, bucket, entity }
    }
}

/// An entity id interned in its partition ([`Entities`]): compared and hashed by address, so a
/// row's lookup never reads the id's text, and held once however many rows name it.
#[derive(Debug, Clone)]
struct Entity(Arc<str>);

impl PartialEq for Entity {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Entity {}

impl std::hash::Hash for Entity {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).cast::<u8>().addr().hash(state);
    }
}

/// A partition's entity ids, one shared copy each: the only maker of [`Entity`], so that two keys
/// of one entity always hold the same copy. Ids no row holds any more are dropped after a round.
#[derive(Default)]
struct Entities(hashbrown::HashSet<Arc<str>>);

impl Entities {
    fn intern(&mut self, id: &Arc<str>) -> Entity {
        Entity(self.0.get_or_insert_with(&**id, |_| id.clone()).clone())
    }

    /// Drops the ids only this table still holds.
    fn sweep(&mut self) {
        self.0.retain(|id| Arc::strong_count(id) > 1);
    }

    /// The bytes held, roughly (the table and each id's allocation).
    fn bytes(&self) -> usize {
        table_bytes(self.0.capacity(), size_of::<Arc<str>>()) + self.0.iter().map(|id| id.len() + 16).sum::<usize>()
    }
}

/// Increments by stream, then by row. Rows are boxed, here and in the cache: a table's empty
/// slots (up to half of it, tables grow by doubling) then cost a key and a pointer, not a whole
/// metric, and a row moves from the increments to the cache without a copy.
type Increments = HashMap<StreamId, HashMap<Key, Box<Metric>>>;
/// Metrics of a batch by stream, each with its row's key.
type ByStream = HashMap<StreamId, Vec<(Key, Box<Metric>)>>;

/// What a write of a round is, to settle once the store answers.
enum RoundWrite {
    /// A cached row updated with this increment.
    Update(Key, Box<Metric>),
    /// A new row.
    Insert(Key, Box<Metric>, WriterEpochs),
}

/// What storage holds (or will, once written) of a row: its total and what its next write
/// needs. Boxed in the cache, like increments (see [`Increments`]).
struct Cached {
    /// The stored total.
    value: MetricValue,
    /// The row's fixed columns.
    fixed: Arc<[Value]>,
    /// The row's bucket (a metadata row's first).
    time_bucket: i64,
    /// Whose epochs the row holds.
    writers: WriterEpochs,
    /// The stored version read or written, where the store keeps versions: the next write of
    /// the row is conditional on it.
    version: Option<RowVersion>,
    /// When it was last read, written or merged into: seconds since the partition began.
    touched: u32,
}

impl Cached {
    fn of(metric: Metric, writers: WriterEpochs, version: Option<RowVersion>, touched: u32) -> Box<Self> {
        let Metric { fixed, value, time_bucket, .. } = metric;
        Box::new(Self { value, fixed, time_bucket, writers, version, touched })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Minute = 0,
    Hour = 1,
    Day = 2,
}

struct Partition {
    catalog: Arc<Catalog>,
    storage: Arc<dyn Storage>,
    config: L2Config,
    metrics: L2Telemetry,
    buckets: TimeBuckets,
    /// Minute rows after this one are written by this node alone (it started, or the cluster's
    /// node list last changed, at or before it).
    fresh_after: i64,
    /// Increments not persisted yet, per level. Hours and days hold here only what is theirs alone
    /// (deferred after a failed read, replayed, conflicted); minutes rolled up wait in `rolled`.
    pending: [Increments; 3],
    /// Minute increments rolled up into their hours, not persisted yet: one row serves the hour
    /// and, rolled up again when a coarse round persists it, the day — half the rows of keeping
    /// both for the rounds in between.
    rolled: Increments,
    cache: HashMap<Key, Box<Cached>>,
    /// The entity ids the rows of `cache` and of the increments name, one copy each.
    entities: Entities,
    /// The most rows — cached totals and increments — the partition holds ([`L2Config::max_rows`]
    /// shared among the partitions).
    max_rows: usize,
    /// The newest minute of which a cached row was evicted: its rows may be stored though not
    /// cached, so none of them is fresh.
    evicted_minute: i64,
    /// Where [`Cached::touched`] counts from.
    began: Instant,
    rounds: u64,
    rounds_done: Option<RoundTelemetry>,
    index: usize,
    /// The last epoch whose metrics have all arrived.
    received_epoch: u64,
    /// This round put increments back for the next one.
    deferred: bool,
    /// Replayed minute increments, persisted by the next round without being rolled up (their
    /// hours and days were checked on their own).
    replayed_minutes: Increments,
    /// Increments whose conditional write met a changed row, per level: the next round reads
    /// their rows again and merges each where the row lacks it.
    conflicted: [ByStream; 3],
    persisted: Arc<[AtomicU64]>,
}

impl Partition {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut next = Instant::now() + FIRST_ROUND.min(self.config.persistent_period);
        loop {
            tokio::select! {
                command = commands.recv() => if !self.obey(command).await {
                    return;
                },
                () = tokio::time::sleep_until(next) => {
                    // What is queued already belongs to this round — only that: senders blocked
                    // on the full queue refill it as it empties, and must not hold the round off.
                    for _ in 0..commands.len() {
                        let Ok(command) = commands.try_recv() else { break };
                        if !self.obey(Some(command)).await {
                            return;
                        }
                    }
                    self.round(false).await;
                    next = Instant::now() + self.config.persistent_period;
                }
            }
        }
    }

    /// Carries out one command; false once the partition is to stop (it persisted everything).
    async fn obey(&mut self, command: Option<Command>) -> bool {
        match command {
            Some(Command::Metrics(batch)) => {
                self.arrive(batch);
                self.hold_bound().await;
            }
            Some(Command::Replayed(batch)) => {
                self.arrive_replayed(batch).await;
                self.hold_bound().await;
            }
            Some(Command::EpochDone(epoch)) => self.received_epoch = self.received_epoch.max(epoch),
            Some(Command::Flush(done)) => {
                self.round_through().await;
                let _ = done.send(());
            }
            Some(Command::OwnersChanged(minute)) => {
                // Rows of minutes past `minute` (agents' clocks far ahead) stop being fresh too.
                let newest = self.cache.keys().filter(|key| is_minute(key)).map(|key| key.bucket).max();
                self.evicted_minute = self.evicted_minute.max(newest.unwrap_or(i64::MIN));
                self.cache.clear();
                self.fresh_after = self.fresh_after.max(minute);
            }
            Some(Command::Stop) | None => {
                self.round_through().await;
                return false;
            }
        }
        true
    }

    fn arrive(&mut self, batch: Vec<Metric>) {
        let first_kept = first_kept_day(&self.buckets, self.config.ttl_days, now_ms()).unwrap_or(0);
        // A group's metrics come in a run sharing one id: it is interned once per run.
        let mut last: Option<(Arc<str>, Entity)> = None;
        for mut metric in batch {
            let Some(stream) = self.catalog.stream(metric.stream) else { continue };
            if stream.time_relative() && day_of(metric.time_bucket) < first_kept {
                self.metrics.expired.inc();
                continue;
            }
            let entity = match &last {
                Some((id, entity)) if Arc::ptr_eq(id, &metric.entity_id) => entity.clone(),
                _ => {
                    let entity = self.entities.intern(&metric.entity_id);
                    last = Some((metric.entity_id.clone(), entity.clone()));
                    entity
                }
            };
            metric.entity_id = entity.0.clone();
            let (key, time_bucket) = (Key::of(&metric, stream, entity), metric.time_bucket);
            merge_with(&mut self.pending[Level::Minute as usize], key, metric, time_bucket, Box::new);
        }
    }

    /// Merges replayed metrics level by level where the stored row lacks them; a read that fails
    /// for good leaves the metric out of that level (and counts it), as a live read defers.
    async fn arrive_replayed(&mut self, batch: Vec<Metric>) {
        let first_kept = first_kept_day(&self.buckets, self.config.ttl_days, now_ms()).unwrap_or(0);
        let catalog = self.catalog.clone();
        let mut by_level: [ByStream; 3] = Default::default();
        for mut metric in batch {
            let Some(stream) = catalog.stream(metric.stream) else { continue };
            if stream.time_relative() && day_of(metric.time_bucket) < first_kept {
                self.metrics.expired.inc();
                continue;
            }
            let entity = self.entities.intern(&metric.entity_id);
            metric.entity_id = entity.0.clone();
            if stream.downsampling() {
                for (enabled, level, granularity) in [
                    (self.config.hour, Level::Hour, Granularity::Hour),
                    (self.config.day, Level::Day, Granularity::Day),
                ] {
                    if enabled {
                        let rolled = metric.rolled_up(granularity);
                        by_level[level as usize]
                            .entry(rolled.stream)
                            .or_default()
                            .push((Key::of(&rolled, stream, entity.clone()), Box::new(rolled)));
                    }
                }
            }
            by_level[Level::Minute as usize]
                .entry(metric.stream)
                .or_default()
                .push((Key::of(&metric, stream, entity), Box::new(metric)));
        }
        self.take_where_lacking(by_level).await;
    }

    /// Merges increments, level by level, only where the stored row lacks their epoch of this
    /// node (reading the rows first, fresh ones too); a minute's go apart, not to be rolled up
    /// again. For replayed metrics, and for increments whose conditional write met a changed row
    /// (it may have been this node's own write, answered too late).
    async fn take_where_lacking(&mut self, mut by_level: [ByStream; 3]) {
        let catalog = self.catalog.clone();
        for level in [Level::Minute, Level::Hour, Level::Day] {
            for (id, metrics) in std::mem::take(&mut by_level[level as usize]) {
                let Some(stream) = catalog.stream(id) else { continue };
                // Read whatever the bucket: a replayed minute may be "fresh" by this node's start and
                // still have been written before the crash (an agent's clock ahead of ours).
                if !self.load(level, id, stream, &metrics, true).await {
                    // Tried again by the next round; until then their epochs are not persisted.
                    self.deferred = true;
                    self.conflicted[level as usize].entry(id).or_default().extend(metrics);
                    continue;
                }
                for (key, metric) in metrics {
                    let node = self.config.node;
                    let stored = self.cache.get(&key).map_or(0, |cached| cached.writers.get(node));
                    if metric.epoch != 0 && metric.epoch <= stored {
                        continue;
                    }
                    let pending = match level {
                        Level::Minute => &mut self.replayed_minutes,
                        _ => &mut self.pending[level as usize],
                    };
                    merge(pending, key, metric);
                }
            }
        }
    }

    /// Persists everything at every level now — again while writes met rows another node had
    /// changed (each such round reads them and merges again), a few times at most.
    async fn round_through(&mut self) {
        self.round(true).await;
        for _ in 0..4 {
            if self.conflicted.iter().all(|level| level.is_empty()) && self.replayed_minutes.is_empty() {
                return;
            }
            self.round(true).await;
        }
        if self.conflicted.iter().any(|level| !level.is_empty()) {
            warn!(
                partition = self.index,
                "rows kept changing under this node's writes; what it holds waits for the next round"
            );
        }
    }

    async fn round(&mut self, everything: bool) {
        self.rounds += 1;
        let covering = self.received_epoch;
        self.deferred = false;
        let conflicted = std::mem::take(&mut self.conflicted);
        if conflicted.iter().any(|level| !level.is_empty()) {
            self.take_where_lacking(conflicted).await;
        }
        let minutes = std::mem::take(&mut self.pending[Level::Minute as usize]);
        if self.config.hour || self.config.day {
            for (key, metric) in minutes.values().flat_map(HashMap::iter) {
                let Some(stream) = self.catalog.stream(metric.stream) else { continue };
                if stream.downsampling() {
                    let hour = rolled_up(metric.time_bucket, Granularity::Hour);
                    let rolled = Key::at(metric.stream, stream, hour, key.entity.clone());
                    merge_with(&mut self.rolled, rolled, &**metric, hour, |minute| {
                        Box::new(minute.rolled_up(Granularity::Hour))
                    });
                }
            }
        }
        let mut minutes = minutes;
        for (_, rows) in std::mem::take(&mut self.replayed_minutes) {
            for (key, metric) in rows {
                merge(&mut minutes, key, metric);
            }
        }
        let wrote_minutes = !minutes.is_empty();
        self.persist(Level::Minute, minutes).await;
        let coarse = everything || self.rounds.is_multiple_of(COARSE_EVERY);
        if coarse {
            if wrote_minutes {
                crate::crash_point::reached("l2-persist");
            }
            let (hours, days) = self.coarse_increments();
            self.persist(Level::Hour, hours).await;
            self.persist(Level::Day, days).await;
        }
        if let Some(done) = &self.rounds_done {
            done.minute.inc();
            if coarse {
                done.all.inc();
            }
        }
        // Everything of the epochs up to `covering` is stored at every level — unless a read
        // failed and put increments back (then a later round that stores them says so).
        if coarse
            && !self.deferred
            && self.rolled.is_empty()
            && self.pending.iter().all(|level| level.is_empty())
            && self.conflicted.iter().all(|level| level.is_empty())
        {
            self.persisted[self.index].fetch_max(covering, Ordering::AcqRel);
        }
        let evicted = self.evict();
        self.entities.sweep();
        let pending = |level: Level| self.pending[level as usize].values().map(HashMap::len).sum::<usize>();
        let cache_bytes = table_bytes(self.cache.capacity(), size_of::<(Key, Box<Cached>)>())
            + self.cache.len() * size_of::<Cached>();
        let pending_bytes: usize = self
            .pending
            .iter()
            .chain([&self.rolled])
            .flat_map(HashMap::values)
            .map(|rows| {
                table_bytes(rows.capacity(), size_of::<(Key, Box<Metric>)>()) + rows.len() * size_of::<Metric>()
            })
            .sum();
        debug!(
            round = self.rounds,
            cached = self.cache.len(),
            cache_mib = cache_bytes >> 20,
            pending_mib = pending_bytes >> 20,
            entities = self.entities.0.len(),
            entities_mib = self.entities.bytes() >> 20,
            evicted,
            pending_minutes = pending(Level::Minute),
            pending_hours = pending(Level::Hour),
            pending_days = pending(Level::Day),
            rolled = self.rolled.values().map(HashMap::len).sum::<usize>(),
            "L2 round done"
        );
    }

    /// Seconds since the partition began, as [`Cached::touched`] counts.
    fn clock(&self) -> u32 {
        u32::try_from(self.began.elapsed().as_secs()).unwrap_or(u32::MAX)
    }

    /// The hour and day increments a coarse round persists: the minutes rolled up since the
    /// last one — each in its hour, and rolled up again into its day — and what each level holds
    /// on its own (deferred, replayed, conflicted).
    fn coarse_increments(&mut self) -> (Increments, Increments) {
        let mut hours = std::mem::take(&mut self.pending[Level::Hour as usize]);
        let mut days = std::mem::take(&mut self.pending[Level::Day as usize]);
        for (id, rows) in std::mem::take(&mut self.rolled) {
            let Some(stream) = self.catalog.stream(id) else { continue };
            for (key, metric) in rows {
                if self.config.day {
                    let day = rolled_up(metric.time_bucket, Granularity::Day);
                    let rolled = Key::at(id, stream, day, key.entity.clone());
                    merge_with(&mut days, rolled, &*metric, day, |hour| Box::new(hour.rolled_up(Granularity::Day)));
                }
                if self.config.hour {
                    merge(&mut hours, key, metric);
                }
            }
        }
        (hours, days)
    }

    /// Increments held, every level and every kind.
    fn pending_rows(&self) -> usize {
        let count = |increments: &Increments| increments.values().map(HashMap::len).sum::<usize>();
        self.pending.iter().map(count).sum::<usize>()
            + count(&self.rolled)
            + count(&self.replayed_minutes)
            + self.conflicted.iter().flat_map(HashMap::values).map(Vec::len).sum::<usize>()
    }

    /// Keeps the increments held within the bound: once they reach it, a round writes them all
    /// now (arrivals wait in the partition's queue, and so L1 and the receivers, meanwhile).
    async fn hold_bound(&mut self) {
        if self.pending_rows() >= self.max_rows {
            debug!(partition = self.index, max_rows = self.max_rows, "L2 holds its most increments: writing them now");
            self.round(true).await;
        }
    }

    /// Drops cached rows: those untouched for the session timeout (four times it for hours and
    /// days), then, while the cache and the increments together hold more than the bound, rows of
    /// closed minutes, then of hours and days, then any. Returns how many it dropped. A minute
    /// row dropped while it may still change ends the freshness of its minute (see
    /// [`Partition::is_fresh`]): its next increment reads the stored row first.
    fn evict(&mut self) -> usize {
        let before = self.cache.len();
        let now = self.clock();
        let timeout = u32::try_from(self.config.session_timeout.as_secs()).unwrap_or(u32::MAX);
        let minute_now = self.buckets.minute(now_ms()).unwrap_or(i64::MAX);
        let coarse =
            |key: &Key| TimeBucket::of(key.bucket).is_some_and(|bucket| bucket.granularity() >= Granularity::Hour);
        let mut evicted_minute = self.evicted_minute;
        let mut note = |key: &Key| {
            if is_minute(key) {
                evicted_minute = evicted_minute.max(key.bucket);
            }
        };
        self.cache.retain(|key, cached| {
            let coarse = coarse(key);
            let kept = now.saturating_sub(cached.touched) < if coarse { timeout.saturating_mul(4) } else { timeout };
            if !kept {
                note(key);
            }
            kept
        });
        let room = self.max_rows.saturating_sub(self.pending_rows());
        let mut excess = self.cache.len().saturating_sub(room);
        let passes: [&dyn Fn(&Key) -> bool; 3] = [&|key| is_minute(key) && key.bucket < minute_now, &coarse, &|_| true];
        for chosen in passes {
            if excess == 0 {
                break;
            }
            self.cache.retain(|key, _| {
                if excess == 0 || !chosen(key) {
                    return true;
                }
                excess -= 1;
                note(key);
                false
            });
        }
        self.evicted_minute = evicted_minute;
        before - self.cache.len()
    }

    /// Whether a minute row can have nothing stored: newer than this node's start (and than the
    /// last change of the cluster's node list) and than the session timeout, so no earlier
    /// write of it can exist that the cache would not hold.
    fn is_fresh(&self, minute: i64, now_ms: i64) -> bool {
        let timeout = i64::try_from(self.config.session_timeout.as_millis()).unwrap_or(i64::MAX);
        minute > self.fresh_after
            && minute > self.evicted_minute
            && self.buckets.start_millis(minute).is_some_and(|start| start > now_ms.saturating_sub(timeout))
    }

    async fn persist(&mut self, level: Level, increments: Increments) {
        let catalog = self.catalog.clone();
        for (id, rows) in increments {
            let Some(stream) = catalog.stream(id) else { continue };
            let mut rows = rows.into_iter();
            loop {
                let batch: Vec<(Key, Box<Metric>)> = rows.by_ref().take(BATCH).collect();
                if batch.is_empty() {
                    break;
                }
                if !self.load(level, id, stream, &batch, false).await {
                    // Storage could not be read: the stream's increments wait for the next round
                    // (and the round's epochs are not persisted).
                    self.deferred = true;
                    // Minutes were rolled up already: they wait apart, not to be rolled up again.
                    let deferred = match level {
                        Level::Minute => &mut self.replayed_minutes,
                        _ => &mut self.pending[level as usize],
                    };
                    for (key, metric) in batch.into_iter().chain(rows.by_ref()) {
                        merge(deferred, key, metric);
                    }
                    break;
                }
                self.write(level, stream, batch).await;
            }
        }
    }

    /// Merges a batch of one stream's increments into their stored totals and writes them. A
    /// row of an updatable stream is written on the condition that it is stored as read (or
    /// absent, if none was); one that changed meanwhile (another node wrote it) is read again and
    /// its increment merged by the next round.
    async fn write(&mut self, level: Level, stream: &Stream, batch: Vec<(Key, Box<Metric>)>) {
        let now = self.clock();
        let node = self.config.node;
        let mut writes = Vec::with_capacity(batch.len());
        // What each write is, in the order of `writes`.
        let mut kinds = Vec::with_capacity(batch.len());
        for (key, metric) in batch {
            match self.cache.get_mut(&key) {
                Some(cached) => {
                    cached.touched = now;
                    if !stream.updatable() {
                        continue;
                    }
                    if !cached.value.combine(&metric.value) {
                        continue;
                    }
                    if !stream.time_relative() {
                        cached.time_bucket = cached.time_bucket.min(metric.time_bucket);
                    }
                    cached.writers.raise(node, metric.epoch);
                    let row =
                        stream.row_of(&key.entity.0, cached.time_bucket, &cached.fixed, &cached.value, &cached.writers);
                    writes.push(match cached.version {
                        Some(version) => Write::Checked(stream.model.clone(), row, Expect::Version(version)),
                        None => Write::Update(stream.model.clone(), row),
                    });
                    kinds.push(RoundWrite::Update(key, metric));
                }
                None => {
                    let mut writers = WriterEpochs::default();
                    writers.raise(node, metric.epoch);
                    let row = stream.row(&metric, &writers);
                    writes.push(if stream.updatable() {
                        Write::Checked(stream.model.clone(), row, Expect::Absent)
                    } else {
                        Write::Insert(stream.model.clone(), row)
                    });
                    kinds.push(RoundWrite::Insert(key, metric, writers));
                }
            }
        }
        if writes.is_empty() {
            return;
        }
        let written = match write_checked_until_stored(&*self.storage, &writes, &self.metrics.writes).await {
            Ok(written) => {
                crate::crash_point::reached("bulk-write");
                written.into_iter().map(Some).collect()
            }
            Err((written, _)) => written,
        };
        for (kind, written) in kinds.into_iter().zip(written) {
            match (kind, written) {
                (RoundWrite::Update(key, _), Some(Written::Stored(version))) => {
                    if let Some(cached) = self.cache.get_mut(&key) {
                        cached.version = version;
                    }
                }
                (RoundWrite::Insert(key, metric, writers), Some(Written::Stored(version))) => {
                    self.cache.insert(key, Cached::of(*metric, writers, version, now));
                }
                // A conflict (the row changed under the write), or refused for good (or so the
                // store said: it may have stored it): the next round reads the row again and
                // merges the increment where the row lacks its epoch. Dropping a refused one
                // would leave the row's next write claiming an epoch whose increment it lacks,
                // which a replay then skips as held.
                (
                    RoundWrite::Update(key, increment) | RoundWrite::Insert(key, increment, _),
                    outcome @ (Some(Written::Conflict) | None),
                ) => {
                    if outcome.is_some() {
                        self.metrics.conflicts.inc();
                    }
                    self.cache.remove(&key);
                    if is_minute(&key) {
                        // The row may be stored (a refusal may not be one): read before its next
                        // write, even should that read fail and a later increment come first.
                        self.evicted_minute = self.evicted_minute.max(key.bucket);
                    }
                    self.conflicted[level as usize].entry(key.stream).or_default().push((key, increment));
                }
            }
        }
    }

    /// Reads into the cache the stored rows of a batch of `stream`'s increments that it lacks
    /// (fresh minutes too when `even_fresh`); false when the read failed for good.
    async fn load(
        &mut self,
        level: Level,
        id: StreamId,
        stream: &Stream,
        batch: &[(Key, Box<Metric>)],
        even_fresh: bool,
    ) -> bool {
        let now_ms = now_ms();
        let keys: Vec<RowKey> = batch
            .iter()
            .filter(|(key, metric)| {
                let fresh = !even_fresh
                    && level == Level::Minute
                    && stream.time_relative()
                    && self.is_fresh(metric.time_bucket, now_ms);
                !fresh && !self.cache.contains_key(key)
            })
            .map(|(_, metric)| RowKey { id: metric.entity_id.to_string(), time_bucket: metric.time_bucket })
            .collect();
        if keys.is_empty() {
            return true;
        }
        match read_until_loaded(&*self.storage, &stream.model, &keys).await {
            Ok(rows) => {
                let now = self.clock();
                for (row, version) in rows {
                    let writers = stream.writers(&row);
                    let metric = stream.read(id, row);
                    let key = Key::of(&metric, stream, self.entities.intern(&metric.entity_id));
                    self.cache.insert(key, Cached::of(metric, writers, version, now));
                }
                true
            }
            Err(failure) => {
                self.metrics.read_errors.inc();
                error!(%failure, stream = %stream.model.name, "reading stored metrics failed; their increments wait for the next round");
                false
            }
        }
    }
}

/// A hash table's bytes, roughly: its slots and their control bytes.
fn table_bytes(capacity: usize, slot: usize) -> usize {
    capacity * (slot + 1)
}

/// Whether `key` is a minute row's.
fn is_minute(key: &Key) -> bool {
    TimeBucket::of(key.bucket).is_some_and(|bucket| bucket.granularity() == Granularity::Minute)
}

/// Merges `metric` into `increments` under `key`; a metadata row keeps its earliest bucket.
fn merge(increments: &mut Increments, key: Key, metric: Box<Metric>) {
    let time_bucket = metric.time_bucket;
    merge_with(increments, key, metric, time_bucket, |metric| metric);
}

/// Merges what `metric` adds into `increments` under `key`, as a row of `time_bucket` (a
/// metadata row keeps its earliest bucket); only where the row is new does `make` make it from
/// `metric` — an arrival merged into a row held already is neither boxed nor copied.
fn merge_with<M: std::borrow::Borrow<Metric>>(
    increments: &mut Increments,
    key: Key,
    metric: M,
    time_bucket: i64,
    make: impl FnOnce(M) -> Box<Metric>,
) {
    match increments.entry(key.stream).or_default().entry(key) {
        Entry::Occupied(mut occupied) => {
            let (held, metric) = (occupied.get_mut(), metric.borrow());
            held.value.combine(&metric.value);
            held.time_bucket = held.time_bucket.min(time_bucket);
            held.epoch = held.epoch.max(metric.epoch);
        }
        Entry::Vacant(vacant) => {
            vacant.insert(make(metric));
        }
    }
}

/// A multi-get (with versions), retried while the store is unavailable.
async fn read_until_loaded(
    storage: &dyn Storage,
    model: &Model,
    keys: &[RowKey],
) -> Result<Vec<(Row, Option<RowVersion>)>, StorageError> {
    let mut outage = Outage::default();
    loop {
        match storage.multi_get_versioned(model, keys).await {
            Err(failure) if failure.is_retryable() => {
                match outage.failed() {
                    Some(OutageLog::Began) => warn!(%failure, "reading stored metrics failed; retrying until read"),
                    Some(OutageLog::Lasts { attempts, failing_for }) => {
                        warn!(%failure, failed_attempts = attempts, ?failing_for, "reading stored metrics still failing; retrying");
                    }
                    None => {}
                }
                outage.pause().await;
            }
            other => {
                if let Some((attempts, waited)) = outage.ended() {
                    info!(failed_attempts = attempts, ?waited, "stored metrics read after retries");
                }
                return other;
            }
        }
    }
}

#[cfg(test)]
mod tests;
