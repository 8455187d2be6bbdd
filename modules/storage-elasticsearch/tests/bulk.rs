//! The bulk writer against a scripted `_bulk` endpoint, which answers each request as a test
//! says: the per-item statuses a busy or strict Elasticsearch gives, which osmem-server never
//! does. (The real server's path is the storage suite's and the end-to-end tests'.)

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use elasticsearch::params::Refresh;
use oap_storage::StorageError;
use oap_storage_elasticsearch::ElasticsearchConfig;
use oap_storage_elasticsearch::bulk::{BulkLimits, BulkTelemetry, BulkWriter};
use oap_storage_elasticsearch::client::connect;
use oap_telemetry::MetricsRegistry;
use serde_json::{Value, json};

/// How the endpoint answers one request: the HTTP status, and each document's item status.
type Script = Box<dyn Fn(&[String]) -> (StatusCode, Vec<u16>) + Send + Sync>;

#[derive(Clone)]
struct Endpoint {
    script: Arc<Script>,
    /// The ids of each request's documents, in order.
    requests: Arc<Mutex<Vec<Vec<String>>>>,
}

async fn bulk(State(endpoint): State<Endpoint>, body: String) -> (StatusCode, String) {
    let ids: Vec<String> = body
        .lines()
        .step_by(2)
        .map(|action| {
            let action: Value = serde_json::from_str(action).expect("an action line");
            action["index"]["_id"].as_str().expect("an id").to_owned()
        })
        .collect();
    endpoint.requests.lock().expect("lock").push(ids.clone());
    let (status, items) = (endpoint.script)(&ids);
    let errors = items.iter().any(|status| *status >= 300);
    let items: Vec<Value> = ids
        .iter()
        .zip(items)
        .map(|(id, status)| {
            let mut item = json!({ "_index": "sw_segment-20261121", "_id": id, "status": status });
            if status == 429 {
                item["error"] = json!({ "type": "es_rejected_execution_exception", "reason": "queue full" });
            } else if status >= 300 {
                item["error"] = json!({ "type": "mapper_parsing_exception", "reason": "bad field" });
            }
            json!({ "index": item })
        })
        .collect();
    (status, json!({ "took": 1, "errors": errors, "items": items }).to_string())
}

struct Harness {
    writer: BulkWriter,
    metrics: BulkTelemetry,
    requests: Arc<Mutex<Vec<Vec<String>>>>,
}

async fn harness(actions: usize, script: Script) -> Harness {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let endpoint = Endpoint { script: Arc::new(script), requests: requests.clone() };
    let router = Router::new().route("/_bulk", post(bulk)).with_state(endpoint);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let address = listener.local_addr().expect("an address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    let config = ElasticsearchConfig { cluster_nodes: address.to_string(), ..ElasticsearchConfig::default() };
    let client = connect(&config).expect("a client");
    let metrics = BulkTelemetry::new(&MetricsRegistry::new()).expect("metrics");
    let limits = BulkLimits { actions, bytes: 10 << 20, concurrent_requests: 1, refresh: Refresh::False };
    Harness { writer: BulkWriter::start(client, limits, metrics.clone()), metrics, requests }
}

fn documents(ids: &[&str]) -> Vec<Bytes> {
    ids.iter()
        .map(|id| {
            Bytes::from(format!(
                "{}\n{}\n",
                json!({ "index": { "_index": "sw_segment-20261121", "_id": id } }),
                json!({ "segment_id": id })
            ))
        })
        .collect()
}

impl Harness {
    fn requests(&self) -> Vec<Vec<String>> {
        self.requests.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn items_turned_away_are_sent_again_alone_until_stored() {
    // The first request has its second document turned away (429), the next one its only.
    let harness = harness(
        100,
        Box::new(|ids| match ids {
            [_, _, _] => (StatusCode::OK, vec![201, 429, 201]),
            [_] if ids[0] == "b" => (StatusCode::OK, vec![201]),
            _ => (StatusCode::OK, vec![500; ids.len()]),
        }),
    )
    .await;
    harness.writer.write(documents(&["a", "b", "c"])).await.expect("stored in the end");
    assert_eq!(harness.requests(), [vec!["a", "b", "c"], vec!["b"]]);
    assert_eq!((harness.metrics.requests(), harness.metrics.documents(), harness.metrics.retried()), (2, 3, 1));
}

#[tokio::test]
async fn a_document_refused_for_its_content_fails_its_write_as_invalid_and_the_rest_are_stored() {
    let harness = harness(
        100,
        Box::new(|ids| (StatusCode::OK, ids.iter().map(|id| if id == "b" { 400 } else { 201 }).collect())),
    )
    .await;
    let error = harness.writer.write(documents(&["a", "b", "c"])).await.expect_err("b is refused");
    assert!(matches!(&error, StorageError::Invalid(reason) if reason.contains("mapper_parsing_exception")), "{error}");
    assert_eq!(harness.requests().len(), 1, "a refusal is not sent again");
    assert_eq!(harness.metrics.documents(), 2);
}

#[tokio::test]
async fn a_busy_server_fails_the_write_as_retryable_and_items_that_stay_turned_away_too() {
    let busy = harness(100, Box::new(|ids| (StatusCode::SERVICE_UNAVAILABLE, vec![201; ids.len()]))).await;
    let error = busy.writer.write(documents(&["a"])).await.expect_err("503");
    assert!(error.is_retryable(), "{error}");

    // Turned away every time: sent 1 + 3 times, then the writer hears it may retry.
    let rejecting = harness(100, Box::new(|ids| (StatusCode::OK, vec![429; ids.len()]))).await;
    let error = rejecting.writer.write(documents(&["a", "b"])).await.expect_err("still turned away");
    assert!(error.is_retryable(), "{error}");
    assert_eq!(rejecting.requests().len(), 4);
    assert_eq!(rejecting.metrics.documents(), 0);
}

#[tokio::test]
async fn requests_hold_at_most_bulk_actions_documents_and_every_writer_is_answered() {
    let harness = harness(2, Box::new(|ids| (StatusCode::OK, vec![201; ids.len()]))).await;
    harness.writer.write(documents(&["a", "b", "c", "d", "e"])).await.expect("stored");
    let sizes: Vec<usize> = harness.requests().iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    // Two writers at once: each is answered, and no request passes the bound.
    let (one, two) = tokio::join!(harness.writer.write(documents(&["x"])), harness.writer.write(documents(&["y"])));
    one.and(two).expect("stored");
    let last = harness.requests().pop().expect("a request");
    assert!(last.len() <= 2, "{last:?}");
    assert_eq!(harness.metrics.documents(), 7);
}
