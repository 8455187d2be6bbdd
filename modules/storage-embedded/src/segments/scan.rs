//! Searches of the segment store: the index picks candidate rows by time, endpoint or trace and
//! rules out what its hashes and numbers can; each candidate row is then read and checked
//! against the whole query, as the LSM scan did, and paged the same way ([`Page`]).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use oap_storage::builtin::segment::col;
use oap_storage::{Filter, Row, RowKey, ScanQuery, StorageError, Value, day_of};

use super::entry::{self, BY_ENDPOINT, BY_TIME, BY_TRACE, Candidate, Entry, Location};
use super::{Indexes, Segments, block_path, frame};
use crate::store::Page;

/// What the index can decide of a query: equalities of the hashed columns, the error state and
/// the latency range.
#[derive(Debug, Default)]
struct Prefilter {
    trace: Option<u64>,
    service: Option<u64>,
    instance: Option<u64>,
    endpoint: Option<u64>,
    is_error: Option<bool>,
    latency: (Option<i64>, Option<i64>),
}

impl Prefilter {
    fn of(query: &ScanQuery) -> Self {
        let mut pre = Self::default();
        for filter in &query.filters {
            match filter {
                Filter::Eq { column, value: Value::Text(text) } => {
                    let hash = Some(entry::hash(text));
                    match *column {
                        col::TRACE_ID => pre.trace = hash,
                        col::SERVICE_ID => pre.service = hash,
                        col::SERVICE_INSTANCE_ID => pre.instance = hash,
                        col::ENDPOINT_ID => pre.endpoint = hash,
                        _ => {}
                    }
                }
                Filter::Eq { column: col::IS_ERROR, value } => {
                    if let Some(flag) = value.as_i64() {
                        pre.is_error = Some(flag != 0);
                    }
                }
                Filter::Range { column: col::LATENCY, min, max } => pre.latency = (*min, *max),
                _ => {}
            }
        }
        pre
    }

    /// False only when the row cannot match.
    fn admits(&self, entry: &Entry) -> bool {
        let same = |wanted: Option<u64>, found: u64| wanted.is_none_or(|wanted| wanted == found);
        same(self.trace, entry.trace)
            && same(self.service, entry.service)
            && same(self.instance, entry.instance)
            && same(self.endpoint, entry.endpoint)
            && self.is_error.is_none_or(|flag| flag == entry.is_error)
            && self.latency.0.is_none_or(|min| i64::from(entry.latency) >= min)
            && self.latency.1.is_none_or(|max| i64::from(entry.latency) <= max)
    }

    /// The index keys to read: their prefix.
    fn prefix(&self) -> Vec<u8> {
        match (self.trace, self.endpoint) {
            (Some(trace), _) => entry::by_hash(BY_TRACE, trace),
            (None, Some(endpoint)) => entry::by_hash(BY_ENDPOINT, endpoint),
            (None, None) => vec![BY_TIME],
        }
    }
}

/// Decompressed frames and open files, kept for one search: neighbouring candidates share them.
struct Reader<'a> {
    root: &'a std::path::Path,
    files: HashMap<(i64, u32), File>,
    frames: HashMap<(i64, u32, u64), Arc<Vec<u8>>>,
}

/// Frames a search keeps decompressed at most.
const KEPT_FRAMES: usize = 32;

impl Reader<'_> {
    fn frame(&mut self, day: i64, at: Location) -> Result<Arc<Vec<u8>>, StorageError> {
        let key = (day, at.block, at.frame);
        if let Some(raw) = self.frames.get(&key) {
            return Ok(raw.clone());
        }
        let unreadable =
            |error: std::io::Error| StorageError::Unavailable(format!("cannot read a segment block: {error}"));
        let file = match self.files.entry((day, at.block)) {
            std::collections::hash_map::Entry::Occupied(file) => file.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(File::open(block_path(self.root, day, at.block)).map_err(unreadable)?)
            }
        };
        let mut header = [0u8; frame::HEADER];
        file.read_exact_at(&mut header, at.frame).map_err(unreadable)?;
        let header = frame::Header::read(&header).expect("a whole header");
        let mut body = vec![0u8; header.compressed];
        file.read_exact_at(&mut body, at.frame + frame::HEADER as u64).map_err(unreadable)?;
        let raw = Arc::new(
            header.open(&body).ok_or_else(|| StorageError::Corrupt("a segment block's frame is damaged".to_owned()))?,
        );
        if self.frames.len() >= KEPT_FRAMES {
            self.frames.clear();
        }
        self.frames.insert(key, raw.clone());
        Ok(raw)
    }
}

impl Segments {
    /// The rows `query` selects, sorted and paged.
    pub fn scan(&self, indexes: &dyn Indexes, query: &ScanQuery) -> Result<Vec<Row>, StorageError> {
        let pre = Prefilter::of(query);
        let mut page = Page::new(query);
        let mut days = self.days(indexes);
        if let Some(range) = query.time_range {
            days.retain(|day| (day_of(range.start)..=day_of(range.end)).contains(day));
        }
        if page.newest_first() {
            days.reverse();
        }
        let mut reader = Reader { root: &self.root, files: HashMap::new(), frames: HashMap::new() };
        let mut seen: HashSet<(i64, String)> = HashSet::new();
        for day in days {
            let keep = |candidate: &Candidate| {
                candidate.entry.is_none_or(|entry| pre.admits(&entry))
                    && query.time_range.is_none_or(|range| range.contains(candidate.time_bucket))
            };
            // The open blocks' candidates (few: one block's worth), sorted; the index's read
            // lazily in its key order, which is bucket order under any prefix. The two are
            // merged by bucket, so a newest-first page stops reading where it is complete.
            let newest = page.newest_first();
            let mut open = self.open_candidates(day, keep);
            open.sort_unstable_by_key(|candidate| (candidate.time_bucket, candidate.at));
            if newest {
                open.reverse();
            }
            let stored: Box<dyn Iterator<Item = fjall::Guard>> = match indexes.index(day) {
                Some(index) => {
                    let prefix = pre.prefix();
                    let entries = match query.time_range {
                        Some(range) => index.range(
                            entry::at_bucket(&prefix, range.start)
                                ..entry::at_bucket(&prefix, range.end.saturating_add(1)),
                        ),
                        None => index.prefix(&prefix),
                    };
                    if newest { Box::new(entries.rev()) } else { Box::new(entries) }
                }
                None => Box::new(std::iter::empty()),
            };
            let stored = stored.map(|guard| {
                let (key, value) = guard
                    .into_inner()
                    .map_err(|error| StorageError::Unavailable(format!("cannot read a segment index: {error}")))?;
                Candidate::read(&key, &value)
                    .ok_or_else(|| StorageError::Corrupt("a segment index entry cannot be read".to_owned()))
            });
            let stored = stored.filter(|candidate| candidate.as_ref().map_or(true, &keep));
            let candidates = merge_by_bucket(open.into_iter().map(Ok), stored, newest);
            for candidate in candidates {
                let candidate = candidate?;
                if page.full_before(candidate.time_bucket) {
                    return Ok(page.finish());
                }
                let raw = reader.frame(day, candidate.at)?;
                let row = frame::rows(&raw)
                    .nth(candidate.at.row as usize)
                    .ok_or_else(|| StorageError::Corrupt("a segment index entry points past its frame".to_owned()))??;
                if seen.contains(&(row.time_bucket, row.id.to_owned())) {
                    continue;
                }
                if page.offer(row.id, row.time_bucket, row.values)? {
                    seen.insert((row.time_bucket, row.id.to_owned()));
                }
            }
        }
        Ok(page.finish())
    }

    /// The rows of `keys`, those stored.
    pub fn multi_get(&self, indexes: &dyn Indexes, keys: &[RowKey]) -> Result<Vec<Row>, StorageError> {
        let mut rows = Vec::new();
        for key in keys {
            let query = ScanQuery {
                time_range: Some(oap_storage::TimeRange { start: key.time_bucket, end: key.time_bucket }),
                ..ScanQuery::default()
            };
            if let Some(row) = self.scan(indexes, &query)?.into_iter().find(|row| row.id == key.id) {
                rows.push(row);
            }
        }
        Ok(rows)
    }
}

/// Two runs of candidates, each in bucket order (descending when `newest`), as one.
fn merge_by_bucket<A, B>(a: A, b: B, newest: bool) -> impl Iterator<Item = Result<Candidate, StorageError>>
where
    A: Iterator<Item = Result<Candidate, StorageError>>,
    B: Iterator<Item = Result<Candidate, StorageError>>,
{
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || {
        let take_a = match (a.peek(), b.peek()) {
            (None, None) => return None,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            // An error goes first, to end the search.
            (Some(Err(_)), _) => true,
            (_, Some(Err(_))) => false,
            (Some(Ok(x)), Some(Ok(y))) => {
                if newest {
                    x.time_bucket >= y.time_bucket
                } else {
                    x.time_bucket <= y.time_bucket
                }
            }
        };
        if take_a { a.next() } else { b.next() }
    })
}
