//! `tag_autocomplete` (docs/reference/analysis.md §6.5): each searchable `key=value` tag seen on a
//! stored segment, once per day, for the trace page's tag suggestions. Like SkyWalking's, its rows
//! are not time-relative metrics, but their id starts with the day, so a tag seen every day has a
//! row per day and expires with the metadata TTL.

use super::{Lazy, model};
use crate::model::ColumnType::Text;
use crate::model::Indexing::Filter;
use crate::model::ModelKind;
use crate::row::{Row, Value};

/// Column positions.
pub mod col {
    /// `tag_key`.
    pub const KEY: usize = 0;
    /// `tag_value`.
    pub const VALUE: usize = 1;
    /// `tag_type`: `TRACE` (SkyWalking also has `LOG`, `ZIPKIN`, `ALARM`).
    pub const TYPE: usize = 2;
}

/// The tag type of trace segments' tags.
pub const TRACE: &str = "TRACE";

/// The `tag_autocomplete` model: inserted once, never updated.
pub static MODEL: Lazy = Lazy::new(|| {
    model(
        "tag_autocomplete",
        ModelKind::Metrics { time_relative: false, downsampling: false, update: false },
        &[("tag_key", Text, Filter), ("tag_value", Text, Filter), ("tag_type", Text, Filter)],
    )
});

/// One tag of one type, seen on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagAutocomplete {
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
    /// [`TRACE`].
    pub tag_type: String,
    /// The minute it was first seen that day.
    pub time_bucket: i64,
}

impl TagAutocomplete {
    /// The row id: `<day>_<type>_<key>_<value>`, the day being `yyyyMMdd` of the minute bucket.
    pub fn id(&self) -> String {
        id(self.time_bucket, &self.tag_type, &self.key, &self.value)
    }

    /// As a storage row.
    pub fn into_row(self) -> Row {
        Row {
            id: self.id(),
            time_bucket: self.time_bucket,
            values: vec![Value::Text(self.key), Value::Text(self.value), Value::Text(self.tag_type)],
        }
    }

    /// A stored row read back.
    pub fn from_row(mut row: Row) -> Self {
        Self {
            key: row.take_text(col::KEY),
            value: row.take_text(col::VALUE),
            tag_type: row.take_text(col::TYPE),
            time_bucket: row.time_bucket,
        }
    }
}

/// The row id of a tag seen at `minute`.
pub fn id(minute: i64, tag_type: &str, key: &str, value: &str) -> String {
    // Built by hand, not with `format!`: it runs for every tag of every segment, and the
    // formatting machinery was a tenth of OAL dispatch's instructions.
    let mut day = itoa::Buffer::new();
    let day = day.format(crate::row::day_of(minute));
    let mut id = String::with_capacity(day.len() + tag_type.len() + key.len() + value.len() + 3);
    for (index, part) in [day, tag_type, key, value].into_iter().enumerate() {
        if index > 0 {
            id.push('_');
        }
        id.push_str(part);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_day_and_tag() {
        let tag = TagAutocomplete {
            key: "http.method".to_owned(),
            value: "GET".to_owned(),
            tag_type: TRACE.to_owned(),
            time_bucket: 202_611_211_230,
        };
        assert_eq!(tag.id(), "20261121_TRACE_http.method_GET");
        assert_eq!(id(202_611_212_359, TRACE, "http.method", "GET"), tag.id(), "the same day");
        assert_ne!(id(202_611_220_000, TRACE, "http.method", "GET"), tag.id(), "the next day");
        assert_eq!(TagAutocomplete::from_row(tag.clone().into_row()), tag);
    }
}
