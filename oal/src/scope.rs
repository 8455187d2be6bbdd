//! Scopes: the kinds of source OAL statements aggregate (docs/reference/oal.md §4), their fields as
//! compiled accessors, their entity ids and their default columns.
//!
//! A field name is resolved once, when a script is compiled, into a [`Field`]; reading it from a
//! source is then a `match`, never a string look-up.

use oap_model::Layer;
use oap_model::ids;
use oap_model::source::{
    CacheOperation, DetectPoint, MqOperation, RequestFacts, RequestType, ServiceRelation, Source, SpanTags,
};
use oap_storage_model::{ColumnType, Indexing, Value};

use crate::entity::{EntityKey, IdKind};

/// A scope whose sources oap-rs produces (from trace analysis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `Service`.
    Service,
    /// `ServiceInstance`.
    ServiceInstance,
    /// `Endpoint`.
    Endpoint,
    /// `ServiceRelation`.
    ServiceRelation,
    /// `ServiceInstanceRelation`.
    ServiceInstanceRelation,
    /// `EndpointRelation`.
    EndpointRelation,
    /// `DatabaseAccess`.
    DatabaseAccess,
    /// `CacheAccess`.
    CacheAccess,
    /// `MQAccess`.
    MqAccess,
    /// `MQEndpointAccess`.
    MqEndpointAccess,
}

/// Scope keywords OAL accepts but whose sources oap-rs does not produce yet
/// (docs/reference/oal.md §4.1).
const NOT_PRODUCED: &[&str] = &[
    "TCPService",
    "TCPServiceInstance",
    "TCPServiceRelation",
    "TCPServiceInstanceRelation",
    "Event",
    "EnvoyInstanceMetric",
    "ServiceInstanceJVMCPU",
    "ServiceInstanceJVMMemory",
    "ServiceInstanceJVMMemoryPool",
    "ServiceInstanceJVMGC",
    "ServiceInstanceJVMThread",
    "ServiceInstanceJVMClass",
    "ServiceInstanceCLRCPU",
    "ServiceInstanceCLRGC",
    "ServiceInstanceCLRThread",
    "BrowserAppPerf",
    "BrowserAppPagePerf",
    "BrowserAppSingleVersionPerf",
    "BrowserAppResourcePerf",
    "BrowserAppWebVitalsPerf",
    "BrowserAppWebInteractionPerf",
    "BrowserAppTraffic",
    "BrowserAppPageTraffic",
    "BrowserAppSingleVersionTraffic",
    "K8SService",
    "K8SServiceInstance",
    "K8SEndpoint",
    "K8SServiceRelation",
    "K8SServiceInstanceRelation",
    "CiliumService",
    "CiliumServiceInstance",
    "CiliumEndpoint",
    "CiliumServiceRelation",
    "CiliumServiceInstanceRelation",
    "CiliumEndpointRelation",
    "GenAIProviderAccess",
    "GenAIModelAccess",
];

impl Scope {
    /// How many scopes there are; [`Scope::index`] is below it.
    pub const COUNT: usize = 10;

    /// The scope a `from()` keyword names; the error says why there is none.
    pub fn of_keyword(keyword: &str) -> Result<Scope, String> {
        Ok(match keyword {
            "Service" => Scope::Service,
            "ServiceInstance" => Scope::ServiceInstance,
            "Endpoint" => Scope::Endpoint,
            "ServiceRelation" => Scope::ServiceRelation,
            "ServiceInstanceRelation" => Scope::ServiceInstanceRelation,
            "EndpointRelation" => Scope::EndpointRelation,
            "DatabaseAccess" => Scope::DatabaseAccess,
            "CacheAccess" => Scope::CacheAccess,
            "MQAccess" => Scope::MqAccess,
            "MQEndpointAccess" => Scope::MqEndpointAccess,
            "All" => return Err("scope `All` was removed in SkyWalking 9.0.0".to_owned()),
            known if NOT_PRODUCED.contains(&known) => {
                return Err(format!("scope `{known}` has no sources in oap-rs yet (only trace-derived scopes do)"));
            }
            unknown => return Err(format!("unknown scope `{unknown}`")),
        })
    }

    /// The scope of a source, if OAL can aggregate it.
    pub fn of_source(source: &Source<'_>) -> Option<Scope> {
        Some(match source {
            Source::Service(_) => Scope::Service,
            Source::ServiceInstance(_) => Scope::ServiceInstance,
            Source::Endpoint(_) => Scope::Endpoint,
            Source::ServiceRelation(_) => Scope::ServiceRelation,
            Source::ServiceInstanceRelation(_) => Scope::ServiceInstanceRelation,
            Source::EndpointRelation(_) => Scope::EndpointRelation,
            Source::DatabaseAccess(_) => Scope::DatabaseAccess,
            Source::CacheAccess(_) => Scope::CacheAccess,
            Source::MqAccess(_) => Scope::MqAccess,
            Source::MqEndpointAccess(_) => Scope::MqEndpointAccess,
            _ => return None,
        })
    }

    /// The keyword OAL names the scope by.
    pub fn keyword(self) -> &'static str {
        match self {
            Scope::Service => "Service",
            Scope::ServiceInstance => "ServiceInstance",
            Scope::Endpoint => "Endpoint",
            Scope::ServiceRelation => "ServiceRelation",
            Scope::ServiceInstanceRelation => "ServiceInstanceRelation",
            Scope::EndpointRelation => "EndpointRelation",
            Scope::DatabaseAccess => "DatabaseAccess",
            Scope::CacheAccess => "CacheAccess",
            Scope::MqAccess => "MQAccess",
            Scope::MqEndpointAccess => "MQEndpointAccess",
        }
    }

    /// A dense index, for per-scope tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The field `name` of the scope and its type.
    pub fn field(self, name: &str) -> Option<(Field, FieldType)> {
        use Field as F;
        use FieldType as T;
        let field = match (self, name) {
            (Scope::Service, "name") => (F::Name, T::Str),
            (Scope::Service, "layer") => (F::Layer, T::Enum(EnumType::Layer)),
            (Scope::Service | Scope::Endpoint, "serviceInstanceName") => (F::ServiceInstanceName, T::Str),
            (Scope::Service | Scope::ServiceInstance, "endpointName") => (F::EndpointName, T::Str),
            (Scope::ServiceInstance | Scope::Endpoint, "name") => (F::Name, T::Str),
            (Scope::ServiceInstance | Scope::Endpoint, "serviceName") => (F::ServiceName, T::Str),
            (Scope::ServiceInstance | Scope::Endpoint, "serviceLayer") => (F::ServiceLayer, T::Enum(EnumType::Layer)),
            (Scope::ServiceRelation | Scope::ServiceInstanceRelation, _) => match name {
                "sourceServiceName" => (F::SourceServiceName, T::Str),
                "sourceServiceInstanceName" => (F::SourceServiceInstanceName, T::Str),
                "sourceLayer" | "sourceServiceLayer" => (F::SourceLayer, T::Enum(EnumType::Layer)),
                "destServiceName" => (F::DestServiceName, T::Str),
                "destServiceInstanceName" => (F::DestServiceInstanceName, T::Str),
                "destLayer" | "destServiceLayer" => (F::DestLayer, T::Enum(EnumType::Layer)),
                "endpoint" => (F::Endpoint, T::Str),
                "componentId" => (F::ComponentId, T::Long),
                "detectPoint" => (F::DetectPoint, T::Enum(EnumType::DetectPoint)),
                _ => return request_field(name),
            },
            (Scope::EndpointRelation, _) => match name {
                "endpoint" => (F::Endpoint, T::Str),
                "serviceName" => (F::ServiceName, T::Str),
                "serviceInstanceName" => (F::ServiceInstanceName, T::Str),
                "serviceLayer" => (F::ServiceLayer, T::Enum(EnumType::Layer)),
                "childEndpoint" => (F::ChildEndpoint, T::Str),
                "childServiceName" => (F::ChildServiceName, T::Str),
                "childServiceInstanceName" => (F::ChildServiceInstanceName, T::Str),
                "childServiceLayer" => (F::ChildServiceLayer, T::Enum(EnumType::Layer)),
                "componentId" => (F::ComponentId, T::Long),
                "detectPoint" => (F::DetectPoint, T::Enum(EnumType::DetectPoint)),
                "rpcLatency" => (F::Latency, T::Long),
                "latency" => return None,
                _ => return request_field(name),
            },
            (Scope::Service | Scope::ServiceInstance | Scope::Endpoint, _) => return request_field(name),
            (Scope::DatabaseAccess | Scope::CacheAccess | Scope::MqAccess, "name") => (F::Name, T::Str),
            (Scope::DatabaseAccess, "databaseTypeId") => (F::ComponentId, T::Long),
            (Scope::CacheAccess, "cacheTypeId") => (F::ComponentId, T::Long),
            (Scope::DatabaseAccess | Scope::CacheAccess, "latency") => (F::Latency, T::Long),
            (Scope::CacheAccess, "operation") => (F::Operation, T::Enum(EnumType::CacheOperation)),
            (Scope::MqAccess | Scope::MqEndpointAccess, "typeId") => (F::ComponentId, T::Long),
            (Scope::MqAccess | Scope::MqEndpointAccess, "transmissionLatency") => (F::TransmissionLatency, T::Long),
            (Scope::MqAccess | Scope::MqEndpointAccess, "operation") => (F::Operation, T::Enum(EnumType::MqOperation)),
            (Scope::MqEndpointAccess, "serviceName") => (F::ServiceName, T::Str),
            (Scope::MqEndpointAccess, "endpoint") => (F::Endpoint, T::Str),
            (_, "status") => (F::Status, T::Bool),
            _ => return None,
        };
        Some(field)
    }

    /// What the id of the entity a source of this scope is about (docs/reference/analysis.md
    /// §11) is built from, borrowed from the source — no allocation; [`EntityKey::id`] builds
    /// the id. `None` when the source is of another scope.
    pub fn entity_key<'a>(self, source: &'a Source<'_>) -> Option<EntityKey<'a>> {
        Some(match (self, source) {
            (Scope::Service, Source::Service(s)) => EntityKey::service(s.name, s.layer.is_normal()),
            (Scope::ServiceInstance, Source::ServiceInstance(s)) => {
                EntityKey::under_service(IdKind::Instance, s.service_name, s.service_layer.is_normal(), s.name)
            }
            (Scope::Endpoint, Source::Endpoint(s)) => {
                EntityKey::under_service(IdKind::Endpoint, s.service_name, s.service_layer.is_normal(), &s.name)
            }
            (Scope::ServiceRelation, Source::ServiceRelation(r)) => EntityKey::Parts {
                kind: IdKind::ServiceRelation,
                normal: [r.source_layer.is_normal(), r.dest_layer.is_normal()],
                parts: [r.source_service_name, r.dest_service_name, "", ""],
            },
            (Scope::ServiceInstanceRelation, Source::ServiceInstanceRelation(r)) => EntityKey::Parts {
                kind: IdKind::InstanceRelation,
                normal: [r.source_layer.is_normal(), r.dest_layer.is_normal()],
                parts: [
                    r.source_service_name,
                    r.dest_service_name,
                    r.source_service_instance_name,
                    r.dest_service_instance_name,
                ],
            },
            (Scope::EndpointRelation, Source::EndpointRelation(r)) => EntityKey::Parts {
                kind: IdKind::EndpointRelation,
                normal: [r.service_layer.is_normal(), r.child_service_layer.is_normal()],
                parts: [r.service_name, r.endpoint, r.child_service_name, r.child_endpoint],
            },
            (Scope::DatabaseAccess, Source::DatabaseAccess(s)) => EntityKey::service(s.name, false),
            (Scope::CacheAccess, Source::CacheAccess(s)) => EntityKey::service(&s.name, false),
            (Scope::MqAccess, Source::MqAccess(s)) => EntityKey::service(s.name, false),
            (Scope::MqEndpointAccess, Source::MqEndpointAccess(s)) => {
                EntityKey::under_service(IdKind::Endpoint, s.service_name, false, &s.endpoint)
            }
            _ => return None,
        })
    }

    /// The columns every metric of the scope stores besides its function's
    /// (docs/reference/oal.md §4.2).
    pub fn default_columns(self) -> &'static [(&'static str, ColumnType, Indexing)] {
        const ATTRS: [(&str, ColumnType, Indexing); 6] = [
            ("attr0", ColumnType::Text, Indexing::Filter),
            ("attr1", ColumnType::Text, Indexing::Filter),
            ("attr2", ColumnType::Text, Indexing::Filter),
            ("attr3", ColumnType::Text, Indexing::Filter),
            ("attr4", ColumnType::Text, Indexing::Filter),
            ("attr5", ColumnType::Text, Indexing::Filter),
        ];
        const SERVICE_ID: (&str, ColumnType, Indexing) = ("service_id", ColumnType::Text, Indexing::Filter);
        const ENDPOINT: [(&str, ColumnType, Indexing); 7] =
            [SERVICE_ID, ATTRS[0], ATTRS[1], ATTRS[2], ATTRS[3], ATTRS[4], ATTRS[5]];
        match self {
            Scope::Service => &ATTRS,
            Scope::Endpoint => &ENDPOINT,
            Scope::ServiceInstance | Scope::MqEndpointAccess => &[SERVICE_ID],
            _ => &[],
        }
    }

    /// The values of [`Scope::default_columns`] for a source; `attr0` holds the layer's name
    /// when the statement has the scope's decorator, and the other `attr` columns stay null.
    pub fn default_values(self, source: &Source<'_>, decorated: bool) -> Vec<Value> {
        let attr0 = |layer: Layer| if decorated { Value::Text(layer.name().to_owned()) } else { Value::Null };
        let attrs = |layer: Layer| [attr0(layer), Value::Null, Value::Null, Value::Null, Value::Null, Value::Null];
        match source {
            Source::Service(s) => attrs(s.layer).into(),
            Source::Endpoint(s) => {
                let mut values = vec![Value::Text(ids::service_id(s.service_name, s.service_layer.is_normal()))];
                values.extend(attrs(s.service_layer));
                values
            }
            Source::ServiceInstance(s) => {
                vec![Value::Text(ids::service_id(s.service_name, s.service_layer.is_normal()))]
            }
            Source::MqEndpointAccess(s) => vec![Value::Text(ids::service_id(s.service_name, false))],
            _ => Vec::new(),
        }
    }
}

/// The source and destination service ids of a service relation.
pub fn relation_service_ids(relation: &ServiceRelation<'_>) -> (String, String) {
    (
        ids::service_id(relation.source_service_name, relation.source_layer.is_normal()),
        ids::service_id(relation.dest_service_name, relation.dest_layer.is_normal()),
    )
}

/// The source and destination instance ids of an instance relation.
pub fn relation_instance_ids(relation: &ServiceRelation<'_>) -> (String, String) {
    let (source, dest) = relation_service_ids(relation);
    (
        ids::instance_id(&source, relation.source_service_instance_name),
        ids::instance_id(&dest, relation.dest_service_instance_name),
    )
}

fn request_field(name: &str) -> Option<(Field, FieldType)> {
    use Field as F;
    use FieldType as T;
    Some(match name {
        "latency" => (F::Latency, T::Long),
        "status" => (F::Status, T::Bool),
        "httpResponseStatusCode" => (F::HttpResponseStatusCode, T::Long),
        "rpcStatusCode" => (F::RpcStatusCode, T::Str),
        "type" => (F::Type, T::Enum(EnumType::RequestType)),
        "tags" => (F::Tags, T::Tags),
        "tag" => (F::Tag, T::TagMap),
        _ => return None,
    })
}

/// The enum types OAL names as `Type.VALUE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnumType {
    /// `RequestType`.
    RequestType,
    /// `DetectPoint`.
    DetectPoint,
    /// `VirtualCacheOperation`.
    CacheOperation,
    /// `MQOperation`.
    MqOperation,
    /// `Layer`.
    Layer,
}

impl EnumType {
    /// The type an OAL name means.
    pub fn of_name(name: &str) -> Option<EnumType> {
        Some(match name {
            "RequestType" => EnumType::RequestType,
            "DetectPoint" => EnumType::DetectPoint,
            "VirtualCacheOperation" => EnumType::CacheOperation,
            "MQOperation" => EnumType::MqOperation,
            "Layer" => EnumType::Layer,
            _ => return None,
        })
    }

    /// The name OAL writes the type with.
    pub fn name(self) -> &'static str {
        match self {
            EnumType::RequestType => "RequestType",
            EnumType::DetectPoint => "DetectPoint",
            EnumType::CacheOperation => "VirtualCacheOperation",
            EnumType::MqOperation => "MQOperation",
            EnumType::Layer => "Layer",
        }
    }

    /// The constant `value` of this type.
    pub fn constant(self, value: &str) -> Option<EnumConst> {
        let ordinal = match self {
            EnumType::RequestType => match value {
                "DATABASE" => 0,
                "HTTP" => 1,
                "RPC" => 2,
                "gRPC" => 3,
                "LOGIC" => 4,
                "TCP" => 5,
                "MQ" => 6,
                "GenAI" => 7,
                _ => return None,
            },
            EnumType::DetectPoint => match value {
                "SERVER" => 0,
                "CLIENT" => 1,
                "PROXY" => 2,
                _ => return None,
            },
            EnumType::CacheOperation => match value {
                "Write" => 0,
                "Read" => 1,
                "Others" => 2,
                _ => return None,
            },
            EnumType::MqOperation => match value {
                "Consume" => 0,
                "Produce" => 1,
                _ => return None,
            },
            EnumType::Layer => Layer::ALL.iter().find(|layer| layer.name() == value)?.number(),
        };
        Some(EnumConst { ty: self, ordinal })
    }
}

/// A constant of an enum type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnumConst {
    /// Its type.
    pub ty: EnumType,
    /// Its position (the number, for layers).
    pub ordinal: i32,
}

impl EnumConst {
    fn request_type(value: RequestType) -> Self {
        let ordinal = match value {
            RequestType::Database => 0,
            RequestType::Http => 1,
            RequestType::Rpc => 2,
            RequestType::Grpc => 3,
            RequestType::Logic => 4,
            RequestType::Tcp => 5,
            RequestType::Mq => 6,
            RequestType::GenAi => 7,
        };
        Self { ty: EnumType::RequestType, ordinal }
    }

    fn detect_point(value: DetectPoint) -> Self {
        let ordinal = match value {
            DetectPoint::Server => 0,
            DetectPoint::Client => 1,
            DetectPoint::Proxy => 2,
        };
        Self { ty: EnumType::DetectPoint, ordinal }
    }

    fn cache_operation(value: CacheOperation) -> Self {
        let ordinal = match value {
            CacheOperation::Write => 0,
            CacheOperation::Read => 1,
            CacheOperation::Others => 2,
        };
        Self { ty: EnumType::CacheOperation, ordinal }
    }

    fn mq_operation(value: MqOperation) -> Self {
        let ordinal = match value {
            MqOperation::Consume => 0,
            MqOperation::Produce => 1,
        };
        Self { ty: EnumType::MqOperation, ordinal }
    }

    fn layer(value: Layer) -> Self {
        Self { ty: EnumType::Layer, ordinal: value.number() }
    }
}

/// The type of a field, checked against literals and functions when a script compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// An integer (int or long in Java).
    Long,
    /// A boolean.
    Bool,
    /// Text.
    Str,
    /// An enum.
    Enum(EnumType),
    /// The list of `key:value` tags.
    Tags,
    /// The tag map, read as `tag["key"]`.
    TagMap,
}

/// A field of a source, resolved when the script compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Field {
    Name,
    Layer,
    ServiceName,
    ServiceLayer,
    ServiceInstanceName,
    EndpointName,
    SourceServiceName,
    SourceServiceInstanceName,
    SourceLayer,
    DestServiceName,
    DestServiceInstanceName,
    DestLayer,
    Endpoint,
    ChildEndpoint,
    ChildServiceName,
    ChildServiceInstanceName,
    ChildServiceLayer,
    ComponentId,
    DetectPoint,
    /// `latency`, or `rpcLatency` of an endpoint relation.
    Latency,
    Status,
    HttpResponseStatusCode,
    RpcStatusCode,
    Type,
    Tags,
    /// `tag["key"]`; the key is kept beside the field.
    Tag,
    Operation,
    TransmissionLatency,
}

/// A field's value in one source.
#[derive(Debug, Clone, Copy)]
pub enum FieldValue<'a> {
    /// An integer.
    Long(i64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Str(&'a str),
    /// An enum constant.
    Enum(EnumConst),
    /// The tag list.
    Tags(SpanTags<'a>),
    /// Absent (a missing tag, no request type).
    Null,
}

impl Field {
    /// Reads the field from a source of the scope it was resolved in; `key` is the tag key of
    /// [`Field::Tag`]. A source of another scope reads as null.
    pub fn read<'s>(self, source: &'s Source<'s>, key: &str) -> FieldValue<'s> {
        use FieldValue as V;
        let layer = |layer| V::Enum(EnumConst::layer(layer));
        match source {
            Source::Service(s) => match self {
                Field::Name => V::Str(s.name),
                Field::Layer => layer(s.layer),
                Field::ServiceInstanceName => V::Str(s.service_instance_name),
                Field::EndpointName => V::Str(s.endpoint_name),
                _ => self.read_request(&s.request, key),
            },
            Source::ServiceInstance(s) => match self {
                Field::Name => V::Str(s.name),
                Field::ServiceName => V::Str(s.service_name),
                Field::ServiceLayer => layer(s.service_layer),
                Field::EndpointName => V::Str(s.endpoint_name),
                _ => self.read_request(&s.request, key),
            },
            Source::Endpoint(s) => match self {
                Field::Name => V::Str(&s.name),
                Field::ServiceName => V::Str(s.service_name),
                Field::ServiceLayer => layer(s.service_layer),
                Field::ServiceInstanceName => V::Str(s.service_instance_name),
                _ => self.read_request(&s.request, key),
            },
            Source::ServiceRelation(r) | Source::ServiceInstanceRelation(r) => match self {
                Field::SourceServiceName => V::Str(r.source_service_name),
                Field::SourceServiceInstanceName => V::Str(r.source_service_instance_name),
                Field::SourceLayer => layer(r.source_layer),
                Field::DestServiceName => V::Str(r.dest_service_name),
                Field::DestServiceInstanceName => V::Str(r.dest_service_instance_name),
                Field::DestLayer => layer(r.dest_layer),
                Field::Endpoint => V::Str(r.endpoint),
                Field::ComponentId => V::Long(i64::from(r.component_id)),
                Field::DetectPoint => V::Enum(EnumConst::detect_point(r.detect_point)),
                _ => self.read_request(&r.request, key),
            },
            Source::EndpointRelation(r) => match self {
                Field::Endpoint => V::Str(r.endpoint),
                Field::ServiceName => V::Str(r.service_name),
                Field::ServiceInstanceName => V::Str(r.service_instance_name),
                Field::ServiceLayer => layer(r.service_layer),
                Field::ChildEndpoint => V::Str(r.child_endpoint),
                Field::ChildServiceName => V::Str(r.child_service_name),
                Field::ChildServiceInstanceName => V::Str(r.child_service_instance_name),
                Field::ChildServiceLayer => layer(r.child_service_layer),
                Field::ComponentId => V::Long(i64::from(r.component_id)),
                Field::DetectPoint => V::Enum(EnumConst::detect_point(r.detect_point)),
                _ => self.read_request(&r.request, key),
            },
            Source::DatabaseAccess(s) => match self {
                Field::Name => V::Str(s.name),
                Field::ComponentId => V::Long(i64::from(s.database_type_id)),
                Field::Latency => V::Long(i64::from(s.latency)),
                Field::Status => V::Bool(s.status),
                _ => V::Null,
            },
            Source::CacheAccess(s) => match self {
                Field::Name => V::Str(&s.name),
                Field::ComponentId => V::Long(i64::from(s.cache_type_id)),
                Field::Latency => V::Long(i64::from(s.latency)),
                Field::Status => V::Bool(s.status),
                Field::Operation => V::Enum(EnumConst::cache_operation(s.operation)),
                _ => V::Null,
            },
            Source::MqAccess(s) => match self {
                Field::Name => V::Str(s.name),
                Field::ComponentId => V::Long(i64::from(s.type_id)),
                Field::TransmissionLatency => V::Long(s.transmission_latency),
                Field::Status => V::Bool(s.status),
                Field::Operation => V::Enum(EnumConst::mq_operation(s.operation)),
                _ => V::Null,
            },
            Source::MqEndpointAccess(s) => match self {
                Field::ServiceName => V::Str(s.service_name),
                Field::Endpoint => V::Str(&s.endpoint),
                Field::ComponentId => V::Long(i64::from(s.type_id)),
                Field::TransmissionLatency => V::Long(s.transmission_latency),
                Field::Status => V::Bool(s.status),
                Field::Operation => V::Enum(EnumConst::mq_operation(s.operation)),
                _ => V::Null,
            },
            _ => V::Null,
        }
    }

    fn read_request<'s>(self, request: &RequestFacts<'s>, key: &str) -> FieldValue<'s> {
        use FieldValue as V;
        match self {
            Field::Latency => V::Long(i64::from(request.latency)),
            Field::Status => V::Bool(request.status),
            Field::HttpResponseStatusCode => V::Long(i64::from(request.http_response_status_code)),
            Field::RpcStatusCode if request.rpc_status_code.is_empty() => V::Null,
            Field::RpcStatusCode => V::Str(request.rpc_status_code),
            Field::Type => request.request_type.map_or(V::Null, |ty| V::Enum(EnumConst::request_type(ty))),
            Field::Tags => V::Tags(request.tags),
            Field::Tag => request.tags.get(key).map_or(V::Null, V::Str),
            _ => V::Null,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_name_scopes_or_say_why_not() {
        assert_eq!(Scope::of_keyword("MQEndpointAccess"), Ok(Scope::MqEndpointAccess));
        assert!(Scope::of_keyword("ServiceInstanceJVMCPU").expect_err("not produced").contains("no sources"));
        assert!(Scope::of_keyword("All").expect_err("removed").contains("9.0.0"));
        assert_eq!(Scope::of_keyword("Services"), Err("unknown scope `Services`".to_owned()));
    }

    #[test]
    fn endpoint_relations_have_rpc_latency_not_latency() {
        assert_eq!(Scope::EndpointRelation.field("rpcLatency"), Some((Field::Latency, FieldType::Long)));
        assert_eq!(Scope::EndpointRelation.field("latency"), None);
        assert_eq!(Scope::Service.field("latency"), Some((Field::Latency, FieldType::Long)));
    }

    #[test]
    fn enum_constants_resolve_by_their_oal_names() {
        assert_eq!(EnumType::of_name("DetectPoint").and_then(|ty| ty.constant("CLIENT")).map(|c| c.ordinal), Some(1));
        assert_eq!(EnumType::Layer.constant("GENERAL").map(|c| c.ordinal), Some(2));
        assert_eq!(EnumType::RequestType.constant("Http"), None, "case matters");
    }
}
