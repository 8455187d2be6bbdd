//! The `pipeline` module: the one owner of everything between the source dispatcher and the
//! store. Its only provider, `default`, requires `core` (settings, dispatcher, catalog),
//! `telemetry`, `cluster` (where the aggregators are) and `storage` (the store, nothing more),
//! so it starts after all four and — since the receivers' doors close first — drains before
//! any of them stops. It has no settings of its own yet, and SkyWalking's `application.yml`
//! has no block for it: the server runs it even when the file does not list it.

use async_trait::async_trait;
use oap_kernel::{ModuleContext, ModuleDefinition, ModuleError, ModuleProvider, TypedProviderFactory};
use serde::Deserialize;

use crate::work::StreamWork;

/// The module's name.
pub const MODULE_NAME: &str = "pipeline";
/// The provider the server runs when the configuration does not list the module.
pub const DEFAULT_PROVIDER: &str = "default";

/// The module's definition: it offers no service; the other modules reach it only through the
/// dispatcher they hand sources to and the store it writes.
pub fn module_definition() -> ModuleDefinition {
    ModuleDefinition::new(MODULE_NAME, Vec::new())
}

/// The settings of `pipeline.default`: none yet.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {}

/// Builds the `default` provider of `pipeline`.
pub struct PipelineProviderFactory;

impl TypedProviderFactory for PipelineProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = DEFAULT_PROVIDER;
    const REQUIRES: &'static [&'static str] =
        &[oap_core::MODULE_NAME, oap_telemetry::MODULE_NAME, oap_cluster::MODULE_NAME, oap_storage::MODULE_NAME];
    type Config = PipelineConfig;

    fn build(&self, _config: PipelineConfig) -> Result<Box<dyn ModuleProvider>, Vec<oap_kernel::ConfigError>> {
        Ok(Box::new(PipelineProvider { work: None }))
    }
}

struct PipelineProvider {
    work: Option<StreamWork>,
}

#[async_trait]
impl ModuleProvider for PipelineProvider {
    async fn prepare(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        Ok(())
    }

    async fn start(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        self.work = Some(StreamWork::start(ctx).await?);
        Ok(())
    }

    /// Persists the metrics L1 and L2 hold, reports the top-N lists and waits (a bounded time)
    /// for queued records; the doors are closed by then.
    async fn shutdown(&mut self) -> Result<(), ModuleError> {
        if let Some(work) = self.work.take() {
            work.stop().await;
        }
        Ok(())
    }
}
