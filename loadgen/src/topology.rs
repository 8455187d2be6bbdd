//! What the simulated agents report: by default the topology of SkyWalking's own storage
//! benchmark — 20 services × 20 instances × 100 endpoints, traces of 5 segments across 5
//! services linked by cross-process refs, 5 spans per segment (an HTTP entry, a local span, two
//! Redis exits and a MySQL exit with its statement) — with 3- and 20-span variants.

use oap_proto::v3::{KeyStringValuePair, RefType, SegmentObject, SegmentReference, SpanLayer, SpanObject, SpanType};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt};

use crate::template::{BUILT_AT, PREFIX_LEN};

/// Component ids from SkyWalking's component-libraries table.
const TOMCAT: i32 = 1;
const JEDIS: i32 = 30;
const MYSQL: i32 = 33;

/// The spans of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SpanShape {
    /// An entry, a local span, a MySQL exit.
    #[value(name = "3")]
    Three,
    /// An entry, a local span, two Redis exits, a MySQL exit.
    #[value(name = "5")]
    Five,
    /// An entry, 5 local spans, 8 Redis exits, 6 MySQL exits.
    #[value(name = "20")]
    Twenty,
}

impl SpanShape {
    /// Spans per segment.
    pub fn spans(self) -> usize {
        match self {
            SpanShape::Three => 3,
            SpanShape::Five => 5,
            SpanShape::Twenty => 20,
        }
    }

    /// (local spans, cache exits, database exits) after the entry.
    fn parts(self) -> (usize, usize, usize) {
        match self {
            SpanShape::Three => (1, 0, 1),
            SpanShape::Five => (1, 2, 1),
            SpanShape::Twenty => (5, 8, 6),
        }
    }
}

/// The simulated estate.
#[derive(Debug, Clone, Copy)]
pub struct Topology {
    /// Services.
    pub services: usize,
    /// Instances of each service.
    pub instances: usize,
    /// Endpoints of each service.
    pub endpoints: usize,
    /// Segments of a trace, each in another service (at most `services`).
    pub segments_per_trace: usize,
    /// Spans of a segment.
    pub shape: SpanShape,
}

impl Default for Topology {
    fn default() -> Self {
        Self { services: 20, instances: 20, endpoints: 100, segments_per_trace: 5, shape: SpanShape::Five }
    }
}

/// The name of service `s`.
pub fn service_name(s: usize) -> String {
    format!("bench-service-{s}")
}

fn instance_name(s: usize, i: usize) -> String {
    format!("bench-instance-{s}-{i}@10.{}.{}.{}", s / 250, s % 250, i % 250)
}

fn endpoint_name(s: usize, e: usize) -> String {
    format!("GET:/service-{s}/api/resource-{e}")
}

fn id(suffix: usize) -> String {
    format!("{}{suffix:02}", "0".repeat(PREFIX_LEN))
}

fn tag(key: &str, value: impl Into<String>) -> KeyStringValuePair {
    KeyStringValuePair { key: key.to_owned(), value: value.into() }
}

impl Topology {
    /// One trace: a chain of segments through distinct services, each a child of the one before
    /// through a cross-process ref. Times lie after [`BUILT_AT`]; `failed` marks the first
    /// segment's entry span as an error.
    pub fn trace(&self, rng: &mut impl Rng, failed: bool) -> Vec<SegmentObject> {
        let mut services: Vec<usize> = (0..self.services).collect();
        services.shuffle(rng);
        services.truncate(self.segments_per_trace.clamp(1, self.services));
        let mut segments: Vec<SegmentObject> = Vec::with_capacity(services.len());
        let mut parent: Option<(usize, String, String, String)> = None;
        for (index, &s) in services.iter().enumerate() {
            let instance = instance_name(s, rng.random_range(0..self.instances));
            let endpoint = endpoint_name(s, rng.random_range(0..self.endpoints));
            let start = BUILT_AT + 5 * index as i64;
            let latency: i64 = rng.random_range(20..400);
            let mut entry = SpanObject {
                span_id: 0,
                parent_span_id: -1,
                start_time: start,
                end_time: start + latency,
                operation_name: endpoint.clone(),
                span_type: SpanType::Entry as i32,
                span_layer: SpanLayer::Http as i32,
                component_id: TOMCAT,
                is_error: failed && index == 0,
                tags: vec![
                    tag("http.method", "GET"),
                    tag("url", format!("http://{}:8080{}", service_name(s), &endpoint[4..])),
                    tag("http.status_code", if failed && index == 0 { "500" } else { "200" }),
                ],
                ..SpanObject::default()
            };
            if let Some((parent_index, parent_service, parent_instance, parent_endpoint)) = parent.take() {
                entry.refs.push(SegmentReference {
                    ref_type: RefType::CrossProcess as i32,
                    trace_id: id(0),
                    parent_trace_segment_id: id(parent_index + 1),
                    parent_span_id: 1,
                    parent_service,
                    parent_service_instance: parent_instance,
                    parent_endpoint,
                    network_address_used_at_peer: format!("{}:8080", service_name(s)),
                });
            }
            let mut spans = vec![entry];
            let (locals, caches, databases) = self.shape.parts();
            let child = |spans: &mut Vec<SpanObject>, span: SpanObject| {
                let span_id = spans.len() as i32;
                let at = start + 1 + span_id as i64;
                spans.push(SpanObject { span_id, parent_span_id: 0, start_time: at, end_time: at + 3, ..span });
            };
            for _ in 0..locals {
                child(&mut spans, SpanObject { operation_name: "OrderService.handle".to_owned(), ..local() });
            }
            for k in 0..caches {
                child(&mut spans, cache(k % 2 == 0, rng.random_range(0..10_000)));
            }
            for _ in 0..databases {
                child(&mut spans, database(rng.random_range(0..10_000)));
            }
            segments.push(SegmentObject {
                trace_id: id(0),
                trace_segment_id: id(index + 1),
                spans,
                service: service_name(s),
                service_instance: instance.clone(),
                is_size_limited: false,
            });
            parent = Some((index, service_name(s), instance, endpoint));
        }
        segments
    }
}

fn local() -> SpanObject {
    SpanObject { span_type: SpanType::Local as i32, ..SpanObject::default() }
}

fn cache(read: bool, key: u32) -> SpanObject {
    let (command, op) = if read { ("GET", "read") } else { ("SET", "write") };
    SpanObject {
        operation_name: format!("Jedis/{command}"),
        peer: "redis:6379".to_owned(),
        span_type: SpanType::Exit as i32,
        span_layer: SpanLayer::Cache as i32,
        component_id: JEDIS,
        tags: vec![
            tag("cache.type", "Redis"),
            tag("cache.cmd", command),
            tag("cache.op", op),
            tag("cache.key", format!("order:{key}")),
        ],
        ..SpanObject::default()
    }
}

fn database(row: u32) -> SpanObject {
    SpanObject {
        operation_name: "Mysql/JDBC/PreparedStatement/executeQuery".to_owned(),
        peer: "mysql:3306".to_owned(),
        span_type: SpanType::Exit as i32,
        span_layer: SpanLayer::Database as i32,
        component_id: MYSQL,
        tags: vec![
            tag("db.type", "Mysql"),
            tag("db.instance", "orders"),
            tag("db.statement", format!("SELECT id, state, total FROM orders WHERE customer_id = {row}")),
        ],
        ..SpanObject::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_chains_its_segments_through_distinct_services() {
        let topology = Topology::default();
        let trace = topology.trace(&mut rand::rng(), true);
        assert_eq!(trace.len(), 5);
        let services: std::collections::HashSet<&str> = trace.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(services.len(), 5);
        for (index, segment) in trace.iter().enumerate() {
            assert_eq!(segment.spans.len(), 5);
            let kinds: Vec<(i32, i32)> = segment.spans.iter().map(|s| (s.span_type, s.span_layer)).collect();
            let (entry, local, exit) = (SpanType::Entry as i32, SpanType::Local as i32, SpanType::Exit as i32);
            let (http, cache, db) = (SpanLayer::Http as i32, SpanLayer::Cache as i32, SpanLayer::Database as i32);
            assert_eq!(kinds, [(entry, http), (local, 0), (exit, cache), (exit, cache), (exit, db)]);
            let refs = &segment.spans[0].refs;
            if index == 0 {
                assert!(refs.is_empty());
                assert!(segment.spans[0].is_error);
            } else {
                assert_eq!(refs[0].parent_trace_segment_id, trace[index - 1].trace_segment_id);
                assert_eq!(refs[0].parent_service, trace[index - 1].service);
                assert!(!segment.spans[0].is_error);
            }
        }
        for (shape, spans) in [(SpanShape::Three, 3), (SpanShape::Twenty, 20)] {
            let trace = Topology { shape, ..topology }.trace(&mut rand::rng(), false);
            assert!(trace.iter().all(|segment| segment.spans.len() == spans));
        }
    }
}
