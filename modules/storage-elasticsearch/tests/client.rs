//! The client built from `storage.elasticsearch` settings against a real Elasticsearch-API
//! server (osmem-server, started by the test).

use elasticsearch::http::StatusCode;
use oap_storage_elasticsearch::ElasticsearchConfig;
use oap_storage_elasticsearch::client::connect;
use oap_storage_elasticsearch::test_server::TestServer;

#[tokio::test]
async fn the_configured_nodes_answer() {
    let server = TestServer::start().expect("the test server starts");
    // The same node twice: requests go round both entries of the pool.
    let config =
        ElasticsearchConfig { cluster_nodes: format!("{0},{0}", server.node()), ..ElasticsearchConfig::default() };
    let client = connect(&config).expect("a client");
    for _ in 0..2 {
        let response = client.info().send().await.expect("an answer");
        assert_eq!(response.status_code(), StatusCode::OK);
        let info: serde_json::Value = response.json().await.expect("json");
        assert!(info["version"]["number"].is_string(), "a version: {info}");
    }
}

#[tokio::test]
async fn a_node_that_is_down_is_an_error_not_a_hang() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("address").port()
    };
    let config = ElasticsearchConfig {
        cluster_nodes: format!("127.0.0.1:{port}"),
        socket_timeout: 2_000,
        ..ElasticsearchConfig::default()
    };
    let client = connect(&config).expect("a client: nothing is contacted yet");
    let error = client.info().send().await.expect_err("nothing listens");
    assert!(error.to_string().contains("error sending request") || error.to_string().contains("connect"), "{error}");
}

#[test]
fn wrong_settings_give_no_client() {
    let config = ElasticsearchConfig { cluster_nodes: "es1".to_owned(), ..ElasticsearchConfig::default() };
    let errors = connect(&config).map(|_| ()).expect_err("no port");
    assert_eq!(errors[0].path, "clusterNodes");
}
