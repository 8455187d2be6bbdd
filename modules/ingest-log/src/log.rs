//! The log itself: appends from any thread, group-committed by one syncer thread.
//!
//! An append copies its frame into a buffer of the appending thread's own (a mutex no other
//! appender takes; the syncer takes it once per batch) and gets a [`Ticket`]: the generation its
//! frame will be written in. The syncer, woken by the first append after its last batch, closes
//! the open generation, takes every thread's buffer, writes them to the current segment file and
//! syncs it once (`fdatasync`) for all of them; then every ticket of that generation is durable.
//! Appenders never wait on one another, and a slow disk makes batches larger, not appends slower.
//!
//! Why a ticket of generation `g` is durable once batch `g` is synced: the syncer advances the
//! open generation *before* it takes the buffers, and an appender reads the generation while it
//! holds its buffer's lock, so a frame is either taken by batch `g` (it was appended under `g`)
//! or appended after the advance (under `g + 1`).
//!
//! A failed write or sync keeps the batch: the file is cut back to its last synced length and the
//! batch written again after a growing pause, while [`IngestLog::durable`] reports the failure to
//! whoever waits. Files are rotated at `segmentBytes` and deleted from the front by
//! [`IngestLog::truncate_through`] once every entry in them is stored elsewhere.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use thread_local::ThreadLocal;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::files::{self, Frames};
use crate::frame::{self, Entry, EntryKind};

/// Emptied buffers the syncer keeps to hand back to appenders, and the largest it keeps: a
/// thread's buffer keeps its capacity from batch to batch instead of growing it anew.
const POOL: usize = 64;
const POOLED_CAPACITY: usize = 4 << 20;
/// The least time from the start of one sync to the start of the next: under load, waiting this
/// long lets a batch gather more appends, so the disk is synced (and the kernel's writeback is
/// paid) a few hundred times a second at most, while a lone append still waits no longer.
const SYNC_FLOOR: Duration = Duration::from_millis(5);
/// The first pause after a failed write, doubling up to `LONGEST_PAUSE`.
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// Where the log lives and how large it may grow.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// The directory of the segment files (created if missing).
    pub dir: PathBuf,
    /// A segment file is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// The most the files may hold together; past it [`IngestLog::is_full`] says so, and the
    /// receivers refuse new data until truncation makes room.
    pub max_bytes: u64,
}

/// The generation an append is written in; [`IngestLog::durable`] waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// Why the log cannot be used, or an append was not made durable.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// The directory or a file in it cannot be read, created or written at open.
    #[error("the ingest log in {}: {message}", dir.display())]
    Open {
        /// The log directory.
        dir: PathBuf,
        /// What failed.
        message: String,
    },
    /// Writing or syncing fails; the batch is being written again.
    #[error("the ingest log cannot write: {0}")]
    Write(Arc<str>),
    /// The log was closed before the append was durable.
    #[error("the ingest log has stopped")]
    Stopped,
}

/// What was found in the directory at open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Segment files found.
    pub files: usize,
    /// Whole entries in them.
    pub entries: u64,
    /// Bytes of whole entries.
    pub bytes: u64,
    /// Bytes of a torn last entry, cut from the last file.
    pub torn_bytes: u64,
    /// Bytes after a damaged entry in an earlier file (not replayed; reported, kept on disk).
    pub damaged_bytes: u64,
    /// The highest epoch of any entry (0 without entries).
    pub max_epoch: u64,
}

/// A segment file the log knows.
#[derive(Debug, Clone)]
struct SegmentFile {
    number: u64,
    /// Bytes of whole entries (what replay reads; what counts against `max_bytes`).
    bytes: u64,
    max_epoch: u64,
}

/// One thread's appends since the syncer last took them.
#[derive(Default)]
struct Buffer {
    bytes: Vec<u8>,
    entries: u64,
    max_epoch: u64,
}

#[derive(Debug, Clone, Default)]
struct Durable {
    generation: u64,
    failure: Option<Arc<str>>,
    /// The syncer has ended: what it had not synced never will be.
    stopped: bool,
}

struct Shared {
    dir: PathBuf,
    config: LogConfig,
    open_generation: AtomicU64,
    buffers: ThreadLocal<Mutex<Buffer>>,
    /// An append is waiting to be taken.
    pending: AtomicBool,
    stopping: AtomicBool,
    durable: watch::Sender<Durable>,
    /// Closed files, oldest first, and the one written now (last).
    files: Mutex<VecDeque<SegmentFile>>,
    total_bytes: AtomicU64,
    entries_written: AtomicU64,
}

/// A node's ingest log, open for appends.
pub struct IngestLog {
    shared: Arc<Shared>,
    /// The files found at open, for replay.
    found: Vec<SegmentFile>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    syncer_thread: Thread,
    /// Locked while the log is open: one process per directory.
    lock_file: File,
}

impl IngestLog {
    /// The directory of the log's files.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Opens the log in `config.dir`: cuts a torn last entry, notes what the files hold (for
    /// [`IngestLog::replay`]) and starts a new file for appends.
    pub fn open(config: LogConfig) -> Result<(IngestLog, Recovered), LogError> {
        let dir = config.dir.clone();
        let failed =
            |what: &str, error: io::Error| LogError::Open { dir: dir.clone(), message: format!("{what}: {error}") };
        std::fs::create_dir_all(&dir).map_err(|error| failed("cannot create the directory", error))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(|error| failed("cannot open its lock file", error))?;
        lock.try_lock().map_err(|error| LogError::Open {
            dir: dir.clone(),
            message: format!("another process has it open ({error}); give each server a logDir of its own"),
        })?;
        let listed = files::list(&dir).map_err(|error| failed("cannot list the directory", error))?;
        let mut recovered = Recovered { files: listed.len(), ..Recovered::default() };
        let mut found = Vec::with_capacity(listed.len());
        for (index, (number, path)) in listed.iter().enumerate() {
            let scan = files::scan(path).map_err(|error| failed(&format!("cannot read {}", path.display()), error))?;
            if scan.invalid_bytes > 0 {
                if index + 1 == listed.len() {
                    cut(path, scan.valid_bytes)
                        .map_err(|error| failed(&format!("cannot cut {}", path.display()), error))?;
                    recovered.torn_bytes = scan.invalid_bytes;
                } else {
                    warn!(file = %path.display(), bytes = scan.invalid_bytes, "damaged ingest log file: its tail is skipped");
                    recovered.damaged_bytes += scan.invalid_bytes;
                }
            }
            recovered.entries += scan.entries;
            recovered.bytes += scan.valid_bytes;
            recovered.max_epoch = recovered.max_epoch.max(scan.max_epoch);
            found.push(SegmentFile { number: *number, bytes: scan.valid_bytes, max_epoch: scan.max_epoch });
        }
        let next = listed.last().map_or(0, |(number, _)| number + 1);
        create(&dir, next).map_err(|error| failed("cannot start a file", error))?;
        let mut known: VecDeque<SegmentFile> = found.iter().cloned().collect();
        known.push_back(SegmentFile { number: next, bytes: 0, max_epoch: 0 });
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            config,
            open_generation: AtomicU64::new(1),
            buffers: ThreadLocal::new(),
            pending: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            durable: watch::Sender::new(Durable::default()),
            files: Mutex::new(known),
            total_bytes: AtomicU64::new(recovered.bytes),
            entries_written: AtomicU64::new(0),
        });
        let syncer = std::thread::Builder::new()
            .name("ingest-log-sync".to_owned())
            .spawn({
                let shared = shared.clone();
                move || sync_loop(&shared)
            })
            .map_err(|error| failed("cannot start the syncer thread", error))?;
        let syncer_thread = syncer.thread().clone();
        if recovered.files > 0 {
            info!(dir = %dir.display(), files = recovered.files, entries = recovered.entries, bytes = recovered.bytes,
                torn_bytes = recovered.torn_bytes, "ingest log opened");
        }
        Ok((IngestLog { shared, found, syncer: Mutex::new(Some(syncer)), syncer_thread, lock_file: lock }, recovered))
    }

    /// Appends an entry taken in `epoch`; it is durable once [`IngestLog::durable`] of the
    /// ticket returns. Never blocks on the disk.
    pub fn append(&self, epoch: u64, kind: EntryKind, payload: &[u8]) -> Ticket {
        let shared = &*self.shared;
        let buffer = shared.buffers.get_or_default();
        let generation = {
            let mut buffer = lock(buffer);
            let generation = shared.open_generation.load(Ordering::Acquire);
            frame::encode(&mut buffer.bytes, epoch, kind, payload);
            buffer.entries += 1;
            buffer.max_epoch = buffer.max_epoch.max(epoch);
            generation
        };
        self.wake_syncer();
        Ticket(generation)
    }

    fn wake_syncer(&self) {
        let pending = &self.shared.pending;
        if !pending.load(Ordering::Relaxed) && !pending.swap(true, Ordering::AcqRel) {
            self.syncer_thread.unpark();
        }
    }

    /// A ticket that is durable once everything appended before this call (on any thread) is.
    pub fn ticket_now(&self) -> Ticket {
        Ticket(self.shared.open_generation.load(Ordering::Acquire))
    }

    /// Waits until the entry of `ticket` is synced to disk; an error while the log cannot write
    /// (it keeps trying) or once it has stopped.
    pub async fn durable(&self, ticket: Ticket) -> Result<(), LogError> {
        let mut durable = self.shared.durable.subscribe();
        if durable.borrow().generation < ticket.0 {
            // The generation closes with the syncer's next batch, even an empty one.
            self.wake_syncer();
        }
        let seen = durable
            .wait_for(|durable| durable.generation >= ticket.0 || durable.failure.is_some() || durable.stopped)
            .await
            .map_err(|_| LogError::Stopped)?;
        match (&seen.failure, seen.generation >= ticket.0) {
            (_, true) => Ok(()),
            (Some(failure), false) => Err(LogError::Write(failure.clone())),
            (None, false) => Err(LogError::Stopped),
        }
    }

    /// The entries found at open, in the order they were written, read as they are iterated.
    pub fn replay(&self) -> Replay {
        let files = self.found.iter().map(|file| (files::path_of(&self.shared.dir, file.number), file.bytes)).collect();
        Replay { files, current: None }
    }

    /// Deletes the oldest files whose every entry is of `epoch` or earlier (never the one being
    /// written); returns how many bytes were freed.
    pub fn truncate_through(&self, epoch: u64) -> io::Result<u64> {
        self.delete_through(epoch, 1)
    }

    /// Deletes files from the front while every entry in them is of `epoch` or earlier, leaving
    /// at least `keep` files; syncs the directory if any went.
    fn delete_through(&self, epoch: u64, keep: usize) -> io::Result<u64> {
        let mut freed = 0;
        let mut files = lock(&self.shared.files);
        while files.len() > keep && files.front().is_some_and(|file| file.max_epoch <= epoch) {
            let file = files.front().expect("checked").clone();
            std::fs::remove_file(files::path_of(&self.shared.dir, file.number))?;
            files.pop_front();
            freed += file.bytes;
            self.shared.total_bytes.fetch_sub(file.bytes, Ordering::Relaxed);
        }
        drop(files);
        if freed > 0 {
            files::sync_dir(&self.shared.dir)?;
        }
        Ok(freed)
    }

    /// Bytes the files hold.
    pub fn bytes(&self) -> u64 {
        self.shared.total_bytes.load(Ordering::Relaxed)
    }

    /// Entries written since open.
    pub fn entries_written(&self) -> u64 {
        self.shared.entries_written.load(Ordering::Relaxed)
    }

    /// Segment files on disk.
    pub fn files(&self) -> usize {
        lock(&self.shared.files).len()
    }

    /// Whether the files hold `maxBytes` or more: new data should wait for truncation.
    pub fn is_full(&self) -> bool {
        self.bytes() >= self.shared.config.max_bytes
    }

    /// Why the log cannot write now, while it cannot (it keeps trying).
    pub fn failure(&self) -> Option<Arc<str>> {
        self.shared.durable.borrow().failure.clone()
    }

    /// Writes what was appended, syncs it and stops the syncer; appends after it are not written.
    /// (Also when the log is dropped.)
    pub fn close(&self) {
        self.stop_syncer();
        let _ = self.lock_file.unlock();
    }

    /// [`IngestLog::close`], deleting first every file — the one written last too — whose
    /// entries are all of `epoch` or earlier: after a clean stop that stored everything, the next
    /// start has nothing to replay. Returns how many bytes were freed.
    pub fn close_through(&self, epoch: u64) -> io::Result<u64> {
        self.stop_syncer();
        let cut = self.delete_through(epoch, 0);
        let _ = self.lock_file.unlock();
        cut
    }

    fn stop_syncer(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.syncer_thread.unpark();
        if let Some(syncer) = lock(&self.syncer).take() {
            let _ = syncer.join();
        }
    }
}

impl Drop for IngestLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Tells every waiter the syncer has ended, however it ends (a panic included).
struct Stopped<'a>(&'a Shared);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.durable.send_modify(|durable| durable.stopped = true);
    }
}

/// The syncer: batch after batch until the log stops, then one last batch.
fn sync_loop(shared: &Shared) {
    let _stopped = Stopped(shared);
    write_batches(shared);
}

fn write_batches(shared: &Shared) {
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let mut writer = match Writer::resume(shared) {
        Ok(writer) => writer,
        Err(error) => {
            let failure: Arc<str> = format!("cannot open the current file: {error}").into();
            shared.durable.send_modify(|durable| durable.failure = Some(failure));
            return;
        }
    };
    let mut last_sync = std::time::Instant::now() - SYNC_FLOOR;
    loop {
        let stopping = shared.stopping.load(Ordering::Acquire);
        if !stopping && let Some(early) = SYNC_FLOOR.checked_sub(last_sync.elapsed()) {
            std::thread::sleep(early);
        }
        if !shared.pending.swap(false, Ordering::AcqRel) {
            if stopping {
                return;
            }
            std::thread::park_timeout(Duration::from_secs(1));
            continue;
        }
        last_sync = std::time::Instant::now();
        let closing = shared.open_generation.fetch_add(1, Ordering::AcqRel);
        let mut batch = Vec::new();
        let (mut entries, mut max_epoch) = (0, 0);
        for buffer in &shared.buffers {
            let mut buffer = lock(buffer);
            if !buffer.bytes.is_empty() {
                let mut spare = pool.pop().unwrap_or_default();
                std::mem::swap(&mut buffer.bytes, &mut spare);
                batch.push(spare);
                entries += std::mem::take(&mut buffer.entries);
                max_epoch = max_epoch.max(std::mem::take(&mut buffer.max_epoch));
            }
        }
        let mut pause = FIRST_PAUSE;
        while let Err(error) = writer.write(shared, &batch, max_epoch) {
            warn!(%error, "the ingest log cannot write; trying again");
            let failure: Arc<str> = error.to_string().into();
            shared.durable.send_modify(|durable| durable.failure = Some(failure));
            if shared.stopping.load(Ordering::Acquire) {
                return;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(LONGEST_PAUSE);
        }
        for mut bytes in batch {
            if pool.len() < POOL && bytes.capacity() <= POOLED_CAPACITY {
                bytes.clear();
                pool.push(bytes);
            }
        }
        shared.entries_written.fetch_add(entries, Ordering::Relaxed);
        shared.durable.send_modify(|durable| {
            durable.generation = closing;
            durable.failure = None;
        });
        writer.rotate_if_full(shared);
    }
}

/// The file being written and its synced length.
struct Writer {
    file: File,
    number: u64,
    synced: u64,
}

impl Writer {
    fn resume(shared: &Shared) -> io::Result<Writer> {
        let number = lock(&shared.files).back().map_or(0, |file| file.number);
        let file = OpenOptions::new().append(true).open(files::path_of(&shared.dir, number))?;
        Ok(Writer { file, number, synced: 0 })
    }

    /// Writes and syncs `batch`. On failure the file is cut back to what was synced before — or,
    /// if even that fails, left for a new file, so a partial frame is never followed by more.
    fn write(&mut self, shared: &Shared, batch: &[Vec<u8>], max_epoch: u64) -> io::Result<()> {
        let size: u64 = batch.iter().map(|bytes| bytes.len() as u64).sum();
        if size == 0 {
            return Ok(());
        }
        let written = (|| {
            for bytes in batch {
                self.file.write_all(bytes)?;
            }
            self.file.sync_data()
        })();
        if let Err(error) = written {
            if self.file.set_len(self.synced).is_err() {
                self.rotate(shared)?;
            }
            return Err(error);
        }
        self.synced += size;
        shared.total_bytes.fetch_add(size, Ordering::Relaxed);
        let mut files = lock(&shared.files);
        let current = files.back_mut().expect("the current file is always listed");
        current.bytes = self.synced;
        current.max_epoch = current.max_epoch.max(max_epoch);
        Ok(())
    }

    /// Starts the next file once this one is full; a failure is logged and tried again after a
    /// later batch (the batch it follows is durable either way).
    fn rotate_if_full(&mut self, shared: &Shared) {
        if self.synced >= shared.config.segment_bytes
            && let Err(error) = self.rotate(shared)
        {
            warn!(%error, "the ingest log cannot start its next file; the current one grows meanwhile");
        }
    }

    fn rotate(&mut self, shared: &Shared) -> io::Result<()> {
        let next = self.number + 1;
        self.file = create(&shared.dir, next)?;
        lock(&shared.files).push_back(SegmentFile { number: next, bytes: 0, max_epoch: 0 });
        self.number = next;
        self.synced = 0;
        Ok(())
    }
}

/// Creates segment file `number` (empty: one a failed attempt left is emptied) and makes its name
/// durable.
fn create(dir: &Path, number: u64) -> io::Result<File> {
    let file = OpenOptions::new().create(true).write(true).truncate(true).open(files::path_of(dir, number))?;
    drop(file);
    let file = OpenOptions::new().append(true).open(files::path_of(dir, number))?;
    files::sync_dir(dir)?;
    Ok(file)
}

/// Cuts `path` to `length` bytes, durably.
fn cut(path: &Path, length: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(length)?;
    file.sync_all()
}

/// The entries found at open, file after file, each read up to its last whole entry.
pub struct Replay {
    files: VecDeque<(PathBuf, u64)>,
    current: Option<Frames>,
}

impl Iterator for Replay {
    type Item = io::Result<Entry>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(frames) = &mut self.current {
                match frames.next_entry() {
                    Ok(Some(entry)) => return Some(Ok(entry)),
                    Ok(None) => self.current = None,
                    Err(error) => {
                        self.current = None;
                        return Some(Err(error));
                    }
                }
            }
            let (path, bytes) = self.files.pop_front()?;
            match File::open(&path) {
                Ok(file) => self.current = Some(Frames::new(file, bytes)),
                Err(error) => return Some(Err(error)),
            }
        }
    }
}

/// A poisoned buffer only means an appender panicked while copying plain bytes.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
