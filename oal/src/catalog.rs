//! The catalog of metric streams a node aggregates: the compiled OAL metrics plus the
//! hard-coded streams trace analysis feeds (oal.md §7) — traffic, relations, aliases — each with
//! its storage model, and the one function that turns a source into their values.
//!
//! Streams are numbered ([`StreamId`]); what flows from L1 to L2 (and later between nodes) is a
//! [`Metric`]: a stream, an entity, a time bucket, the fixed columns set when the entity was
//! first seen, and a [`MetricValue`] that merges.

use std::sync::Arc;

use oap_model::source::{DetectPoint, Source};
use oap_model::{Granularity, ids, minute_to};
use oap_storage::builtin::{alias, relation, tag, traffic};
use oap_storage::{ModelKind, ModelRef, Row, Value};
use serde::{Deserialize, Serialize};

use crate::apdex::ApdexThresholds;
use crate::compile::{Definitions, MetricDefinition};
use crate::function::{Function, MetricValue};
use crate::scope::{Scope, relation_instance_ids, relation_service_ids};

/// A stream's number in its catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId(pub u32);

/// One row's worth of a stream in flight: what L1 merges, routes and L2 persists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The stream.
    pub stream: StreamId,
    /// The entity (the row id).
    pub entity_id: String,
    /// Minute, hour or day bucket (the first minute seen, for metadata).
    pub time_bucket: i64,
    /// The columns set when the entity was first seen (ids, `attr0`), in model order.
    pub fixed: Vec<Value>,
    /// What merges.
    pub value: MetricValue,
}

/// How a stream's value is kept, which decides how a stored row is read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// An OAL metric with its function.
    Oal(Function),
    /// `service_relation_*_side`: component ids.
    ServiceRelation,
    /// `service_instance_relation_*_side`, `endpoint_relation_server_side`, `service_traffic`,
    /// `tag_autocomplete`: fixed columns only.
    Fixed,
    /// `instance_traffic`: last ping and properties.
    InstanceTraffic,
    /// `endpoint_traffic`: last ping.
    EndpointTraffic,
    /// `network_address_alias`.
    Alias,
}

/// A stream: its storage model and how its rows are built and read.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The storage model.
    pub model: ModelRef,
    /// How many leading columns are fixed.
    pub fixed: usize,
    /// How its value is kept.
    pub kind: StreamKind,
}

impl Stream {
    /// Whether hour and day rows are derived from minute rows.
    pub fn downsampling(&self) -> bool {
        matches!(self.model.kind, ModelKind::Metrics { downsampling: true, .. })
    }

    /// Whether a stored row may be rewritten.
    pub fn updatable(&self) -> bool {
        matches!(self.model.kind, ModelKind::Metrics { update: true, .. })
    }

    /// Whether the row id holds the time bucket (else one row per entity).
    pub fn time_relative(&self) -> bool {
        matches!(self.model.kind, ModelKind::Metrics { time_relative: true, .. })
    }

    /// The storage row of a metric, its value calculated for the bucket's granularity.
    pub fn row(&self, metric: &Metric) -> Row {
        let granularity = Granularity::of(metric.time_bucket).unwrap_or(Granularity::Minute);
        let mut values = Vec::with_capacity(self.model.columns.len());
        values.extend_from_slice(&metric.fixed);
        metric.value.write(granularity, &mut values);
        Row { id: metric.entity_id.clone(), time_bucket: metric.time_bucket, values }
    }

    /// A stored row read back as a metric of stream `id`.
    pub fn read(&self, id: StreamId, mut row: Row) -> Metric {
        let rest = row.values.split_off(self.fixed.min(row.values.len()));
        let text = |index: usize| rest.get(index).and_then(Value::as_str).unwrap_or_default().to_owned();
        let long = |index: usize| rest.get(index).and_then(Value::as_i64).unwrap_or_default();
        let value = match self.kind {
            StreamKind::Oal(function) => function.read(&rest),
            StreamKind::ServiceRelation => {
                let mut ids: Vec<i32> = text(0).split('|').filter_map(|id| id.parse().ok()).collect();
                ids.sort_unstable();
                ids.dedup();
                MetricValue::Components(ids)
            }
            StreamKind::Fixed => MetricValue::Fixed,
            StreamKind::InstanceTraffic => {
                MetricValue::Ping { last_ping: long(0), properties: Some(text(1)).filter(|text| !text.is_empty()) }
            }
            StreamKind::EndpointTraffic => MetricValue::LastPing(long(0)),
            StreamKind::Alias => MetricValue::Alias { service_id: text(0), instance_id: text(1), last_update: long(2) },
        };
        Metric { stream: id, entity_id: row.id, time_bucket: row.time_bucket, fixed: row.values, value }
    }
}

impl Metric {
    /// The metric rolled up to an hour or a day: the same accumulators in the coarser bucket.
    pub fn rolled_up(&self, granularity: Granularity) -> Metric {
        Metric { time_bucket: minute_to(self.time_bucket, granularity), ..self.clone() }
    }
}

/// Where the catalog puts what a source contributes: the value of one row, created on first use.
pub trait MetricSink {
    /// The value of `stream`'s row for `entity_id` at `time_bucket`; when there is none yet, it
    /// is created from `new` (fixed columns and an empty value).
    fn entry(
        &mut self,
        stream: StreamId,
        entity_id: &str,
        time_bucket: i64,
        new: &mut dyn FnMut() -> (Vec<Value>, MetricValue),
    ) -> &mut MetricValue;
}

/// The hard-coded streams' ids; `None` where `disable(...)` switched one off.
#[derive(Debug, Clone, Copy, Default)]
struct Builtins {
    service_traffic: Option<StreamId>,
    instance_traffic: Option<StreamId>,
    endpoint_traffic: Option<StreamId>,
    service_relation_server: Option<StreamId>,
    service_relation_client: Option<StreamId>,
    instance_relation_server: Option<StreamId>,
    instance_relation_client: Option<StreamId>,
    endpoint_relation_server: Option<StreamId>,
    alias: Option<StreamId>,
    tag_autocomplete: Option<StreamId>,
}

/// Every metric stream of a node.
#[derive(Debug, Clone)]
pub struct Catalog {
    streams: Vec<Stream>,
    /// The OAL metrics; metric `i` is stream `i`.
    metrics: Vec<MetricDefinition>,
    by_scope: [Vec<usize>; Scope::COUNT],
    builtins: Builtins,
    disabled: Vec<String>,
    thresholds: ApdexThresholds,
}

impl Catalog {
    /// The catalog of compiled definitions plus the hard-coded streams they do not disable.
    pub fn new(definitions: Definitions, thresholds: ApdexThresholds) -> Result<Self, String> {
        let mut streams = Vec::new();
        let mut by_scope: [Vec<usize>; Scope::COUNT] = Default::default();
        for (index, metric) in definitions.metrics.iter().enumerate() {
            let model = Arc::new(metric.model());
            let fixed = metric.scope.default_columns().len();
            streams.push(Stream { model, fixed, kind: StreamKind::Oal(metric.function) });
            by_scope[metric.scope.index()].push(index);
        }
        let disabled = definitions.disabled;
        let mut builtins = Builtins::default();
        let mut add = |model: &ModelRef, fixed: usize, kind: StreamKind| -> Result<Option<StreamId>, String> {
            if streams.iter().any(|stream| stream.model.name == model.name) {
                return Err(format!("metric `{}` has the name of a built-in stream", model.name));
            }
            if disabled.iter().any(|name| **name == *model.name) {
                return Ok(None);
            }
            streams.push(Stream { model: model.clone(), fixed, kind });
            Ok(Some(StreamId(u32::try_from(streams.len() - 1).map_err(|_| "too many streams".to_owned())?)))
        };
        builtins.service_traffic = add(&traffic::SERVICE, 5, StreamKind::Fixed)?;
        builtins.instance_traffic = add(&traffic::INSTANCE, 2, StreamKind::InstanceTraffic)?;
        builtins.endpoint_traffic = add(&traffic::ENDPOINT, 2, StreamKind::EndpointTraffic)?;
        builtins.service_relation_server = add(&relation::SERVICE_SERVER, 2, StreamKind::ServiceRelation)?;
        builtins.service_relation_client = add(&relation::SERVICE_CLIENT, 2, StreamKind::ServiceRelation)?;
        builtins.instance_relation_server = add(&relation::INSTANCE_SERVER, 4, StreamKind::Fixed)?;
        builtins.instance_relation_client = add(&relation::INSTANCE_CLIENT, 4, StreamKind::Fixed)?;
        builtins.endpoint_relation_server = add(&relation::ENDPOINT_SERVER, 3, StreamKind::Fixed)?;
        builtins.alias = add(&alias::MODEL, 1, StreamKind::Alias)?;
        builtins.tag_autocomplete = add(&tag::MODEL, 3, StreamKind::Fixed)?;
        Ok(Self { streams, metrics: definitions.metrics, by_scope, builtins, disabled, thresholds })
    }

    /// Every stream, indexed by [`StreamId`].
    pub fn streams(&self) -> &[Stream] {
        &self.streams
    }

    /// One stream.
    pub fn stream(&self, id: StreamId) -> Option<&Stream> {
        self.streams.get(id.0 as usize)
    }

    /// The stream called `name`.
    pub fn find(&self, name: &str) -> Option<(StreamId, &Stream)> {
        let index = self.streams.iter().position(|stream| &*stream.model.name == name)?;
        Some((StreamId(u32::try_from(index).ok()?), &self.streams[index]))
    }

    /// The compiled OAL metrics.
    pub fn metrics(&self) -> &[MetricDefinition] {
        &self.metrics
    }

    /// Whether `disable(name)` switched the stream `name` off.
    pub fn is_disabled(&self, name: &str) -> bool {
        self.disabled.iter().any(|disabled| disabled == name)
    }

    /// The storage models of every stream.
    pub fn models(&self) -> Vec<ModelRef> {
        self.streams.iter().map(|stream| stream.model.clone()).collect()
    }

    /// Hands what `source` contributes to every stream to `sink`.
    pub fn aggregate(&self, source: &Source<'_>, sink: &mut dyn MetricSink) {
        let scope = Scope::of_source(source);
        let entity = scope.and_then(|scope| scope.entity_id(source));
        if let (Some(scope), Some(entity)) = (scope, &entity) {
            let bucket = time_bucket(source);
            for &index in &self.by_scope[scope.index()] {
                let metric = &self.metrics[index];
                if !metric.admits(source) {
                    continue;
                }
                let Some(input) = metric.input(source, &self.thresholds) else { continue };
                let stream = StreamId(index as u32);
                let mut new = || (scope.default_values(source, metric.decorated), metric.function.empty());
                sink.entry(stream, entity, bucket, &mut new).add(input);
            }
        }
        self.aggregate_builtin(source, entity.as_deref(), sink);
    }

    /// The hard-coded streams' share of `source`; `entity` is the source's scope entity id,
    /// which is also the row id of its instance and endpoint traffic and of its relations.
    fn aggregate_builtin(&self, source: &Source<'_>, entity: Option<&str>, sink: &mut dyn MetricSink) {
        let b = &self.builtins;
        match source {
            Source::Service(s) if b.service_traffic.is_some() => {
                let (bucket, id) = (s.request.time_bucket, ids::service_traffic_id(s.name, s.layer.number()));
                let fixed = || service_traffic_values(s.name, s.layer, bucket);
                merge_into(sink, b.service_traffic, &id, bucket, fixed, MetricValue::Fixed);
            }
            Source::ServiceMeta(m) if b.service_traffic.is_some() => {
                let id = ids::service_traffic_id(&m.name, m.layer.number());
                let fixed = || service_traffic_values(&m.name, m.layer, m.time_bucket);
                merge_into(sink, b.service_traffic, &id, m.time_bucket, fixed, MetricValue::Fixed);
            }
            Source::ServiceInstance(s) => {
                let Some(id) = entity else { return };
                let fixed = || {
                    let service_id = ids::service_id(s.service_name, s.service_layer.is_normal());
                    vec![Value::Text(service_id), Value::Text(s.name.to_owned())]
                };
                let ping = MetricValue::Ping { last_ping: s.request.time_bucket, properties: None };
                merge_into(sink, b.instance_traffic, id, s.request.time_bucket, fixed, ping);
            }
            Source::ServiceInstanceUpdate(u) => {
                let service_id = ids::service_id(&u.service_name, true);
                let id = ids::instance_id(&service_id, &u.name);
                let fixed = || vec![Value::Text(service_id.clone()), Value::Text(u.name.to_string())];
                let ping = MetricValue::Ping { last_ping: u.time_bucket, properties: u.properties.clone() };
                merge_into(sink, b.instance_traffic, &id, u.time_bucket, fixed, ping);
            }
            Source::Endpoint(s) => {
                let Some(id) = entity else { return };
                let fixed = || {
                    let service_id = ids::service_id(s.service_name, s.service_layer.is_normal());
                    vec![Value::Text(service_id), Value::Text(s.name.to_string())]
                };
                let ping = MetricValue::LastPing(s.request.time_bucket);
                merge_into(sink, b.endpoint_traffic, id, s.request.time_bucket, fixed, ping);
            }
            Source::EndpointMeta(m) => {
                let service_id = ids::service_id(&m.service_name, m.service_normal);
                let id = ids::endpoint_id(&service_id, &m.endpoint);
                let fixed = || vec![Value::Text(service_id.clone()), Value::Text(m.endpoint.to_string())];
                merge_into(sink, b.endpoint_traffic, &id, m.time_bucket, fixed, MetricValue::LastPing(m.time_bucket));
            }
            Source::ServiceRelation(r) => {
                let stream = match r.detect_point {
                    DetectPoint::Server => b.service_relation_server,
                    DetectPoint::Client => b.service_relation_client,
                    DetectPoint::Proxy => None,
                };
                let Some(entity) = entity else { return };
                let fixed = || {
                    let (source_id, dest_id) = relation_service_ids(r);
                    vec![Value::Text(source_id), Value::Text(dest_id)]
                };
                let components = MetricValue::Components(vec![r.component_id]);
                merge_into(sink, stream, entity, r.request.time_bucket, fixed, components);
            }
            Source::ServiceInstanceRelation(r) => {
                let stream = match r.detect_point {
                    DetectPoint::Server => b.instance_relation_server,
                    DetectPoint::Client => b.instance_relation_client,
                    DetectPoint::Proxy => None,
                };
                let Some(entity) = entity else { return };
                let fixed = || {
                    let (source_service, dest_service) = relation_service_ids(r);
                    let (source, dest) = relation_instance_ids(r);
                    [source_service, source, dest_service, dest].map(Value::Text).into()
                };
                merge_into(sink, stream, entity, r.request.time_bucket, fixed, MetricValue::Fixed);
            }
            Source::EndpointRelation(r) if r.detect_point == DetectPoint::Server => {
                let Some(entity) = entity else { return };
                let fixed = || {
                    let source =
                        ids::endpoint_id(&ids::service_id(r.service_name, r.service_layer.is_normal()), r.endpoint);
                    let child_service = ids::service_id(r.child_service_name, r.child_service_layer.is_normal());
                    let dest = ids::endpoint_id(&child_service, r.child_endpoint);
                    vec![Value::Text(source), Value::Text(dest), Value::Int(r.component_id)]
                };
                merge_into(sink, b.endpoint_relation_server, entity, r.request.time_bucket, fixed, MetricValue::Fixed);
            }
            Source::NetworkAddressAliasSetup(a) => {
                let service_id = ids::service_id(a.represent_service_name, true);
                let instance_id = ids::instance_id(&service_id, a.represent_service_instance_name);
                let id = ids::network_address_alias_id(a.address);
                let fixed = || vec![Value::Text(a.address.to_owned())];
                let alias = MetricValue::Alias { service_id, instance_id, last_update: a.time_bucket };
                merge_into(sink, b.alias, &id, a.time_bucket, fixed, alias);
            }
            Source::TagAutocomplete(t) => {
                let id = tag::id(t.time_bucket, tag::TRACE, t.key, t.value);
                let fixed = || [t.key, t.value, tag::TRACE].map(|text| Value::Text(text.to_owned())).into();
                merge_into(sink, b.tag_autocomplete, &id, t.time_bucket, fixed, MetricValue::Fixed);
            }
            _ => {}
        }
    }
}

/// Merges `value` into `stream`'s row for `id`; a new row gets `fixed()` and takes `value` as
/// it is. A disabled stream (`None`) takes nothing.
fn merge_into(
    sink: &mut dyn MetricSink,
    stream: Option<StreamId>,
    id: &str,
    bucket: i64,
    fixed: impl Fn() -> Vec<Value>,
    value: MetricValue,
) {
    let Some(stream) = stream else { return };
    let mut first = Some(value);
    let mut new = || (fixed(), first.take().unwrap_or(MetricValue::Fixed));
    let entry = sink.entry(stream, id, bucket, &mut new);
    if let Some(value) = first {
        entry.combine(&value);
    }
}

/// The fixed columns of a `service_traffic` row.
fn service_traffic_values(name: &str, layer: oap_model::Layer, bucket: i64) -> Vec<Value> {
    traffic::ServiceTraffic { name: name.to_owned(), layer, time_bucket: bucket }.into_row().values
}

/// The minute bucket of a trace-derived source.
fn time_bucket(source: &Source<'_>) -> i64 {
    match source {
        Source::Service(s) => s.request.time_bucket,
        Source::ServiceInstance(s) => s.request.time_bucket,
        Source::Endpoint(s) => s.request.time_bucket,
        Source::ServiceRelation(r) | Source::ServiceInstanceRelation(r) => r.request.time_bucket,
        Source::EndpointRelation(r) => r.request.time_bucket,
        Source::DatabaseAccess(s) => s.time_bucket,
        Source::CacheAccess(s) => s.time_bucket,
        Source::MqAccess(s) => s.time_bucket,
        Source::MqEndpointAccess(s) => s.time_bucket,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
