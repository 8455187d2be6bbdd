//! Provider `cluster.standalone` (the default): this node is the whole cluster.

use std::sync::Arc;

use async_trait::async_trait;
use oap_core::CoreConfigRef;
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use serde::Deserialize;

use crate::{MODULE_NAME, Membership, MembershipRef};

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
        Ok(Box::new(StandaloneProvider))
    }
}

struct StandaloneProvider;

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
        let membership: MembershipRef = Arc::new(Membership::standalone(shown_host(&core.grpc_host), core.grpc_port));
        ctx.register(membership)
    }
}
