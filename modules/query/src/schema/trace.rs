//! Traces (docs/reference/query-api.md §6): the segment list (`queryBasicTraces`, one entry per
//! segment) and a trace's spans (`queryTrace`), decoded from the stored segments and put in tree
//! order, with component names.

use std::collections::HashMap;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use oap_proto::v3::{SegmentObject, SpanObject};
use oap_storage::builtin::segment::SegmentRow;
use oap_storage::builtin::tag;
use oap_storage::dao::{TraceOrder, TraceSearch};
use prost::Message;

use super::common::{DurationInput, KeyValue, Long, Pagination, query_context, request_budget, storage_error};
use super::metadata::split_child_id;
use crate::budget::Weight;
use crate::components::Components;

/// The most segments one trace is read with.
const MAX_SEGMENTS_PER_TRACE: usize = 10_000;

/// Which segments by error state; the DAO's own enum, as GraphQL names it.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "oap_storage::dao::TraceState")]
pub enum TraceState {
    /// All.
    All,
    /// Without error.
    Success,
    /// In error.
    Error,
}

/// The order of the segment list.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryOrder {
    /// Newest first.
    ByStartTime,
    /// Slowest first.
    ByDuration,
}

/// A tag a segment must carry.
#[derive(InputObject, Debug, Clone)]
pub struct SpanTag {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Option<String>,
}

/// A segment search.
#[derive(InputObject, Debug, Clone)]
pub struct TraceQueryCondition {
    /// Only this service's segments.
    pub service_id: Option<ID>,
    /// Only this instance's.
    pub service_instance_id: Option<ID>,
    /// Only this trace's.
    pub trace_id: Option<String>,
    /// Only those named by this endpoint.
    pub endpoint_id: Option<ID>,
    /// When they started.
    pub query_duration: Option<DurationInput>,
    /// Shortest latency, ms (0: no bound).
    pub min_trace_duration: Option<i32>,
    /// Longest latency, ms (0: no bound).
    pub max_trace_duration: Option<i32>,
    /// By error state.
    pub trace_state: TraceState,
    /// The order.
    pub query_order: QueryOrder,
    /// Tags every segment must carry.
    pub tags: Option<Vec<SpanTag>>,
    /// The page.
    pub paging: Pagination,
}

/// One segment of the list.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct BasicTrace {
    /// The segment id.
    pub segment_id: String,
    /// The name of the endpoint that names the segment.
    pub endpoint_names: Vec<String>,
    /// Its latency, ms.
    pub duration: i32,
    /// Its start, epoch ms, as text.
    pub start: String,
    /// Whether it is in error.
    pub is_error: Option<bool>,
    /// Its trace.
    pub trace_ids: Vec<String>,
}

/// The segment list.
#[derive(SimpleObject, Debug, Clone)]
pub struct TraceBrief {
    /// The segments of the page.
    pub traces: Vec<BasicTrace>,
}

/// How a span's ref crosses.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefType {
    /// To another process.
    CrossProcess,
    /// To another thread.
    CrossThread,
}

/// A span's parent in another segment.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    /// The trace.
    pub trace_id: ID,
    /// The parent's segment.
    pub parent_segment_id: ID,
    /// The parent span.
    pub parent_span_id: i32,
    /// How it crosses.
    #[graphql(name = "type")]
    pub ref_type: RefType,
}

/// A log of a span.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct LogEntity {
    /// When, epoch ms.
    pub time: Long,
    /// What.
    pub data: Option<Vec<KeyValue>>,
}

/// A point in time.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Instant {
    /// Seconds since the epoch.
    pub seconds: Long,
    /// Nanoseconds within the second.
    pub nanos: i32,
}

/// A key and a number.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct KeyNumericValue {
    /// The key.
    pub key: String,
    /// The number.
    pub value: Long,
}

/// An event an eBPF agent attached to a span.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct SpanAttachedEvent {
    /// Its start.
    pub start_time: Instant,
    /// Its name.
    pub event: String,
    /// Its end.
    pub end_time: Instant,
    /// Its tags.
    pub tags: Vec<Option<KeyValue>>,
    /// Its numbers.
    pub summary: Vec<KeyNumericValue>,
}

/// One span of a trace.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The trace.
    pub trace_id: ID,
    /// The segment.
    pub segment_id: ID,
    /// The span's id in the segment.
    pub span_id: i32,
    /// Its parent's id in the segment (-1 for the first span).
    pub parent_span_id: i32,
    /// Its parents in other segments.
    pub refs: Vec<Ref>,
    /// The segment's service.
    pub service_code: String,
    /// The segment's instance.
    pub service_instance_name: ID,
    /// Start, epoch ms.
    pub start_time: Long,
    /// End, epoch ms.
    pub end_time: Long,
    /// The operation name.
    pub endpoint_name: Option<String>,
    /// `Entry`, `Exit` or `Local`.
    #[graphql(name = "type")]
    pub span_type: String,
    /// The peer.
    pub peer: Option<String>,
    /// The component's name.
    pub component: Option<String>,
    /// Whether it failed.
    pub is_error: Option<bool>,
    /// `Http`, `Database`, …
    pub layer: Option<String>,
    /// Its tags.
    pub tags: Vec<KeyValue>,
    /// Its logs.
    pub logs: Vec<LogEntity>,
    /// Events attached to it.
    pub attached_events: Vec<SpanAttachedEvent>,
}

/// A trace.
#[derive(SimpleObject, Debug, Clone)]
pub struct Trace {
    /// Its spans in tree order.
    pub spans: Vec<Span>,
}

fn pairs(pairs: &[oap_proto::v3::KeyStringValuePair]) -> Vec<KeyValue> {
    pairs.iter().map(|pair| KeyValue { key: pair.key.clone(), value: Some(pair.value.clone()) }).collect()
}

fn span_of(segment: &SegmentObject, span: &SpanObject, components: &Components) -> Span {
    Span {
        trace_id: ID(segment.trace_id.clone()),
        segment_id: ID(segment.trace_segment_id.clone()),
        span_id: span.span_id,
        parent_span_id: span.parent_span_id,
        refs: span
            .refs
            .iter()
            .map(|reference| Ref {
                trace_id: ID(reference.trace_id.clone()),
                parent_segment_id: ID(reference.parent_trace_segment_id.clone()),
                parent_span_id: reference.parent_span_id,
                ref_type: match reference.ref_type() {
                    oap_proto::v3::RefType::CrossThread => RefType::CrossThread,
                    oap_proto::v3::RefType::CrossProcess => RefType::CrossProcess,
                },
            })
            .collect(),
        service_code: segment.service.clone(),
        service_instance_name: ID(segment.service_instance.clone()),
        start_time: Long(span.start_time),
        end_time: Long(span.end_time),
        endpoint_name: Some(span.operation_name.clone()),
        span_type: span.span_type().as_str_name().to_owned(),
        peer: Some(span.peer.clone()),
        component: Some(components.name(span.component_id).to_owned()),
        is_error: Some(span.is_error),
        layer: Some(span.span_layer().as_str_name().to_owned()),
        tags: pairs(&span.tags),
        logs: span.logs.iter().map(|log| LogEntity { time: Long(log.time), data: Some(pairs(&log.data)) }).collect(),
        attached_events: Vec::new(),
    }
}

/// The spans of stored segments in tree order: a span's parent is its segment's span
/// `parentSpanId`, or for a span with refs the span its last ref names; spans whose parent is
/// not among them are roots, by start time, each followed by its descendants depth first
/// (children in the order given).
pub fn tree_order(spans: Vec<Span>) -> Vec<Span> {
    let key = |segment: &str, span: i32| format!("{segment}S{span}");
    let keys: Vec<String> = spans.iter().map(|span| key(&span.segment_id, span.span_id)).collect();
    let index: HashMap<&str, usize> = keys.iter().enumerate().map(|(at, key)| (key.as_str(), at)).collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    let mut roots = Vec::new();
    for (at, span) in spans.iter().enumerate() {
        let parent = match span.refs.last() {
            Some(reference) => key(&reference.parent_segment_id, reference.parent_span_id),
            None => key(&span.segment_id, span.parent_span_id),
        };
        match index.get(parent.as_str()) {
            Some(&parent) if parent != at => children[parent].push(at),
            _ => roots.push(at),
        }
    }
    roots.sort_by_key(|&at| spans[at].start_time.0);
    let mut order = Vec::with_capacity(spans.len());
    let mut placed = vec![false; spans.len()];
    let mut stack: Vec<usize> = roots.into_iter().rev().collect();
    while let Some(at) = stack.pop() {
        if std::mem::replace(&mut placed[at], true) {
            continue;
        }
        order.push(at);
        stack.extend(children[at].iter().rev().copied());
    }
    // Spans in a cycle of parents reach no root; they still belong to the trace.
    order.extend((0..spans.len()).filter(|&at| !placed[at]));
    let mut spans: Vec<Option<Span>> = spans.into_iter().map(Some).collect();
    order.into_iter().filter_map(|at| spans[at].take()).collect()
}

fn basic_trace(row: SegmentRow) -> BasicTrace {
    let endpoint = split_child_id(&row.endpoint_id).map(|(_, name)| name).unwrap_or_default();
    BasicTrace {
        segment_id: row.segment_id,
        endpoint_names: vec![endpoint],
        duration: row.latency,
        start: row.start_time.to_string(),
        is_error: Some(row.is_error),
        trace_ids: vec![row.trace_id],
    }
}

/// The trace queries.
#[derive(Default)]
pub struct TraceQuery;

#[Object]
impl TraceQuery {
    /// Whether the v2 trace list is served: it is not (the v1 list is).
    async fn has_query_traces_v2_support(&self) -> bool {
        false
    }

    /// The segments a condition selects, one entry per segment.
    async fn query_basic_traces(
        &self,
        ctx: &Context<'_>,
        condition: Option<TraceQueryCondition>,
        #[graphql(desc = "Accepted; no debugging trace is recorded.")] debug: Option<bool>,
    ) -> async_graphql::Result<TraceBrief> {
        let _ = debug;
        let query = query_context(ctx);
        let Some(condition) = condition else { return Ok(TraceBrief { traces: Vec::new() }) };
        let (offset, limit) = condition.paging.offset_limit()?;
        let budget = request_budget(ctx)?;
        let time_range = condition
            .query_duration
            .as_ref()
            .map(|duration| duration.resolve(query))
            .transpose()?
            .map(|d| d.second_range());
        let positive = |bound: Option<i32>| bound.filter(|bound| *bound > 0);
        let id = |id: Option<ID>| id.map(|id| id.0).filter(|id| !id.is_empty());
        let search = TraceSearch {
            time_range,
            min_latency: positive(condition.min_trace_duration),
            max_latency: positive(condition.max_trace_duration),
            service_id: id(condition.service_id),
            service_instance_id: id(condition.service_instance_id),
            endpoint_id: id(condition.endpoint_id),
            trace_id: condition.trace_id.filter(|id| !id.is_empty()),
            state: condition.trace_state.into(),
            order: match condition.query_order {
                QueryOrder::ByStartTime => TraceOrder::StartTime,
                QueryOrder::ByDuration => TraceOrder::Duration,
            },
            tags: condition
                .tags
                .unwrap_or_default()
                .into_iter()
                .map(|tag| format!("{}={}", tag.key, tag.value.unwrap_or_default()))
                .collect(),
            offset,
            limit,
        };
        // The store reads the pages before this one too.
        let reservation = budget.reserve(offset.saturating_add(limit), Weight::Heavy).await?;
        let rows = query.storage.search_segments(&search).await.map_err(storage_error)?;
        budget.settle(reservation, offset.saturating_add(rows.len()));
        Ok(TraceBrief { traces: rows.into_iter().map(basic_trace).collect() })
    }

    /// Every span of a trace, in tree order.
    async fn query_trace(
        &self,
        ctx: &Context<'_>,
        trace_id: ID,
        duration: Option<DurationInput>,
        #[graphql(desc = "Accepted; no debugging trace is recorded.")] debug: Option<bool>,
    ) -> async_graphql::Result<Trace> {
        let _ = debug;
        let query = query_context(ctx);
        let time_range = duration.map(|duration| duration.resolve(query)).transpose()?.map(|d| d.second_range());
        // A trace is read with the rows the request has left, at most MAX_SEGMENTS_PER_TRACE.
        let budget = request_budget(ctx)?;
        let reservation = budget.reserve_up_to(MAX_SEGMENTS_PER_TRACE, Weight::Heavy).await?;
        let limit = reservation.rows();
        let rows = query.storage.segments_of_trace(&trace_id, time_range, limit).await.map_err(storage_error)?;
        budget.settle(reservation, rows.len());
        if rows.len() == limit && limit < MAX_SEGMENTS_PER_TRACE {
            return Err(format!(
                "the trace has {limit} segments or more, all the rows the request's maxRowsPerRequest has left; \
                 read it in a request of its own"
            )
            .into());
        }
        let components = Components::shipped();
        let mut spans = Vec::new();
        for row in rows {
            let segment = SegmentObject::decode(row.data_binary.as_slice())
                .map_err(|error| format!("stored segment {} cannot be read: {error}", row.segment_id))?;
            spans.extend(segment.spans.iter().map(|span| span_of(&segment, span, components)));
        }
        Ok(Trace { spans: tree_order(spans) })
    }

    /// The keys of the searchable tags that stored segments carried on the days of `duration`,
    /// sorted, at most `autocompleteTagKeysQueryMaxSize`.
    async fn query_trace_tag_autocomplete_keys(
        &self,
        ctx: &Context<'_>,
        duration: DurationInput,
    ) -> async_graphql::Result<Vec<String>> {
        let query = query_context(ctx);
        let (start, end) = duration.resolve(query)?.minute_range();
        let limit = query.core.autocomplete_tag_keys_query_max_size;
        query.storage.tag_keys(tag::TRACE, start, end, limit).await.map_err(storage_error)
    }

    /// The values the searchable tag `tagKey` had on stored segments on the days of `duration`,
    /// sorted, at most `autocompleteTagValuesQueryMaxSize`.
    async fn query_trace_tag_autocomplete_values(
        &self,
        ctx: &Context<'_>,
        tag_key: String,
        duration: DurationInput,
    ) -> async_graphql::Result<Vec<String>> {
        let query = query_context(ctx);
        let (start, end) = duration.resolve(query)?.minute_range();
        let limit = query.core.autocomplete_tag_values_query_max_size;
        query.storage.tag_values(tag::TRACE, &tag_key, start, end, limit).await.map_err(storage_error)
    }
}

#[cfg(test)]
mod tests;
