//! The `segment` record (docs/reference/analysis.md §6.1): one row per received segment, searchable
//! by service, instance, endpoint, trace id, time, latency, error state and tags; its raw bytes
//! serve the trace detail. The row id is the segment id.

use super::{Lazy, model};
use crate::model::ColumnType::{Bytes, Int, Long, Text, TextList};
use crate::model::Indexing::{Filter, Lookup, StorageOnly};
use crate::model::ModelKind;
use crate::row::{Row, Value};

/// Column positions.
pub mod col {
    /// `trace_id`.
    pub const TRACE_ID: usize = 0;
    /// `service_id`.
    pub const SERVICE_ID: usize = 1;
    /// `service_instance_id`.
    pub const SERVICE_INSTANCE_ID: usize = 2;
    /// `endpoint_id`.
    pub const ENDPOINT_ID: usize = 3;
    /// `start_time`, epoch ms.
    pub const START_TIME: usize = 4;
    /// `latency`, ms.
    pub const LATENCY: usize = 5;
    /// `is_error`, 0 or 1.
    pub const IS_ERROR: usize = 6;
    /// `data_binary`, the `SegmentObject` bytes.
    pub const DATA_BINARY: usize = 7;
    /// `tags`, each `key=value`.
    pub const TAGS: usize = 8;
}

/// The `segment` model, a super dataset with storage of its own.
pub static MODEL: Lazy = Lazy::new(|| {
    model(
        "segment",
        ModelKind::Record { super_dataset: true },
        &[
            ("trace_id", Text, Lookup),
            ("service_id", Text, Filter),
            ("service_instance_id", Text, Filter),
            ("endpoint_id", Text, Lookup),
            ("start_time", Long, Filter),
            ("latency", Int, Filter),
            ("is_error", Int, Filter),
            ("data_binary", Bytes, StorageOnly),
            ("tags", TextList, Filter),
        ],
    )
});

/// A stored segment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SegmentRow {
    /// `traceSegmentId`, the row id.
    pub segment_id: String,
    /// `traceId`.
    pub trace_id: String,
    /// The segment's service id.
    pub service_id: String,
    /// Its instance id.
    pub service_instance_id: String,
    /// The id of the endpoint that names it.
    pub endpoint_id: String,
    /// Earliest span start, epoch ms.
    pub start_time: i64,
    /// Duration, ms.
    pub latency: i32,
    /// Whether it is an error by the status strategy.
    pub is_error: bool,
    /// Second bucket of `start_time`.
    pub time_bucket: i64,
    /// The `SegmentObject` as received.
    pub data_binary: Vec<u8>,
    /// Searchable tags, each `key=value`.
    pub tags: Vec<String>,
}

impl SegmentRow {
    /// The segment as a storage row.
    pub fn into_row(self) -> Row {
        Row {
            id: self.segment_id,
            time_bucket: self.time_bucket,
            values: vec![
                Value::Text(self.trace_id),
                Value::Text(self.service_id),
                Value::Text(self.service_instance_id),
                Value::Text(self.endpoint_id),
                Value::Long(self.start_time),
                Value::Int(self.latency),
                Value::Int(i32::from(self.is_error)),
                Value::Bytes(self.data_binary),
                Value::TextList(self.tags),
            ],
        }
    }

    /// A stored row read back.
    pub fn from_row(mut row: Row) -> Self {
        Self {
            trace_id: row.take_text(col::TRACE_ID),
            service_id: row.take_text(col::SERVICE_ID),
            service_instance_id: row.take_text(col::SERVICE_INSTANCE_ID),
            endpoint_id: row.take_text(col::ENDPOINT_ID),
            start_time: row.long(col::START_TIME),
            latency: i32::try_from(row.long(col::LATENCY)).unwrap_or(i32::MAX),
            is_error: row.long(col::IS_ERROR) != 0,
            data_binary: row.take_bytes(col::DATA_BINARY),
            tags: row.take_text_list(col::TAGS),
            segment_id: row.id,
            time_bucket: row.time_bucket,
        }
    }

    /// The record of an analysed segment, with its ids built from its names.
    pub fn from_source(record: &oap_model::source::SegmentRecord<'_>) -> Self {
        let service_id = record.service_id();
        Self {
            segment_id: record.segment_id.to_owned(),
            trace_id: record.trace_id.to_owned(),
            service_instance_id: oap_model::ids::instance_id(&service_id, record.service_instance_name),
            endpoint_id: oap_model::ids::endpoint_id(&service_id, record.endpoint_name),
            service_id,
            start_time: record.start_time,
            latency: record.latency,
            is_error: record.is_error,
            time_bucket: record.time_bucket,
            data_binary: record.data_binary.to_vec(),
            tags: record.tags.iter().map(|(key, value)| format!("{key}={value}")).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_survives_the_row_round_trip() {
        let segment = SegmentRow {
            segment_id: "s1".to_owned(),
            trace_id: "t1".to_owned(),
            service_id: "cHktYmFja2VuZA==.1".to_owned(),
            service_instance_id: "i".to_owned(),
            endpoint_id: "e".to_owned(),
            start_time: 1_763_700_000_000,
            latency: 12,
            is_error: true,
            time_bucket: 20_261_121_123_000,
            data_binary: vec![10, 2, 116, 49],
            tags: vec!["http.method=GET".to_owned()],
        };
        let row = segment.clone().into_row();
        assert_eq!(row.values.len(), MODEL.columns.len());
        assert_eq!(MODEL.column("latency"), Some(col::LATENCY));
        assert_eq!(MODEL.column("tags"), Some(col::TAGS));
        assert_eq!(SegmentRow::from_row(row), segment);
    }
}
