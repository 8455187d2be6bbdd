//! The `pipeline` module: the one owner of everything between the source dispatcher and the
//! store. Its only provider, `default`, requires `core` (settings, dispatcher, catalog),
//! `telemetry`, `cluster` (where the aggregators are) and `storage` (the store, nothing more),
//! so it starts after all four and — since the receivers' doors close first — drains before
//! any of them stops. SkyWalking's `application.yml` has no block for it: the server runs it,
//! with its defaults, even when the file does not list it.

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

/// `l2MaxRows` when it is not set.
pub const DEFAULT_L2_MAX_ROWS: usize = 500_000;

/// The settings of `pipeline.default` (ours).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct PipelineConfig {
    /// `logDir` (`SW_PIPELINE_LOG_DIR`): the ingest log's directory; relative paths are from the
    /// working directory.
    #[serde(rename = "logDir", deserialize_with = "oap_kernel::config::de::scalar_string")]
    pub log_dir: String,
    /// `logSegmentSize` (`SW_PIPELINE_LOG_SEGMENT_SIZE`): a log file is closed past this many
    /// bytes.
    #[serde(rename = "logSegmentSize")]
    pub log_segment_size: u64,
    /// `logMaxSize` (`SW_PIPELINE_LOG_MAX_SIZE`): the most the log may hold, bytes.
    #[serde(rename = "logMaxSize")]
    pub log_max_size: u64,
    /// `l2MaxRows` (`SW_PIPELINE_L2_MAX_ROWS`): the most metric rows L2 holds, stored totals
    /// it keeps to spare a read and increments not written yet (see [`crate::l2::L2Config`]).
    #[serde(rename = "l2MaxRows")]
    pub l2_max_rows: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            log_dir: "ingest-log".to_owned(),
            log_segment_size: 64 << 20,
            log_max_size: 4 << 30,
            l2_max_rows: DEFAULT_L2_MAX_ROWS,
        }
    }
}

/// Builds the `default` provider of `pipeline`.
pub struct PipelineProviderFactory;

impl TypedProviderFactory for PipelineProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = DEFAULT_PROVIDER;
    const REQUIRES: &'static [&'static str] =
        &[oap_core::MODULE_NAME, oap_telemetry::MODULE_NAME, oap_cluster::MODULE_NAME, oap_storage::MODULE_NAME];
    type Config = PipelineConfig;

    fn build(&self, config: PipelineConfig) -> Result<Box<dyn ModuleProvider>, Vec<oap_kernel::ConfigError>> {
        let mut errors = Vec::new();
        if config.log_dir.trim().is_empty() {
            errors.push(oap_kernel::ConfigError::new("logDir", "must name a directory"));
        }
        if config.log_segment_size < 1 << 20 {
            errors.push(oap_kernel::ConfigError::new("logSegmentSize", "must be at least 1048576 (1 MiB)"));
        }
        if config.log_max_size < config.log_segment_size.saturating_mul(2) {
            errors.push(oap_kernel::ConfigError::new("logMaxSize", "must be at least twice logSegmentSize"));
        }
        if config.l2_max_rows == 0 {
            errors.push(oap_kernel::ConfigError::new("l2MaxRows", "must be at least 1"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Box::new(PipelineProvider { config, work: None }))
    }
}

struct PipelineProvider {
    config: PipelineConfig,
    work: Option<StreamWork>,
}

#[async_trait]
impl ModuleProvider for PipelineProvider {
    async fn prepare(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        Ok(())
    }

    async fn start(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        self.work = Some(StreamWork::start(ctx, &self.config).await?);
        Ok(())
    }

    /// Replays what an earlier run left in the ingest log (the receivers have registered their
    /// replayers by now), then opens the doors; the boot completes once that is done.
    async fn after_all_started(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        if let Some(work) = &mut self.work {
            work.open().await;
        }
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
