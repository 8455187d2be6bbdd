//! Settings of `core.default`, named and defaulted as in SkyWalking's `application.yml`.

use std::fmt;
use std::time::Duration;

use oap_kernel::ConfigError;
use oap_kernel::config::de;
use serde::Deserialize;
use serde::de::{Deserializer, Error as _};

/// What this node does in a cluster (`SW_CORE_ROLE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Receives agent data and runs both aggregation levels (the default).
    #[default]
    Mixed,
    /// Receives agent data, runs L1 and forwards metrics to aggregators.
    Receiver,
    /// Runs L2 for the metrics receivers route to it.
    Aggregator,
}

impl Role {
    /// Whether this node owns L2 state and registers as an aggregation target.
    pub fn is_aggregation_target(self) -> bool {
        matches!(self, Role::Mixed | Role::Aggregator)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Mixed => "Mixed",
            Role::Receiver => "Receiver",
            Role::Aggregator => "Aggregator",
        })
    }
}

impl<'de> Deserialize<'de> for Role {
    /// Case-insensitive. Unlike SkyWalking, which falls back to `Mixed`, an unknown role is an
    /// error: a mistyped `Reciever` silently running as Mixed would double-aggregate a cluster.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = de::scalar_string(deserializer)?;
        match text.to_ascii_lowercase().as_str() {
            "mixed" => Ok(Role::Mixed),
            "receiver" => Ok(Role::Receiver),
            "aggregator" => Ok(Role::Aggregator),
            _ => Err(D::Error::custom(format!("unknown role `{text}` (available: Mixed, Receiver, Aggregator)"))),
        }
    }
}

/// A coarser granularity metrics are downsampled to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Downsampling {
    /// Hourly values.
    Hour,
    /// Daily values.
    Day,
}

/// `core.default`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CoreConfig {
    /// `role` (`SW_CORE_ROLE`): Mixed, Receiver or Aggregator.
    pub role: Role,
    /// `restHost` (`SW_CORE_REST_HOST`).
    #[serde(rename = "restHost", deserialize_with = "de::scalar_string")]
    pub rest_host: String,
    /// `restPort` (`SW_CORE_REST_PORT`); 0 picks a free port.
    #[serde(rename = "restPort")]
    pub rest_port: u16,
    /// `restContextPath` (`SW_CORE_REST_CONTEXT_PATH`): prefix of every HTTP route.
    #[serde(rename = "restContextPath", deserialize_with = "de::scalar_string")]
    pub rest_context_path: String,
    /// `gRPCHost` (`SW_CORE_GRPC_HOST`).
    #[serde(rename = "gRPCHost", deserialize_with = "de::scalar_string")]
    pub grpc_host: String,
    /// `gRPCPort` (`SW_CORE_GRPC_PORT`); 0 picks a free port.
    #[serde(rename = "gRPCPort")]
    pub grpc_port: u16,
    /// `maxConcurrentCallsPerConnection` (`SW_CORE_GRPC_MAX_CONCURRENT_CALL`); 0 = no limit.
    #[serde(rename = "maxConcurrentCallsPerConnection")]
    pub max_concurrent_calls_per_connection: u32,
    /// `maxMessageSize` (`SW_CORE_GRPC_MAX_MESSAGE_SIZE`): largest inbound gRPC message, bytes.
    #[serde(rename = "maxMessageSize")]
    pub max_message_size: usize,
    /// `gRPCSslEnabled` (`SW_CORE_GRPC_SSL_ENABLED`): TLS on the gRPC port, for agents and
    /// for the other nodes of a cluster.
    #[serde(rename = "gRPCSslEnabled")]
    pub grpc_ssl_enabled: bool,
    /// `gRPCSslKeyPath` (`SW_CORE_GRPC_SSL_KEY_PATH`): the gRPC port's PEM private key.
    #[serde(rename = "gRPCSslKeyPath", deserialize_with = "de::scalar_string")]
    pub grpc_ssl_key_path: String,
    /// `gRPCSslCertChainPath` (`SW_CORE_GRPC_SSL_CERT_CHAIN_PATH`): the gRPC port's PEM
    /// certificate chain, leaf first.
    #[serde(rename = "gRPCSslCertChainPath", deserialize_with = "de::scalar_string")]
    pub grpc_ssl_cert_chain_path: String,
    /// `gRPCSslTrustedCAPath` (`SW_CORE_GRPC_SSL_TRUSTED_CA_PATH`): the PEM CA this node trusts
    /// when it sends metrics to the other nodes of a cluster over TLS (not a client-certificate
    /// check on the server side, as in SkyWalking).
    #[serde(rename = "gRPCSslTrustedCAPath", deserialize_with = "de::scalar_string")]
    pub grpc_ssl_trusted_ca_path: String,
    /// `authentication` (`SW_AUTHENTICATION`): when not empty, the token every agent gRPC call
    /// must carry as metadata `authentication`. SkyWalking keeps it in `receiver-sharing-server`,
    /// a module this server does not have, whose receivers share the core's gRPC port by
    /// default; here it is a core setting of that port, with the same env name.
    #[serde(deserialize_with = "de::scalar_string")]
    pub authentication: String,
    /// `restSSLEnabled` (`SW_CORE_REST_SSL_ENABLED`): TLS (HTTPS) on the REST port.
    #[serde(rename = "restSSLEnabled")]
    pub rest_ssl_enabled: bool,
    /// `restSSLKeyPath` (`SW_CORE_REST_SSL_KEY_PATH`): the REST port's PEM private key.
    #[serde(rename = "restSSLKeyPath", deserialize_with = "de::scalar_string")]
    pub rest_ssl_key_path: String,
    /// `restSSLCertChainPath` (`SW_CORE_REST_SSL_CERT_CHAIN_PATH`): the REST port's PEM
    /// certificate chain, leaf first.
    #[serde(rename = "restSSLCertChainPath", deserialize_with = "de::scalar_string")]
    pub rest_ssl_cert_chain_path: String,
    /// `restMaxRequestBodySize` (`SW_CORE_REST_MAX_REQUEST_BODY_SIZE`): the largest request body
    /// on the REST port, bytes (GraphQL, `/status`); the HTTP receivers take up to
    /// `maxMessageSize`, as over gRPC.
    #[serde(rename = "restMaxRequestBodySize")]
    pub rest_max_request_body_size: usize,
    /// `downsampling`: the coarser levels metrics are rolled up to (minute is always kept).
    pub downsampling: Vec<Downsampling>,
    /// `enableDataKeeperExecutor` (`SW_CORE_ENABLE_DATA_KEEPER_EXECUTOR`): delete expired data.
    #[serde(rename = "enableDataKeeperExecutor")]
    pub enable_data_keeper_executor: bool,
    /// `dataKeeperExecutePeriod` (`SW_CORE_DATA_KEEPER_EXECUTE_PERIOD`), minutes.
    #[serde(rename = "dataKeeperExecutePeriod", deserialize_with = "de::duration_minutes")]
    pub data_keeper_execute_period: Duration,
    /// `recordDataTTL` (`SW_CORE_RECORD_DATA_TTL`), days: segments and other records.
    #[serde(rename = "recordDataTTL", deserialize_with = "de::duration_days")]
    pub record_data_ttl: Duration,
    /// `metricsDataTTL` (`SW_CORE_METRICS_DATA_TTL`), days: metrics and metadata.
    #[serde(rename = "metricsDataTTL", deserialize_with = "de::duration_days")]
    pub metrics_data_ttl: Duration,
    /// `l1FlushPeriod` (`SW_CORE_L1_AGGREGATION_FLUSH_PERIOD`), milliseconds.
    #[serde(rename = "l1FlushPeriod", deserialize_with = "de::duration_millis")]
    pub l1_flush_period: Duration,
    /// `storageSessionTimeout` (`SW_CORE_STORAGE_SESSION_TIMEOUT`), milliseconds.
    #[serde(rename = "storageSessionTimeout", deserialize_with = "de::duration_millis")]
    pub storage_session_timeout: Duration,
    /// `persistentPeriod` (`SW_CORE_PERSISTENT_PERIOD`), seconds.
    #[serde(rename = "persistentPeriod", deserialize_with = "de::duration_secs")]
    pub persistent_period: Duration,
    /// `topNReportPeriod` (`SW_CORE_TOPN_REPORT_PERIOD`), minutes.
    #[serde(rename = "topNReportPeriod", deserialize_with = "de::duration_minutes")]
    pub top_n_report_period: Duration,
    /// `activeExtraModelColumns` (`SW_CORE_ACTIVE_EXTRA_MODEL_COLUMNS`).
    #[serde(rename = "activeExtraModelColumns")]
    pub active_extra_model_columns: bool,
    /// `serviceNameMaxLength` (`SW_SERVICE_NAME_MAX_LENGTH`).
    #[serde(rename = "serviceNameMaxLength")]
    pub service_name_max_length: usize,
    /// `instanceNameMaxLength` (`SW_INSTANCE_NAME_MAX_LENGTH`).
    #[serde(rename = "instanceNameMaxLength")]
    pub instance_name_max_length: usize,
    /// `endpointNameMaxLength` (`SW_ENDPOINT_NAME_MAX_LENGTH`).
    #[serde(rename = "endpointNameMaxLength")]
    pub endpoint_name_max_length: usize,
    /// `shutdownTimeout` (`SW_CORE_SHUTDOWN_TIMEOUT`, ours), seconds: how long a stop may take
    /// (within a Kubernetes grace period); past it the server exits, naming what it left
    /// unfinished.
    #[serde(rename = "shutdownTimeout", deserialize_with = "de::duration_secs")]
    pub shutdown_timeout: Duration,
    /// `ackTimeout` (`SW_CORE_ACK_TIMEOUT`, ours), seconds: how long an agent's call waits for
    /// what it sent to be stored; past it the call is answered UNAVAILABLE or RESOURCE_EXHAUSTED
    /// (what it sent is still stored once the store takes it).
    #[serde(rename = "ackTimeout", deserialize_with = "de::duration_secs")]
    pub ack_timeout: Duration,
    /// `maxHttpUrisNumberPerService` (`SW_CORE_MAX_HTTP_URIS_NUMBER_PER_SVR`): ungrouped
    /// endpoint names a service may have; further ones are recorded as `_abandoned`.
    #[serde(rename = "maxHttpUrisNumberPerService")]
    pub max_http_uris_number_per_service: usize,
    /// `maxInstancesNumberPerService` (`SW_CORE_MAX_INSTANCES_NUMBER_PER_SVR`, ours): instances
    /// a service may have; further ones are recorded as `_abandoned`.
    #[serde(rename = "maxInstancesNumberPerService")]
    pub max_instances_number_per_service: usize,
    /// `endpointNameGroupingFile` (`SW_CORE_ENDPOINT_NAME_GROUPING_FILE`, ours): the endpoint
    /// name grouping rules (`endpoint-name-grouping.yml`); without it nothing is grouped.
    #[serde(rename = "endpointNameGroupingFile")]
    pub endpoint_name_grouping_file: String,
    /// `serviceCacheRefreshInterval` (`SW_SERVICE_CACHE_REFRESH_INTERVAL`), seconds.
    #[serde(rename = "serviceCacheRefreshInterval", deserialize_with = "de::duration_secs")]
    pub service_cache_refresh_interval: Duration,
    /// `searchableTracesTags` (`SW_SEARCHABLE_TAG_KEYS`): span tag keys indexed for search.
    #[serde(rename = "searchableTracesTags", deserialize_with = "de::comma_list")]
    pub searchable_traces_tags: Vec<String>,
    /// `searchableLogsTags` (`SW_SEARCHABLE_LOGS_TAG_KEYS`).
    #[serde(rename = "searchableLogsTags", deserialize_with = "de::comma_list")]
    pub searchable_logs_tags: Vec<String>,
    /// `searchableAlarmTags` (`SW_SEARCHABLE_ALARM_TAG_KEYS`).
    #[serde(rename = "searchableAlarmTags", deserialize_with = "de::comma_list")]
    pub searchable_alarm_tags: Vec<String>,
    /// `autocompleteTagKeysQueryMaxSize` (`SW_AUTOCOMPLETE_TAG_KEYS_QUERY_MAX_SIZE`).
    #[serde(rename = "autocompleteTagKeysQueryMaxSize")]
    pub autocomplete_tag_keys_query_max_size: usize,
    /// `autocompleteTagValuesQueryMaxSize` (`SW_AUTOCOMPLETE_TAG_VALUES_QUERY_MAX_SIZE`).
    #[serde(rename = "autocompleteTagValuesQueryMaxSize")]
    pub autocomplete_tag_values_query_max_size: usize,
    /// `prepareThreads` (`SW_CORE_PREPARE_THREADS`): parallelism of a persistence round.
    #[serde(rename = "prepareThreads")]
    pub prepare_threads: usize,
    /// `oalDir` (`SW_CORE_OAL_DIR`): the directory whose `*.oal` scripts define the metrics,
    /// read at start; without it the built-in `core.oal` is used.
    #[serde(rename = "oalDir")]
    pub oal_dir: String,
    /// `apdexThresholdFile` (`SW_CORE_APDEX_THRESHOLD_FILE`): apdex thresholds per service
    /// (`service-apdex-threshold.yml`); without it every service's is 500 ms.
    #[serde(rename = "apdexThresholdFile")]
    pub apdex_threshold_file: String,
}

impl Default for CoreConfig {
    fn default() -> Self {
        let tags = |text: &str| text.split(',').map(str::to_owned).collect();
        Self {
            role: Role::Mixed,
            rest_host: "0.0.0.0".to_owned(),
            rest_port: 12800,
            rest_context_path: "/".to_owned(),
            grpc_host: "0.0.0.0".to_owned(),
            grpc_port: 11800,
            max_concurrent_calls_per_connection: 0,
            max_message_size: 52_428_800,
            grpc_ssl_enabled: false,
            grpc_ssl_key_path: String::new(),
            grpc_ssl_cert_chain_path: String::new(),
            grpc_ssl_trusted_ca_path: String::new(),
            authentication: String::new(),
            rest_ssl_enabled: false,
            rest_ssl_key_path: String::new(),
            rest_ssl_cert_chain_path: String::new(),
            rest_max_request_body_size: 2 << 20,
            downsampling: vec![Downsampling::Hour, Downsampling::Day],
            enable_data_keeper_executor: true,
            data_keeper_execute_period: Duration::from_secs(5 * 60),
            record_data_ttl: Duration::from_secs(3 * 86_400),
            metrics_data_ttl: Duration::from_secs(7 * 86_400),
            l1_flush_period: Duration::from_millis(500),
            storage_session_timeout: Duration::from_millis(70_000),
            persistent_period: Duration::from_secs(25),
            top_n_report_period: Duration::from_secs(10 * 60),
            active_extra_model_columns: false,
            service_name_max_length: 70,
            instance_name_max_length: 70,
            endpoint_name_max_length: 150,
            shutdown_timeout: Duration::from_secs(30),
            ack_timeout: Duration::from_secs(10),
            max_http_uris_number_per_service: oap_model::naming::DEFAULT_MAX_ENDPOINTS,
            max_instances_number_per_service: oap_model::naming::DEFAULT_MAX_INSTANCES,
            endpoint_name_grouping_file: "endpoint-name-grouping.yml".to_owned(),
            service_cache_refresh_interval: Duration::from_secs(10),
            searchable_traces_tags: tags(
                "http.method,http.status_code,rpc.status_code,db.type,db.instance,mq.queue,mq.topic,mq.broker",
            ),
            searchable_logs_tags: tags("level,http.status_code,ai_route_type"),
            searchable_alarm_tags: tags("level"),
            autocomplete_tag_keys_query_max_size: 100,
            autocomplete_tag_values_query_max_size: 100,
            prepare_threads: 2,
            oal_dir: "oal".to_owned(),
            apdex_threshold_file: "service-apdex-threshold.yml".to_owned(),
        }
    }
}

impl CoreConfig {
    /// The name length limits (`serviceNameMaxLength`, `instanceNameMaxLength`,
    /// `endpointNameMaxLength`) and budgets (`maxHttpUrisNumberPerService`,
    /// `maxInstancesNumberPerService`), without grouping rules and with budgets of its own; the
    /// server's one shared [`oap_model::NamingControl`] is core's service (see `naming`).
    pub fn naming(&self) -> oap_model::NamingControl {
        self.naming_with(oap_model::naming::EndpointGrouping::default())
    }

    /// [`Self::naming`] with these grouping rules.
    pub fn naming_with(&self, grouping: oap_model::naming::EndpointGrouping) -> oap_model::NamingControl {
        oap_model::NamingControl::new(
            self.service_name_max_length,
            self.instance_name_max_length,
            self.endpoint_name_max_length,
        )
        .with(grouping, self.max_http_uris_number_per_service, self.max_instances_number_per_service)
    }

    /// Every problem with the values, each with its key.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut require = |ok: bool, key: &str, message: &str| {
            if !ok {
                errors.push(ConfigError::new(key, message));
            }
        };
        let tls_file = "is needed when TLS is on (the path of a PEM file)";
        require(!self.grpc_ssl_enabled || !self.grpc_ssl_key_path.is_empty(), "gRPCSslKeyPath", tls_file);
        require(!self.grpc_ssl_enabled || !self.grpc_ssl_cert_chain_path.is_empty(), "gRPCSslCertChainPath", tls_file);
        require(!self.rest_ssl_enabled || !self.rest_ssl_key_path.is_empty(), "restSSLKeyPath", tls_file);
        require(!self.rest_ssl_enabled || !self.rest_ssl_cert_chain_path.is_empty(), "restSSLCertChainPath", tls_file);
        require(self.rest_max_request_body_size > 0, "restMaxRequestBodySize", "must be greater than 0");
        require(self.rest_context_path.starts_with('/'), "restContextPath", "must start with `/`");
        require(self.max_message_size > 0, "maxMessageSize", "must be greater than 0");
        require(
            self.max_message_size <= oap_ingest_log::frame::MAX_PAYLOAD,
            "maxMessageSize",
            "must be at most 268435456 (256 MiB, the largest message the ingest log holds)",
        );
        require(!self.l1_flush_period.is_zero(), "l1FlushPeriod", "must be greater than 0");
        require(!self.persistent_period.is_zero(), "persistentPeriod", "must be greater than 0");
        require(!self.data_keeper_execute_period.is_zero(), "dataKeeperExecutePeriod", "must be greater than 0");
        require(self.record_data_ttl >= Duration::from_secs(86_400), "recordDataTTL", "must be at least 1 day");
        require(self.metrics_data_ttl >= Duration::from_secs(86_400), "metricsDataTTL", "must be at least 1 day");
        require(self.service_name_max_length > 0, "serviceNameMaxLength", "must be greater than 0");
        require(self.instance_name_max_length > 0, "instanceNameMaxLength", "must be greater than 0");
        require(self.endpoint_name_max_length > 0, "endpointNameMaxLength", "must be greater than 0");
        require(!self.shutdown_timeout.is_zero(), "shutdownTimeout", "must be greater than 0");
        require(!self.ack_timeout.is_zero(), "ackTimeout", "must be greater than 0");
        require(self.max_http_uris_number_per_service > 0, "maxHttpUrisNumberPerService", "must be greater than 0");
        require(self.max_instances_number_per_service > 0, "maxInstancesNumberPerService", "must be greater than 0");
        require(self.prepare_threads > 0, "prepareThreads", "must be greater than 0");
        errors
    }
}

#[cfg(test)]
mod tests {
    use oap_kernel::provider::deserialize_settings;

    use super::*;

    fn parse(yaml: &str) -> Result<CoreConfig, Vec<ConfigError>> {
        let mapping = serde_yaml_ng::from_str(yaml).expect("test yaml");
        deserialize_settings(&mapping, "core.default")
    }

    #[test]
    fn defaults_match_skywalking() {
        let config = parse("{}").expect("valid");
        assert_eq!(config.role, Role::Mixed);
        assert_eq!((config.grpc_port, config.rest_port), (11800, 12800));
        assert_eq!(config.l1_flush_period, Duration::from_millis(500));
        assert_eq!(config.persistent_period, Duration::from_secs(25));
        assert_eq!(config.record_data_ttl, Duration::from_secs(3 * 86_400));
        assert_eq!(config.metrics_data_ttl, Duration::from_secs(7 * 86_400));
        assert_eq!(config.max_message_size, 50 * 1024 * 1024);
        assert_eq!(config.downsampling, [Downsampling::Hour, Downsampling::Day]);
        assert_eq!(config.searchable_traces_tags.len(), 8);
        assert!(!config.grpc_ssl_enabled && !config.rest_ssl_enabled && config.authentication.is_empty());
        assert_eq!(config.rest_max_request_body_size, 2 * 1024 * 1024);
        assert!(config.validate().is_empty());
    }

    #[test]
    fn roles_are_case_insensitive_and_checked() {
        assert_eq!(parse("{role: receiver}").expect("valid").role, Role::Receiver);
        assert_eq!(parse("{role: AGGREGATOR}").expect("valid").role, Role::Aggregator);
        let errors = parse("{role: Reciever}").expect_err("typo");
        assert_eq!(errors[0].path, "core.default.role");
        assert!(errors[0].message.contains("unknown role `Reciever` (available: Mixed, Receiver, Aggregator)"));
    }

    #[test]
    fn values_are_validated() {
        let config = parse("{gRPCSslEnabled: true, l1FlushPeriod: 0, restContextPath: api}").expect("well typed");
        let keys: Vec<String> = config.validate().into_iter().map(|e| e.path).collect();
        assert_eq!(keys, ["gRPCSslKeyPath", "gRPCSslCertChainPath", "restContextPath", "l1FlushPeriod"]);
    }

    #[test]
    fn tls_needs_both_files_and_takes_skywalking_keys() {
        let config =
            parse("{restSSLEnabled: true, restSSLKeyPath: key.pem, restMaxRequestBodySize: 0}").expect("typed");
        let keys: Vec<String> = config.validate().into_iter().map(|e| e.path).collect();
        assert_eq!(keys, ["restSSLCertChainPath", "restMaxRequestBodySize"]);
        let config = parse(
            "{gRPCSslEnabled: true, gRPCSslKeyPath: k.pem, gRPCSslCertChainPath: c.pem, gRPCSslTrustedCAPath: ca.pem, \
             restSSLEnabled: true, restSSLKeyPath: k.pem, restSSLCertChainPath: c.pem, authentication: t0ken}",
        )
        .expect("typed");
        assert!(config.validate().is_empty(), "{:?}", config.validate());
        assert_eq!((config.authentication.as_str(), config.grpc_ssl_trusted_ca_path.as_str()), ("t0ken", "ca.pem"));
    }
}
