//! The `segment` record in block files, not in the LSM tree (issue 23, step 6).
//!
//! A segment row is written once: appended to the open block of its day
//! (`segments/<yyyyMMdd>/<block>.blk`, frames of rows, see [`frame`]) and synced with the rest of
//! the committer's round. Its index entry ([`entry`]) stays in memory with the open block until
//! the block is sealed (at [`BLOCK_TARGET`] bytes or [`BLOCK_AGE`]), when all of the block's
//! entries are sorted and ingested into the day's index partition in one table — no journal,
//! no memtable, and no compaction of the rows themselves. Searches read the index partitions
//! and the open blocks' entries, then the rows.
//!
//! A block left open by a crash is read again at start (its torn last frame cut) and sealed. A
//! row written twice (a replay of the ingest log writes again what was stored before the
//! crash) is returned once. TTL drops a day's directory and index whole.

pub mod entry;
pub mod frame;
mod scan;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use fjall::Keyspace;
use oap_storage::builtin::segment::col;
use oap_storage::{Model, ModelKind, StorageError, Value};
use oap_telemetry::LogLimit;
use tracing::{error, info, warn};

use self::entry::{Candidate, Entry, Location};
use crate::codec;

/// A block is sealed once its file is this large.
pub const BLOCK_TARGET: u64 = 32 << 20;

/// A block is sealed once it has been open this long.
pub const BLOCK_AGE: Duration = Duration::from_secs(60);

/// The name of a day's index partition.
pub fn index_partition(day: i64) -> String {
    crate::layout::daily(INDEX_GROUP, day)
}

/// The group of the index partitions.
pub const INDEX_GROUP: &str = "segment.index";

/// Whether `model`'s rows are kept here: the `segment` record.
pub fn holds(model: &Model) -> bool {
    model.name == oap_storage::builtin::segment::MODEL.name && model.kind == (ModelKind::Record { super_dataset: true })
}

/// What a lookup key of the LSM store added to its id and value.
const KEY_OVERHEAD: usize = 32;

/// A row ready to append: encoded on the caller's task, placed by the committer.
#[derive(Debug)]
pub struct Prepared {
    day: i64,
    time_bucket: i64,
    id: String,
    values: Vec<u8>,
    entry: Entry,
}

impl Prepared {
    /// Encodes a `segment` row.
    pub fn of(time_bucket: i64, id: &str, values: &[Value]) -> Result<Self, StorageError> {
        let refused = |why: String| {
            StorageError::Invalid(format!(
                "segment `{}…` cannot be stored: {why}",
                id.chars().take(64).collect::<String>()
            ))
        };
        // The bound the LSM store's lookup keys had, kept so that both stores refuse alike.
        let looked_up = |column| match values.get(column) {
            Some(Value::Text(text)) => text.len(),
            _ => 0,
        };
        let longest = id.len() + looked_up(col::TRACE_ID).max(looked_up(col::ENDPOINT_ID)) + KEY_OVERHEAD;
        if longest > usize::from(u16::MAX) {
            return Err(refused(format!(
                "its id and trace or endpoint id take {longest} bytes (at most {})",
                u16::MAX
            )));
        }
        let values_bytes = codec::encode(values)?;
        if values_bytes.len() > frame::LONGEST_ROW {
            return Err(refused(format!("a row of {} bytes (at most {})", values_bytes.len(), frame::LONGEST_ROW)));
        }
        let placeholder = Location { block: 0, frame: 0, row: 0 };
        Ok(Self {
            day: oap_storage::day_of(time_bucket),
            time_bucket,
            id: id.to_owned(),
            values: values_bytes,
            entry: Entry::of(time_bucket, values, placeholder, 0),
        })
    }
}

/// What the store needs of the LSM database: the days' index partitions.
pub trait Indexes {
    /// The index partition of `day`, created if missing.
    fn index_for_write(&self, day: i64) -> Result<Keyspace, StorageError>;
    /// The index partition of `day`, if any.
    fn index(&self, day: i64) -> Option<Keyspace>;
    /// The days that have an index partition.
    fn index_days(&self) -> Vec<i64>;
    /// Drops the index partition of `day`.
    fn drop_index(&self, day: i64) -> Result<(), StorageError>;
}

/// The open block of one day.
struct Head {
    block: u32,
    file: File,
    /// Bytes of whole frames written and synced.
    synced: u64,
    /// Bytes of whole frames written (synced or not).
    written: u64,
    /// Rows not yet framed.
    raw: Vec<u8>,
    /// Entries of the rows in `raw` (their frame not yet known).
    framing: Vec<Entry>,
    /// Entries of rows written but not yet synced.
    unsynced: Vec<Entry>,
    /// Entries of synced rows: what searches see.
    entries: Vec<Entry>,
    rows: u32,
    opened: Instant,
}

impl Head {
    fn frame_out(&mut self) -> std::io::Result<()> {
        if self.raw.is_empty() {
            return Ok(());
        }
        let frame = frame::seal(&self.raw);
        // The file's own length, not a count kept beside it: a failed write whose tail could
        // not be cut off leaves bytes no count knows of, and the file is opened for appending.
        let at = self.file.metadata()?.len();
        self.file.write_all(&frame)?;
        for mut entry in self.framing.drain(..) {
            entry.at.frame = at;
            self.unsynced.push(entry);
        }
        self.written = at + frame.len() as u64;
        self.raw.clear();
        Ok(())
    }

    /// Drops what was written since the last sync, after a failure.
    fn roll_back(&mut self) {
        self.raw.clear();
        self.framing.clear();
        self.unsynced.clear();
        if let Err(error) = self.file.set_len(self.synced) {
            // What stays is unacknowledged and unindexed: found again only if the block is
            // recovered at start, and then returned once.
            warn!(%error, block = self.block, "cannot cut a segment block back after a failed write");
        }
        self.written = self.synced;
    }
}

/// A block taken out of the open ones to be sealed (or found open at start and not yet
/// sealed): searches still read its entries until its index is written.
struct Sealing {
    day: i64,
    block: u32,
    entries: Arc<Vec<Entry>>,
}

/// The open blocks, those being sealed, and the next block number.
struct Heads {
    open: BTreeMap<i64, Head>,
    sealing: Vec<Sealing>,
    next_block: u32,
}

/// The segment store.
pub struct Segments {
    root: PathBuf,
    heads: Mutex<Heads>,
}

fn io(what: &str, error: &std::io::Error) -> StorageError {
    StorageError::Unavailable(format!("{what}: {error}"))
}

impl Segments {
    /// Opens the store in `root`, sealing every block a crash left open.
    pub fn open(root: &Path, indexes: &dyn Indexes) -> Result<Self, StorageError> {
        std::fs::create_dir_all(root).map_err(|error| io("cannot create the segment directory", &error))?;
        let mut next_block = 0;
        let mut recovered = 0;
        let mut unsealed = Vec::new();
        for (day, blocks) in list(root)? {
            for block in blocks {
                next_block = next_block.max(block + 1);
                let sealed = match indexes.index(day) {
                    Some(index) => index
                        .contains_key(entry::sealed_mark(block))
                        .map_err(|error| StorageError::Unavailable(format!("cannot read a segment index: {error}")))?,
                    None => false,
                };
                if !sealed {
                    let entries = Arc::new(recover(&block_path(root, day, block), block)?);
                    match ingest(indexes, day, block, &entries) {
                        Ok(()) => recovered += 1,
                        Err(error) => {
                            warn!(%error, day, block, "a segment block left open cannot be sealed yet; it is searched as it is and sealed later");
                            unsealed.push(Sealing { day, block, entries });
                        }
                    }
                }
            }
        }
        if recovered > 0 {
            info!(blocks = recovered, "segment blocks left open were read again and sealed");
        }
        let heads = Heads { open: BTreeMap::new(), sealing: unsealed, next_block };
        Ok(Self { root: root.to_path_buf(), heads: Mutex::new(heads) })
    }

    fn heads(&self) -> MutexGuard<'_, Heads> {
        self.heads.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends `rows` and syncs them: when this returns `Ok`, they are durable and searchable.
    pub fn append(&self, rows: impl IntoIterator<Item = Prepared>) -> Result<(), StorageError> {
        let mut rows = rows.into_iter().peekable();
        if rows.peek().is_none() {
            return Ok(());
        }
        let mut heads = self.heads();
        let Heads { open, next_block, .. } = &mut *heads;
        let outcome = (|| {
            for row in rows {
                let head = match open.entry(row.day) {
                    std::collections::btree_map::Entry::Occupied(head) => head.into_mut(),
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        let block = *next_block;
                        *next_block += 1;
                        slot.insert(self.create(row.day, block)?)
                    }
                };
                let mut entry = row.entry;
                entry.at = Location { block: head.block, frame: 0, row: head.framing.len() as u32 };
                entry.number = head.rows;
                head.rows += 1;
                frame::push_row(&mut head.raw, row.time_bucket, &row.id, &row.values)?;
                head.framing.push(entry);
                if head.raw.len() >= frame::FRAME_TARGET {
                    head.frame_out().map_err(|error| io("cannot write a segment block", &error))?;
                }
            }
            for head in open.values_mut().filter(|head| !head.raw.is_empty() || !head.unsynced.is_empty()) {
                head.frame_out().map_err(|error| io("cannot write a segment block", &error))?;
                head.file.sync_data().map_err(|error| io("cannot sync a segment block", &error))?;
                head.synced = head.written;
                let synced = std::mem::take(&mut head.unsynced);
                head.entries.extend(synced);
            }
            Ok(())
        })();
        if outcome.is_err() {
            for head in open.values_mut() {
                head.roll_back();
            }
        }
        outcome
    }

    fn create(&self, day: i64, block: u32) -> Result<Head, StorageError> {
        let dir = self.root.join(day.to_string());
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(|error| io("cannot create a segment day", &error))?;
            sync_dir(&self.root)?;
        }
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(block_path(&self.root, day, block))
            .map_err(|error| io("cannot create a segment block", &error))?;
        // The block's name must outlive a crash as its rows do.
        sync_dir(&dir)?;
        Ok(Head {
            block,
            file,
            synced: 0,
            written: 0,
            raw: Vec::new(),
            framing: Vec::new(),
            unsynced: Vec::new(),
            entries: Vec::new(),
            rows: 0,
            opened: Instant::now(),
        })
    }

    /// Seals the blocks that are full or old enough (every block when `all`): their entries go
    /// into their day's index. A block whose index cannot be written stays open and is tried again.
    pub fn seal(&self, indexes: &dyn Indexes, all: bool) {
        let to_seal: Vec<(i64, u32, Arc<Vec<Entry>>)> = {
            let mut heads = self.heads();
            let due: Vec<i64> = heads
                .open
                .iter()
                .filter(|(_, head)| all || head.synced >= BLOCK_TARGET || head.opened.elapsed() >= BLOCK_AGE)
                .map(|(day, _)| *day)
                .collect();
            for day in due {
                if let Some(head) = heads.open.remove(&day) {
                    heads.sealing.push(Sealing { day, block: head.block, entries: Arc::new(head.entries) });
                }
            }
            heads.sealing.iter().map(|sealing| (sealing.day, sealing.block, sealing.entries.clone())).collect()
        };
        // The index is written without the lock: searches go on reading the entries meanwhile.
        for (day, block, entries) in to_seal {
            match ingest(indexes, day, block, &entries) {
                Ok(()) => self.heads().sealing.retain(|sealing| (sealing.day, sealing.block) != (day, block)),
                Err(failure) => {
                    static LOG: LogLimit = LogLimit::new(3, Duration::from_secs(60));
                    if let Some(left_out) = LOG.admit() {
                        error!(error = %failure, day, block, left_out, "cannot seal a segment block yet; it is searched as it is and sealed later");
                    }
                }
            }
        }
    }

    /// Drops every day before `day`: blocks and index. Returns how many days were dropped.
    pub fn drop_before(&self, indexes: &dyn Indexes, day: i64) -> Result<usize, StorageError> {
        {
            let mut heads = self.heads();
            heads.open.retain(|open_day, _| *open_day >= day);
            heads.sealing.retain(|sealing| sealing.day >= day);
        }
        let mut days: Vec<i64> = list(&self.root)?.into_iter().map(|(day, _)| day).collect();
        days.extend(indexes.index_days());
        days.sort_unstable();
        days.dedup();
        let mut dropped = 0;
        for expired in days.into_iter().filter(|expired| *expired < day) {
            indexes.drop_index(expired)?;
            let dir = self.root.join(expired.to_string());
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(io("cannot drop a segment day", &error)),
            }
            info!(day = expired, "expired segment day dropped");
            dropped += 1;
        }
        Ok(dropped)
    }

    /// Bytes the blocks take on disk.
    pub fn disk_space(&self) -> u64 {
        let Ok(days) = list(&self.root) else { return 0 };
        days.iter()
            .flat_map(|(day, blocks)| blocks.iter().map(move |block| block_path(&self.root, *day, *block)))
            .filter_map(|path| std::fs::metadata(path).ok())
            .map(|metadata| metadata.len())
            .sum()
    }

    /// The open and sealing blocks' candidates of `day` that `keep` selects.
    fn open_candidates(&self, day: i64, keep: impl Fn(&Candidate) -> bool) -> Vec<Candidate> {
        let heads = self.heads();
        let open = heads.open.get(&day).map(|head| head.entries.as_slice()).unwrap_or_default();
        let sealing =
            heads.sealing.iter().filter(|sealing| sealing.day == day).flat_map(|sealing| sealing.entries.iter());
        open.iter().chain(sealing).map(Candidate::of).filter(|candidate| keep(candidate)).collect()
    }

    /// The days that hold rows, open or sealed.
    fn days(&self, indexes: &dyn Indexes) -> Vec<i64> {
        let mut days = indexes.index_days();
        {
            let heads = self.heads();
            days.extend(heads.open.keys().copied());
            days.extend(heads.sealing.iter().map(|sealing| sealing.day));
        }
        days.sort_unstable();
        days.dedup();
        days
    }
}

fn block_path(root: &Path, day: i64, block: u32) -> PathBuf {
    root.join(day.to_string()).join(format!("{block:010}.blk"))
}

/// The days in `root` and their blocks.
fn list(root: &Path) -> Result<Vec<(i64, Vec<u32>)>, StorageError> {
    let read = |error: std::io::Error| io("cannot list the segment blocks", &error);
    let mut days = Vec::new();
    for day in std::fs::read_dir(root).map_err(read)? {
        let day = day.map_err(read)?;
        let Some(number) = day.file_name().to_str().and_then(|name| name.parse::<i64>().ok()) else { continue };
        let mut blocks = Vec::new();
        for block in std::fs::read_dir(day.path()).map_err(read)? {
            let name = block.map_err(read)?.file_name();
            if let Some(block) = name.to_str().and_then(|name| name.strip_suffix(".blk")).and_then(|n| n.parse().ok()) {
                blocks.push(block);
            }
        }
        blocks.sort_unstable();
        days.push((number, blocks));
    }
    days.sort_unstable();
    Ok(days)
}

/// Syncs a directory, so that the names created in it outlive a crash.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir).and_then(|dir| dir.sync_all()).map_err(|error| io("cannot sync a segment directory", &error))
}

/// The entries of a block's whole frames; a torn tail is cut from the file, a damaged frame
/// that whole frames follow is skipped.
fn recover(path: &Path, block: u32) -> Result<Vec<Entry>, StorageError> {
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(|error| io("cannot read a segment block", &error))?;
    let mut entries = Vec::new();
    let mut at = 0usize;
    let mut number = 0u32;
    // The end of the last frame that opened: what lies past it is a torn write, cut below.
    let mut whole = 0usize;
    while let Some(header) = frame::Header::read(&bytes[at..]) {
        let body_at = at + frame::HEADER;
        let end = body_at.saturating_add(header.compressed);
        let Some(body) = bytes.get(body_at..end) else { break };
        let Some(raw) = header.open(body) else {
            // A whole frame that does not open is damaged where it lies; frames after it were
            // synced and acknowledged, so it is skipped, not cut (unless nothing whole follows).
            error!(path = %path.display(), frame = at, "a segment block's frame is damaged; its rows are lost, the rest is kept");
            at = end;
            continue;
        };
        for (row_in_frame, row) in frame::rows(&raw).enumerate() {
            let decoded = row.and_then(|row| Ok((row, row.decode()?)));
            let (row, values) = match decoded {
                Ok(decoded) => decoded,
                Err(failure) => {
                    error!(path = %path.display(), frame = at, error = %failure, "a segment row cannot be read; the rest of its frame is skipped");
                    break;
                }
            };
            let place = Location { block, frame: at as u64, row: row_in_frame as u32 };
            entries.push(Entry::of(row.time_bucket, &values, place, number));
            number += 1;
        }
        at = end;
        whole = end;
    }
    let at = whole;
    if at < bytes.len() {
        warn!(path = %path.display(), kept = at, cut = bytes.len() - at, "a segment block's torn end is cut");
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|file| file.set_len(at as u64).and_then(|()| file.sync_all()))
            .map_err(|error| io("cannot cut a segment block", &error))?;
    }
    Ok(entries)
}

/// Writes a block's entries and its sealed mark into its day's index, as one table.
fn ingest(indexes: &dyn Indexes, day: i64, block: u32, entries: &[Entry]) -> Result<(), StorageError> {
    let index = indexes.index_for_write(day)?;
    let failed = |error: fjall::Error| StorageError::Unavailable(format!("cannot write a segment index: {error}"));
    let mut ingestion = index.start_ingestion().map_err(failed)?;
    // Keys go in sorted order, made one at a time: the endpoint keys (`E`), the trace keys
    // (`R`), the sealed mark (`S`), the time keys (`T`). Each run is sorted by the numbers its
    // keys are made of, which sort as the keys' bytes do.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    let tail = |entry: &Entry| (entry.time_bucket, entry.at.block, entry.number);
    order.sort_unstable_by_key(|&at| (entries[at].endpoint, tail(&entries[at])));
    for &at in &order {
        ingestion.write(entries[at].endpoint_key(), entries[at].place().to_vec()).map_err(failed)?;
    }
    order.sort_unstable_by_key(|&at| (entries[at].trace, tail(&entries[at])));
    for &at in &order {
        ingestion.write(entries[at].trace_key(), entries[at].place().to_vec()).map_err(failed)?;
    }
    ingestion.write(entry::sealed_mark(block), Vec::new()).map_err(failed)?;
    order.sort_unstable_by_key(|&at| tail(&entries[at]));
    for &at in &order {
        ingestion.write(entries[at].time_key(), entries[at].encode()).map_err(failed)?;
    }
    ingestion.finish().map_err(failed)
}
