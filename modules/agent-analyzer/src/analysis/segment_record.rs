//! The `segment` record and its tag autocomplete entries (docs/reference/analysis.md §6).

use oap_model::source::{SegmentRecord, Source, SourceSink, TagAutocomplete};
use oap_proto::v3::{SpanObject, SpanType};

use super::SegmentContext;
use crate::settings::StatusStrategy;

/// The longest searchable tag value, and `key=value`, that is indexed (`Tag.TAG_LENGTH`).
const TAG_LENGTH: usize = 256;

pub(super) fn emit<S: SourceSink + ?Sized>(ctx: &SegmentContext<'_>, raw: &[u8], sink: &mut S) {
    let segment = ctx.segment;
    let spans = &segment.spans;
    let start_time = spans.iter().map(|span| span.start_time).min().unwrap_or(0);
    let end_time = spans.iter().map(|span| span.end_time).max().unwrap_or(start_time);
    let latency = i32::try_from(end_time - start_time).unwrap_or(i32::MAX);
    let is_error = is_error(ctx.rules.status_strategy, spans);

    let sampled = ctx.rules.sampling.is_sampled(&segment.service, &segment.trace_id, i64::from(latency))
        || (is_error && ctx.rules.force_sample_error_segment);
    if !sampled {
        return;
    }

    let mut tags: Vec<(&str, &str)> = Vec::new();
    for tag in spans.iter().flat_map(|span| &span.tags) {
        let (key, value) = (tag.key.as_str(), tag.value.as_str());
        if !ctx.rules.searchable_tag_keys.contains(key) || tags.contains(&(key, value)) {
            continue;
        }
        let value_units = value.encode_utf16().count();
        if value_units <= TAG_LENGTH && key.encode_utf16().count() + 1 + value_units <= TAG_LENGTH {
            tags.push((key, value));
        }
    }
    let minute = ctx.buckets.minute(start_time).unwrap_or(0);
    for &(key, value) in &tags {
        sink.accept(Source::TagAutocomplete(TagAutocomplete { key, value, time_bucket: minute }));
    }
    sink.accept(Source::Segment(SegmentRecord {
        segment_id: &segment.trace_segment_id,
        trace_id: &segment.trace_id,
        service_name: ctx.service,
        service_instance_name: ctx.instance,
        endpoint_name: ctx.rules.naming.endpoint(ctx.service, &naming_span(spans).operation_name),
        start_time,
        latency,
        is_error,
        time_bucket: ctx.second_bucket(start_time),
        data_binary: raw,
        tags,
    }));
}

fn is_error(strategy: StatusStrategy, spans: &[SpanObject]) -> bool {
    match strategy {
        StatusStrategy::FromSpanStatus => spans.iter().any(|span| span.is_error),
        StatusStrategy::FromEntrySpan => {
            spans.iter().any(|span| span.span_type == SpanType::Entry as i32 && span.is_error)
        }
        StatusStrategy::FromFirstSpan => spans.iter().any(|span| span.span_id == 0 && span.is_error),
    }
}

/// The span that names the segment's endpoint: the entry span with the lowest id, else span 0,
/// else the span with the lowest id (docs/reference/analysis.md §6.2, deterministic for any span
/// order).
fn naming_span(spans: &[SpanObject]) -> &SpanObject {
    spans
        .iter()
        .filter(|span| span.span_type == SpanType::Entry as i32)
        .min_by_key(|span| span.span_id)
        .or_else(|| spans.iter().find(|span| span.span_id == 0))
        .or_else(|| spans.iter().min_by_key(|span| span.span_id))
        .expect("validated segments have spans")
}
