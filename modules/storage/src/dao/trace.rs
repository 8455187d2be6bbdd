//! Segment search and trace detail (docs/reference/query-api.md §6): the `segment` record filtered
//! by service, instance, endpoint, trace id, time, latency, error state and tags, sorted by start
//! time or latency, paged.

use async_trait::async_trait;

use crate::builtin::segment::{self, SegmentRow, col};
use crate::error::StorageError;
use crate::query::{Filter, ScanQuery, Sort, SortKey, TimeRange};
use crate::row::Value;
use crate::storage::Storage;

/// Which segments by error state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceState {
    /// All of them.
    #[default]
    All,
    /// Those not in error.
    Success,
    /// Those in error.
    Error,
}

/// The order of a segment list; both are largest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TraceOrder {
    /// Newest first.
    #[default]
    StartTime,
    /// Slowest first.
    Duration,
}

/// A segment search (`TraceQueryCondition`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraceSearch {
    /// Second buckets of the segments' start.
    pub time_range: Option<TimeRange>,
    /// Shortest latency, ms.
    pub min_latency: Option<i32>,
    /// Longest latency, ms.
    pub max_latency: Option<i32>,
    /// Only this service's segments.
    pub service_id: Option<String>,
    /// Only this instance's.
    pub service_instance_id: Option<String>,
    /// Only those named by this endpoint.
    pub endpoint_id: Option<String>,
    /// Only this trace's.
    pub trace_id: Option<String>,
    /// By error state.
    pub state: TraceState,
    /// The order.
    pub order: TraceOrder,
    /// Tags each segment must carry, as `key=value`.
    pub tags: Vec<String>,
    /// Segments skipped (paging).
    pub offset: usize,
    /// Segments returned at most.
    pub limit: usize,
}

impl TraceSearch {
    /// The scan that answers the search.
    pub fn to_scan(&self) -> ScanQuery {
        let text = |column, value: &Option<String>| {
            value.as_ref().map(|value| Filter::Eq { column, value: Value::Text(value.clone()) })
        };
        let mut filters: Vec<Filter> = [
            text(col::TRACE_ID, &self.trace_id),
            text(col::SERVICE_ID, &self.service_id),
            text(col::SERVICE_INSTANCE_ID, &self.service_instance_id),
            text(col::ENDPOINT_ID, &self.endpoint_id),
        ]
        .into_iter()
        .flatten()
        .collect();
        if self.min_latency.is_some() || self.max_latency.is_some() {
            filters.push(Filter::Range {
                column: col::LATENCY,
                min: self.min_latency.map(i64::from),
                max: self.max_latency.map(i64::from),
            });
        }
        match self.state {
            TraceState::All => {}
            TraceState::Success => filters.push(Filter::Eq { column: col::IS_ERROR, value: Value::Int(0) }),
            TraceState::Error => filters.push(Filter::Eq { column: col::IS_ERROR, value: Value::Int(1) }),
        }
        if !self.tags.is_empty() {
            filters.push(Filter::HasAll { column: col::TAGS, texts: self.tags.clone() });
        }
        let key = match self.order {
            // A segment's bucket is the second it started in, so this is the start time's order.
            TraceOrder::StartTime => SortKey::TimeBucketThen(col::START_TIME),
            TraceOrder::Duration => SortKey::Column(col::LATENCY),
        };
        ScanQuery {
            time_range: self.time_range,
            filters,
            sort: Some(Sort { key, descending: true }),
            offset: self.offset,
            limit: Some(self.limit),
        }
    }
}

/// Reads of the `segment` record.
#[async_trait]
pub trait TraceQueryDao: Storage {
    /// The segments the search selects, in its order and page.
    async fn search_segments(&self, search: &TraceSearch) -> Result<Vec<SegmentRow>, StorageError> {
        let rows = self.scan(&segment::MODEL, &search.to_scan()).await?;
        Ok(rows.into_iter().map(SegmentRow::from_row).collect())
    }

    /// The segments of one trace (within `time_range` when given), oldest first, at most `limit`.
    async fn segments_of_trace(
        &self,
        trace_id: &str,
        time_range: Option<TimeRange>,
        limit: usize,
    ) -> Result<Vec<SegmentRow>, StorageError> {
        let query = ScanQuery {
            time_range,
            filters: vec![Filter::Eq { column: col::TRACE_ID, value: Value::Text(trace_id.to_owned()) }],
            sort: Some(Sort { key: SortKey::Column(col::START_TIME), descending: false }),
            offset: 0,
            limit: Some(limit),
        };
        let rows = self.scan(&segment::MODEL, &query).await?;
        Ok(rows.into_iter().map(SegmentRow::from_row).collect())
    }
}
