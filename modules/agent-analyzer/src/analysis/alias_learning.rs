//! `NetworkAddressAliasMappingListener` (docs/reference/analysis.md §5.1): the address a caller
//! dialled leads to the service of this entry span.

use oap_model::source::{NetworkAddressAliasSetup, Source, SourceSink};
use oap_proto::v3::{SpanLayer, SpanObject};

use super::rpc::is_cross_process;
use super::{SegmentContext, is_layer};

pub(super) fn entry<'a, S: SourceSink + ?Sized>(
    ctx: &SegmentContext<'a>,
    span: &'a SpanObject,
    time_bucket: i64,
    sink: &mut S,
) {
    if is_layer(span, SpanLayer::Mq) {
        return;
    }
    for reference in span.refs.iter().filter(|reference| is_cross_process(reference)) {
        let address = ctx.rules.naming.service(&reference.network_address_used_at_peer);
        if address.trim().is_empty() || ctx.rules.is_gateway(address) {
            continue;
        }
        ctx.aliases.insert(address, ctx.service, ctx.instance);
        sink.accept(Source::NetworkAddressAliasSetup(NetworkAddressAliasSetup {
            address,
            represent_service_name: ctx.service,
            represent_service_instance_name: ctx.instance,
            time_bucket,
        }));
    }
}
