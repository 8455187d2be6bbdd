//! `EndpointDepFromCrossThreadAnalysisListener` (docs/reference/analysis.md §4): exit and local
//! spans with refs (cross-thread continuations) give endpoint dependencies.

use std::borrow::Cow;

use oap_model::source::{Endpoint, EndpointMeta, RequestFacts, Source, SourceSink};

use super::SegmentContext;
use super::rpc::{Caller, own_layer, server_endpoint_relation};
use oap_proto::v3::SpanObject;

pub(super) fn exit_or_local<'a, S: SourceSink + ?Sized>(
    ctx: &SegmentContext<'a>,
    span: &'a SpanObject,
    facts: &RequestFacts<'a>,
    sink: &mut S,
) {
    if span.refs.is_empty() {
        return;
    }
    let dest_layer = own_layer(span);
    let dest_endpoint = ctx.rules.naming.endpoint(ctx.service, &span.operation_name);
    // SkyWalking leaves the request type unset on these sources.
    let facts = RequestFacts { request_type: None, ..*facts };
    for reference in &span.refs {
        let caller = Caller::from_ref(ctx, span, reference);
        let Some((source_endpoint, owner_service, owner_layer)) = caller.endpoint else { continue };
        sink.accept(Source::EndpointMeta(EndpointMeta {
            service_name: Cow::Borrowed(caller.service),
            service_normal: caller.layer.is_normal(),
            endpoint: Cow::Borrowed(source_endpoint),
            time_bucket: facts.time_bucket,
        }));
        sink.accept(Source::Endpoint(Endpoint {
            name: Cow::Borrowed(dest_endpoint),
            service_name: ctx.service,
            service_layer: dest_layer,
            service_instance_name: ctx.instance,
            request: facts,
        }));
        sink.accept(Source::EndpointRelation(server_endpoint_relation(
            ctx,
            span,
            (source_endpoint, owner_service, owner_layer),
            caller.instance,
            (dest_endpoint, dest_layer),
            &facts,
        )));
    }
}
