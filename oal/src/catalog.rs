//! The catalog of metric streams a node aggregates: the compiled OAL metrics plus the
//! hard-coded streams trace analysis feeds (docs/reference/oal.md §7) — traffic, relations, aliases
//! — each with its storage model, and the one function that turns a source into their values.
//!
//! Streams are numbered ([`StreamId`]); what flows from L1 to L2 (and later between nodes) is a
//! [`Metric`]: a stream, an entity, a time bucket, the fixed columns set when the entity was
//! first seen, and a [`MetricValue`] that merges.
//!
//! Streams whose rows share an entity id form a [`GroupId`]: a scope's OAL metrics together
//! with the built-in streams keyed by the same entity (instance and endpoint traffic, the
//! relations). A source is merged into its group's [`Slot`]s after one lookup of its entity, so
//! the entity id is built, hashed and compared once per source rather than once per metric.

use std::sync::Arc;

use oap_model::source::{DetectPoint, Source};
use oap_model::{Granularity, Layer, TimeBucket, ids};
use oap_storage_model::builtin::{alias, relation, tag, traffic};
use oap_storage_model::{ModelKind, ModelRef, Row, Value};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::apdex::ApdexThresholds;
use crate::compile::{Definitions, MetricDefinition};
use crate::entity::{EntityKey, IdKind};
use crate::error::DefinitionError;
use crate::function::{AliasTarget, Function, Input, MetricValue};
use crate::program::Program;
use crate::scope::{Scope, relation_instance_ids, relation_service_ids};

/// A stream's number in its catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId(pub u32);

/// One row's worth of a stream in flight: what L1 merges, routes and L2 persists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The stream.
    pub stream: StreamId,
    /// The entity (the row id), shared by every metric of its group.
    pub entity_id: Arc<str>,
    /// Minute, hour or day bucket (the first minute seen, for metadata).
    pub time_bucket: i64,
    /// The columns set when the entity was first seen (ids, `attr0`), in model order; shared by
    /// the metrics of a scope that have the same.
    pub fixed: Arc<[Value]>,
    /// What merges.
    pub value: MetricValue,
    /// The last pipeline epoch (of the node holding it) whose contributions the metric holds
    /// (docs/durable-ingest.md); 0 where none is known. A stored row keeps [`WriterEpochs`]
    /// instead.
    #[serde(default)]
    pub epoch: u64,
}

/// The column of an OAL metric's row that holds its [`WriterEpochs`].
pub const EPOCH_COLUMN: &str = "ingest_epochs";

/// For each aggregating node that wrote a stored row, the last of its epochs whose
/// contributions the row holds (docs/durable-ingest.md §5, §8). Epochs are a node's own, so a
/// row that changed hands between nodes (the cluster's node list changed) keeps one per node:
/// a node replaying its log after a crash checks only its own. Stored as `node:epoch` pairs,
/// the node in hex, comma-separated. One writer is kept inline (L2 holds one per cached row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterEpochs(SmallVec<[(u64, u64); 1]>);

impl WriterEpochs {
    /// The last epoch of `node` the row holds (0 if none).
    pub fn get(&self, node: u64) -> u64 {
        self.0.iter().find(|(writer, _)| *writer == node).map_or(0, |(_, epoch)| *epoch)
    }

    /// Notes that the row holds `node`'s contributions up to `epoch` (never lowers).
    pub fn raise(&mut self, node: u64, epoch: u64) {
        match self.0.iter_mut().find(|(writer, _)| *writer == node) {
            Some((_, held)) => *held = (*held).max(epoch),
            None => self.0.push((node, epoch)),
        }
    }

    /// The text stored in [`EPOCH_COLUMN`].
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::with_capacity(self.0.len() * 32);
        for (index, (node, epoch)) in self.0.iter().enumerate() {
            let comma = if index == 0 { "" } else { "," };
            let _ = write!(text, "{comma}{node:x}:{epoch}");
        }
        text
    }

    /// Reads [`WriterEpochs::render`]'s text; what does not parse is left out (an older row).
    pub fn parse(text: &str) -> Self {
        let pairs = text.split(',').filter_map(|pair| {
            let (node, epoch) = pair.split_once(':')?;
            Some((u64::from_str_radix(node.trim(), 16).ok()?, epoch.trim().parse().ok()?))
        });
        Self(pairs.collect())
    }
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

    /// The storage row of a metric, its value calculated for the bucket's granularity; an OAL
    /// metric's row keeps `writers`.
    pub fn row(&self, metric: &Metric, writers: &WriterEpochs) -> Row {
        self.row_of(&metric.entity_id, metric.time_bucket, &metric.fixed, &metric.value, writers)
    }

    /// The storage row of the entity `entity_id` at `time_bucket` with these fixed columns and
    /// value ([`Stream::row`] of a metric held in parts).
    pub fn row_of(
        &self,
        entity_id: &str,
        time_bucket: i64,
        fixed: &[Value],
        value: &MetricValue,
        writers: &WriterEpochs,
    ) -> Row {
        let granularity = TimeBucket::of(time_bucket).map_or(Granularity::Minute, TimeBucket::granularity);
        let mut values = Vec::with_capacity(self.model.columns.len());
        values.extend_from_slice(fixed);
        value.write(granularity, &mut values);
        if matches!(self.kind, StreamKind::Oal(_)) {
            values.push(Value::Text(writers.render()));
        }
        Row { id: entity_id.to_owned(), time_bucket, values }
    }

    /// The [`WriterEpochs`] a stored row keeps (none for other than OAL metrics, or a row
    /// written before there were any).
    pub fn writers(&self, row: &Row) -> WriterEpochs {
        match self.kind {
            StreamKind::Oal(_) if self.model.columns.len() == row.values.len() => {
                row.values.last().and_then(Value::as_str).map(WriterEpochs::parse).unwrap_or_default()
            }
            _ => WriterEpochs::default(),
        }
    }

    /// A stored row read back as a metric of stream `id` (its epoch 0: see
    /// [`Stream::writers`]).
    pub fn read(&self, id: StreamId, mut row: Row) -> Metric {
        // An OAL row ends with its writers' epochs (absent in rows written before there were).
        if matches!(self.kind, StreamKind::Oal(_)) && self.model.columns.len() == row.values.len() {
            row.values.pop();
        }
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
            StreamKind::Alias => MetricValue::Alias {
                target: Box::new(AliasTarget { service_id: text(0), instance_id: text(1) }),
                last_update: long(2),
            },
        };
        Metric {
            stream: id,
            entity_id: row.id.into(),
            time_bucket: row.time_bucket,
            fixed: row.values.into(),
            value,
            epoch: 0,
        }
    }
}

impl Metric {
    /// The metric rolled up to an hour or a day: the same accumulators in the coarser bucket.
    pub fn rolled_up(&self, granularity: Granularity) -> Metric {
        Metric { time_bucket: oap_model::rolled_up(self.time_bucket, granularity), ..self.clone() }
    }
}

/// A set of streams whose rows share one entity id: a scope's OAL metrics plus the built-in
/// streams keyed by that scope's entity, or one built-in stream with ids of its own. Its streams
/// are [`Catalog::group_streams`], in slot order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub u16);

/// One stream's row within a group: the columns fixed when it was first seen and what merges.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    /// The fixed columns, shared by the slots of a group that have the same.
    pub fixed: Arc<[Value]>,
    /// What merges.
    pub value: MetricValue,
}

/// Where the catalog puts what a source contributes: the slots of one group's rows, made on
/// first use.
pub trait MetricSink {
    /// The slots of `group` for the entity of `entity` (its id is [`EntityKey::id`]) at
    /// `time_bucket`, one per stream of the group in [`Catalog::group_streams`] order; on first
    /// use, `slots` empty ones.
    fn group(&mut self, group: GroupId, slots: usize, entity: &EntityKey<'_>, time_bucket: i64) -> &mut [Option<Slot>];
}

/// The hard-coded streams' places; `None` where `disable(...)` switched one off. Streams keyed by
/// a scope's entity have a slot in that scope's group; the others have a group of their own.
#[derive(Debug, Clone, Copy, Default)]
struct Builtins {
    service_traffic: Option<GroupId>,
    instance_traffic: Option<usize>,
    endpoint_traffic: Option<usize>,
    service_relation_server: Option<usize>,
    service_relation_client: Option<usize>,
    instance_relation_server: Option<usize>,
    instance_relation_client: Option<usize>,
    endpoint_relation_server: Option<usize>,
    alias: Option<GroupId>,
    tag_autocomplete: Option<GroupId>,
}

/// Every metric stream of a node.
#[derive(Debug, Clone)]
pub struct Catalog {
    streams: Vec<Stream>,
    /// The OAL metrics; metric `i` is stream `i`.
    metrics: Vec<MetricDefinition>,
    by_scope: [Vec<usize>; Scope::COUNT],
    /// Each scope's metrics compiled together.
    programs: Vec<Program>,
    /// The streams of each group, in slot order; group `i < Scope::COUNT` is scope `i`'s.
    groups: Vec<Vec<StreamId>>,
    builtins: Builtins,
    disabled: Vec<String>,
    thresholds: ApdexThresholds,
}

impl Catalog {
    /// The catalog of compiled definitions plus the hard-coded streams they do not disable.
    pub fn new(definitions: Definitions, thresholds: ApdexThresholds) -> Result<Self, DefinitionError> {
        let mut streams = Vec::new();
        let mut by_scope: [Vec<usize>; Scope::COUNT] = Default::default();
        for (index, metric) in definitions.metrics.iter().enumerate() {
            let model = Arc::new(metric.model());
            let fixed = metric.scope.default_columns().len();
            streams.push(Stream { model, fixed, kind: StreamKind::Oal(metric.function) });
            by_scope[metric.scope.index()].push(index);
        }
        let mut groups: Vec<Vec<StreamId>> =
            by_scope.iter().map(|metrics| metrics.iter().map(|&index| StreamId(index as u32)).collect()).collect();
        let disabled = definitions.disabled;
        let mut add = |model: &ModelRef, fixed: usize, kind: StreamKind| -> Result<Option<StreamId>, DefinitionError> {
            if streams.iter().any(|stream| stream.model.name == model.name) {
                return Err(DefinitionError::BuiltinName(model.name.to_string()));
            }
            if disabled.iter().any(|name| **name == *model.name) {
                return Ok(None);
            }
            streams.push(Stream { model: model.clone(), fixed, kind });
            Ok(Some(StreamId(u32::try_from(streams.len() - 1).map_err(|_| DefinitionError::TooMany("streams"))?)))
        };
        let service_traffic = add(&traffic::SERVICE, 5, StreamKind::Fixed)?;
        let instance_traffic = add(&traffic::INSTANCE, 2, StreamKind::InstanceTraffic)?;
        let endpoint_traffic = add(&traffic::ENDPOINT, 2, StreamKind::EndpointTraffic)?;
        let service_relation_server = add(&relation::SERVICE_SERVER, 2, StreamKind::ServiceRelation)?;
        let service_relation_client = add(&relation::SERVICE_CLIENT, 2, StreamKind::ServiceRelation)?;
        let instance_relation_server = add(&relation::INSTANCE_SERVER, 4, StreamKind::Fixed)?;
        let instance_relation_client = add(&relation::INSTANCE_CLIENT, 4, StreamKind::Fixed)?;
        let endpoint_relation_server = add(&relation::ENDPOINT_SERVER, 3, StreamKind::Fixed)?;
        let alias = add(&alias::MODEL, 1, StreamKind::Alias)?;
        let tag_autocomplete = add(&tag::MODEL, 3, StreamKind::Fixed)?;
        let mut in_scope = |stream: Option<StreamId>, scope: Scope| {
            stream.map(|stream| {
                groups[scope.index()].push(stream);
                groups[scope.index()].len() - 1
            })
        };
        let mut builtins = Builtins {
            instance_traffic: in_scope(instance_traffic, Scope::ServiceInstance),
            endpoint_traffic: in_scope(endpoint_traffic, Scope::Endpoint),
            service_relation_server: in_scope(service_relation_server, Scope::ServiceRelation),
            service_relation_client: in_scope(service_relation_client, Scope::ServiceRelation),
            instance_relation_server: in_scope(instance_relation_server, Scope::ServiceInstanceRelation),
            instance_relation_client: in_scope(instance_relation_client, Scope::ServiceInstanceRelation),
            endpoint_relation_server: in_scope(endpoint_relation_server, Scope::EndpointRelation),
            ..Builtins::default()
        };
        let mut own_group = |stream: Option<StreamId>| -> Result<Option<GroupId>, DefinitionError> {
            let Some(stream) = stream else { return Ok(None) };
            groups.push(vec![stream]);
            Ok(Some(GroupId(u16::try_from(groups.len() - 1).map_err(|_| DefinitionError::TooMany("stream groups"))?)))
        };
        builtins.service_traffic = own_group(service_traffic)?;
        builtins.alias = own_group(alias)?;
        builtins.tag_autocomplete = own_group(tag_autocomplete)?;
        let programs = by_scope
            .iter()
            .map(|indices| {
                let metrics: Vec<&MetricDefinition> =
                    indices.iter().map(|&index| &definitions.metrics[index]).collect();
                Program::compile(&metrics)
            })
            .collect();
        Ok(Self { streams, metrics: definitions.metrics, by_scope, programs, groups, builtins, disabled, thresholds })
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

    /// The streams of `group`, in slot order.
    pub fn group_streams(&self, group: GroupId) -> &[StreamId] {
        self.groups.get(usize::from(group.0)).map_or(&[], Vec::as_slice)
    }

    /// Hands what `source` contributes to every stream to `sink`; returns how many rows it
    /// started (slots that were empty).
    pub fn aggregate(&self, source: &Source<'_>, sink: &mut dyn MetricSink) -> usize {
        let mut started = 0;
        if let Some(scope) = Scope::of_source(source)
            && let Some(entity) = scope.entity_key(source)
        {
            let slots = self.slots(sink, scope_group(scope), &entity, time_bucket(source));
            started += self.aggregate_scope(scope, source, slots);
        }
        started + self.aggregate_own(source, sink)
    }

    fn slots<'s>(
        &self,
        sink: &'s mut dyn MetricSink,
        group: GroupId,
        entity: &EntityKey<'_>,
        bucket: i64,
    ) -> &'s mut [Option<Slot>] {
        sink.group(group, self.group_streams(group).len(), entity, bucket)
    }

    /// What a scope source contributes to its scope's group: the OAL metrics of the scope, then
    /// the built-in streams keyed by the same entity (its traffic, its relation).
    fn aggregate_scope(&self, scope: Scope, source: &Source<'_>, slots: &mut [Option<Slot>]) -> usize {
        let mut started = 0;
        // The scope's default columns, without and with `attr0`, made once per source at most.
        let mut defaults: [Option<Arc<[Value]>>; 2] = [None, None];
        let indices = &self.by_scope[scope.index()];
        let metric_at = |position: usize| &self.metrics[indices[position]];
        let mut take = |position: usize, input: Input| {
            let metric = metric_at(position);
            let slot = match &mut slots[position] {
                Some(slot) => slot,
                empty @ None => {
                    started += 1;
                    let fixed = defaults[usize::from(metric.decorated)]
                        .get_or_insert_with(|| scope.default_values(source, metric.decorated).into());
                    empty.insert(Slot { fixed: fixed.clone(), value: metric.function.empty() })
                }
            };
            slot.value.add(input);
        };
        self.programs[scope.index()].run(source, metric_at, &self.thresholds, &mut take);
        let b = &self.builtins;
        started
            + match source {
                Source::ServiceInstance(s) => {
                    let fixed = || {
                        let service_id = ids::service_id(s.service_name, s.service_layer.is_normal());
                        vec![Value::Text(service_id), Value::Text(s.name.to_owned())]
                    };
                    let ping = MetricValue::Ping { last_ping: s.request.time_bucket, properties: None };
                    merge_slot(slots, b.instance_traffic, fixed, ping)
                }
                Source::Endpoint(s) => {
                    let fixed = || {
                        let service_id = ids::service_id(s.service_name, s.service_layer.is_normal());
                        vec![Value::Text(service_id), Value::Text(s.name.to_string())]
                    };
                    merge_slot(slots, b.endpoint_traffic, fixed, MetricValue::LastPing(s.request.time_bucket))
                }
                Source::ServiceRelation(r) => {
                    let at = match r.detect_point {
                        DetectPoint::Server => b.service_relation_server,
                        DetectPoint::Client => b.service_relation_client,
                        DetectPoint::Proxy => None,
                    };
                    let fixed = || {
                        let (source_id, dest_id) = relation_service_ids(r);
                        vec![Value::Text(source_id), Value::Text(dest_id)]
                    };
                    merge_component(slots, at, fixed, r.component_id)
                }
                Source::ServiceInstanceRelation(r) => {
                    let at = match r.detect_point {
                        DetectPoint::Server => b.instance_relation_server,
                        DetectPoint::Client => b.instance_relation_client,
                        DetectPoint::Proxy => None,
                    };
                    let fixed = || {
                        let (source_service, dest_service) = relation_service_ids(r);
                        let (source, dest) = relation_instance_ids(r);
                        [source_service, source, dest_service, dest].map(Value::Text).into()
                    };
                    merge_slot(slots, at, fixed, MetricValue::Fixed)
                }
                Source::EndpointRelation(r) if r.detect_point == DetectPoint::Server => {
                    let fixed = || {
                        let source =
                            ids::endpoint_id(&ids::service_id(r.service_name, r.service_layer.is_normal()), r.endpoint);
                        let child_service = ids::service_id(r.child_service_name, r.child_service_layer.is_normal());
                        let dest = ids::endpoint_id(&child_service, r.child_endpoint);
                        vec![Value::Text(source), Value::Text(dest), Value::Int(r.component_id)]
                    };
                    merge_slot(slots, b.endpoint_relation_server, fixed, MetricValue::Fixed)
                }
                _ => 0,
            }
    }

    /// What a source contributes to built-in streams with ids of their own (service traffic,
    /// aliases, tags) and what metadata reports contribute to traffic.
    fn aggregate_own(&self, source: &Source<'_>, sink: &mut dyn MetricSink) -> usize {
        let b = &self.builtins;
        let own = |group: Option<GroupId>| group.map(|group| (group, 0));
        let in_scope = |scope: Scope, at: Option<usize>| at.map(|at| (scope_group(scope), at));
        let mut merge =
            |place: (GroupId, usize), entity: EntityKey<'_>, bucket: i64, fixed: &dyn Fn() -> Vec<Value>, value| {
                merge_slot(self.slots(sink, place.0, &entity, bucket), Some(place.1), fixed, value)
            };
        match source {
            Source::Service(s) => own(b.service_traffic).map_or(0, |place| {
                let bucket = s.request.time_bucket;
                let fixed = || service_traffic_values(s.name, s.layer, bucket);
                merge(place, service_traffic_key(s.name, s.layer), bucket, &fixed, MetricValue::Fixed)
            }),
            Source::ServiceMeta(m) => own(b.service_traffic).map_or(0, |place| {
                let fixed = || service_traffic_values(&m.name, m.layer, m.time_bucket);
                merge(place, service_traffic_key(&m.name, m.layer), m.time_bucket, &fixed, MetricValue::Fixed)
            }),
            Source::ServiceInstanceUpdate(u) => {
                in_scope(Scope::ServiceInstance, b.instance_traffic).map_or(0, |place| {
                    // Keyed as the scope's sources are, so that both land in one row.
                    let entity = EntityKey::under_service(IdKind::Instance, &u.service_name, true, &u.name);
                    let fixed = || {
                        let service_id = ids::service_id(&u.service_name, true);
                        vec![Value::Text(service_id), Value::Text(u.name.to_string())]
                    };
                    let ping = MetricValue::Ping { last_ping: u.time_bucket, properties: u.properties.clone() };
                    merge(place, entity, u.time_bucket, &fixed, ping)
                })
            }
            Source::EndpointMeta(m) => in_scope(Scope::Endpoint, b.endpoint_traffic).map_or(0, |place| {
                let entity = EntityKey::under_service(IdKind::Endpoint, &m.service_name, m.service_normal, &m.endpoint);
                let fixed = || {
                    let service_id = ids::service_id(&m.service_name, m.service_normal);
                    vec![Value::Text(service_id), Value::Text(m.endpoint.to_string())]
                };
                merge(place, entity, m.time_bucket, &fixed, MetricValue::LastPing(m.time_bucket))
            }),
            Source::NetworkAddressAliasSetup(a) => own(b.alias).map_or(0, |place| {
                let service_id = ids::service_id(a.represent_service_name, true);
                let instance_id = ids::instance_id(&service_id, a.represent_service_instance_name);
                let id = ids::network_address_alias_id(a.address);
                let fixed = || vec![Value::Text(a.address.to_owned())];
                let target = Box::new(AliasTarget { service_id, instance_id });
                let alias = MetricValue::Alias { target, last_update: a.time_bucket };
                merge(place, EntityKey::Text(&id), a.time_bucket, &fixed, alias)
            }),
            Source::TagAutocomplete(t) => own(b.tag_autocomplete).map_or(0, |place| {
                let entity = EntityKey::Parts {
                    kind: IdKind::Tag { minute: t.time_bucket },
                    normal: [false; 2],
                    parts: [tag::TRACE, t.key, t.value, ""],
                };
                let fixed = || [t.key, t.value, tag::TRACE].map(|text| Value::Text(text.to_owned())).into();
                merge(place, entity, t.time_bucket, &fixed, MetricValue::Fixed)
            }),
            _ => 0,
        }
    }
}

/// The key of a service's `service_traffic` row.
fn service_traffic_key(name: &str, layer: Layer) -> EntityKey<'_> {
    EntityKey::Parts {
        kind: IdKind::ServiceTraffic { layer: layer.number() },
        normal: [false; 2],
        parts: [name, "", "", ""],
    }
}

/// The group of a scope's OAL metrics.
fn scope_group(scope: Scope) -> GroupId {
    GroupId(scope.index() as u16)
}

/// Merges `value` into slot `at` (none when its stream is disabled); an empty slot gets
/// `fixed()` and takes `value` as it is. Returns 1 when it started a row.
fn merge_slot(
    slots: &mut [Option<Slot>],
    at: Option<usize>,
    fixed: impl FnOnce() -> Vec<Value>,
    value: MetricValue,
) -> usize {
    merge_slot_with(slots, at, fixed, |held| match held {
        Some(held) => {
            held.combine(&value);
            None
        }
        None => Some(value),
    })
}

/// Adds a relation's component id to slot `at` in place: no allocation once the row exists, as
/// for almost every relation source. Returns 1 when it started a row.
fn merge_component(
    slots: &mut [Option<Slot>],
    at: Option<usize>,
    fixed: impl FnOnce() -> Vec<Value>,
    id: i32,
) -> usize {
    merge_slot_with(slots, at, fixed, |held| match held {
        Some(MetricValue::Components(ids)) => {
            if let Err(index) = ids.binary_search(&id) {
                ids.insert(index, id);
            }
            None
        }
        Some(other) => {
            other.combine(&MetricValue::Components(vec![id]));
            None
        }
        None => Some(MetricValue::Components(vec![id])),
    })
}

/// The two cases of every built-in merge: `merge` gets the held value to change in place, or
/// `None` for an empty slot and then returns the first value, the slot getting `fixed()`.
/// Returns 1 when it started a row.
fn merge_slot_with(
    slots: &mut [Option<Slot>],
    at: Option<usize>,
    fixed: impl FnOnce() -> Vec<Value>,
    merge: impl FnOnce(Option<&mut MetricValue>) -> Option<MetricValue>,
) -> usize {
    let Some(slot) = at.and_then(|at| slots.get_mut(at)) else { return 0 };
    match slot {
        Some(slot) => {
            merge(Some(&mut slot.value));
            0
        }
        None => match merge(None) {
            Some(value) => {
                *slot = Some(Slot { fixed: fixed().into(), value });
                1
            }
            None => 0,
        },
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
