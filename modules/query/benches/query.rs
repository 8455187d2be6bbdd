//! Latency of the UI's heaviest reads through the whole GraphQL path (parse, validate, resolve,
//! read the embedded store), as p50 / p99 / max over many runs:
//!
//! - `execExpression` of a 60-point line (`endpoint_cpm` of one endpoint over an hour), and a
//!   service's `top_n` of its 500 endpoints over that hour;
//! - `queryBasicTraces` over 7 days of segments of 2,000 endpoints (one segment per endpoint
//!   per hour: 336,000 segments), unfiltered, for one endpoint, and for the last 15 minutes.
//!
//! Run: `cargo bench -p oap-query --bench query` (it prints a table; about two minutes, most of
//! it storing the data).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::{Request, Variables};
use oap_core::CoreConfig;
use oap_model::{TimeBuckets, ids};
use oap_oal::{ApdexThresholds, Catalog};
use oap_query::budget::Bounds;
use oap_query::context::QueryContext;
use oap_query::schema::{self, Limits, QuerySchema};
use oap_storage::builtin::segment::{self, SegmentRow};
use oap_storage::{ModelRef, Row, StorageRef, Value, Write};
use oap_storage_embedded::{Budget, EmbeddedStore};
use rand::RngExt;
use serde_json::json;

const SERVICES: usize = 4;
const ENDPOINTS_PER_SERVICE: usize = 500;
const DAYS: i64 = 7;
const RUNS: usize = 300;

fn service_name(service: usize) -> String {
    format!("bench-service-{service}")
}

fn endpoint_name(endpoint: usize) -> String {
    format!("/api/v1/resource-{endpoint}")
}

/// One segment per endpoint per hour over `DAYS` days before `now`.
async fn store_segments(store: &StorageRef, buckets: &TimeBuckets, now: i64) -> usize {
    let mut rng = rand::rng();
    let model = segment::MODEL.clone();
    let hours = DAYS * 24;
    let mut batch = Vec::with_capacity(5_000);
    let mut stored = 0;
    for hour in 0..hours {
        for service in 0..SERVICES {
            let service_id = ids::service_id(&service_name(service), true);
            let instance_id = ids::instance_id(&service_id, "instance-0");
            for endpoint in 0..ENDPOINTS_PER_SERVICE {
                let start = now - (hours - hour) * 3_600_000 + rng.random_range(0..3_600_000);
                let mut data = vec![0u8; 950];
                rng.fill(&mut data[..400]);
                let row = SegmentRow {
                    segment_id: format!("{:032x}", rng.random::<u128>()),
                    trace_id: format!("{:032x}", rng.random::<u128>()),
                    endpoint_id: ids::endpoint_id(&service_id, &endpoint_name(endpoint)),
                    service_id: service_id.clone(),
                    service_instance_id: instance_id.clone(),
                    start_time: start,
                    latency: rng.random_range(1..2_000),
                    is_error: rng.random_range(0..20) == 0,
                    time_bucket: buckets.second(start).expect("a second"),
                    data_binary: data,
                    tags: vec!["http.method=GET".to_owned(), "http.status_code=200".to_owned()],
                };
                batch.push(Write::Insert(model.clone(), row.into_row()));
                if batch.len() == batch.capacity() {
                    store.write(&batch).await.expect("write segments");
                    stored += batch.len();
                    batch.clear();
                }
            }
        }
    }
    store.write(&batch).await.expect("write segments");
    stored + batch.len()
}

/// `endpoint_cpm` minute rows of every endpoint for the 60 minutes before `now`.
async fn store_metrics(store: &StorageRef, catalog: &Catalog, buckets: &TimeBuckets, now: i64) -> usize {
    let model: ModelRef = catalog.find("endpoint_cpm").expect("endpoint_cpm").1.model.clone();
    let column = |name: &str| model.column(name).expect("a column of endpoint_cpm");
    let mut rng = rand::rng();
    let mut stored = 0;
    for minute in 0..60 {
        let bucket = buckets.minute(now - (60 - minute) * 60_000).expect("a minute");
        let mut batch = Vec::with_capacity(SERVICES * ENDPOINTS_PER_SERVICE);
        for service in 0..SERVICES {
            let service_id = ids::service_id(&service_name(service), true);
            for endpoint in 0..ENDPOINTS_PER_SERVICE {
                let mut values = vec![Value::Null; model.columns.len()];
                let calls: i64 = rng.random_range(1..500);
                values[column("service_id")] = Value::Text(service_id.clone());
                values[column("attr0")] = Value::Text("GENERAL".to_owned());
                values[column("total")] = Value::Long(calls);
                values[column("value")] = Value::Long(calls);
                let id = ids::endpoint_id(&service_id, &endpoint_name(endpoint));
                batch.push(Write::Insert(model.clone(), Row { id, time_bucket: bucket, values }));
            }
        }
        store.write(&batch).await.expect("write metrics");
        stored += batch.len();
    }
    stored
}

fn minute_text(bucket: i64) -> String {
    let text = bucket.to_string();
    format!("{}-{}-{} {}", &text[0..4], &text[4..6], &text[6..8], &text[8..12])
}

fn second_text(bucket: i64) -> String {
    let text = bucket.to_string();
    format!("{}-{}-{} {}", &text[0..4], &text[4..6], &text[6..8], &text[8..14])
}

/// Runs `document` `RUNS` times after a warm-up; returns the sorted latencies.
async fn measure(schema: &QuerySchema, document: &str, variables: &serde_json::Value) -> Vec<Duration> {
    let run = || async {
        let request = Request::new(document).variables(Variables::from_json(variables.clone()));
        let response = schema.execute(request).await;
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        response
    };
    for _ in 0..10 {
        run().await;
    }
    let mut latencies = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let started = Instant::now();
        run().await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    latencies
}

fn report(name: &str, latencies: &[Duration]) {
    let at = |quantile: f64| {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let index = ((latencies.len() as f64 * quantile).ceil() as usize).saturating_sub(1);
        latencies[index].as_secs_f64() * 1_000.0
    };
    println!("| {name} | {:.2} | {:.2} | {:.2} |", at(0.5), at(0.99), at(1.0));
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("oap-bench-query-{}", std::process::id()));
        let store: StorageRef = Arc::new(EmbeddedStore::open(&dir, Budget::default()).expect("open the store"));
        let definitions = oap_oal::load("core.oal", oap_oal::CORE_OAL).expect("core.oal");
        let catalog = Catalog::new(definitions, ApdexThresholds::default()).expect("catalog");
        store.install(&oap_storage::builtin::models()).await.expect("install");
        store.install(&catalog.models()).await.expect("install");
        let buckets = TimeBuckets::utc();
        let now = oap_model::now_ms();

        let started = Instant::now();
        let segments = store_segments(&store, &buckets, now).await;
        let metrics = store_metrics(&store, &catalog, &buckets, now).await;
        println!("stored {segments} segments and {metrics} metric rows in {:.1} s", started.elapsed().as_secs_f64());

        let context = QueryContext {
            storage: store.clone(),
            catalog: Arc::new(catalog),
            core: Arc::new(CoreConfig::default()),
            buckets: buckets.clone(),
            membership: Arc::new(oap_cluster::Membership::standalone("127.0.0.1", 11800)),
        };
        let schema = schema::build(context, &Bounds::new(Limits::default()));

        let hour = json!({
            "start": minute_text(buckets.minute(now - 3_600_000).expect("minute")),
            "end": minute_text(buckets.minute(now - 60_000).expect("minute")),
            "step": "MINUTE",
        });
        let service = service_name(1);
        let endpoint = endpoint_name(42);
        let expression = "query queryData($duration: Duration!,$entity: Entity!,$expression00: String!) {\
            expression00: execExpression(expression: $expression00, entity: $entity, duration: $duration){\
            type results { metric { labels { key value } } values { name: id value refId: traceID \
            owner { scope serviceID serviceName normal serviceInstanceID serviceInstanceName endpointID endpointName } } } error } }";
        let line = json!({
            "duration": hour,
            "entity": { "serviceName": service, "normal": true, "endpointName": endpoint },
            "expression00": "endpoint_cpm",
        });
        let ranking = json!({
            "duration": hour,
            "entity": { "serviceName": service, "normal": true },
            "expression00": "top_n(endpoint_cpm,10,des)",
        });
        let traces = "query queryTraces($condition: TraceQueryCondition) {\
            data: queryBasicTraces(condition: $condition) {\
            traces { key: segmentId endpointNames duration start isError traceIds } } }";
        let condition = |from: i64, extra: serde_json::Value| {
            let mut condition = json!({
                "queryDuration": {
                    "start": second_text(buckets.second(from).expect("second")),
                    "end": second_text(buckets.second(now).expect("second")),
                    "step": "SECOND",
                },
                "traceState": "ALL",
                "queryOrder": "BY_START_TIME",
                "paging": { "pageNum": 1, "pageSize": 20 },
            });
            for (key, value) in extra.as_object().expect("an object") {
                condition[key] = value.clone();
            }
            json!({ "condition": condition })
        };
        let week = now - DAYS * 86_400_000;
        let endpoint_id = ids::endpoint_id(&ids::service_id(&service, true), &endpoint);

        println!("\n| query | p50 (ms) | p99 (ms) | max (ms) |\n| --- | --- | --- | --- |");
        report("execExpression `endpoint_cpm`, 60 points", &measure(&schema, expression, &line).await);
        report("execExpression `top_n(endpoint_cpm,10,des)`, 500 endpoints × 60 min", &measure(&schema, expression, &ranking).await);
        report("queryBasicTraces, 7 days, page 1 of 20", &measure(&schema, traces, &condition(week, json!({}))).await);
        report(
            "queryBasicTraces, 7 days, one endpoint",
            &measure(&schema, traces, &condition(week, json!({ "endpointId": endpoint_id }))).await,
        );
        report("queryBasicTraces, last 15 minutes", &measure(&schema, traces, &condition(now - 900_000, json!({}))).await);
        drop(schema);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    });
}
