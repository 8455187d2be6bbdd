//! A segment's index entry: what a search filters and sorts by, and where the row lies. The
//! text columns are kept as 64-bit hashes: an entry can rule a row out, never in — every row a
//! search returns is read and checked against the search in full, so a collision costs a read,
//! not a wrong answer.
//!
//! A day's index (`segment.index#yyyyMMdd`) holds each entry under three keys, written once in
//! sorted order when its block is sealed: by time (`T`), by endpoint (`E`) and by trace (`R`);
//! and one `S` key per sealed block.

use oap_storage::Value;
use oap_storage::builtin::segment::col;

/// Where a row lies: its block, the frame's offset in the block's file, its place in the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The block's number.
    pub block: u32,
    /// The frame's byte offset in the block's file.
    pub frame: u64,
    /// The row's place among the frame's rows.
    pub row: u32,
}

/// One segment row's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The row's bucket (the second its segment started).
    pub time_bucket: i64,
    /// `start_time`.
    pub start_time: i64,
    /// `latency`.
    pub latency: i32,
    /// `is_error`.
    pub is_error: bool,
    /// Hash of `trace_id`.
    pub trace: u64,
    /// Hash of `service_id`.
    pub service: u64,
    /// Hash of `service_instance_id`.
    pub instance: u64,
    /// Hash of `endpoint_id`.
    pub endpoint: u64,
    /// The row's place.
    pub at: Location,
    /// The row's number in its block (unique in the block; orders the keys).
    pub number: u32,
}

/// The encoded length of an entry's value.
const VALUE_LEN: usize = 8 + 4 + 1 + 8 * 5 + 4 + 8 + 4 + 4;

/// The stable hash of a text (stored on disk: it must not change between versions).
pub fn hash(text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

fn text_hash(values: &[Value], column: usize) -> u64 {
    match values.get(column) {
        Some(Value::Text(text)) => hash(text),
        _ => hash(""),
    }
}

fn int(values: &[Value], column: usize) -> i64 {
    values.get(column).and_then(Value::as_i64).unwrap_or(0)
}

impl Entry {
    /// The entry of a `segment` row stored at `at`.
    pub fn of(time_bucket: i64, values: &[Value], at: Location, number: u32) -> Self {
        Self {
            time_bucket,
            start_time: int(values, col::START_TIME),
            latency: i32::try_from(int(values, col::LATENCY)).unwrap_or(i32::MAX),
            is_error: int(values, col::IS_ERROR) != 0,
            trace: text_hash(values, col::TRACE_ID),
            service: text_hash(values, col::SERVICE_ID),
            instance: text_hash(values, col::SERVICE_INSTANCE_ID),
            endpoint: text_hash(values, col::ENDPOINT_ID),
            at,
            number,
        }
    }

    /// The stored value under each of its keys.
    pub fn encode(&self) -> Vec<u8> {
        let mut value = Vec::with_capacity(VALUE_LEN);
        value.extend_from_slice(&self.time_bucket.to_le_bytes());
        value.extend_from_slice(&self.latency.to_le_bytes());
        value.push(u8::from(self.is_error));
        for word in [self.start_time as u64, self.trace, self.service, self.instance, self.endpoint] {
            value.extend_from_slice(&word.to_le_bytes());
        }
        value.extend_from_slice(&self.at.block.to_le_bytes());
        value.extend_from_slice(&self.at.frame.to_le_bytes());
        value.extend_from_slice(&self.at.row.to_le_bytes());
        value.extend_from_slice(&self.number.to_le_bytes());
        value
    }

    /// An entry read back; `None` if the value is not one.
    pub fn decode(value: &[u8]) -> Option<Self> {
        if value.len() != VALUE_LEN {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(value[at..at + 8].try_into().expect("8 bytes"));
        let u32_at = |at: usize| u32::from_le_bytes(value[at..at + 4].try_into().expect("4 bytes"));
        Some(Self {
            time_bucket: u64_at(0) as i64,
            latency: u32_at(8) as i32,
            is_error: value[12] != 0,
            start_time: u64_at(13) as i64,
            trace: u64_at(21),
            service: u64_at(29),
            instance: u64_at(37),
            endpoint: u64_at(45),
            at: Location { block: u32_at(53), frame: u64_at(57), row: u32_at(65) },
            number: u32_at(69),
        })
    }

    /// The value under its endpoint and trace keys: only where the row lies (the key holds the
    /// bucket, the block and the number).
    pub fn place(&self) -> [u8; 12] {
        let mut value = [0u8; 12];
        value[..8].copy_from_slice(&self.at.frame.to_le_bytes());
        value[8..].copy_from_slice(&self.at.row.to_le_bytes());
        value
    }

    /// Its key by time.
    pub fn time_key(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(1 + 16);
        key.push(BY_TIME);
        self.push_tail(&mut key);
        key
    }

    /// Its key by endpoint.
    pub fn endpoint_key(&self) -> Vec<u8> {
        let mut key = by_hash(BY_ENDPOINT, self.endpoint);
        self.push_tail(&mut key);
        key
    }

    /// Its key by trace.
    pub fn trace_key(&self) -> Vec<u8> {
        let mut key = by_hash(BY_TRACE, self.trace);
        self.push_tail(&mut key);
        key
    }

    fn push_tail(&self, key: &mut Vec<u8>) {
        key.extend_from_slice(&bucket_bytes(self.time_bucket));
        key.extend_from_slice(&self.at.block.to_be_bytes());
        key.extend_from_slice(&self.number.to_be_bytes());
    }
}

/// A row a search may want: its bucket and place, and its whole entry when the index key that
/// found it holds one (a time key does; an endpoint or trace key holds only the place).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The row's bucket.
    pub time_bucket: i64,
    /// Where it lies.
    pub at: Location,
    /// Its entry, if known.
    pub entry: Option<Entry>,
}

impl Candidate {
    /// The candidate an index key and its value name; `None` if they are not one.
    pub fn read(key: &[u8], value: &[u8]) -> Option<Self> {
        match key.first()? {
            &BY_TIME => {
                let entry = Entry::decode(value)?;
                Some(Self { time_bucket: entry.time_bucket, at: entry.at, entry: Some(entry) })
            }
            &BY_ENDPOINT | &BY_TRACE => {
                let tail = key.get(9..)?;
                let time_bucket = bucket_from(tail.get(..8)?)?;
                let block = u32::from_be_bytes(tail.get(8..12)?.try_into().ok()?);
                let frame = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
                let row = u32::from_le_bytes(value.get(8..12)?.try_into().ok()?);
                Some(Self { time_bucket, at: Location { block, frame, row }, entry: None })
            }
            _ => None,
        }
    }

    /// The candidate of an open block's entry.
    pub fn of(entry: &Entry) -> Self {
        Self { time_bucket: entry.time_bucket, at: entry.at, entry: Some(*entry) }
    }
}

fn bucket_from(bytes: &[u8]) -> Option<i64> {
    Some((u64::from_be_bytes(bytes.try_into().ok()?) ^ (1 << 63)) as i64)
}

/// The first byte of time keys.
pub const BY_TIME: u8 = b'T';
/// The first byte of endpoint keys.
pub const BY_ENDPOINT: u8 = b'E';
/// The first byte of trace keys.
pub const BY_TRACE: u8 = b'R';
/// The first byte of a sealed block's mark.
const SEALED: u8 = b'S';

/// The prefix of every key of one hash under `kind`.
pub fn by_hash(kind: u8, hash: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 8 + 8 + 8);
    key.push(kind);
    key.extend_from_slice(&hash.to_be_bytes());
    key
}

/// Where keys of `prefix` at `time_bucket` begin.
pub fn at_bucket(prefix: &[u8], time_bucket: i64) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&bucket_bytes(time_bucket));
    key
}

/// The mark that block `block` is sealed into its day's index.
pub fn sealed_mark(block: u32) -> Vec<u8> {
    let mut key = vec![SEALED];
    key.extend_from_slice(&block.to_be_bytes());
    key
}

fn bucket_bytes(time_bucket: i64) -> [u8; 8] {
    // The sign bit flipped, so that any i64 sorts as its bytes do.
    ((time_bucket as u64) ^ (1 << 63)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(trace: &str, endpoint: &str, start_time: i64, latency: i32) -> Vec<Value> {
        let text = |text: &str| Value::Text(text.to_owned());
        vec![
            text(trace),
            text("svc"),
            text("inst"),
            text(endpoint),
            Value::Long(start_time),
            Value::Int(latency),
            Value::Int(1),
            Value::Bytes(vec![1, 2]),
            Value::TextList(vec![]),
        ]
    }

    #[test]
    fn an_entry_round_trips_and_its_keys_sort_by_what_they_index() {
        let at = Location { block: 7, frame: 1 << 33, row: 5 };
        let entry = Entry::of(20_261_207_120_000, &values("t1", "e1", 1_765_000_000_000, 12), at, 9);
        assert_eq!(Entry::decode(&entry.encode()), Some(entry));
        assert!(entry.is_error);
        assert_eq!((entry.trace, entry.endpoint), (hash("t1"), hash("e1")));
        let later = Entry::of(20_261_207_120_001, &values("t1", "e1", 1_765_000_001_000, 3), at, 1);
        let [time, endpoint, trace] = [entry.time_key(), entry.endpoint_key(), entry.trace_key()];
        let [later_time, later_endpoint, later_trace] = [later.time_key(), later.endpoint_key(), later.trace_key()];
        assert!(time < later_time && endpoint < later_endpoint && trace < later_trace);
        assert!(trace.starts_with(&by_hash(BY_TRACE, hash("t1"))));
        assert!(later_trace >= at_bucket(&by_hash(BY_TRACE, hash("t1")), 20_261_207_120_001));
        assert!(Entry::decode(&[0; 3]).is_none());
        let by_time = Candidate::read(&time, &entry.encode()).expect("a time key");
        assert_eq!(by_time, Candidate::of(&entry));
        for key in [&endpoint, &trace] {
            let found = Candidate::read(key, &entry.place()).expect("an endpoint or trace key");
            assert_eq!((found.time_bucket, found.at, found.entry), (entry.time_bucket, entry.at, None));
        }
    }
}
