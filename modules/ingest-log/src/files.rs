//! The segment files of a log directory: `<number>.log`, numbered in the order they were
//! started (20 digits, so names sort as numbers), each a run of frames. A file is read frame by
//! frame through a small buffer — never whole — and is readable up to its first frame that is not
//! whole and valid.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::frame::{self, Decoded, Entry};

/// The extension of segment files.
const EXTENSION: &str = "log";

/// The path of segment file `number` in `dir`.
pub fn path_of(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.{EXTENSION}"))
}

/// The segment files in `dir`, by number.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == EXTENSION)
            && let Some(number) = path.file_stem().and_then(|stem| stem.to_str()).and_then(|stem| stem.parse().ok())
        {
            files.push((number, path));
        }
    }
    files.sort();
    Ok(files)
}

/// What a file holds, read through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Scan {
    /// Bytes of whole, valid frames from the start.
    pub valid_bytes: u64,
    /// The bytes after them (a torn tail, or damage).
    pub invalid_bytes: u64,
    /// Whole frames.
    pub entries: u64,
    /// The highest epoch among them (0 without any).
    pub max_epoch: u64,
}

/// Reads `path` through, frame by frame.
pub fn scan(path: &Path) -> io::Result<Scan> {
    let file = File::open(path)?;
    let length = file.metadata()?.len();
    let mut frames = Frames::new(file, length);
    let mut scan = Scan::default();
    while let Some(entry) = frames.next_entry()? {
        scan.entries += 1;
        scan.max_epoch = scan.max_epoch.max(entry.epoch);
    }
    scan.valid_bytes = frames.consumed;
    scan.invalid_bytes = length - frames.consumed;
    Ok(scan)
}

/// The frames of one file, read in order up to `limit` bytes.
pub struct Frames {
    reader: BufReader<File>,
    limit: u64,
    consumed: u64,
    frame: Vec<u8>,
}

impl Frames {
    /// The frames of `file` within its first `limit` bytes.
    pub fn new(file: File, limit: u64) -> Self {
        Self { reader: BufReader::with_capacity(256 << 10, file), limit, consumed: 0, frame: Vec::new() }
    }

    /// The next whole, valid frame; `None` where the readable part ends.
    pub fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        let mut header = [0u8; 8];
        if self.limit - self.consumed < 8 || !read_fully(&mut self.reader, &mut header)? {
            return Ok(None);
        }
        let Some(size) = frame::frame_size(&header) else { return Ok(None) };
        if self.limit - self.consumed < size as u64 {
            return Ok(None);
        }
        self.frame.clear();
        self.frame.extend_from_slice(&header);
        self.frame.resize(size, 0);
        if !read_fully(&mut self.reader, &mut self.frame[8..])? {
            return Ok(None);
        }
        match frame::decode(&self.frame) {
            Decoded::Frame { entry, size } => {
                self.consumed += size as u64;
                Ok(Some(entry))
            }
            Decoded::End => Ok(None),
        }
    }
}

/// Fills `buf`; false when the file ends first.
fn read_fully(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match reader.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(error) => Err(error),
    }
}

/// Makes a new or removed file's name durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
