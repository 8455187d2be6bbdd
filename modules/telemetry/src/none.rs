//! Provider `none`: metrics are kept in memory but not served.

use std::sync::Arc;

use async_trait::async_trait;
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use serde::Deserialize;

use crate::{MODULE_NAME, MetricsCreatorRef, MetricsRegistry};

/// Builds the `none` provider; it takes no settings.
pub struct NoneProviderFactory;

/// The `none` provider has no settings.
#[derive(Debug, Default, Deserialize)]
pub struct NoneConfig {}

impl TypedProviderFactory for NoneProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = "none";
    type Config = NoneConfig;

    fn build(&self, _config: NoneConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        Ok(Box::new(NoneProvider))
    }
}

struct NoneProvider;

#[async_trait]
impl ModuleProvider for NoneProvider {
    async fn prepare(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let creator: MetricsCreatorRef = Arc::new(MetricsRegistry::new());
        ctx.register(creator)
    }
}
