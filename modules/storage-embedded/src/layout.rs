//! Where rows live: which partition (fjall keyspace) and under which key.
//!
//! - Metadata (metrics that are not time-relative: traffic, aliases) lives in one partition,
//!   `meta`, keyed `model \0 id`.
//! - Everything else lives in partitions of one day, so TTL drops whole days: `metrics#yyyyMMdd`
//!   for time-relative metrics (minute, hour and day rows alike), `records#yyyyMMdd` for records,
//!   and `<model>#yyyyMMdd` for each super dataset. Keys are
//!   `model \0 bucket(8 bytes, big-endian) id`, so one model's rows of a bucket range are one
//!   contiguous key range. The `segment` record is the exception: its rows live in block files
//!   and its index in `segment.index#yyyyMMdd` ([`crate::segments`]).
//! - A record model's lookup columns are indexed per day in `<group>.lookup#yyyyMMdd`, keyed
//!   `model \0 column value-length(2) value bucket id`, with no value; dropping a day drops its
//!   index with it. (No built-in model but `segment` has lookup columns today.)

use oap_storage::{Model, ModelKind, day_of};

/// The partition of metadata.
pub const META: &str = "meta";

/// The separator of a group and its day in a partition name.
const DAY_MARK: char = '#';

/// How a model's rows are partitioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement<'a> {
    /// In `meta`, by id alone.
    Meta,
    /// In the day partitions of a group.
    Daily {
        /// The group (`metrics`, `records`, or the super dataset's name).
        group: &'a str,
    },
}

impl<'a> Placement<'a> {
    /// Where `model`'s rows live.
    pub fn of(model: &'a Model) -> Self {
        match model.kind {
            ModelKind::Metrics { time_relative: false, .. } => Placement::Meta,
            ModelKind::Metrics { time_relative: true, .. } => Placement::Daily { group: "metrics" },
            ModelKind::Record { super_dataset: false } => Placement::Daily { group: "records" },
            ModelKind::Record { super_dataset: true } => Placement::Daily { group: &model.name },
        }
    }
}

/// One partition, compared without building its name (a write batch groups its rows by it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partition<'a> {
    /// `meta`.
    Meta,
    /// A group's data of one day.
    Data(&'a str, i64),
    /// A group's lookup index of one day.
    Lookup(&'a str, i64),
}

impl Partition<'_> {
    /// Its name.
    pub fn name(self) -> String {
        match self {
            Partition::Meta => META.to_owned(),
            Partition::Data(group, day) => daily(group, day),
            Partition::Lookup(group, day) => lookup(group, day),
        }
    }
}

/// The name of a group's partition of `day`.
pub fn daily(group: &str, day: i64) -> String {
    format!("{group}{DAY_MARK}{day}")
}

/// The name of a group's lookup index of `day`.
pub fn lookup(group: &str, day: i64) -> String {
    format!("{group}.lookup{DAY_MARK}{day}")
}

/// The group and day a partition name holds, if it is a day partition (data or index).
pub fn parse_daily(name: &str) -> Option<(&str, i64)> {
    let (group, day) = name.rsplit_once(DAY_MARK)?;
    Some((group, day.parse().ok()?))
}

/// The group a lookup index serves, if `group` names one.
pub fn lookup_group(group: &str) -> Option<&str> {
    group.strip_suffix(".lookup")
}

/// The day partition of a row of a daily model.
pub fn partition_of(group: &str, time_bucket: i64) -> String {
    daily(group, day_of(time_bucket))
}

fn bucket_bytes(time_bucket: i64) -> [u8; 8] {
    // Buckets are positive; the sign bit is flipped so that any i64 sorts as its bytes do.
    ((time_bucket as u64) ^ (1 << 63)).to_be_bytes()
}

fn bucket_from(bytes: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = bytes.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// `model \0`: the prefix of all of a model's keys in a partition.
pub fn model_prefix(model: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(model.len() + 1 + 8 + 48);
    key.extend_from_slice(model.as_bytes());
    key.push(0);
    key
}

/// The key of a metadata row.
pub fn meta_key(model: &str, id: &str) -> Vec<u8> {
    let mut key = model_prefix(model);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The key of a daily row.
pub fn daily_key(model: &str, time_bucket: i64, id: &str) -> Vec<u8> {
    let mut key = bucket_key(model, time_bucket);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The first key of a model's rows at `time_bucket` (the bound of a range scan).
pub fn bucket_key(model: &str, time_bucket: i64) -> Vec<u8> {
    let mut key = model_prefix(model);
    key.extend_from_slice(&bucket_bytes(time_bucket));
    key
}

/// The bucket and id of a daily key, after its model prefix of `prefix_len` bytes.
pub fn split_daily_key(key: &[u8], prefix_len: usize) -> Option<(i64, &str)> {
    let rest = key.get(prefix_len..)?;
    let bucket = bucket_from(rest.get(..8)?)?;
    let id = std::str::from_utf8(rest.get(8..)?).ok()?;
    Some((bucket, id))
}

/// The id of a metadata key, after its model prefix of `prefix_len` bytes.
pub fn split_meta_key(key: &[u8], prefix_len: usize) -> Option<String> {
    std::str::from_utf8(key.get(prefix_len..)?).ok().map(str::to_owned)
}

/// The prefix of a lookup index's entries for one column value.
pub fn lookup_prefix(model: &str, column: usize, value: &str) -> Option<Vec<u8>> {
    let column = u8::try_from(column).ok()?;
    let length = u16::try_from(value.len()).ok()?;
    let mut key = model_prefix(model);
    key.push(column);
    key.extend_from_slice(&length.to_be_bytes());
    key.extend_from_slice(value.as_bytes());
    Some(key)
}

/// A lookup index entry: the value's prefix, then the row's bucket and id.
pub fn lookup_key(model: &str, column: usize, value: &str, time_bucket: i64, id: &str) -> Option<Vec<u8>> {
    let mut key = lookup_prefix(model, column, value)?;
    key.extend_from_slice(&bucket_bytes(time_bucket));
    key.extend_from_slice(id.as_bytes());
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_keys_sort_by_bucket_then_id_and_split_back() {
        let prefix = model_prefix("service_cpm").len();
        let early = daily_key("service_cpm", 202_611_211_230, "zz");
        let late = daily_key("service_cpm", 202_611_211_231, "aa");
        assert!(early < late);
        assert!(bucket_key("service_cpm", 202_611_211_231) <= late);
        assert_eq!(split_daily_key(&late, prefix), Some((202_611_211_231, "aa")));
        // A model whose name extends another's never shares its prefix.
        assert!(!daily_key("service_cpm2", 1, "a").starts_with(&model_prefix("service_cpm")));
    }

    #[test]
    fn partition_names_carry_their_group_and_day() {
        assert_eq!(partition_of("segment", 20_261_121_123_456), "segment#20261121");
        assert_eq!(partition_of("metrics", 2_026_112_112), "metrics#20261121");
        assert_eq!(parse_daily("segment.lookup#20261121"), Some(("segment.lookup", 20_261_121)));
        assert_eq!(lookup_group("segment.lookup"), Some("segment"));
        assert_eq!(parse_daily(META), None);
    }

    #[test]
    fn lookup_entries_of_one_value_share_its_prefix_only() {
        let prefix = lookup_prefix("segment", 0, "t1").expect("short");
        let entry = lookup_key("segment", 0, "t1", 20_261_121_000_000, "s1").expect("short");
        assert!(entry.starts_with(&prefix));
        let other = lookup_key("segment", 0, "t12", 20_261_121_000_000, "s1").expect("short");
        assert!(!other.starts_with(&prefix));
    }
}
