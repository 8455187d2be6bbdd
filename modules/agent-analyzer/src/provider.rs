//! Provider `agent-analyzer.default`: builds the [`SegmentAnalyzer`] every receiver shares.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use oap_core::{CoreConfigRef, TimeBuckets};
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use oap_model::NamingControl;
use tracing::info;

use crate::settings::{self, AnalyzerConfig, SamplingPolicy, StatusStrategy, Thresholds};
use crate::{AnalysisRules, MODULE_NAME, NetworkAddressAliasCache, SegmentAnalyzer};

/// Builds the `default` provider of `agent-analyzer`.
pub struct AnalyzerProviderFactory;

impl TypedProviderFactory for AnalyzerProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = "default";
    const REQUIRES: &'static [&'static str] = &[oap_core::MODULE_NAME];
    type Config = AnalyzerConfig;

    fn build(&self, config: AnalyzerConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        let mut errors = settings::validate(&config);
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
        Ok(Box::new(AnalyzerProvider { config, sampling }))
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
}

#[async_trait]
impl ModuleProvider for AnalyzerProvider {
    async fn prepare(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let core = ctx.service::<CoreConfigRef>()?;
        let buckets = ctx.service::<TimeBuckets>()?;
        let thresholds = |text: &str| Thresholds::parse(text).map_err(ModuleError::Config);
        let rules = AnalysisRules {
            naming: NamingControl {
                service_name_max_length: core.service_name_max_length,
                instance_name_max_length: core.instance_name_max_length,
                endpoint_name_max_length: core.endpoint_name_max_length,
            },
            slow_db_threshold: thresholds(&self.config.slow_db_access_threshold)?,
            slow_cache_read_threshold: thresholds(&self.config.slow_cache_read_threshold)?,
            slow_cache_write_threshold: thresholds(&self.config.slow_cache_write_threshold)?,
            max_slow_sql_length: self.config.max_slow_sql_length,
            status_strategy: StatusStrategy::from_name(&self.config.segment_status_analysis_strategy),
            sampling: self.sampling.clone(),
            force_sample_error_segment: self.config.force_sample_error_segment,
            no_upstream_real_address_agents: self
                .config
                .no_upstream_real_address_agents
                .iter()
                .filter_map(|id| id.parse().ok())
                .collect(),
            uninstrumented_gateways: self.config.uninstrumented_gateways.iter().map(|g| gateway_address(g)).collect(),
            searchable_tag_keys: core.searchable_traces_tags.iter().cloned().collect::<HashSet<_>>(),
        };
        ctx.register(SegmentAnalyzer::new(rules, buckets, Arc::new(NetworkAddressAliasCache::new())))
    }
}

/// `host:port`, with port 80 when it is absent or not positive (analysis.md §3.5).
fn gateway_address(gateway: &str) -> String {
    match gateway.rsplit_once(':') {
        Some((host, port)) if port.parse::<i32>().is_ok_and(|p| p > 0) => format!("{host}:{port}"),
        Some((host, _)) => format!("{host}:80"),
        None => format!("{gateway}:80"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_default_to_port_80() {
        assert_eq!(gateway_address("10.0.0.1"), "10.0.0.1:80");
        assert_eq!(gateway_address("10.0.0.1:0"), "10.0.0.1:80");
        assert_eq!(gateway_address("gw:8443"), "gw:8443");
    }

    #[test]
    fn bad_settings_and_policy_files_are_config_errors() {
        let config = AnalyzerConfig {
            slow_db_access_threshold: "mysql=1".to_owned(),
            trace_sampling_policy_settings_file: "/nonexistent/policy.yml".to_owned(),
            ..AnalyzerConfig::default()
        };
        let errors = TypedProviderFactory::build(&AnalyzerProviderFactory, config).err().expect("invalid");
        let keys: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(keys, ["slowDBAccessThreshold"], "a missing policy file is not an error");
    }
}
