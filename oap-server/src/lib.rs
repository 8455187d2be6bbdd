//! The oap-rs server as a library: the catalog of every module and provider in this build, and
//! the built-in configuration. `main.rs` turns these into the `oap-server` binary.

use oap_kernel::{ModuleCatalog, ProviderFactory};

/// The shipped `application.yml`, used when no configuration file is given or found.
pub const BUILTIN_CONFIG: &str = include_str!("../../application.yml");

/// Every module and provider this build knows; the one place where they are listed.
pub fn catalog() -> ModuleCatalog {
    let mut modules = vec![
        oap_telemetry::module_definition(),
        oap_core::module_definition(),
        oap_cluster::module_definition(),
        oap_storage::module_definition(),
        oap_stream::module_definition(),
        oap_agent_analyzer::module_definition(),
        oap_receiver::trace::module_definition(),
        oap_receiver::register::module_definition(),
        oap_query::module_definition(),
    ];
    let mut providers: Vec<Box<dyn ProviderFactory>> = vec![
        Box::new(oap_telemetry::PrometheusProviderFactory),
        Box::new(oap_telemetry::NoneProviderFactory),
        Box::new(oap_core::CoreProviderFactory),
        Box::new(oap_cluster::StandaloneProviderFactory),
        Box::new(oap_cluster::EtcdProviderFactory),
        Box::new(oap_storage_embedded::EmbeddedProviderFactory),
        Box::new(oap_storage_elasticsearch::ElasticsearchProviderFactory),
        Box::new(oap_stream::PipelineProviderFactory),
        Box::new(oap_agent_analyzer::AnalyzerProviderFactory),
        Box::new(oap_receiver::TraceReceiverProviderFactory),
        Box::new(oap_receiver::RegisterReceiverProviderFactory),
        Box::new(oap_query::GraphqlProviderFactory),
    ];
    for receiver in oap_receiver::QUIET_RECEIVERS {
        modules.push(receiver.module_definition());
        providers.push(Box::new(receiver.provider_factory()));
    }
    // The pipeline runs wherever there is a store to fill, listed or not.
    ModuleCatalog::new(modules, providers).with_implicit(
        oap_stream::MODULE_NAME,
        oap_stream::provider::DEFAULT_PROVIDER,
        oap_storage::MODULE_NAME,
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use oap_kernel::{ApplicationConfig, BootPlan};

    use super::*;

    fn plan_with(vars: &[(&str, &str)]) -> Result<BootPlan, oap_kernel::ConfigErrors> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        BootPlan::from_yaml(BUILTIN_CONFIG, "application.yml", &|name| vars.get(name).cloned(), &[], &catalog())
    }

    #[test]
    fn shipped_config_loads_with_every_default() {
        let plan = plan_with(&[]).expect("the shipped application.yml is valid");
        assert_eq!(
            plan.order(),
            [
                ("telemetry", "prometheus"),
                ("core", "default"),
                ("cluster", "standalone"),
                ("storage", "embedded"),
                ("pipeline", "default"),
                ("agent-analyzer", "default"),
                ("receiver-trace", "default"),
                ("receiver-register", "default"),
                ("query", "graphql"),
                ("receiver-meter", "default"),
                ("receiver-log", "default"),
                ("receiver-profile", "default"),
                ("configuration-discovery", "default"),
                ("receiver-event", "default"),
                ("receiver-jvm", "default"),
                ("receiver-clr", "default"),
            ]
        );
    }

    #[test]
    fn a_file_that_lists_a_store_gets_the_pipeline_and_hears_what_it_lacks() {
        let yaml = "telemetry:\n  selector: none\n  none: {}\ncore:\n  default: {}\nstorage:\n  selector: elasticsearch\n  elasticsearch: {}\n";
        let errors = BootPlan::from_yaml(yaml, "t.yml", &|_| None, &[], &catalog()).err().expect("no cluster");
        let lines: Vec<String> = errors.errors().iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            ["pipeline: provider `default` requires module `cluster`, which the configuration does not list"],
            "the store itself needs no cluster; the pipeline that fills it does"
        );
    }

    #[test]
    fn shipped_config_takes_skywalking_env_names() {
        let config = ApplicationConfig::load(
            BUILTIN_CONFIG,
            "application.yml",
            &|name| match name {
                "SW_CORE_GRPC_PORT" => Some("21800".to_owned()),
                "SW_CORE_ROLE" => Some("Receiver".to_owned()),
                "SW_TELEMETRY" => Some("none".to_owned()),
                _ => None,
            },
            &[],
        )
        .expect("valid");
        let core = config.module("core").and_then(|m| m.provider()).expect("core enabled");
        assert_eq!(core.settings.get("gRPCPort"), Some(&21800.into()));
        assert_eq!(core.settings.get("role"), Some(&"Receiver".into()));
        assert_eq!(config.module("telemetry").and_then(|m| m.provider()).map(|p| p.name.as_str()), Some("none"));
    }

    #[test]
    fn shipped_config_rejects_bad_env_values_by_key() {
        let errors = plan_with(&[("SW_CORE_GRPC_PORT", "eleven"), ("SW_CORE_ROLE", "Boss")]).err().expect("invalid");
        let paths: Vec<&str> = errors.errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["core.default.role", "core.default.gRPCPort"]);
    }

    #[test]
    fn disabling_telemetry_breaks_every_module_that_counts_with_a_clear_message() {
        let errors = plan_with(&[("SW_TELEMETRY", "-")]).err().expect("core requires telemetry");
        let lines: Vec<String> = errors.errors().iter().map(ToString::to_string).collect();
        assert_eq!(lines[0], "core: provider `default` requires module `telemetry`, which is disabled (selector `-`)");
        // core, the pipeline, the analyzer (its alias reloads), the two receivers and the seven quiet
        // ones.
        assert_eq!(lines.len(), 12, "{lines:#?}");
        assert!(lines.iter().any(|line| line.starts_with("agent-analyzer")), "{lines:#?}");
    }

    #[test]
    fn elasticsearch_is_chosen_and_set_by_skywalking_s_env_names() {
        let plan = plan_with(&[
            ("SW_STORAGE", "elasticsearch"),
            ("SW_STORAGE_ES_CLUSTER_NODES", "es1:9200,es2:9200"),
            ("SW_NAMESPACE", "prod"),
            ("SW_STORAGE_ES_BULK_ACTIONS", "1000"),
        ])
        .expect("valid");
        assert!(plan.order().contains(&("storage", "elasticsearch")), "{:?}", plan.order());
        let errors = plan_with(&[("SW_STORAGE", "elasticsearch"), ("SW_STORAGE_ES_CLUSTER_NODES", "es1")])
            .err()
            .expect("a node without a port");
        let paths: Vec<&str> = errors.errors().iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["storage.elasticsearch.clusterNodes"]);
    }

    #[test]
    fn query_bounds_take_skywalking_style_env_names_and_are_all_checked() {
        plan_with(&[
            ("SW_QUERY_MAX_ROWS_PER_REQUEST", "50000"),
            ("SW_QUERY_MAX_RESPONSE_BYTES", "1048576"),
            ("SW_QUERY_MAX_CONCURRENT_HEAVY_QUERIES", "2"),
        ])
        .expect("valid");
        let errors = plan_with(&[
            ("SW_QUERY_MAX_QUERY_COMPLEXITY", "0"),
            ("SW_QUERY_MAX_ROWS_PER_REQUEST", "0"),
            ("SW_QUERY_MAX_RESPONSE_BYTES", "100"),
            ("SW_QUERY_MAX_CONCURRENT_HEAVY_QUERIES", "0"),
        ])
        .err()
        .expect("invalid");
        let lines: Vec<String> = errors.errors().iter().map(ToString::to_string).collect();
        assert_eq!(lines.len(), 4, "{lines:#?}");
        assert!(lines[0].starts_with("query.graphql.maxQueryComplexity"), "{lines:#?}");
        assert!(lines[1].starts_with("query.graphql.maxRowsPerRequest"), "{lines:#?}");
        assert!(lines[2].contains("maxResponseBytes") && lines[2].contains("at least 1024, not 100"), "{lines:#?}");
        assert!(lines[3].starts_with("query.graphql.maxConcurrentHeavyQueries"), "{lines:#?}");
    }

    #[test]
    fn a_receiver_can_be_turned_off_alone() {
        let plan = plan_with(&[("SW_RECEIVER_JVM", "-"), ("SW_RECEIVER_TRACE", "-")]).expect("valid");
        let modules: Vec<&str> = plan.order().iter().map(|(module, _)| *module).collect();
        assert!(!modules.contains(&"receiver-jvm") && !modules.contains(&"receiver-trace"), "{modules:?}");
        assert!(modules.contains(&"receiver-register"), "{modules:?}");
    }
}
