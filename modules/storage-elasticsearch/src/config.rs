//! The settings of `storage.elasticsearch`, named and defaulted as SkyWalking's
//! (docs/reference/pipeline-and-storage.md §8, §12.4), each with the env variable `application.yml`
//! gives it.

use elasticsearch::params::Refresh;
use oap_kernel::ConfigError;
use serde::Deserialize;

use crate::layout::Layout;

/// `storage.elasticsearch`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ElasticsearchConfig {
    /// `namespace` (`SW_NAMESPACE`): the index prefix; empty means `sw`.
    pub namespace: String,
    /// `clusterNodes` (`SW_STORAGE_ES_CLUSTER_NODES`): `host:port` list, comma-separated.
    pub cluster_nodes: String,
    /// `protocol` (`SW_STORAGE_ES_HTTP_PROTOCOL`): `http` or `https`.
    pub protocol: String,
    /// `connectTimeout`, ms.
    pub connect_timeout: u64,
    /// `socketTimeout`, ms.
    pub socket_timeout: u64,
    /// `responseTimeout`, ms.
    pub response_timeout: u64,
    /// `user` (`SW_ES_USER`).
    pub user: String,
    /// `password` (`SW_ES_PASSWORD`).
    pub password: String,
    /// `dayStep` (`SW_STORAGE_DAY_STEP`): days per index.
    pub day_step: u32,
    /// `indexShardsNumber` (`SW_STORAGE_ES_INDEX_SHARDS_NUMBER`).
    pub index_shards_number: u32,
    /// `indexReplicasNumber` (`SW_STORAGE_ES_INDEX_REPLICAS_NUMBER`).
    pub index_replicas_number: u32,
    /// `superDatasetDayStep` (`SW_STORAGE_ES_SUPER_DATASET_DAY_STEP`): -1 follows `dayStep`.
    pub super_dataset_day_step: i32,
    /// `superDatasetIndexShardsFactor` (`SW_STORAGE_ES_SUPER_DATASET_INDEX_SHARDS_FACTOR`).
    pub super_dataset_index_shards_factor: u32,
    /// `superDatasetIndexReplicasNumber` (`SW_STORAGE_ES_SUPER_DATASET_INDEX_REPLICAS_NUMBER`).
    pub super_dataset_index_replicas_number: u32,
    /// `bulkActions` (`SW_STORAGE_ES_BULK_ACTIONS`): rows that make a bulk request.
    pub bulk_actions: usize,
    /// `batchOfBytes` (`SW_STORAGE_ES_BATCH_OF_BYTES`): the largest `_bulk` body, bytes.
    pub batch_of_bytes: usize,
    /// `flushInterval` (`SW_STORAGE_ES_FLUSH_INTERVAL`): seconds between periodic flushes.
    pub flush_interval: u64,
    /// `concurrentRequests` (`SW_STORAGE_ES_CONCURRENT_REQUESTS`): bulk requests in flight.
    pub concurrent_requests: usize,
    /// `indexTemplateOrder` (`SW_STORAGE_ES_INDEX_TEMPLATE_ORDER`): the priority of the index
    /// templates.
    pub index_template_order: u32,
    /// `scrollingBatchSize` (`SW_STORAGE_ES_SCROLLING_BATCH_SIZE`): rows per page when a read
    /// pages through many rows.
    pub scrolling_batch_size: usize,
    /// `bulkRefresh` (`SW_STORAGE_ES_BULK_REFRESH`, ours): `false`, `true` or `wait_for` — whether
    /// a bulk request makes its documents searchable before it is answered. Elasticsearch
    /// refreshes every `persistentPeriod + 5` s on its own; `true` costs a refresh per request
    /// and is meant for tests that search right after writing.
    #[serde(deserialize_with = "bool_or_text")]
    pub bulk_refresh: String,
}

impl Default for ElasticsearchConfig {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            cluster_nodes: "localhost:9200".to_owned(),
            protocol: "http".to_owned(),
            connect_timeout: 3_000,
            socket_timeout: 30_000,
            response_timeout: 15_000,
            user: String::new(),
            password: String::new(),
            day_step: 1,
            index_shards_number: 1,
            index_replicas_number: 1,
            super_dataset_day_step: -1,
            super_dataset_index_shards_factor: 5,
            super_dataset_index_replicas_number: 0,
            bulk_actions: 5_000,
            batch_of_bytes: 10 * 1024 * 1024,
            flush_interval: 5,
            concurrent_requests: 2,
            index_template_order: 0,
            scrolling_batch_size: 5_000,
            bulk_refresh: "false".to_owned(),
        }
    }
}

/// A setting that YAML may read as a boolean (`false`) or as text (`wait_for`).
fn bool_or_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrText {
        Bool(bool),
        Text(String),
    }
    Ok(match BoolOrText::deserialize(deserializer)? {
        BoolOrText::Bool(value) => value.to_string(),
        BoolOrText::Text(text) => text,
    })
}

impl ElasticsearchConfig {
    /// The nodes' base URLs, e.g. `http://localhost:9200`, or every setting that is wrong.
    pub fn validate(&self) -> Result<Vec<String>, Vec<ConfigError>> {
        let mut errors = Vec::new();
        if !matches!(self.protocol.as_str(), "http" | "https") {
            errors.push(ConfigError::new("protocol", format!("`{}` is neither http nor https", self.protocol)));
        }
        let mut nodes = Vec::new();
        for node in self.cluster_nodes.split(',').map(str::trim).filter(|node| !node.is_empty()) {
            match node.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|port| port > 0) => {
                    nodes.push(format!("{}://{node}", self.protocol));
                }
                _ => errors.push(ConfigError::new("clusterNodes", format!("`{node}` is not host:port"))),
            }
        }
        if nodes.is_empty() && errors.is_empty() {
            errors.push(ConfigError::new("clusterNodes", "names no node"));
        }
        for (key, value) in [
            ("dayStep", self.day_step as usize),
            ("indexShardsNumber", self.index_shards_number as usize),
            ("superDatasetIndexShardsFactor", self.super_dataset_index_shards_factor as usize),
            ("bulkActions", self.bulk_actions),
            ("batchOfBytes", self.batch_of_bytes),
            ("flushInterval", self.flush_interval as usize),
            ("concurrentRequests", self.concurrent_requests),
            ("scrollingBatchSize", self.scrolling_batch_size),
        ] {
            if value == 0 {
                errors.push(ConfigError::new(key, "must be at least 1"));
            }
        }
        if self.refresh().is_none() {
            errors.push(ConfigError::new(
                "bulkRefresh",
                format!("`{}` is not false, true or wait_for", self.bulk_refresh),
            ));
        }
        if errors.is_empty() { Ok(nodes) } else { Err(errors) }
    }

    /// The `refresh` of bulk requests, if `bulkRefresh` names one.
    pub fn refresh(&self) -> Option<Refresh> {
        match self.bulk_refresh.as_str() {
            "false" => Some(Refresh::False),
            "true" => Some(Refresh::True),
            "wait_for" => Some(Refresh::WaitFor),
            _ => None,
        }
    }

    /// The index layout these settings describe.
    pub fn layout(&self) -> Layout {
        Layout::new(&self.namespace, self.day_step, self.super_dataset_day_step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_skywalking_s() {
        let config: ElasticsearchConfig = serde_yaml_ng::from_str("{}").expect("defaults");
        assert_eq!(config, ElasticsearchConfig::default());
        assert_eq!(config.validate(), Ok(vec!["http://localhost:9200".to_owned()]));
        assert_eq!((config.bulk_actions, config.batch_of_bytes, config.flush_interval), (5_000, 10_485_760, 5));
        assert_eq!(config.layout(), Layout::new("sw", 1, 1));
    }

    #[test]
    fn settings_read_by_their_skywalking_names() {
        let yaml = "namespace: Prod\nclusterNodes: es1:9200, es2:9201\nprotocol: https\ndayStep: 3\nbulkActions: 100\nbulkRefresh: true";
        let config: ElasticsearchConfig = serde_yaml_ng::from_str(yaml).expect("settings");
        assert_eq!(config.refresh(), Some(Refresh::True));
        let config: ElasticsearchConfig = serde_yaml_ng::from_str("bulkRefresh: wait_for").expect("settings");
        assert_eq!(config.refresh(), Some(Refresh::WaitFor));
        let config: ElasticsearchConfig = serde_yaml_ng::from_str(yaml).expect("settings");
        assert_eq!(config.validate(), Ok(vec!["https://es1:9200".to_owned(), "https://es2:9201".to_owned()]));
        assert_eq!(config.bulk_actions, 100);
        assert_eq!(config.layout(), Layout::new("prod", 3, -1));
    }

    #[test]
    fn every_wrong_setting_is_named() {
        let config = ElasticsearchConfig {
            protocol: "ftp".to_owned(),
            cluster_nodes: "es1, es2:0".to_owned(),
            bulk_actions: 0,
            bulk_refresh: "always".to_owned(),
            ..ElasticsearchConfig::default()
        };
        let errors = config.validate().expect_err("wrong");
        let paths: Vec<&str> = errors.iter().map(|error| error.path.as_str()).collect();
        assert_eq!(paths, ["protocol", "clusterNodes", "clusterNodes", "bulkActions", "bulkRefresh"]);
    }
}
