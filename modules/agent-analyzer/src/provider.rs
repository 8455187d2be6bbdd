//! Provider `agent-analyzer.default`: builds the [`SegmentAnalyzer`] every receiver shares.

use std::sync::Arc;

use async_trait::async_trait;
use oap_core::{CoreConfig, CoreConfigRef, TimeBuckets};
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use tracing::info;

use crate::settings::{AnalyzerConfig, SamplingPolicy};
use crate::{AnalysisRules, MODULE_NAME, NetworkAddressAliasCache, SegmentAnalyzer};

/// Builds the `default` provider of `agent-analyzer`.
pub struct AnalyzerProviderFactory;

impl TypedProviderFactory for AnalyzerProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = "default";
    const REQUIRES: &'static [&'static str] =
        &[oap_core::MODULE_NAME, oap_storage::MODULE_NAME, oap_telemetry::MODULE_NAME];
    type Config = AnalyzerConfig;

    fn build(&self, config: AnalyzerConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        // The core settings only size names and pick tags; the analyzer's own keys are checked here.
        let mut errors =
            AnalysisRules::new(&config, &CoreConfig::default(), SamplingPolicy::default()).err().unwrap_or_default();
        let sampling = match load_sampling_policy(&config.trace_sampling_policy_settings_file) {
            Ok(policy) => policy,
            Err(message) => {
                errors.push(ConfigError::new("traceSamplingPolicySettingsFile", message));
                SamplingPolicy::default()
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Box::new(AnalyzerProvider { config, sampling, aliases: None, reload: None }))
    }
}

/// The sampling policy from its file; a missing file keeps every segment, as SkyWalking's
/// shipped default does.
fn load_sampling_policy(path: &str) -> Result<SamplingPolicy, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => SamplingPolicy::parse(&text).map_err(|error| format!("{path}: {error}")),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            info!(file = path, "no trace sampling policy file; every segment is kept");
            Ok(SamplingPolicy::default())
        }
        Err(error) => Err(format!("cannot read {path}: {error}")),
    }
}

struct AnalyzerProvider {
    config: AnalyzerConfig,
    sampling: SamplingPolicy,
    aliases: Option<Arc<NetworkAddressAliasCache>>,
    reload: Option<tokio::task::JoinHandle<()>>,
}

#[async_trait]
impl ModuleProvider for AnalyzerProvider {
    async fn prepare(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let core = ctx.service::<CoreConfigRef>()?;
        let buckets = ctx.service::<TimeBuckets>()?;
        let mut rules = AnalysisRules::new(&self.config, &core, self.sampling.clone()).map_err(|errors| {
            ModuleError::Config(errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
        })?;
        // The server's one naming, whose budgets every receiver shares.
        rules.naming = ctx.service::<oap_model::NamingControl>()?;
        let aliases = Arc::new(NetworkAddressAliasCache::new());
        self.aliases = Some(aliases.clone());
        ctx.register(SegmentAnalyzer::new(rules, buckets, aliases))
    }

    async fn start(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let storage = ctx.service::<oap_storage::StorageRef>()?;
        let core = ctx.service::<CoreConfigRef>()?;
        let buckets = ctx.service::<TimeBuckets>()?;
        let telemetry = ctx.service::<oap_telemetry::MetricsCreatorRef>()?;
        let reloads = telemetry.counter(
            "network_address_alias_reload_count",
            "Reloads of the network address aliases from storage that completed",
            &[],
        )?;
        if let Some(aliases) = &self.aliases {
            let reload = crate::alias_reload::start(storage, aliases.clone(), buckets, core.metrics_data_ttl, reloads);
            self.reload = Some(reload);
        }
        Ok(())
    }

    async fn shutdown(&mut self) -> Result<(), ModuleError> {
        if let Some(reload) = self.reload.take() {
            reload.abort();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_default_to_port_80() {
        let analyzer = AnalyzerConfig {
            uninstrumented_gateways: vec!["10.0.0.1".to_owned(), "10.0.0.2:0".to_owned(), "gw:8443".to_owned()],
            ..AnalyzerConfig::default()
        };
        let rules = AnalysisRules::new(&analyzer, &oap_core::CoreConfig::default(), SamplingPolicy::default())
            .expect("valid settings");
        let mut gateways: Vec<&str> = rules.uninstrumented_gateways.iter().map(String::as_str).collect();
        gateways.sort_unstable();
        assert_eq!(gateways, ["10.0.0.1:80", "10.0.0.2:80", "gw:8443"]);
    }

    #[test]
    fn bad_settings_and_policy_files_are_config_errors() {
        let config = AnalyzerConfig {
            slow_db_access_threshold: "mysql=1".to_owned(),
            no_upstream_real_address_agents: vec!["nginx".to_owned()],
            trace_sampling_policy_settings_file: "/nonexistent/policy.yml".to_owned(),
            ..AnalyzerConfig::default()
        };
        let errors = TypedProviderFactory::build(&AnalyzerProviderFactory, config).err().expect("invalid");
        let keys: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            keys,
            ["slowDBAccessThreshold", "noUpstreamRealAddressAgents"],
            "a missing policy file is not an error"
        );
    }
}
