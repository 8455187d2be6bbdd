//! `RPCAnalysisListener` (docs/reference/analysis.md §3): services, instances, endpoints and their
//! relations from entry and exit spans, and logic endpoints from the `x-le` tag.

use std::borrow::Cow;

use oap_model::Layer;
use oap_model::source::{
    DetectPoint, Endpoint, EndpointRelation, RequestFacts, RequestType, Service, ServiceInstance, ServiceRelation,
    Source, SourceSink,
};
use oap_proto::v3::{RefType, SegmentReference, SpanLayer, SpanObject};
use serde_json::Value;

use super::{SegmentContext, USER, is_layer};

/// The calling side of an entry span (or cross-thread dependency), per ref
/// (docs/reference/analysis.md §3.1).
pub(super) struct Caller<'a> {
    pub service: &'a str,
    pub instance: &'a str,
    pub layer: Layer,
    /// The calling endpoint and the service that owns it; `None` when there is none.
    pub endpoint: Option<(&'a str, &'a str, Layer)>,
}

impl<'a> Caller<'a> {
    /// The caller named by a ref: a virtual MQ or gateway node for MQ spans and gateway
    /// addresses, else the parent service.
    pub(super) fn from_ref(ctx: &SegmentContext<'a>, span: &SpanObject, reference: &'a SegmentReference) -> Self {
        let naming = &ctx.rules.naming;
        let parent_service = naming.service(&reference.parent_service);
        let parent_endpoint = match reference.parent_endpoint.as_str() {
            "" => USER,
            endpoint => naming.endpoint(parent_service, endpoint),
        };
        let address = reference.network_address_used_at_peer.as_str();
        let virtual_layer = if is_layer(span, SpanLayer::Mq) {
            Some(Layer::VIRTUAL_MQ)
        } else if ctx.rules.is_gateway(address) {
            Some(Layer::VIRTUAL_GATEWAY)
        } else {
            None
        };
        match virtual_layer {
            Some(layer) => Caller {
                service: naming.service(address),
                instance: naming.instance(naming.service(address), address),
                layer,
                endpoint: Some((parent_endpoint, parent_service, Layer::GENERAL)),
            },
            None => Caller {
                service: parent_service,
                instance: naming.instance(parent_service, &reference.parent_service_instance),
                layer: Layer::GENERAL,
                endpoint: Some((parent_endpoint, parent_service, Layer::GENERAL)),
            },
        }
    }

    /// The caller of an entry span without refs: the MQ peer for MQ spans, else `User`.
    fn without_ref(ctx: &SegmentContext<'a>, span: &'a SpanObject) -> Self {
        if is_layer(span, SpanLayer::Mq) && !span.peer.trim().is_empty() {
            let naming = &ctx.rules.naming;
            return Caller {
                service: naming.service(&span.peer),
                instance: naming.instance(naming.service(&span.peer), &span.peer),
                layer: Layer::VIRTUAL_MQ,
                endpoint: None,
            };
        }
        Caller {
            service: USER,
            instance: USER,
            layer: Layer::UNDEFINED,
            endpoint: Some((USER, USER, Layer::UNDEFINED)),
        }
    }
}

/// The layer of the reporting side: `FAAS` for FAAS spans, else `GENERAL`.
pub(super) fn own_layer(span: &SpanObject) -> Layer {
    if is_layer(span, SpanLayer::Faas) { Layer::FAAS } else { Layer::GENERAL }
}

/// An entry span: the server side of a call, once per ref.
pub(super) fn entry<'a, S: SourceSink + ?Sized>(
    ctx: &SegmentContext<'a>,
    span: &'a SpanObject,
    facts: &RequestFacts<'a>,
    sink: &mut S,
) {
    let dest_layer = own_layer(span);
    let dest_endpoint = ctx.rules.naming.endpoint(ctx.service, &span.operation_name);
    let mut emit_for = |caller: Caller<'a>| {
        sink.accept(Source::Service(Service {
            name: ctx.service,
            layer: dest_layer,
            service_instance_name: ctx.instance,
            endpoint_name: dest_endpoint,
            request: *facts,
        }));
        sink.accept(Source::ServiceInstance(ServiceInstance {
            name: ctx.instance,
            service_name: ctx.service,
            service_layer: dest_layer,
            endpoint_name: dest_endpoint,
            request: *facts,
        }));
        let relation = ServiceRelation {
            source_service_name: caller.service,
            source_service_instance_name: caller.instance,
            source_layer: caller.layer,
            dest_service_name: ctx.service,
            dest_service_instance_name: ctx.instance,
            dest_layer,
            endpoint: dest_endpoint,
            component_id: span.component_id,
            detect_point: DetectPoint::Server,
            request: *facts,
        };
        let both_instances = !relation.source_service_instance_name.is_empty() && !ctx.instance.is_empty();
        sink.accept(Source::ServiceRelation(relation.clone()));
        if both_instances {
            sink.accept(Source::ServiceInstanceRelation(relation));
        }
        if dest_layer == Layer::FAAS {
            return;
        }
        sink.accept(Source::Endpoint(Endpoint {
            name: Cow::Borrowed(dest_endpoint),
            service_name: ctx.service,
            service_layer: dest_layer,
            service_instance_name: ctx.instance,
            request: *facts,
        }));
        if let Some((source_endpoint, owner_service, owner_layer)) = caller.endpoint
            && !source_endpoint.is_empty()
            && !dest_endpoint.is_empty()
        {
            let caller_endpoint = (source_endpoint, owner_service, owner_layer);
            sink.accept(Source::EndpointRelation(server_endpoint_relation(
                ctx,
                span,
                caller_endpoint,
                caller.instance,
                (dest_endpoint, dest_layer),
                facts,
            )));
        }
    };
    if span.refs.is_empty() {
        emit_for(Caller::without_ref(ctx, span));
    } else {
        for reference in &span.refs {
            emit_for(Caller::from_ref(ctx, span, reference));
        }
    }
    logic_endpoint(ctx, span, false, facts, sink);
}

/// The server-side relation from a calling endpoint (name, owning service, its layer) and
/// instance to this segment's endpoint `dest` (name, layer).
pub(super) fn server_endpoint_relation<'a>(
    ctx: &SegmentContext<'a>,
    span: &SpanObject,
    (endpoint, service_name, service_layer): (&'a str, &'a str, Layer),
    service_instance_name: &'a str,
    (child_endpoint, child_service_layer): (&'a str, Layer),
    facts: &RequestFacts<'a>,
) -> EndpointRelation<'a> {
    EndpointRelation {
        endpoint,
        service_name,
        service_instance_name,
        service_layer,
        child_endpoint,
        child_service_name: ctx.service,
        child_service_instance_name: ctx.instance,
        child_service_layer,
        component_id: span.component_id,
        detect_point: DetectPoint::Server,
        request: *facts,
    }
}

/// An exit span: the client side of a call to its peer.
pub(super) fn exit<'a, S: SourceSink + ?Sized>(
    ctx: &SegmentContext<'a>,
    span: &'a SpanObject,
    facts: &RequestFacts<'a>,
    sink: &mut S,
) {
    if span.peer.is_empty() {
        return;
    }
    let naming = &ctx.rules.naming;
    let peer = naming.service(&span.peer);
    let alias = ctx.aliases.get(peer);
    let (dest_service, dest_instance, dest_layer): (&str, &str, Layer) = match &alias {
        Some(target) if ctx.rules.no_upstream_real_address_agents.contains(&span.component_id) => {
            (&target.service_name, "", Layer::GENERAL)
        }
        Some(target) => (&target.service_name, &target.service_instance_name, Layer::GENERAL),
        None => (peer, naming.instance(peer, &span.peer), conjectural_layer(ctx, span, peer)),
    };
    let relation = ServiceRelation {
        source_service_name: ctx.service,
        source_service_instance_name: ctx.instance,
        source_layer: own_layer(span),
        dest_service_name: dest_service,
        dest_service_instance_name: dest_instance,
        dest_layer,
        endpoint: naming.endpoint(dest_service, &span.operation_name),
        component_id: span.component_id,
        detect_point: DetectPoint::Client,
        request: *facts,
    };
    let both_instances = !ctx.instance.is_empty() && !dest_instance.is_empty();
    sink.accept(Source::ServiceRelation(relation.clone()));
    if both_instances {
        sink.accept(Source::ServiceInstanceRelation(relation));
    }
}

/// The layer of an exit span's peer that no alias names (docs/reference/analysis.md §3.2).
fn conjectural_layer(ctx: &SegmentContext<'_>, span: &SpanObject, peer: &str) -> Layer {
    match SpanLayer::try_from(span.span_layer) {
        Ok(SpanLayer::Unknown) | Err(_) => Layer::UNDEFINED,
        Ok(SpanLayer::Database) => Layer::VIRTUAL_DATABASE,
        Ok(SpanLayer::RpcFramework) => Layer::GENERAL,
        Ok(SpanLayer::Http) if ctx.rules.is_gateway(peer) => Layer::VIRTUAL_GATEWAY,
        Ok(SpanLayer::Http) => Layer::GENERAL,
        Ok(SpanLayer::Mq) => Layer::VIRTUAL_MQ,
        Ok(SpanLayer::Cache) => Layer::VIRTUAL_CACHE,
        Ok(SpanLayer::Faas) => Layer::FAAS,
        Ok(SpanLayer::GenAi) => Layer::VIRTUAL_GENAI,
    }
}

/// A local span: only logic endpoints.
pub(super) fn local<'a, S: SourceSink + ?Sized>(
    ctx: &SegmentContext<'a>,
    span: &'a SpanObject,
    facts: &RequestFacts<'a>,
    sink: &mut S,
) {
    logic_endpoint(ctx, span, true, facts, sink);
}

/// Tag `x-le` (docs/reference/analysis.md §3.4): `{"logic-span": true}` on a local span makes the
/// span itself a logic endpoint; otherwise the JSON names one with `name`, `latency` and `status`.
fn logic_endpoint<'a, S: SourceSink + ?Sized>(
    ctx: &SegmentContext<'a>,
    span: &'a SpanObject,
    is_local: bool,
    facts: &RequestFacts<'a>,
    sink: &mut S,
) {
    let Some(tag) = span.tags.iter().find(|tag| tag.key == "x-le") else { return };
    let Ok(json) = serde_json::from_str::<Value>(&tag.value) else { return };
    let (name, latency, status) = if is_local && json.get("logic-span").and_then(Value::as_bool) == Some(true) {
        (Cow::Borrowed(ctx.rules.naming.endpoint(ctx.service, &span.operation_name)), facts.latency, facts.status)
    } else {
        let name = json.get("name").and_then(Value::as_str);
        let latency = json.get("latency").and_then(Value::as_i64).and_then(|l| i32::try_from(l).ok());
        let status = json.get("status").and_then(Value::as_bool);
        let (Some(name), Some(latency), Some(status)) = (name, latency, status) else { return };
        (Cow::Owned(ctx.rules.naming.endpoint(ctx.service, name).to_owned()), latency, status)
    };
    sink.accept(Source::Endpoint(Endpoint {
        name,
        service_name: ctx.service,
        service_layer: Layer::GENERAL,
        service_instance_name: ctx.instance,
        request: RequestFacts { latency, status, request_type: Some(RequestType::Logic), ..*facts },
    }));
}

/// Whether a ref crosses processes (only those teach aliases).
pub(super) fn is_cross_process(reference: &SegmentReference) -> bool {
    reference.ref_type == RefType::CrossProcess as i32
}
