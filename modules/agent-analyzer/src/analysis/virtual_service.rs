//! `VirtualServiceAnalysisListener` (docs/reference/analysis.md §7): uninstrumented databases,
//! caches and brokers seen through the spans that call them. Runs for every span, `skipAnalysis` or
//! not.

use std::borrow::Cow;

use oap_model::Layer;
use oap_model::naming::truncate_utf16;
use oap_model::source::{
    CacheAccess, CacheOperation, CacheSlowAccess, DatabaseAccess, DatabaseSlowStatement, EndpointMeta, MqAccess,
    MqEndpointAccess, MqOperation, RequestFacts, ServiceMeta, Source, SourceSink, SpanTags,
};
use oap_proto::v3::{SpanLayer, SpanObject, SpanType};

use super::{SegmentContext, is_layer};

pub(super) fn any<'a, S: SourceSink + ?Sized>(
    ctx: &SegmentContext<'a>,
    span: &'a SpanObject,
    span_type: SpanType,
    facts: &RequestFacts<'a>,
    sink: &mut S,
) {
    match SpanLayer::try_from(span.span_layer) {
        Ok(SpanLayer::Database) => database(ctx, span, facts, sink),
        Ok(SpanLayer::Cache) => cache(ctx, span, facts, sink),
        Ok(SpanLayer::Mq) if span_type != SpanType::Local => mq(ctx, span, span_type, facts, sink),
        _ => {}
    }
}

fn database<'a, S: SourceSink + ?Sized>(
    ctx: &SegmentContext<'a>,
    span: &'a SpanObject,
    facts: &RequestFacts<'a>,
    sink: &mut S,
) {
    if span.peer.trim().is_empty() {
        return;
    }
    let name = ctx.rules.naming.service(&span.peer);
    sink.accept(Source::ServiceMeta(ServiceMeta {
        name: Cow::Borrowed(name),
        layer: Layer::VIRTUAL_DATABASE,
        time_bucket: facts.time_bucket,
    }));
    sink.accept(Source::DatabaseAccess(DatabaseAccess {
        name,
        database_type_id: span.component_id,
        latency: facts.latency,
        status: facts.status,
        time_bucket: facts.time_bucket,
    }));
    let tags = SpanTags(&span.tags);
    let statement = tags.get("db.statement").unwrap_or("");
    let threshold = tags.get("db.type").and_then(|kind| ctx.rules.slow_db_threshold.for_type(kind));
    if let Some(threshold) = threshold
        && i64::from(facts.latency) > threshold
        && !statement.trim().is_empty()
    {
        sink.accept(Source::DatabaseSlowStatement(DatabaseSlowStatement {
            segment_id: &ctx.segment.trace_segment_id,
            span_id: span.span_id,
            trace_id: &ctx.segment.trace_id,
            database_name: name,
            service_name: ctx.service,
            statement: truncate_utf16(statement, ctx.rules.max_slow_sql_length),
            latency: facts.latency,
            time_bucket: ctx.second_bucket(span.start_time),
            timestamp: span.start_time,
        }));
    }
}

fn cache<'a, S: SourceSink + ?Sized>(
    ctx: &SegmentContext<'a>,
    span: &'a SpanObject,
    facts: &RequestFacts<'a>,
    sink: &mut S,
) {
    let tags = SpanTags(&span.tags);
    let Some(cache_type) = tags.get("cache.type").map(str::trim).filter(|kind| !kind.is_empty()) else { return };
    let cache_type = cache_type.to_ascii_lowercase();
    let name: Cow<'a, str> = if span.peer.trim().is_empty() {
        Cow::Owned(ctx.rules.naming.service(&format!("{cache_type}-local")).to_owned())
    } else {
        Cow::Borrowed(ctx.rules.naming.service(&span.peer))
    };
    let operation = match tags.get("cache.op") {
        Some("write") => CacheOperation::Write,
        Some("read") => CacheOperation::Read,
        _ => CacheOperation::Others,
    };
    sink.accept(Source::ServiceMeta(ServiceMeta {
        name: name.clone(),
        layer: Layer::VIRTUAL_CACHE,
        time_bucket: facts.time_bucket,
    }));
    sink.accept(Source::CacheAccess(CacheAccess {
        name: name.clone(),
        cache_type_id: span.component_id,
        latency: facts.latency,
        status: facts.status,
        operation,
        time_bucket: facts.time_bucket,
    }));
    let threshold = match operation {
        CacheOperation::Write => ctx.rules.slow_cache_write_threshold.for_type(&cache_type),
        CacheOperation::Read => ctx.rules.slow_cache_read_threshold.for_type(&cache_type),
        CacheOperation::Others => None,
    };
    if threshold.is_some_and(|threshold| i64::from(facts.latency) > threshold) {
        sink.accept(Source::CacheSlowAccess(CacheSlowAccess {
            segment_id: &ctx.segment.trace_segment_id,
            span_id: span.span_id,
            trace_id: &ctx.segment.trace_id,
            cache_name: name,
            latency: facts.latency,
            status: facts.status,
            command: tags.get("cache.cmd").unwrap_or(""),
            key: tags.get("cache.key").unwrap_or(""),
            operation,
            time_bucket: ctx.second_bucket(span.start_time),
            timestamp: span.start_time,
        }));
    }
}

fn mq<'a, S: SourceSink + ?Sized>(
    ctx: &SegmentContext<'a>,
    span: &'a SpanObject,
    span_type: SpanType,
    facts: &RequestFacts<'a>,
    sink: &mut S,
) {
    debug_assert!(is_layer(span, SpanLayer::Mq));
    let (peer, operation) = match span_type {
        SpanType::Entry => {
            let from_ref =
                span.refs.iter().map(|r| r.network_address_used_at_peer.as_str()).find(|a| !a.trim().is_empty());
            (from_ref.unwrap_or(&span.peer), MqOperation::Consume)
        }
        _ => (span.peer.as_str(), MqOperation::Produce),
    };
    if peer.trim().is_empty() {
        return;
    }
    let name = ctx.rules.naming.service(peer);
    let tags = SpanTags(&span.tags);
    let transmission_latency =
        tags.get("transmission.latency").and_then(|value| value.trim().parse().ok()).unwrap_or(0);
    sink.accept(Source::ServiceMeta(ServiceMeta {
        name: Cow::Borrowed(name),
        layer: Layer::VIRTUAL_MQ,
        time_bucket: facts.time_bucket,
    }));
    sink.accept(Source::MqAccess(MqAccess {
        name,
        type_id: span.component_id,
        transmission_latency,
        status: facts.status,
        operation,
        time_bucket: facts.time_bucket,
    }));
    let parts: Vec<&str> = [tags.get("mq.topic"), tags.get("mq.queue")]
        .into_iter()
        .flatten()
        .filter(|part| !part.trim().is_empty())
        .collect();
    if parts.is_empty() {
        return;
    }
    let endpoint: Cow<'a, str> = match parts.as_slice() {
        [single] => Cow::Borrowed(ctx.rules.naming.endpoint(name, single)),
        _ => Cow::Owned(ctx.rules.naming.endpoint(name, &parts.join("/")).to_owned()),
    };
    sink.accept(Source::EndpointMeta(EndpointMeta {
        service_name: Cow::Borrowed(name),
        service_normal: false,
        endpoint: endpoint.clone(),
        time_bucket: facts.time_bucket,
    }));
    sink.accept(Source::MqEndpointAccess(MqEndpointAccess {
        service_name: name,
        endpoint,
        type_id: span.component_id,
        transmission_latency,
        status: facts.status,
        operation,
        time_bucket: facts.time_bucket,
    }));
}
