//! The storage test suite against a real Elasticsearch-API server (osmem-server, started once
//! per test process), each store under a namespace of its own. Bulk requests refresh, so that
//! what a test writes is searchable at once, as on Elasticsearch with `bulkRefresh: true`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use oap_storage::StorageRef;
use oap_storage::testsuite::Target;
use oap_storage_elasticsearch::bulk::BulkTelemetry;
use oap_storage_elasticsearch::client::connect;
use oap_storage_elasticsearch::test_server::TestServer;
use oap_storage_elasticsearch::{ElasticsearchConfig, open_store};
use oap_telemetry::MetricsRegistry;

static SERVER: LazyLock<TestServer> = LazyLock::new(|| TestServer::start().expect("the test server starts"));

static PLACES: AtomicUsize = AtomicUsize::new(0);

struct Elasticsearch;

impl Target for Elasticsearch {
    fn place(&self) -> String {
        format!("suite{}", PLACES.fetch_add(1, Ordering::Relaxed))
    }

    async fn open(&self, place: &str) -> StorageRef {
        let config = ElasticsearchConfig {
            namespace: place.to_owned(),
            cluster_nodes: SERVER.node().to_owned(),
            bulk_refresh: "true".to_owned(),
            // Small pages, so that the suite's reads page.
            scrolling_batch_size: 3,
            ..ElasticsearchConfig::default()
        };
        let client = connect(&config).expect("a client");
        let metrics = BulkTelemetry::new(&MetricsRegistry::new()).expect("metrics");
        Arc::new(open_store(&config, client, Duration::from_secs(25), metrics).expect("a store"))
    }
}

oap_storage::storage_suite!(Elasticsearch);
