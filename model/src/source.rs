//! Sources: what trace analysis and the management receiver emit, and what OAL metrics, the
//! hard-coded streams (traffic, relations, alias) and the records consume
//! (docs/reference/analysis.md §9, docs/reference/oal.md §4.2).
//!
//! Sources borrow their names from the segment being analysed (`'a`), so emitting one costs no
//! allocation; a consumer copies what it keeps. Names are already cut to the length limits.
//! Field names follow SkyWalking's (`serviceInstanceName` → `service_instance_name`).

use std::borrow::Cow;

use oap_proto::v3::KeyStringValuePair;

use crate::ids;
use crate::layer::Layer;

/// The kind of request a span served (`type` in OAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestType {
    /// A database call.
    Database,
    /// An HTTP request.
    Http,
    /// Any other remote call.
    Rpc,
    /// A gRPC call (mesh).
    Grpc,
    /// A logic endpoint (tag `x-le`).
    Logic,
    /// A TCP connection (mesh).
    Tcp,
    /// A message queue operation.
    Mq,
    /// A generative AI call.
    GenAi,
}

/// Where a relation was observed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetectPoint {
    /// By the callee (entry span).
    Server,
    /// By the caller (exit span).
    Client,
    /// By a proxy (mesh).
    Proxy,
}

/// A cache operation (`VirtualCacheOperation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CacheOperation {
    /// `cache.op` = `write`.
    Write,
    /// `cache.op` = `read`.
    Read,
    /// Anything else.
    Others,
}

/// A message queue operation (`MQOperation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MqOperation {
    /// An entry span: the consumer.
    Consume,
    /// An exit span: the producer.
    Produce,
}

/// The tags of a span, for OAL's `tags contain "k:v"` and `tag["k"]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpanTags<'a>(pub &'a [KeyStringValuePair]);

impl<'a> SpanTags<'a> {
    /// The value of the first tag called `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.0.iter().find(|tag| tag.key == key).map(|tag| tag.value.as_str())
    }

    /// Whether some tag, written `key.trim() + ":" + value.trim()`, equals `pair`.
    pub fn contains(&self, pair: &str) -> bool {
        self.0.iter().any(|tag| {
            let (key, value) = (tag.key.trim(), tag.value.trim());
            pair.len() == key.len() + 1 + value.len()
                && pair.starts_with(key)
                && pair.as_bytes()[key.len()] == b':'
                && pair.ends_with(value)
        })
    }
}

/// The request facts every RPC-derived source carries (docs/reference/analysis.md §2).
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// `endTime - startTime`, ms.
    pub latency: i32,
    /// `!isError`.
    pub status: bool,
    /// From tag `http.status_code` (or `status_code`); 0 when absent or not a number.
    pub http_response_status_code: i32,
    /// Tag `rpc.status_code`, as is.
    pub rpc_status_code: &'a str,
    /// From the span layer; `None` for the cross-thread endpoint sources, as in SkyWalking.
    pub request_type: Option<RequestType>,
    /// The span's tags.
    pub tags: SpanTags<'a>,
    /// Minute bucket of the span start.
    pub time_bucket: i64,
}

/// Scope `Service` (1): a request served by a service.
#[derive(Debug, Clone)]
pub struct Service<'a> {
    /// Service name.
    pub name: &'a str,
    /// `GENERAL`, or `FAAS` for FAAS spans.
    pub layer: Layer,
    /// The instance that served it.
    pub service_instance_name: &'a str,
    /// The endpoint that served it.
    pub endpoint_name: &'a str,
    /// The request.
    pub request: RequestFacts<'a>,
}

/// Scope `ServiceInstance` (2).
#[derive(Debug, Clone)]
pub struct ServiceInstance<'a> {
    /// Instance name.
    pub name: &'a str,
    /// Its service.
    pub service_name: &'a str,
    /// The service's layer.
    pub service_layer: Layer,
    /// The endpoint that served the request.
    pub endpoint_name: &'a str,
    /// The request.
    pub request: RequestFacts<'a>,
}

/// Scope `Endpoint` (3).
#[derive(Debug, Clone)]
pub struct Endpoint<'a> {
    /// Endpoint name (owned for logic endpoints named in a tag).
    pub name: Cow<'a, str>,
    /// Its service.
    pub service_name: &'a str,
    /// The service's layer.
    pub service_layer: Layer,
    /// The instance that served it.
    pub service_instance_name: &'a str,
    /// The request.
    pub request: RequestFacts<'a>,
}

/// Scope `ServiceRelation` (4), and `ServiceInstanceRelation` (5) with instance names set.
#[derive(Debug, Clone)]
pub struct ServiceRelation<'a> {
    /// Calling service.
    pub source_service_name: &'a str,
    /// Calling instance.
    pub source_service_instance_name: &'a str,
    /// Calling service's layer.
    pub source_layer: Layer,
    /// Called service.
    pub dest_service_name: &'a str,
    /// Called instance.
    pub dest_service_instance_name: &'a str,
    /// Called service's layer.
    pub dest_layer: Layer,
    /// The endpoint called (the span's operation name).
    pub endpoint: &'a str,
    /// The span's component id.
    pub component_id: i32,
    /// Server side (entry span) or client side (exit span).
    pub detect_point: DetectPoint,
    /// The request.
    pub request: RequestFacts<'a>,
}

/// Scope `EndpointRelation` (6). Its latency is OAL's `rpcLatency`.
#[derive(Debug, Clone)]
pub struct EndpointRelation<'a> {
    /// Calling endpoint.
    pub endpoint: &'a str,
    /// Calling service.
    pub service_name: &'a str,
    /// Calling instance.
    pub service_instance_name: &'a str,
    /// Calling service's layer.
    pub service_layer: Layer,
    /// Called endpoint.
    pub child_endpoint: &'a str,
    /// Called service.
    pub child_service_name: &'a str,
    /// Called instance.
    pub child_service_instance_name: &'a str,
    /// Called service's layer.
    pub child_service_layer: Layer,
    /// The span's component id.
    pub component_id: i32,
    /// Always server side from traces.
    pub detect_point: DetectPoint,
    /// The request.
    pub request: RequestFacts<'a>,
}

/// Scope `DatabaseAccess` (17): a call to an uninstrumented database.
#[derive(Debug, Clone)]
pub struct DatabaseAccess<'a> {
    /// The database's name: the span's peer.
    pub name: &'a str,
    /// The span's component id.
    pub database_type_id: i32,
    /// ms.
    pub latency: i32,
    /// `!isError`.
    pub status: bool,
    /// Minute bucket.
    pub time_bucket: i64,
}

/// Scope `CacheAccess` (55).
#[derive(Debug, Clone)]
pub struct CacheAccess<'a> {
    /// The cache's name: the peer, or `<cache.type>-local`.
    pub name: Cow<'a, str>,
    /// The span's component id.
    pub cache_type_id: i32,
    /// ms.
    pub latency: i32,
    /// `!isError`.
    pub status: bool,
    /// Read, write or other.
    pub operation: CacheOperation,
    /// Minute bucket.
    pub time_bucket: i64,
}

/// Scope `MQAccess` (63).
#[derive(Debug, Clone)]
pub struct MqAccess<'a> {
    /// The broker's name: the peer.
    pub name: &'a str,
    /// The span's component id.
    pub type_id: i32,
    /// Tag `transmission.latency`, ms; 0 when absent.
    pub transmission_latency: i64,
    /// `!isError`.
    pub status: bool,
    /// Consume or produce.
    pub operation: MqOperation,
    /// Minute bucket.
    pub time_bucket: i64,
}

/// Scope `MQEndpointAccess` (64): a topic or queue of a broker.
#[derive(Debug, Clone)]
pub struct MqEndpointAccess<'a> {
    /// The broker's name.
    pub service_name: &'a str,
    /// Topic and queue joined by `/`.
    pub endpoint: Cow<'a, str>,
    /// The span's component id.
    pub type_id: i32,
    /// ms.
    pub transmission_latency: i64,
    /// `!isError`.
    pub status: bool,
    /// Consume or produce.
    pub operation: MqOperation,
    /// Minute bucket.
    pub time_bucket: i64,
}

/// The `segment` record (scope 12).
#[derive(Debug, Clone)]
pub struct SegmentRecord<'a> {
    /// `traceSegmentId`.
    pub segment_id: &'a str,
    /// `traceId`.
    pub trace_id: &'a str,
    /// Service name.
    pub service_name: &'a str,
    /// Instance name.
    pub service_instance_name: &'a str,
    /// The endpoint that names the segment.
    pub endpoint_name: &'a str,
    /// Earliest span start, epoch ms.
    pub start_time: i64,
    /// Latest span end minus earliest start, ms.
    pub latency: i32,
    /// By the segment status strategy.
    pub is_error: bool,
    /// Second bucket of `start_time`.
    pub time_bucket: i64,
    /// The segment as received, for trace detail.
    pub data_binary: &'a [u8],
    /// Searchable tags as `(key, value)`, de-duplicated.
    pub tags: Vec<(&'a str, &'a str)>,
}

impl SegmentRecord<'_> {
    /// The service id of the segment.
    pub fn service_id(&self) -> String {
        ids::service_id(self.service_name, true)
    }
}

/// A slow database statement (scope 18), for `top_n_database_statement` (per database) and
/// `top_n_service_database_statement` (per calling service).
#[derive(Debug, Clone)]
pub struct DatabaseSlowStatement<'a> {
    /// Segment of the span.
    pub segment_id: &'a str,
    /// The span.
    pub span_id: i32,
    /// The trace.
    pub trace_id: &'a str,
    /// The database's name (the peer).
    pub database_name: &'a str,
    /// The calling service.
    pub service_name: &'a str,
    /// `db.statement`, cut to `maxSlowSQLLength`.
    pub statement: &'a str,
    /// ms.
    pub latency: i32,
    /// Second bucket of the span start.
    pub time_bucket: i64,
    /// Span start, epoch ms.
    pub timestamp: i64,
}

/// A slow cache command (scope 56).
#[derive(Debug, Clone)]
pub struct CacheSlowAccess<'a> {
    /// Segment of the span.
    pub segment_id: &'a str,
    /// The span.
    pub span_id: i32,
    /// The trace.
    pub trace_id: &'a str,
    /// The cache's name.
    pub cache_name: Cow<'a, str>,
    /// ms.
    pub latency: i32,
    /// `!isError`.
    pub status: bool,
    /// Tag `cache.cmd`.
    pub command: &'a str,
    /// Tag `cache.key`.
    pub key: &'a str,
    /// Read or write.
    pub operation: CacheOperation,
    /// Second bucket.
    pub time_bucket: i64,
    /// Span start, epoch ms.
    pub timestamp: i64,
}

/// A searchable tag seen on a stored segment (scope 50), for the UI's autocomplete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagAutocomplete<'a> {
    /// Tag key.
    pub key: &'a str,
    /// Tag value.
    pub value: &'a str,
    /// Minute bucket of the segment start.
    pub time_bucket: i64,
}

/// A learned network address alias (scope 31): `address` is served by this service instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAddressAliasSetup<'a> {
    /// The address callers dial (`networkAddressUsedAtPeer`).
    pub address: &'a str,
    /// The service behind it (a normal service).
    pub represent_service_name: &'a str,
    /// The instance behind it.
    pub represent_service_instance_name: &'a str,
    /// Minute bucket.
    pub time_bucket: i64,
}

/// Service metadata without a request (scope 29): virtual services and heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceMeta<'a> {
    /// Service name.
    pub name: Cow<'a, str>,
    /// Its layer.
    pub layer: Layer,
    /// Minute bucket.
    pub time_bucket: i64,
}

/// Endpoint metadata without a request (scope 42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointMeta<'a> {
    /// The endpoint's service.
    pub service_name: Cow<'a, str>,
    /// Whether that service is normal.
    pub service_normal: bool,
    /// Endpoint name.
    pub endpoint: Cow<'a, str>,
    /// Minute bucket.
    pub time_bucket: i64,
}

/// An instance's properties or heartbeat (scope 30), from the management service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInstanceUpdate<'a> {
    /// Its service (normal).
    pub service_name: Cow<'a, str>,
    /// Instance name.
    pub name: Cow<'a, str>,
    /// Properties as a JSON object; `None` for a heartbeat.
    pub properties: Option<String>,
    /// Minute bucket (the heartbeat time).
    pub time_bucket: i64,
}

/// Every source, as the dispatcher receives it.
#[derive(Debug, Clone)]
#[allow(missing_docs)]
pub enum Source<'a> {
    Service(Service<'a>),
    ServiceInstance(ServiceInstance<'a>),
    Endpoint(Endpoint<'a>),
    ServiceRelation(ServiceRelation<'a>),
    ServiceInstanceRelation(ServiceRelation<'a>),
    EndpointRelation(EndpointRelation<'a>),
    DatabaseAccess(DatabaseAccess<'a>),
    CacheAccess(CacheAccess<'a>),
    MqAccess(MqAccess<'a>),
    MqEndpointAccess(MqEndpointAccess<'a>),
    Segment(SegmentRecord<'a>),
    DatabaseSlowStatement(DatabaseSlowStatement<'a>),
    CacheSlowAccess(CacheSlowAccess<'a>),
    TagAutocomplete(TagAutocomplete<'a>),
    NetworkAddressAliasSetup(NetworkAddressAliasSetup<'a>),
    ServiceMeta(ServiceMeta<'a>),
    EndpointMeta(EndpointMeta<'a>),
    ServiceInstanceUpdate(ServiceInstanceUpdate<'a>),
}

impl Source<'_> {
    /// SkyWalking's scope name of the source (`DefaultScopeDefine`).
    pub fn scope_name(&self) -> &'static str {
        match self {
            Source::Service(_) => "Service",
            Source::ServiceInstance(_) => "ServiceInstance",
            Source::Endpoint(_) => "Endpoint",
            Source::ServiceRelation(_) => "ServiceRelation",
            Source::ServiceInstanceRelation(_) => "ServiceInstanceRelation",
            Source::EndpointRelation(_) => "EndpointRelation",
            Source::DatabaseAccess(_) => "DatabaseAccess",
            Source::CacheAccess(_) => "CacheAccess",
            Source::MqAccess(_) => "MQAccess",
            Source::MqEndpointAccess(_) => "MQEndpointAccess",
            Source::Segment(_) => "Segment",
            Source::DatabaseSlowStatement(_) => "DatabaseSlowStatement",
            Source::CacheSlowAccess(_) => "CacheSlowAccess",
            Source::TagAutocomplete(_) => "TagAutocomplete",
            Source::NetworkAddressAliasSetup(_) => "NetworkAddressAliasSetup",
            Source::ServiceMeta(_) => "ServiceMeta",
            Source::EndpointMeta(_) => "EndpointMeta",
            Source::ServiceInstanceUpdate(_) => "ServiceInstanceUpdate",
        }
    }
}

/// Receives sources as analysis emits them.
pub trait SourceSink {
    /// Takes one source; copies what it keeps.
    fn accept(&mut self, source: Source<'_>);
}

impl<F: FnMut(Source<'_>)> SourceSink for F {
    fn accept(&mut self, source: Source<'_>) {
        self(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(key: &str, value: &str) -> KeyStringValuePair {
        KeyStringValuePair { key: key.to_owned(), value: value.to_owned() }
    }

    #[test]
    fn tag_pairs_are_matched_trimmed() {
        let tags = [tag(" http.method ", " GET"), tag("http.status_code", "500")];
        let tags = SpanTags(&tags);
        assert!(tags.contains("http.method:GET"));
        assert!(tags.contains("http.status_code:500"));
        assert!(!tags.contains("http.status_code:50"));
        assert!(!tags.contains("http.method"));
        assert_eq!(tags.get("http.status_code"), Some("500"));
        assert_eq!(tags.get("missing"), None);
    }
}
