//! The embedded store: [`Storage`] on a fjall database in one directory.
//!
//! Writes are encoded by the caller's task and committed by one thread, which takes every batch
//! that queued while it was busy, commits each atomically, then syncs the journal once for all
//! of them (group commit) before any caller hears `Ok`. Reads run on the blocking pool.
//!
//! No row can stop the committer: a row whose key or value the database cannot hold fails its
//! own write as invalid before it is queued, and a batch the database still panics on fails
//! alone while the committer goes on with the next.
//!
//! Nor can the disk: a database whose journal could not be written or synced (a full disk, an
//! I/O error) refuses every write from then on, so the committer lets it go and opens the
//! directory again — replaying the synced journal, so nothing acknowledged is lost — as soon as
//! that works (once space is freed). Meanwhile writes and reads fail as unavailable, which the
//! writers retry and the node's health reports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fjall::config::{BlockSizePolicy, CompressionPolicy};
use fjall::{CompressionType, Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use oap_storage::builtin::segment;
use oap_storage::dao::{MetadataQueryDao, MetricsQueryDao, TopologyQueryDao, TraceQueryDao};
use oap_storage::{
    Filter, Indexing, Model, ModelRef, Row, RowKey, ScanQuery, Storage, StorageError, Value, ValueRef, Write, day_of,
};
use oap_telemetry::LogLimit;
use tokio::sync::oneshot;
use tracing::{debug, error, info};

use crate::codec;
use crate::layout::{self, META, Partition, Placement};
use crate::segments::{self, Indexes, Prepared, Segments};

/// The directory of the segment blocks, inside the store's.
const SEGMENTS_DIR: &str = "segments";

/// The journal's size at most: past it, memtables are flushed to tables and the journal reclaimed.
const MAX_JOURNAL: u64 = 64 << 20;

/// Batches the committer takes at most in one round.
const MAX_JOBS_PER_ROUND: usize = 64;

/// How often an idle committer looks for segment blocks old enough to seal.
const SEAL_CHECK: Duration = Duration::from_secs(1);

/// The longest key the database holds (its keys carry a 16-bit length).
const MAX_KEY: usize = u16::MAX as usize;

/// The longest value the database holds (its values carry a 32-bit length).
const MAX_VALUE: usize = u32::MAX as usize;

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory cannot be created or written.
    #[error("the data directory {path} is not writable: {source}")]
    Unwritable {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The segment blocks cannot be read or sealed.
    #[error("cannot open the embedded store's segment blocks in {path}: {source}")]
    Segments {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: StorageError,
    },
    /// The thread that commits writes could not be started.
    #[error("cannot start the embedded store's committer thread: {0}")]
    Committer(std::io::Error),
    /// The directory holds something the store cannot read.
    #[error(
        "cannot open the embedded store in {path}: {source} (is the directory damaged, not a store, or used by another server?)"
    )]
    Unreadable {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: fjall::Error,
    },
}

/// Sizes of the store's memory.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// The block cache, bytes.
    pub cache_size: u64,
    /// One partition's writes held in memory (already in the synced journal) before they are
    /// flushed to a disk table, bytes. Only the current day's partitions take writes.
    pub memtable_size: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Self { cache_size: 32 << 20, memtable_size: 16 << 20 }
    }
}

/// How long the committer waits before it opens a broken database again, at first; each time
/// it breaks again right away, twice as long, up to [`LONGEST_REOPEN_PAUSE`].
const FIRST_REOPEN_PAUSE: Duration = Duration::from_millis(500);

/// The longest pause before a broken database is opened again.
const LONGEST_REOPEN_PAUSE: Duration = Duration::from_secs(5);

/// A database that worked this long since it last broke starts again from the first pause.
const WORKED_FOR: Duration = Duration::from_secs(30);

/// The embedded store.
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    jobs: Option<mpsc::Sender<Job>>,
    committer: Option<JoinHandle<()>>,
}

/// The database open now, or why there is none (it broke and is being opened again).
struct Shared {
    path: PathBuf,
    budget: Budget,
    current: RwLock<Result<Arc<Inner>, String>>,
    segments: Segments,
}

impl Shared {
    /// The database open now.
    fn inner(&self) -> Result<Arc<Inner>, StorageError> {
        match &*self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Ok(inner) => Ok(inner.clone()),
            Err(reason) => Err(StorageError::Unavailable(format!("the embedded store is being reopened: {reason}"))),
        }
    }

    /// Lets the database go after it failed to write; it is opened again by [`Shared::reopen`].
    fn broke(&self, reason: &str) {
        static LOG: LogLimit = LogLimit::new(3, Duration::from_secs(60));
        if let Some(left_out) = LOG.admit() {
            error!(%reason, left_out, "the embedded store failed to write; opening it again once it can");
        }
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Err(reason.to_owned());
    }

    /// Opens the directory again; true once the store works.
    fn reopen(&self) -> bool {
        match open_inner(&self.path, self.budget) {
            Ok(inner) => {
                static LOG: LogLimit = LogLimit::new(3, Duration::from_secs(60));
                if let Some(left_out) = LOG.admit() {
                    info!(path = %self.path.display(), left_out, "the embedded store is open again");
                }
                *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Ok(Arc::new(inner));
                true
            }
            Err(error) => {
                debug!(%error, "the embedded store cannot be opened yet");
                false
            }
        }
    }
}

fn open_inner(path: &Path, budget: Budget) -> Result<Inner, fjall::Error> {
    let db = Database::builder(path).cache_size(budget.cache_size).max_journaling_size(MAX_JOURNAL).open()?;
    let mut partitions = BTreeMap::new();
    for name in db.list_keyspace_names() {
        let name = name.to_string();
        let keyspace = db.keyspace(&name, || options_for(&name, budget.memtable_size))?;
        partitions.insert(name, keyspace);
    }
    Ok(Inner { db, memtable_size: budget.memtable_size, partitions: RwLock::new(partitions) })
}

struct Inner {
    db: Database,
    memtable_size: u64,
    partitions: RwLock<BTreeMap<String, Keyspace>>,
}

/// Key-value entries of one partition.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A batch encoded: the entries for each partition, by name.
type Encoded = Vec<(String, Entries)>;

/// One caller's batch, encoded: entries per partition, and segment rows.
struct Job {
    entries: Encoded,
    segments: Vec<Prepared>,
    done: oneshot::Sender<Result<(), StorageError>>,
}

fn unavailable(what: &str, error: &fjall::Error) -> StorageError {
    StorageError::Unavailable(format!("{what}: {error}"))
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: impl AsRef<Path>, budget: Budget) -> Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let unwritable = |source| OpenError::Unwritable { path: path.clone(), source };
        std::fs::create_dir_all(&path).map_err(unwritable)?;
        let probe = path.join(".oap-write-probe");
        std::fs::write(&probe, b"").and_then(|()| std::fs::remove_file(&probe)).map_err(unwritable)?;
        let inner = open_inner(&path, budget).map_err(|source| OpenError::Unreadable { path: path.clone(), source })?;
        let segments = Segments::open(&path.join(SEGMENTS_DIR), &inner)
            .map_err(|source| OpenError::Segments { path: path.clone(), source })?;
        info!(path = %path.display(), partitions = inner.read_partitions().len(), "embedded store open");
        let (jobs, queue) = mpsc::channel();
        let shared = Arc::new(Shared { path, budget, current: RwLock::new(Ok(Arc::new(inner))), segments });
        let committer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("oap-store-commit".to_owned())
                .spawn(move || commit_all(&shared, &queue))
                .map_err(OpenError::Committer)?
        };
        Ok(Self { shared, jobs: Some(jobs), committer: Some(committer) })
    }

    /// Bytes the store takes on disk: tables and journals (a journal's file is allocated
    /// ahead, so this counts its full length).
    pub fn disk_space(&self) -> Result<u64, StorageError> {
        let tables =
            self.shared.inner()?.db.disk_space().map_err(|error| unavailable("cannot measure the store", &error))?;
        Ok(tables + self.shared.segments.disk_space())
    }

    /// Bytes the data takes in disk tables and segment blocks, without the journal (which is
    /// reclaimed once the memtables it backs are flushed, and never grows past 64 MiB).
    pub fn table_space(&self) -> u64 {
        let tables: u64 =
            self.shared.inner().map_or(0, |inner| inner.all_partitions().iter().map(Keyspace::disk_space).sum());
        tables + self.shared.segments.disk_space()
    }

    /// Each partition's bytes in disk tables, by name, and the segment blocks' (`segments`).
    pub fn table_space_by_partition(&self) -> Vec<(String, u64)> {
        let Ok(inner) = self.shared.inner() else { return Vec::new() };
        let partitions = inner.read_partitions();
        let mut spaces: Vec<(String, u64)> =
            partitions.iter().map(|(name, keyspace)| (name.clone(), keyspace.disk_space())).collect();
        spaces.push((SEGMENTS_DIR.to_owned(), self.shared.segments.disk_space()));
        spaces
    }

    /// Writes every memtable to disk tables and compacts them fully, as a long-running store
    /// ends up; for measuring its size.
    pub async fn compact(&self) -> Result<(), StorageError> {
        let inner = self.shared.inner()?;
        let shared = self.shared.clone();
        blocking(move || {
            shared.segments.seal(&*inner, true);
            for keyspace in inner.all_partitions() {
                keyspace.rotate_memtable_and_wait().map_err(|error| unavailable("cannot flush", &error))?;
                keyspace.major_compact().map_err(|error| unavailable("cannot compact", &error))?;
            }
            Ok(())
        })
        .await
    }

    fn encode(batch: &[Write]) -> Result<(Encoded, Vec<Prepared>), StorageError> {
        let mut entries: Vec<(Partition<'_>, Entries)> = Vec::new();
        let mut segment_rows = Vec::new();
        for write in batch {
            let (model, row) = (write.model(), write.row());
            if segments::holds(model) {
                model.check(&row.values)?;
                segment_rows.push(Prepared::of(row.time_bucket, &row.id, &row.values)?);
                continue;
            }
            let mut push = |partition, key: Vec<u8>, value: Vec<u8>| {
                if key.len() > MAX_KEY || value.len() > MAX_VALUE {
                    return Err(StorageError::Invalid(format!(
                        "row `{}…` of `{}` cannot be stored: a key of {} bytes (at most {MAX_KEY}) or a value of {} bytes",
                        row.id.chars().take(64).collect::<String>(),
                        model.name,
                        key.len(),
                        value.len()
                    )));
                }
                match entries.iter_mut().find(|(known, _)| *known == partition) {
                    Some((_, list)) => list.push((key, value)),
                    None => entries.push((partition, vec![(key, value)])),
                }
                Ok(())
            };
            model.check(&row.values)?;
            match Placement::of(model) {
                Placement::Meta => {
                    let key = layout::meta_key(&model.name, &row.id);
                    push(Partition::Meta, key, codec::encode_meta(row.time_bucket, &row.values)?)?;
                }
                Placement::Daily { group } => {
                    let day = day_of(row.time_bucket);
                    for (column, spec) in model.columns.iter().enumerate() {
                        if spec.indexing != Indexing::Lookup {
                            continue;
                        }
                        if let Value::Text(value) = row.value(column) {
                            let key = layout::lookup_key(&model.name, column, value, row.time_bucket, &row.id)
                                .ok_or_else(|| StorageError::Invalid(format!("`{}` too long to index", spec.name)))?;
                            push(Partition::Lookup(group, day), key, Vec::new())?;
                        }
                    }
                    let key = layout::daily_key(&model.name, row.time_bucket, &row.id);
                    push(Partition::Data(group, day), key, codec::encode(&row.values)?)?;
                }
            }
        }
        Ok((entries.into_iter().map(|(partition, list)| (partition.name(), list)).collect(), segment_rows))
    }
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(committer) = self.committer.take() {
            let _ = committer.join();
        }
    }
}

fn options_for(name: &str, memtable_size: u64) -> KeyspaceCreateOptions {
    let lz4 = CompressionPolicy::all(CompressionType::Lz4);
    let options = KeyspaceCreateOptions::default().data_block_compression_policy(lz4).max_memtable_size(memtable_size);
    match layout::parse_daily(name) {
        // Records are read in bulk or by a lookup: larger blocks compress better.
        // Hashes and offsets do not compress; the index is written once, in sorted tables.
        Some((segments::INDEX_GROUP, _)) => {
            options.data_block_compression_policy(CompressionPolicy::all(CompressionType::None))
        }
        Some((group, _)) if group != "metrics" => options.data_block_size_policy(BlockSizePolicy::all(32 * 1024)),
        _ => options,
    }
}

impl Indexes for Inner {
    fn index_for_write(&self, day: i64) -> Result<Keyspace, StorageError> {
        self.for_write(&segments::index_partition(day))
    }

    fn index(&self, day: i64) -> Option<Keyspace> {
        self.existing(&segments::index_partition(day))
    }

    fn index_days(&self) -> Vec<i64> {
        self.read_partitions()
            .keys()
            .filter_map(|name| layout::parse_daily(name))
            .filter(|(group, _)| *group == segments::INDEX_GROUP)
            .map(|(_, day)| day)
            .collect()
    }

    fn drop_index(&self, day: i64) -> Result<(), StorageError> {
        let name = segments::index_partition(day);
        let removed = self.partitions.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&name);
        if let Some(keyspace) = removed {
            self.db
                .delete_keyspace(keyspace)
                .map_err(|error| unavailable(&format!("cannot drop partition {name}"), &error))?;
        }
        Ok(())
    }
}

impl Inner {
    /// Whether segments stored in the LSM tree before the block files existed are still kept.
    fn has_legacy_segments(&self) -> bool {
        let group = &*segment::MODEL.name;
        self.read_partitions().keys().any(|name| layout::parse_daily(name).is_some_and(|(owner, _)| owner == group))
    }

    fn read_partitions(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Keyspace>> {
        self.partitions.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn all_partitions(&self) -> Vec<Keyspace> {
        self.read_partitions().values().cloned().collect()
    }

    fn existing(&self, name: &str) -> Option<Keyspace> {
        self.read_partitions().get(name).cloned()
    }

    fn for_write(&self, name: &str) -> Result<Keyspace, StorageError> {
        if let Some(keyspace) = self.existing(name) {
            return Ok(keyspace);
        }
        let mut partitions = self.partitions.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(keyspace) = partitions.get(name) {
            return Ok(keyspace.clone());
        }
        let keyspace = self
            .db
            .keyspace(name, || options_for(name, self.memtable_size))
            .map_err(|error| unavailable(&format!("cannot create partition {name}"), &error))?;
        debug!(partition = name, "partition created");
        partitions.insert(name.to_owned(), keyspace.clone());
        Ok(keyspace)
    }

    fn apply(&self, entries: Encoded) -> Result<(), StorageError> {
        let mut batch = self.db.batch();
        for (partition, list) in entries {
            let keyspace = self.for_write(&partition)?;
            for (key, value) in list {
                batch.insert(&keyspace, key, value);
            }
        }
        batch.commit().map_err(|error| unavailable("cannot commit a batch", &error))
    }

    /// Day partitions of `group` (data, not index) whose day lies in `days`, oldest first.
    fn days_of(&self, group: &str, days: std::ops::RangeInclusive<i64>) -> Vec<(i64, Keyspace)> {
        self.read_partitions()
            .iter()
            .filter_map(|(name, keyspace)| {
                let (owner, day) = layout::parse_daily(name)?;
                (owner == group && days.contains(&day)).then(|| (day, keyspace.clone()))
            })
            .collect()
    }

    fn multi_get(&self, model: &Model, keys: &[RowKey]) -> Result<Vec<Row>, StorageError> {
        let read = |error: fjall::Error| unavailable("cannot read", &error);
        let mut rows = Vec::with_capacity(keys.len());
        match Placement::of(model) {
            Placement::Meta => {
                let Some(meta) = self.existing(META) else { return Ok(rows) };
                for key in keys {
                    if let Some(bytes) = meta.get(layout::meta_key(&model.name, &key.id)).map_err(read)? {
                        let (time_bucket, values) = codec::decode_meta(&bytes)?;
                        rows.push(Row { id: key.id.clone(), time_bucket, values });
                    }
                }
            }
            Placement::Daily { group } => {
                for key in keys {
                    let Some(partition) = self.existing(&layout::partition_of(group, key.time_bucket)) else {
                        continue;
                    };
                    let stored =
                        partition.get(layout::daily_key(&model.name, key.time_bucket, &key.id)).map_err(read)?;
                    if let Some(bytes) = stored {
                        rows.push(Row {
                            id: key.id.clone(),
                            time_bucket: key.time_bucket,
                            values: codec::decode(&bytes)?,
                        });
                    }
                }
            }
        }
        Ok(rows)
    }

    fn scan(&self, model: &Model, query: &ScanQuery) -> Result<Vec<Row>, StorageError> {
        let Placement::Daily { group } = Placement::of(model) else {
            return self.scan_meta(model, query);
        };
        let read = |error: fjall::Error| unavailable("cannot read", &error);
        let prefix = layout::model_prefix(&model.name);
        let days = query.time_range.map_or(i64::MIN..=i64::MAX, |range| day_of(range.start)..=day_of(range.end));
        let mut days = self.days_of(group, days);
        let mut page = Page::new(query);
        if page.newest_first() {
            days.reverse();
        }
        let lookup = lookup_filter(model, query);
        for (day, partition) in days {
            match &lookup {
                Some((column, value)) => {
                    let Some(index) = self.existing(&layout::lookup(group, day)) else { continue };
                    let Some(value_prefix) = layout::lookup_prefix(&model.name, *column, value) else {
                        continue;
                    };
                    for entry in page.order(index.prefix(&value_prefix)) {
                        let key = entry.key().map_err(read)?;
                        let (time_bucket, id) = layout::split_daily_key(&key, value_prefix.len())
                            .ok_or_else(|| corrupt_key(&model.name))?;
                        if page.full_before(time_bucket) {
                            return Ok(page.finish());
                        }
                        if let Some(bytes) =
                            partition.get(layout::daily_key(&model.name, time_bucket, id)).map_err(read)?
                        {
                            page.offer(id, time_bucket, &bytes)?;
                        }
                    }
                }
                None => {
                    let entries = match query.time_range {
                        Some(range) => partition.range(
                            layout::bucket_key(&model.name, range.start)
                                ..layout::bucket_key(&model.name, range.end.saturating_add(1)),
                        ),
                        None => partition.prefix(&prefix),
                    };
                    for entry in page.order(entries) {
                        let (key, bytes) = entry.into_inner().map_err(read)?;
                        let (time_bucket, id) =
                            layout::split_daily_key(&key, prefix.len()).ok_or_else(|| corrupt_key(&model.name))?;
                        if page.full_before(time_bucket) {
                            return Ok(page.finish());
                        }
                        page.offer(id, time_bucket, &bytes)?;
                    }
                }
            }
        }
        Ok(page.finish())
    }

    fn scan_meta(&self, model: &Model, query: &ScanQuery) -> Result<Vec<Row>, StorageError> {
        let mut rows = Vec::new();
        let Some(meta) = self.existing(META) else { return Ok(rows) };
        let prefix = layout::model_prefix(&model.name);
        for entry in meta.prefix(&prefix) {
            let (key, bytes) = entry.into_inner().map_err(|error| unavailable("cannot read", &error))?;
            let id = layout::split_meta_key(&key, prefix.len()).ok_or_else(|| corrupt_key(&model.name))?;
            let (time_bucket, values) = codec::decode_meta(&bytes)?;
            let row = Row { id, time_bucket, values };
            if query.matches(&row) {
                rows.push(row);
            }
        }
        Ok(query.finish(rows))
    }

    fn delete_before(&self, model: &Model, day: i64) -> Result<usize, StorageError> {
        match Placement::of(model) {
            Placement::Meta => {
                let Some(meta) = self.existing(META) else { return Ok(0) };
                let prefix = layout::model_prefix(&model.name);
                let mut batch = self.db.batch();
                for entry in meta.prefix(&prefix) {
                    let (key, bytes) = entry.into_inner().map_err(|error| unavailable("cannot read", &error))?;
                    if day_of(codec::decode_meta(&bytes)?.0) < day {
                        batch.remove(&meta, key);
                    }
                }
                batch.commit().map_err(|error| unavailable("cannot delete", &error))?;
                self.db.persist(PersistMode::SyncData).map_err(|error| unavailable("cannot sync", &error))?;
                Ok(0)
            }
            Placement::Daily { group } => {
                let expired: Vec<(String, bool)> = self
                    .read_partitions()
                    .keys()
                    .filter_map(|name| {
                        let (owner, partition_day) = layout::parse_daily(name)?;
                        let data = owner == group;
                        let index = layout::lookup_group(owner) == Some(group);
                        ((data || index) && partition_day < day).then(|| (name.clone(), data))
                    })
                    .collect();
                let mut dropped = 0;
                for (name, data) in expired {
                    let removed =
                        self.partitions.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&name);
                    if let Some(keyspace) = removed {
                        self.db
                            .delete_keyspace(keyspace)
                            .map_err(|error| unavailable(&format!("cannot drop partition {name}"), &error))?;
                        info!(partition = %name, "expired partition dropped");
                        dropped += usize::from(data);
                    }
                }
                Ok(dropped)
            }
        }
    }
}

/// The rows of a daily scan as they are read: filtered before they are copied out of the store
/// and, when the query wants the newest buckets first, complete once the bucket the page ends in
/// has been read whole (the days and keys are then read in reverse). In any other order a paged
/// scan is trimmed to its page as it goes ([`ScanQuery::trim`]), so it holds at most about twice
/// the page, not every row that matches.
pub(crate) struct Page<'q> {
    query: &'q ScanQuery,
    rows: Vec<Row>,
    bound: Option<usize>,
    bucket: Option<i64>,
    /// How many rows are held before they are trimmed to the page (none: never).
    trim_at: Option<usize>,
}

/// The fewest rows a paged scan holds before it trims: sorting a handful of rows per row read
/// would cost more than holding them.
const MIN_TRIM_AT: usize = 1_024;

impl<'q> Page<'q> {
    pub(crate) fn new(query: &'q ScanQuery) -> Self {
        let bound = query.newest_first_bound();
        let trim_at = match bound {
            Some(_) => None,
            None => query.page_end().map(|end| end.saturating_mul(2).max(MIN_TRIM_AT)),
        };
        Self { query, rows: Vec::new(), bound, bucket: None, trim_at }
    }

    pub(crate) fn newest_first(&self) -> bool {
        self.bound.is_some()
    }

    /// `entries` in the order this page reads them.
    fn order<I: DoubleEndedIterator + 'static>(&self, entries: I) -> Box<dyn Iterator<Item = I::Item>> {
        if self.newest_first() { Box::new(entries.rev()) } else { Box::new(entries) }
    }

    /// Whether the page is complete before a row of `time_bucket` is read.
    pub(crate) fn full_before(&mut self, time_bucket: i64) -> bool {
        let Some(bound) = self.bound else { return false };
        if self.bucket == Some(time_bucket) {
            return false;
        }
        self.bucket = Some(time_bucket);
        self.rows.len() >= bound
    }

    /// Keeps the stored row if it belongs in the result; true if it does.
    pub(crate) fn offer(&mut self, id: &str, time_bucket: i64, bytes: &[u8]) -> Result<bool, StorageError> {
        let values = codec::decode_borrowed(bytes)?;
        if !self.query.matches_values(time_bucket, &values) {
            return Ok(false);
        }
        let values = values.iter().map(ValueRef::to_value).collect();
        self.rows.push(Row { id: id.to_owned(), time_bucket, values });
        if self.trim_at.is_some_and(|at| self.rows.len() >= at) {
            self.query.trim(&mut self.rows);
        }
        Ok(true)
    }

    pub(crate) fn finish(self) -> Vec<Row> {
        self.query.finish(self.rows)
    }
}

fn corrupt_key(model: &str) -> StorageError {
    StorageError::Corrupt(format!("a key of model `{model}` cannot be read"))
}

/// An equality filter on a lookup column, which the day's index answers.
fn lookup_filter(model: &Model, query: &ScanQuery) -> Option<(usize, String)> {
    query.filters.iter().find_map(|filter| match filter {
        Filter::Eq { column, value: Value::Text(value) }
            if model.columns.get(*column).is_some_and(|spec| spec.indexing == Indexing::Lookup) =>
        {
            Some((*column, value.clone()))
        }
        _ => None,
    })
}

fn commit_all(shared: &Shared, queue: &mpsc::Receiver<Job>) {
    let mut next_reopen = Instant::now();
    let mut reopen_pause = FIRST_REOPEN_PAUSE;
    let mut last_broke: Option<Instant> = None;
    loop {
        let first = match queue.recv_timeout(SEAL_CHECK) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(inner) = shared.inner() {
                    shared.segments.seal(&*inner, false);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_JOBS_PER_ROUND {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let inner = shared.inner().or_else(|broken| {
            if Instant::now() < next_reopen {
                return Err(broken);
            }
            next_reopen = Instant::now() + reopen_pause;
            if shared.reopen() { shared.inner() } else { Err(broken) }
        });
        let inner = match inner {
            Ok(inner) => inner,
            Err(broken) => {
                for job in jobs {
                    let _ = job.done.send(Err(broken.clone()));
                }
                continue;
            }
        };
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut dones = Vec::with_capacity(jobs.len());
        // Each job's rows as they came: one vector of them all would copy every row once more.
        let mut segment_rows = Vec::new();
        let mut with_segments = Vec::new();
        for job in jobs {
            if !job.segments.is_empty() {
                with_segments.push(outcomes.len());
                segment_rows.push(job.segments);
            }
            let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.apply(job.entries)));
            outcomes.push(applied.unwrap_or_else(|panic| {
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no reason given".to_owned());
                error!(%reason, "the database refused a batch; the committer goes on");
                Err(StorageError::Invalid(format!("the database refused the batch: {reason}")))
            }));
            dones.push(job.done);
        }
        if let Err(failure) = shared.segments.append(segment_rows.into_iter().flatten()) {
            for at in with_segments {
                if outcomes[at].is_ok() {
                    outcomes[at] = Err(failure.clone());
                }
            }
        }
        if outcomes.iter().any(Result::is_ok)
            && let Err(error) = inner.db.persist(PersistMode::SyncData)
        {
            let failure = unavailable("cannot sync the journal", &error);
            for outcome in outcomes.iter_mut().filter(|outcome| outcome.is_ok()) {
                *outcome = Err(failure.clone());
            }
        }
        // A write or sync that failed leaves the database refusing every write: let it go.
        if let Some(Err(failure)) =
            outcomes.iter().find(|outcome| outcome.as_ref().is_err_and(StorageError::is_retryable))
        {
            drop(inner);
            shared.broke(&failure.to_string());
            if last_broke.is_none_or(|at| at.elapsed() > WORKED_FOR) {
                reopen_pause = FIRST_REOPEN_PAUSE;
            }
            last_broke = Some(Instant::now());
            next_reopen = Instant::now() + reopen_pause;
            reopen_pause = (reopen_pause * 2).min(LONGEST_REOPEN_PAUSE);
        }
        for (done, outcome) in dones.into_iter().zip(outcomes) {
            let _ = done.send(outcome);
        }
        if let Ok(inner) = shared.inner() {
            shared.segments.seal(&*inner, false);
        }
    }
    if let Ok(inner) = shared.inner() {
        shared.segments.seal(&*inner, true);
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| Err(StorageError::Unavailable(format!("a storage task failed: {error}"))))
}

#[async_trait]
impl Storage for EmbeddedStore {
    async fn install(&self, models: &[ModelRef]) -> Result<(), StorageError> {
        for model in models {
            if model.name.contains(['\0', '#'])
                || model.name.ends_with(".lookup")
                || &*model.name == segments::INDEX_GROUP
            {
                return Err(StorageError::Invalid(format!("model name `{}` cannot be stored", model.name)));
            }
        }
        Ok(())
    }

    async fn write(&self, batch: &[Write]) -> Result<(), StorageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let (entries, segments) = Self::encode(batch)?;
        let (done, outcome) = oneshot::channel();
        let jobs = self.jobs.as_ref().ok_or_else(|| StorageError::Unavailable("the store is closed".to_owned()))?;
        jobs.send(Job { entries, segments, done })
            .map_err(|_| StorageError::Unavailable("the store's committer has stopped".to_owned()))?;
        outcome.await.unwrap_or_else(|_| Err(StorageError::Unavailable("the store's committer has stopped".to_owned())))
    }

    async fn multi_get(&self, model: &Model, keys: &[RowKey]) -> Result<Vec<Row>, StorageError> {
        let (inner, model, keys) = (self.shared.inner()?, model.clone(), keys.to_vec());
        if segments::holds(&model) {
            let shared = self.shared.clone();
            return blocking(move || {
                let mut rows = shared.segments.multi_get(&*inner, &keys)?;
                if inner.has_legacy_segments() {
                    let missing: Vec<RowKey> = keys
                        .iter()
                        .filter(|key| !rows.iter().any(|row| row.id == key.id && row.time_bucket == key.time_bucket))
                        .cloned()
                        .collect();
                    rows.extend(inner.multi_get(&model, &missing)?);
                }
                Ok(rows)
            })
            .await;
        }
        blocking(move || inner.multi_get(&model, &keys)).await
    }

    async fn scan(&self, model: &Model, query: &ScanQuery) -> Result<Vec<Row>, StorageError> {
        let (inner, model, query) = (self.shared.inner()?, model.clone(), query.clone());
        if segments::holds(&model) {
            let shared = self.shared.clone();
            return blocking(move || {
                if !inner.has_legacy_segments() {
                    return shared.segments.scan(&*inner, &query);
                }
                // Segments stored before the block files existed are read from where they lie
                // until TTL drops their days: both stores' first pages, merged.
                let whole = ScanQuery { offset: 0, limit: query.page_end(), ..query.clone() };
                let mut rows = shared.segments.scan(&*inner, &whole)?;
                let mut seen: std::collections::HashSet<(i64, String)> =
                    rows.iter().map(|row| (row.time_bucket, row.id.clone())).collect();
                for row in inner.scan(&model, &whole)? {
                    if seen.insert((row.time_bucket, row.id.clone())) {
                        rows.push(row);
                    }
                }
                Ok(query.finish(rows))
            })
            .await;
        }
        blocking(move || inner.scan(&model, &query)).await
    }

    async fn delete_before(&self, model: &Model, day: i64) -> Result<usize, StorageError> {
        let (inner, model) = (self.shared.inner()?, model.clone());
        if segments::holds(&model) {
            let shared = self.shared.clone();
            return blocking(move || {
                let days = shared.segments.drop_before(&*inner, day)?;
                // And the days stored before the block files existed.
                Ok(days + inner.delete_before(&model, day)?)
            })
            .await;
        }
        blocking(move || inner.delete_before(&model, day)).await
    }
}

impl MetricsQueryDao for EmbeddedStore {}
impl TraceQueryDao for EmbeddedStore {}
impl TopologyQueryDao for EmbeddedStore {}
impl MetadataQueryDao for EmbeddedStore {}
