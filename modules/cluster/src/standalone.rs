//! Provider `cluster.standalone` (the default): this node is the whole cluster.

use std::sync::Arc;

use async_trait::async_trait;
use oap_core::{CoreConfigRef, GrpcServerRef};
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use serde::Deserialize;
use tokio::sync::watch;

use crate::{MODULE_NAME, Membership, MembershipRef, RemoteNode};

/// `cluster.standalone` has no settings.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StandaloneConfig {}

/// Builds the `standalone` provider of `cluster`.
pub struct StandaloneProviderFactory;

impl TypedProviderFactory for StandaloneProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = "standalone";
    const REQUIRES: &'static [&'static str] = &[oap_core::MODULE_NAME];
    type Config = StandaloneConfig;

    fn build(&self, _config: StandaloneConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        Ok(Box::new(StandaloneProvider { nodes: None }))
    }
}

struct StandaloneProvider {
    /// The one-node list, kept to show the port the gRPC server really bound (port 0 in the
    /// settings means any) once it has.
    nodes: Option<watch::Sender<Arc<Vec<RemoteNode>>>>,
}

/// The host a node shows for itself when its gRPC server listens on every address.
pub fn shown_host(grpc_host: &str) -> &str {
    match grpc_host {
        "" | "0.0.0.0" | "::" => "127.0.0.1",
        host => host,
    }
}

#[async_trait]
impl ModuleProvider for StandaloneProvider {
    async fn prepare(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let core = ctx.service::<CoreConfigRef>()?;
        let node = RemoteNode { host: shown_host(&core.grpc_host).to_owned(), port: core.grpc_port, is_self: true };
        let (nodes, list) = watch::channel(Arc::new(vec![node]));
        self.nodes = Some(nodes);
        let membership: MembershipRef = Arc::new(Membership::new("standalone", list));
        ctx.register(membership)
    }

    async fn start(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let bound = ctx.service::<GrpcServerRef>()?.local_addr();
        if let (Some(nodes), Some(bound)) = (&self.nodes, bound) {
            nodes.send_modify(|list| Arc::make_mut(list).iter_mut().for_each(|node| node.port = bound.port()));
        }
        Ok(())
    }
}
