//! Metrics end to end, through the real binary: generated segments with known latencies, errors
//! and topology, and the real Python agent's 100 segments (their times moved to now), become the
//! OAL metrics, topology rows and top-N slow statements the reference says, at minute, hour and
//! day — persisted by the persistence cycle itself (the server is then killed with `kill -9`),
//! and merged, not counted twice, when the restarted server receives more of the same minute.
//!
//! Expected values of the generated traffic are worked out by hand below from
//! docs/reference/oal.md §3; those of the Python agent's segments are computed here from its
//! capture by the same rules. The server's store is opened and read once the server has stopped.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::agent::{Scrape, python_agent, send_segments, span};
use common::{Backend, Ports, scratch_dir, start_server_with, wait_until_persisted};
use oap_model::ids;
use oap_oal::{ApdexThresholds, Catalog};
use oap_proto::v3::{KeyStringValuePair, RefType, SegmentObject, SegmentReference, SpanLayer, SpanType};
use oap_storage::builtin::top_n::{self, TopNRecord};
use oap_storage::{ModelRef, RowKey, ScanQuery, StorageRef, Value};
use prost::Message;

/// The frontend's requests: latency (ms) and whether it failed.
const FRONTEND: [(i64, bool); 6] = [(100, false), (200, false), (300, false), (600, false), (900, true), (2500, false)];
/// Its database calls, one per request (ms).
const DATABASE: [i64; 6] = [10, 20, 30, 40, 50, 60];
/// The backend's requests, each called by a frontend request (ms).
const BACKEND: [i64; 4] = [50, 70, 90, 110];

fn tags(pairs: &[(&str, &str)]) -> Vec<KeyStringValuePair> {
    pairs.iter().map(|(key, value)| KeyStringValuePair { key: (*key).to_owned(), value: (*value).to_owned() }).collect()
}

/// One round of traffic starting at `start` ms: 6 frontend requests, each calling the database
/// and `backend:8080`, the first also reading `cart` from Redis for 15 ms, and 4 backend requests
/// that name a frontend request as their caller (which teaches the server that `backend:8080` is
/// `shop-backend`, after the frontend's calls of the round were analysed).
fn traffic(round: &str, start: i64) -> Vec<Vec<u8>> {
    let mut segments = Vec::new();
    for (k, ((latency, failed), db)) in FRONTEND.iter().zip(DATABASE).enumerate() {
        let mut entry = span(0, SpanType::Entry, SpanLayer::Http, "/api", start, *latency);
        entry.is_error = *failed;
        let mut exit = span(1, SpanType::Exit, SpanLayer::Database, "SELECT", start + 1, db);
        exit.peer = "mysql:3306".to_owned();
        exit.component_id = 5;
        exit.tags = tags(&[("db.type", "mysql"), ("db.statement", &format!("SELECT * FROM orders WHERE id = {k}"))]);
        let mut call = span(2, SpanType::Exit, SpanLayer::Http, "/work", start + 2, 3);
        call.parent_span_id = 0;
        call.peer = "backend:8080".to_owned();
        let mut spans = vec![entry, exit, call];
        if k == 0 {
            let mut read = span(3, SpanType::Exit, SpanLayer::Cache, "Redis/GET", start + 3, 15);
            read.parent_span_id = 0;
            read.peer = "redis:6379".to_owned();
            read.component_id = 7;
            read.tags =
                tags(&[("cache.type", "Redis"), ("cache.op", "read"), ("cache.cmd", "GET"), ("cache.key", "cart")]);
            spans.push(read);
        }
        segments.push(SegmentObject {
            trace_id: format!("{round}-trace-{k}"),
            trace_segment_id: format!("{round}-front-{k}"),
            spans,
            service: "shop-frontend".to_owned(),
            service_instance: "f1".to_owned(),
            ..SegmentObject::default()
        });
    }
    for (k, latency) in BACKEND.iter().enumerate() {
        let mut entry = span(0, SpanType::Entry, SpanLayer::Http, "/work", start + 2, *latency);
        entry.parent_span_id = -1;
        entry.refs = vec![SegmentReference {
            ref_type: RefType::CrossProcess as i32,
            trace_id: format!("{round}-trace-{k}"),
            parent_trace_segment_id: format!("{round}-front-{k}"),
            parent_span_id: 1,
            parent_service: "shop-frontend".to_owned(),
            parent_service_instance: "f1".to_owned(),
            parent_endpoint: "/api".to_owned(),
            network_address_used_at_peer: "backend:8080".to_owned(),
        }];
        segments.push(SegmentObject {
            trace_id: format!("{round}-trace-{k}"),
            trace_segment_id: format!("{round}-back-{k}"),
            spans: vec![entry],
            service: "shop-backend".to_owned(),
            service_instance: "b1".to_owned(),
            ..SegmentObject::default()
        });
    }
    segments.into_iter().map(|segment| segment.encode_to_vec()).collect()
}

/// A service's entry spans: (latency, succeeded).
fn entries(segments: &[SegmentObject], service: &str) -> Vec<(i64, bool)> {
    segments
        .iter()
        .filter(|segment| segment.service == service)
        .flat_map(|segment| &segment.spans)
        .filter(|span| span.span_type() == SpanType::Entry)
        .map(|span| (span.end_time - span.start_time, !span.is_error))
        .collect()
}

/// What docs/reference/oal.md §3 makes of a service's requests in one minute: resp_time, sla (basis
/// points), apdex with T = 500 and the percentile2(10) text.
fn expected(requests: &[(i64, bool)]) -> (i64, i64, i64, String) {
    let total = i64::try_from(requests.len()).expect("count");
    let resp_time = requests.iter().map(|(latency, _)| latency).sum::<i64>() / total;
    let sla = requests.iter().filter(|(_, ok)| *ok).count() as i64 * 10_000 / total;
    let (mut satisfied, mut tolerating) = (0, 0);
    for &(latency, ok) in requests {
        if ok && latency <= 500 {
            satisfied += 1;
        } else if ok && latency <= 2_000 {
            tolerating += 1;
        }
    }
    let apdex = (satisfied * 10_000 + tolerating * 10_000 / 2) / total;
    let mut buckets = BTreeMap::<i64, i64>::new();
    for (latency, _) in requests {
        *buckets.entry(latency / 10).or_default() += 1;
    }
    let labels: Vec<String> = [50, 75, 90, 95, 99]
        .into_iter()
        .map(|rank| {
            let roof = (total as f64 * f64::from(rank) / 100.0).round() as i64;
            let mut seen = 0;
            let (key, _) = buckets
                .iter()
                .find(|(_, count)| {
                    seen += **count;
                    seen >= roof
                })
                .expect("the last bucket reaches every roof");
            format!("{{p={rank}}},{}", key * 10)
        })
        .collect();
    (resp_time, sla, apdex, labels.join("|"))
}

async fn send(ports: &Ports, segments: Vec<Vec<u8>>) {
    send_segments(ports.grpc, segments).await;
}

/// Reads stored metric rows by name, column and entity.
struct Stored {
    store: StorageRef,
    catalog: Catalog,
}

impl Stored {
    async fn open(backend: &Backend, dir: &std::path::Path) -> Self {
        let store = backend.open(dir).await;
        let definitions = oap_oal::load("core.oal", oap_oal::CORE_OAL).expect("core.oal");
        Self { store, catalog: Catalog::new(definitions, ApdexThresholds::default()).expect("catalog") }
    }

    async fn value(&self, metric: &str, column: &str, entity: &str, bucket: i64) -> Value {
        let model = &self.catalog.find(metric).unwrap_or_else(|| panic!("no stream {metric}")).1.model;
        let at = model.column(column).unwrap_or_else(|| panic!("{metric} has no column {column}"));
        let key = RowKey { id: entity.to_owned(), time_bucket: bucket };
        let rows = self.store.multi_get(model, &[key]).await.expect("multi-get");
        let row = rows.into_iter().next().unwrap_or_else(|| panic!("no {metric} row for {entity} at {bucket}"));
        row.value(at).clone()
    }

    async fn long(&self, metric: &str, column: &str, entity: &str, bucket: i64) -> i64 {
        let value = self.value(metric, column, entity, bucket).await;
        value.as_i64().unwrap_or_else(|| panic!("{metric}.{column} is {value:?}"))
    }

    async fn text(&self, metric: &str, column: &str, entity: &str, bucket: i64) -> String {
        self.value(metric, column, entity, bucket).await.as_str().expect("text").to_owned()
    }

    /// Every stored record of a top-N model, by id.
    async fn top_n(&self, model: &ModelRef) -> Vec<TopNRecord> {
        let rows = self.store.scan(model, &ScanQuery::default()).await.expect("scan");
        rows.into_iter().map(TopNRecord::from_row).collect()
    }
}

fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("after 1970");
    i64::try_from(elapsed.as_millis()).expect("ms")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_becomes_the_expected_metrics_at_every_level_across_a_crash_and_a_restart() {
    metrics(Backend::Embedded).await;
}

/// The same metrics, stored in Elasticsearch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_metrics_in_elasticsearch() {
    metrics(Backend::elasticsearch()).await;
}

async fn metrics(backend: Backend) {
    let dir = scratch_dir("metrics");
    let buckets = oap_model::TimeBuckets::system();

    // Round 1: persisted by the cycle alone — the server is killed without a chance to flush.
    let (mut server, ports) = start_server_with(&dir, &backend);
    // A second early in its minute, so every span of the round starts in the same minute.
    let start = {
        let second_ago = now_ms() - 1_000;
        second_ago - (second_ago % 60_000 - 50_000).max(0)
    };
    let minute = buckets.minute(start).expect("a minute");
    let (hour, day) = (minute / 100, minute / 10_000);
    send(&ports, traffic("one", start)).await;
    let (python, python_segments) = python_agent(start);
    send(&ports, python).await;
    // Rounds every second after the first at 1 s; hours and days at every 4th round.
    wait_until_persisted(&server, ports.telemetry, "all", Duration::from_secs(60)).await;
    server.signal("KILL");
    server.wait_exit(Duration::from_secs(10)).expect("killed");
    drop(server);

    let frontend = ids::service_id("shop-frontend", true);
    {
        let stored = Stored::open(&backend, &dir).await;
        for bucket in [minute, hour, day] {
            assert_eq!(stored.long("service_cpm", "total", &frontend, bucket).await, 6, "at {bucket}");
            assert_eq!(stored.long("service_resp_time", "summation", &frontend, bucket).await, 4600);
        }
    }

    // Round 2: the same traffic again, in the same minute, after a restart; then a clean stop.
    let (mut server, ports) = start_server_with(&dir, &backend);
    // The stored alias of backend:8080 is reloaded 1 s after the start: wait for that reload.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while Scrape::from_port(ports.telemetry).await.value("network_address_alias_reload_count") < 1.0 {
        assert!(std::time::Instant::now() < deadline, "the aliases were never reloaded:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    send(&ports, traffic("two", start)).await;
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(30)).expect("stopped").success(), "{}", server.log());
    drop(server);

    let stored = Stored::open(&backend, &dir).await;
    let backend = ids::service_id("shop-backend", true);
    let mysql = ids::service_id("mysql:3306", false);
    let api = ids::endpoint_id(&frontend, "/api");
    let work = ids::endpoint_id(&backend, "/work");
    let f1 = ids::instance_id(&frontend, "f1");
    let front_to_back = ids::relation_id(&frontend, &backend);
    let front_to_db = ids::relation_id(&frontend, &mysql);
    let api_to_work = ids::endpoint_relation_id(&frontend, "/api", &backend, "/work");

    // Twice the 6 frontend requests: 12 calls; 12 / 60 = 0 per minute over the hour, and over the day.
    for (bucket, cpm) in [(minute, 12), (hour, 0), (day, 0)] {
        assert_eq!(stored.long("service_cpm", "total", &frontend, bucket).await, 12);
        assert_eq!(stored.long("service_cpm", "value", &frontend, bucket).await, cpm);
        // Latencies sum to 4600 per round: 9200 / 12 = 766 (integer division).
        assert_eq!(stored.long("service_resp_time", "value", &frontend, bucket).await, 766);
        // 10 of 12 succeeded: 100000 / 12 = 8333 basis points.
        assert_eq!(stored.long("service_sla", "percentage", &frontend, bucket).await, 8333);
        // T = 500: per round 100, 200, 300 satisfy, 600 tolerates, the 900 error and 2500 (> 2000)
        // frustrate: (6 × 10000 + 2 × 10000 / 2) / 12 = 5833.
        assert_eq!(stored.long("service_apdex", "int_value", &frontend, bucket).await, 5833);
        // Buckets of 10 ms, two each at 10, 20, 30, 60, 90, 250. Roofs of 12: p50 6 → 30;
        // p75 9 → 90; p90 round(10.8) = 11, p95 round(11.4) = 11, p99 round(11.88) = 12 → 250.
        assert_eq!(
            stored.text("service_percentile", "datatable_value", &frontend, bucket).await,
            "{p=50},300|{p=75},900|{p=90},2500|{p=95},2500|{p=99},2500"
        );
        assert_eq!(stored.long("service_instance_cpm", "total", &f1, bucket).await, 12);
        assert_eq!(stored.long("endpoint_cpm", "total", &api, bucket).await, 12);
        assert_eq!(stored.long("endpoint_cpm", "total", &work, bucket).await, 8);
        // Database calls: 210 ms per round over 6 calls: 35.
        assert_eq!(stored.long("database_access_cpm", "total", &mysql, bucket).await, 12);
        assert_eq!(stored.long("database_access_resp_time", "value", &mysql, bucket).await, 35);
        assert_eq!(stored.long("database_access_sla", "percentage", &mysql, bucket).await, 10_000);
        assert_eq!(stored.long("service_relation_client_cpm", "total", &front_to_db, bucket).await, 12);
        // Round one's calls to backend:8080 went to a conjectural service of that name; round
        // two's, after the restart, to shop-backend, through the alias reloaded from storage.
        let conjectural = ids::relation_id(&frontend, &ids::service_id("backend:8080", true));
        assert_eq!(stored.long("service_relation_client_cpm", "total", &conjectural, bucket).await, 6);
        assert_eq!(stored.long("service_relation_client_cpm", "total", &front_to_back, bucket).await, 6);
        // The backend's 4 requests per round came from the frontend: 320 ms / 4 = 80.
        assert_eq!(stored.long("service_relation_server_cpm", "total", &front_to_back, bucket).await, 8);
        assert_eq!(stored.long("service_relation_server_resp_time", "value", &front_to_back, bucket).await, 80);
        assert_eq!(stored.long("endpoint_relation_cpm", "total", &api_to_work, bucket).await, 8);
        assert_eq!(stored.long("endpoint_relation_resp_time", "value", &api_to_work, bucket).await, 80);
        // Topology rows: the backend's entry spans carry component 7001; the database call 5.
        assert_eq!(stored.text("service_relation_server_side", "component_ids", &front_to_back, bucket).await, "7001");
        assert_eq!(stored.text("service_relation_client_side", "component_ids", &front_to_db, bucket).await, "5");
    }
    // The service's decorator stores its layer in attr0.
    assert_eq!(stored.text("service_cpm", "attr0", &frontend, minute).await, "GENERAL");
    // Metadata: one row per entity, not per bucket.
    let traffic = ids::service_traffic_id("shop-frontend", oap_model::Layer::GENERAL.number());
    assert_eq!(stored.text("service_traffic", "service_traffic_name", &traffic, 0).await, "shop-frontend");
    assert_eq!(stored.long("endpoint_traffic", "last_ping", &api, 0).await, minute);
    let alias = ids::network_address_alias_id("backend:8080");
    assert_eq!(stored.text("network_address_alias", "represent_service_id", &alias, 0).await, backend);

    // The slow statements of round two (round one's lists were held when the server was
    // killed): the 30, 40, 50 and 60 ms calls, under the database and the calling service.
    let slow: Vec<(String, i64, String, String)> = [2, 3, 4, 5]
        .into_iter()
        .map(|k| {
            (
                format!("two-front-{k}-1"),
                DATABASE[k],
                format!("SELECT * FROM orders WHERE id = {k}"),
                format!("two-trace-{k}"),
            )
        })
        .collect();
    for (model, entity) in [(&*top_n::DATABASE_STATEMENT, &mysql), (&*top_n::SERVICE_DATABASE_STATEMENT, &frontend)] {
        let records = stored.top_n(model).await;
        let seen: Vec<_> = records
            .iter()
            .filter(|record| record.id.starts_with("two-"))
            .map(|record| (record.id.clone(), record.latency, record.statement.clone(), record.trace_id.clone()))
            .collect();
        assert_eq!(seen, slow, "{}", model.name);
        assert!(records.iter().all(|record| record.entity_id == *entity && record.time_bucket / 100 == minute));
    }
    // The Redis read took 15 ms, over Redis's 10 ms read threshold.
    let reads: Vec<_> = stored
        .top_n(&top_n::CACHE_READ_COMMAND)
        .await
        .into_iter()
        .filter(|record| record.id.starts_with("two-"))
        .map(|record| (record.id, record.statement, record.latency, record.entity_id))
        .collect();
    let redis = ids::service_id("redis:6379", false);
    assert_eq!(reads, [("two-front-0-3".to_owned(), "GET cart".to_owned(), 15, redis)]);
    assert!(stored.top_n(&top_n::CACHE_WRITE_COMMAND).await.is_empty());

    // The Python agent's segments, sent once before the crash, counted once at every level.
    let py_frontend = ids::service_id("py-frontend", true);
    let py_backend = ids::service_id("py-backend", true);
    for (service, id) in [("py-frontend", &py_frontend), ("py-backend", &py_backend)] {
        let requests = entries(&python_segments, service);
        assert_eq!(requests.len(), 50, "{service}: one entry span per segment");
        let (resp_time, sla, apdex, percentile) = expected(&requests);
        // 10 of 50 failed, whatever their latencies: 8000 basis points.
        assert_eq!(sla, 8_000);
        for bucket in [minute, hour, day] {
            assert_eq!(stored.long("service_cpm", "total", id, bucket).await, 50, "{service} at {bucket}");
            assert_eq!(stored.long("service_resp_time", "value", id, bucket).await, resp_time, "{service}");
            assert_eq!(stored.long("service_sla", "percentage", id, bucket).await, sla, "{service}");
            assert_eq!(stored.long("service_apdex", "int_value", id, bucket).await, apdex, "{service}");
            assert_eq!(stored.text("service_percentile", "datatable_value", id, bucket).await, percentile, "{service}");
        }
    }
    let py_relation = ids::relation_id(&py_frontend, &py_backend);
    let py_api = ids::endpoint_id(&py_frontend, "/api");
    let py_work = ids::endpoint_id(&py_backend, "/work");
    let py_instance = ids::instance_id(&py_frontend, "py-frontend-24907@127.0.0.1");
    for bucket in [minute, hour, day] {
        assert_eq!(stored.long("endpoint_cpm", "total", &py_api, bucket).await, 50);
        assert_eq!(stored.long("endpoint_cpm", "total", &py_work, bucket).await, 50);
        assert_eq!(stored.long("service_instance_cpm", "total", &py_instance, bucket).await, 50);
        // Every backend entry names its caller: 50 calls seen from the server side. The first
        // segment the agent sent was a backend's, whose ref taught the alias of 127.0.0.1:18082,
        // so every frontend exit span resolves to py-backend too.
        assert_eq!(stored.long("service_relation_server_cpm", "total", &py_relation, bucket).await, 50);
        assert_eq!(stored.long("service_relation_client_cpm", "total", &py_relation, bucket).await, 50);
        assert_eq!(stored.long("service_relation_server_call_sla", "percentage", &py_relation, bucket).await, 8_000);
    }
    assert_eq!(stored.text("service_relation_server_side", "component_ids", &py_relation, minute).await, "7001");
    assert_eq!(stored.text("service_relation_client_side", "component_ids", &py_relation, minute).await, "7002");
}
