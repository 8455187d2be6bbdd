//! Metric charts through the real binary: generated traffic with known latencies, errors and
//! database calls in two minutes (and none in the minute between), read back through the
//! `queryData` documents booster-ui sends — `execExpression` with plain metrics, `m/scalar`,
//! `avg(…)`, percentile labels with `relabels`, `top_n` of services, instances, endpoints and
//! slow statements — and through the older metric queries.
//!
//! Expected values are worked out by hand below from docs/reference/oal.md §3 and
//! docs/reference/query-api.md §5.2.

mod common;

use std::time::Duration;

use common::agent::{send_segments, span};
use common::graphql::Client;
use common::{Backend, scratch_dir, start_server_with};
use oap_model::{TimeBuckets, ids};
use oap_proto::v3::{KeyStringValuePair, SegmentObject, SpanLayer, SpanObject, SpanType};
use prost::Message;
use serde_json::{Value, json};

/// The UI's selection of an expression's result (booster-ui `RespFields.execExpression`).
const RESULT_FIELDS: &str = "{
    type
    results {
      metric {
        labels {
          key
          value
        }
      }
      values {
        name: id
        value
        refId: traceID
        owner {
          scope
          serviceID
          serviceName
          normal
          serviceInstanceID
          serviceInstanceName
          endpointID
          endpointName
        }
      }
    }
    error
  }";

/// The `queryData` document booster-ui builds for one widget's expressions on one entity.
fn query_data(expressions: &[&str]) -> (String, Value) {
    let mut variables = vec!["$duration: Duration!".to_owned(), "$entity: Entity!".to_owned()];
    let mut fields = String::new();
    let mut values = serde_json::Map::new();
    for (index, expression) in expressions.iter().enumerate() {
        variables.push(format!("$expression0{index}: String!"));
        fields.push_str(&format!(
            "expression0{index}: execExpression(expression: $expression0{index}, entity: $entity, \
             duration: $duration){RESULT_FIELDS}"
        ));
        values.insert(format!("expression0{index}"), json!(expression));
    }
    (format!("query queryData({}) {{{fields}}}", variables.join(",")), Value::Object(values))
}

fn segment(service: &str, instance: &str, id: String, spans: Vec<SpanObject>) -> Vec<u8> {
    SegmentObject {
        trace_id: format!("trace-{id}"),
        trace_segment_id: id,
        spans,
        service: service.to_owned(),
        service_instance: instance.to_owned(),
        ..SegmentObject::default()
    }
    .encode_to_vec()
}

/// One request of `service` at `start` ms.
fn request(
    service: &str,
    instance: &str,
    id: String,
    endpoint: &str,
    start: i64,
    latency: i64,
    failed: bool,
) -> Vec<u8> {
    let mut entry = span(0, SpanType::Entry, SpanLayer::Http, endpoint, start, latency);
    entry.is_error = failed;
    segment(service, instance, id, vec![entry])
}

/// The traffic. Minute A:
/// - shop-frontend `/api`: 100, 200, 300 (failed) and 600 ms, each calling mysql:3306 with
///   `SELECT <ms>` for 10, 20, 30 and 40 ms; `/health`: 10 ms.
/// - shop-backend `/work`: 20 ms three times; shop-admin `/admin`: 1000 ms.
///
/// Minute A + 2: shop-frontend `/api`: 50 and 150 ms.
fn traffic(minute_a: i64, minute_c: i64) -> Vec<Vec<u8>> {
    let mut segments = Vec::new();
    for (k, (latency, failed)) in [(100, false), (200, false), (300, true), (600, false)].into_iter().enumerate() {
        let mut entry = span(0, SpanType::Entry, SpanLayer::Http, "/api", minute_a, latency);
        entry.is_error = failed;
        let db = 10 * (k as i64 + 1);
        let mut exit = span(1, SpanType::Exit, SpanLayer::Database, "SELECT", minute_a + 1, db);
        exit.peer = "mysql:3306".to_owned();
        exit.component_id = 5;
        exit.tags = [("db.type", "mysql".to_owned()), ("db.statement", format!("SELECT {db}"))]
            .into_iter()
            .map(|(key, value)| KeyStringValuePair { key: key.to_owned(), value })
            .collect();
        segments.push(segment("shop-frontend", "f1", format!("api-a-{k}"), vec![entry, exit]));
    }
    segments.push(request("shop-frontend", "f1", "health-a".to_owned(), "/health", minute_a, 10, false));
    for k in 0..3 {
        segments.push(request("shop-backend", "b1", format!("work-a-{k}"), "/work", minute_a, 20, false));
    }
    segments.push(request("shop-admin", "a1", "admin-a".to_owned(), "/admin", minute_a, 1000, false));
    for (k, latency) in [50, 150].into_iter().enumerate() {
        segments.push(request("shop-frontend", "f1", format!("api-c-{k}"), "/api", minute_c, latency, false));
    }
    segments
}

fn minute_text(bucket: i64) -> String {
    let text = bucket.to_string();
    format!("{}-{}-{} {}", &text[0..4], &text[4..6], &text[6..8], &text[8..12])
}

/// The values of one result's series: `(id, value)`.
fn points(result: &Value, series: usize) -> Vec<(Value, Value)> {
    result["results"][series]["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no series {series} in {result}"))
        .iter()
        .map(|value| (value["name"].clone(), value["value"].clone()))
        .collect()
}

fn values(result: &Value, series: usize) -> Vec<Value> {
    points(result, series).into_iter().map(|(_, value)| value).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_charts_show_the_traffic_sent() {
    charts(Backend::Embedded).await;
}

/// The same charts, the same values, with the data in Elasticsearch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_charts_show_the_same_from_elasticsearch() {
    charts(Backend::elasticsearch()).await;
}

async fn charts(backend: Backend) {
    let dir = scratch_dir("mqe");
    let (mut server, ports) = start_server_with(&dir, &backend);

    let buckets = TimeBuckets::system();
    let now = oap_model::now_ms();
    let bucket_a = buckets.minute(now - 180_000).expect("minute");
    let bucket_c = buckets.minute(now - 60_000).expect("minute");
    let millis = |bucket: i64| buckets.start_millis(bucket).expect("a real minute");
    let (a, c) = (millis(bucket_a), millis(bucket_c));
    let b = a + 60_000;
    let bucket_b = buckets.minute(b).expect("minute");
    assert_eq!(buckets.minute(c).expect("minute"), bucket_c);
    send_segments(ports.grpc, traffic(a + 5_000, c + 5_000)).await;
    let duration = json!({ "start": minute_text(bucket_a), "end": minute_text(bucket_c), "step": "MINUTE" });
    let frontend = json!({ "serviceName": "shop-frontend", "normal": true });
    // Slow statements are reported every `topNReportPeriod` minutes and at a clean stop; stop
    // the server once L2 has stored the minutes, and read everything from a restarted one.
    let (document, mut variables) = query_data(&["service_cpm"]);
    variables["duration"] = duration.clone();
    variables["entity"] = frontend.clone();
    Client::new(ports.rest)
        .poll("the minutes stored", &document, variables, |data| {
            let values = data["expression00"]["results"][0]["values"].as_array().cloned().unwrap_or_default();
            values.iter().map(|point| point["value"].clone()).collect::<Vec<_>>()
                == [json!("5"), Value::Null, json!("2")]
        })
        .await;
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).is_some_and(|status| status.success()), "{}", server.log());
    let (_server, ports) = start_server_with(&dir, &backend);
    let client = Client::new(ports.rest);

    let ids = json!([a.to_string(), b.to_string(), c.to_string()]);
    let ask = |expressions: &'static [&'static str], entity: Value| {
        let client = &client;
        let duration = duration.clone();
        async move {
            let (document, mut variables) = query_data(expressions);
            variables["duration"] = duration;
            variables["entity"] = entity;
            let data = client.data(&document, variables).await;
            (0..expressions.len()).map(|index| data[format!("expression0{index}")].clone()).collect::<Vec<Value>>()
        }
    };

    // General-Service: the service's lines. Minute A: 5 requests, 1 failed, 1210 ms in all;
    // apdex T = 500: 100, 200, 10 satisfied, 600 tolerating, the failure neither:
    // (3 × 10000 + 1 × 10000 / 2) / 5 = 7000. Minute C: 2 requests, 200 ms in all, both satisfied.
    let lines =
        ask(&["service_cpm", "service_sla/100", "service_resp_time", "service_apdex/10000"], frontend.clone()).await;
    for line in &lines {
        assert_eq!(line["type"], "TIME_SERIES_VALUES", "{line}");
        assert_eq!(line["error"], Value::Null);
        assert_eq!(line["results"][0]["metric"]["labels"], json!([]));
        let names: Vec<Value> = points(line, 0).into_iter().map(|(id, _)| id).collect();
        assert_eq!(Value::Array(names), ids, "one point per minute, named by its epoch ms");
        assert_eq!(line["results"][0]["values"][0]["owner"], Value::Null);
    }
    assert_eq!(values(&lines[0], 0), [json!("5"), Value::Null, json!("2")]);
    assert_eq!(values(&lines[1], 0), [json!("80"), Value::Null, json!("100")]);
    assert_eq!(values(&lines[2], 0), [json!("242"), Value::Null, json!("100")]);
    assert_eq!(values(&lines[3], 0), [json!("0.7"), Value::Null, json!("1")]);

    // The cards: averages over the points with data.
    let cards = ask(&["avg(service_cpm)", "avg(service_sla)/100", "avg(service_apdex)/10000"], frontend.clone()).await;
    let single = |result: &Value| {
        assert_eq!(result["type"], "SINGLE_VALUE", "{result}");
        assert_eq!(result["results"][0]["values"][0]["name"], Value::Null);
        result["results"][0]["values"][0]["value"].clone()
    };
    // (5 + 2) / 2; (8000 + 10000) / 2 / 100; (7000 + 10000) / 2 / 10000.
    assert_eq!(cards.iter().map(single).collect::<Vec<_>>(), [json!("3.5"), json!("90"), json!("0.85")]);

    // Percentiles (precision 10 ms). Minute A's 5 latencies in buckets 1, 10, 20, 30, 60: p50
    // reaches round(2.5) = 3 requests at 200, p75 round(3.75) = 4 at 300, p90, p95 and p99 reach
    // 5 at 600. Minute C's 50 and 150: p50 reaches 1 at 50, the others 2 at 150.
    let percentiles = ask(
        &["relabels(service_percentile{p='50,75,90,95,99'},p='50,75,90,95,99',percentile='50,75,90,95,99')"],
        frontend.clone(),
    )
    .await;
    let percentiles = &percentiles[0];
    assert_eq!(percentiles["type"], "TIME_SERIES_VALUES", "{percentiles}");
    let expected =
        [("50", "200", "50"), ("75", "300", "150"), ("90", "600", "150"), ("95", "600", "150"), ("99", "600", "150")];
    assert_eq!(percentiles["results"].as_array().expect("series").len(), 5);
    for (series, (rank, at_a, at_c)) in expected.into_iter().enumerate() {
        let labels = &percentiles["results"][series]["metric"]["labels"];
        assert_eq!(*labels, json!([{ "key": "percentile", "value": rank }]));
        assert_eq!(values(percentiles, series), [json!(at_a), Value::Null, json!(at_c)]);
    }
    let two = ask(&["service_percentile{p='99,50'}"], frontend.clone()).await;
    let labels: Vec<Value> =
        two[0]["results"].as_array().expect("series").iter().map(|s| s["metric"]["labels"].clone()).collect();
    assert_eq!(labels, [json!([{ "key": "p", "value": "50" }]), json!([{ "key": "p", "value": "99" }])]);

    // An endpoint's line, and a relation's: the frontend called mysql:3306 4 times in minute A.
    let api = ask(
        &["endpoint_cpm", "endpoint_sla/100"],
        json!({ "serviceName": "shop-frontend", "normal": true, "endpointName": "/api" }),
    )
    .await;
    assert_eq!(values(&api[0], 0), [json!("4"), Value::Null, json!("2")]);
    assert_eq!(values(&api[1], 0), [json!("75"), Value::Null, json!("100")]);
    let relation =
        json!({ "serviceName": "shop-frontend", "normal": true, "destServiceName": "mysql:3306", "destNormal": false });
    let calls = ask(&["service_relation_client_cpm", "avg(service_relation_client_cpm)"], relation).await;
    assert_eq!(values(&calls[0], 0), [json!("4"), Value::Null, Value::Null]);
    assert_eq!(single(&calls[1]), json!("4"));

    // General-Root's rankings (entity `All`): averages over the rows of the duration, ordered by
    // the exact average, ties by entity id. Services by cpm: frontend (5 + 2) / 2 = 3.5 → 3,
    // backend 3, admin 1. By sla ascending: frontend 9000, then backend and admin at 10000,
    // admin's id first (base64 "c2hvcC1h…" < "c2hvcC1i…").
    let (frontend_id, backend_id) = (ids::service_id("shop-frontend", true), ids::service_id("shop-backend", true));
    let ranked =
        ask(&["top_n(service_cpm,10,des,attr0='GENERAL')", "top_n(service_sla,10,asc,attr0='GENERAL')/100"], json!({}))
            .await;
    for list in &ranked {
        assert_eq!(list["type"], "SORTED_LIST", "{list}");
    }
    assert_eq!(
        points(&ranked[0], 0),
        [(json!("shop-frontend"), json!("3")), (json!("shop-backend"), json!("3")), (json!("shop-admin"), json!("1"))]
    );
    assert_eq!(
        points(&ranked[1], 0),
        [
            (json!("shop-frontend"), json!("90")),
            (json!("shop-admin"), json!("100")),
            (json!("shop-backend"), json!("100"))
        ]
    );
    assert_eq!(
        ranked[0]["results"][0]["values"][1]["owner"],
        json!({ "scope": "Service", "serviceID": backend_id, "serviceName": "shop-backend", "normal": true,
                "serviceInstanceID": null, "serviceInstanceName": null, "endpointID": null, "endpointName": null })
    );
    // Endpoints globally, named with their service: /api (4 + 2) / 2 = 3 and /work 3 tie, and
    // /work's service id sorts first ("c2hvcC1i…" < "c2hvcC1m…"); then /admin and /health at 1.
    let endpoints = ask(&["top_n(endpoint_cpm,10,des,attr0='GENERAL')", "top_n(endpoint_cpm,2,des)"], json!({})).await;
    let names = |list: &Value| points(list, 0).into_iter().map(|(name, _)| name).collect::<Vec<_>>();
    assert_eq!(
        names(&endpoints[0]),
        [
            json!("shop-backend - /work"),
            json!("shop-frontend - /api"),
            json!("shop-admin - /admin"),
            json!("shop-frontend - /health")
        ]
    );
    assert_eq!(names(&endpoints[1]), [json!("shop-backend - /work"), json!("shop-frontend - /api")]);
    // General-Service's rankings are of the service's own instances and endpoints, unprefixed.
    let own = ask(
        &["top_n(endpoint_cpm,10,des)", "top_n(service_instance_cpm,10,des)", "top_n(endpoint_sla,10,asc)/100"],
        frontend.clone(),
    )
    .await;
    assert_eq!(points(&own[0], 0), [(json!("/api"), json!("3")), (json!("/health"), json!("1"))]);
    assert_eq!(points(&own[1], 0), [(json!("f1"), json!("3"))]);
    // /api's sla: 3 of 4 in minute A (7500), 2 of 2 in minute C: 8750 → 87.5.
    assert_eq!(points(&own[2], 0), [(json!("/api"), json!("87.5")), (json!("/health"), json!("100"))]);
    let owner = &own[0]["results"][0]["values"][0]["owner"];
    assert_eq!(owner["scope"], "Endpoint");
    assert_eq!(owner["endpointID"], json!(ids::endpoint_id(&ids::service_id("shop-frontend", true), "/api")));

    // The slow statements of the frontend (> 25 ms): 40 and 30 ms, with their traces.
    let slow = ask(&["top_n(top_n_service_database_statement,20,des)"], frontend.clone()).await;
    assert_eq!(slow[0]["type"], "RECORD_LIST", "{}", slow[0]);
    let records: Vec<(Value, Value, Value)> = slow[0]["results"][0]["values"]
        .as_array()
        .expect("records")
        .iter()
        .map(|record| (record["name"].clone(), record["value"].clone(), record["refId"].clone()))
        .collect();
    assert_eq!(
        records,
        [
            (json!("SELECT 40"), json!("40"), json!("trace-api-a-3")),
            (json!("SELECT 30"), json!("30"), json!("trace-api-a-2"))
        ]
    );

    // Mistakes are answered in `error`, and the other expressions of the document still are.
    let mistakes =
        ask(&["service_cpm +", "no_such_metric", "top_n(service_percentile,5,des)", "service_cpm"], frontend.clone())
            .await;
    for mistake in &mistakes[..3] {
        assert_eq!((mistake["type"].clone(), mistake["results"].clone()), (json!("UNKNOWN"), json!([])), "{mistake}");
    }
    assert_eq!(mistakes[0]["error"], "the expression is empty or ends too soon");
    assert_eq!(mistakes[1]["error"], "Metric: [no_such_metric] does not exist.");
    assert_eq!(mistakes[2]["error"], "Metric: [service_percentile] is labeled value, does not support top_n query.");
    assert_eq!(values(&mistakes[3], 0), [json!("5"), Value::Null, json!("2")]);

    // The older metric queries read the same rows.
    let older = client
        .data(
            "query older($duration: Duration!, $condition: MetricsCondition!, $percentile: MetricsCondition!, \
               $top: TopNCondition!, $records: RecordCondition!) {
               values: readMetricsValues(condition: $condition, duration: $duration) { label values { values { id value isEmptyValue } } }
               value: readMetricsValue(condition: $condition, duration: $duration)
               nullable: readNullableMetricsValue(condition: $condition, duration: $duration) { value isEmptyValue }
               labeled: readLabeledMetricsValues(condition: $percentile, labels: [\"50\", \"99\"], duration: $duration) { label values { values { value isEmptyValue } } }
               sorted: sortMetrics(condition: $top, duration: $duration) { name id value refId }
               records: readRecords(condition: $records, duration: $duration) { name value refId }
               type: typeOfMetrics(name: \"service_percentile\")
               list: listMetrics(regex: \"service_(cpm|sla)\") { name type catalog }
             }",
            json!({
                "duration": duration,
                "condition": { "name": "service_cpm", "entity": frontend },
                "percentile": { "name": "service_percentile", "entity": frontend },
                "top": { "name": "service_cpm", "topN": 2, "order": "DES" },
                "records": { "name": "top_n_service_database_statement", "parentEntity": frontend, "topN": 1, "order": "ASC" },
            }),
        )
        .await;
    let kv = |bucket: i64, value: i64, empty: bool| json!({ "id": format!("{bucket}_{frontend_id}"), "value": value, "isEmptyValue": empty });
    assert_eq!(
        older["values"],
        json!({ "label": null, "values": { "values": [kv(bucket_a, 5, false), kv(bucket_b, 0, true), kv(bucket_c, 2, false)] } })
    );
    // (5 + 2) / 2, truncated.
    assert_eq!(older["value"], 3);
    assert_eq!(older["nullable"], json!({ "value": 3, "isEmptyValue": false }));
    let line = |values: [(i64, bool); 3]| json!({ "values": values.iter().map(|(value, empty)| json!({ "value": value, "isEmptyValue": empty })).collect::<Vec<_>>() });
    assert_eq!(
        older["labeled"],
        json!([
            { "label": "50", "values": line([(200, false), (0, true), (50, false)]) },
            { "label": "99", "values": line([(600, false), (0, true), (150, false)]) },
        ])
    );
    assert_eq!(
        older["sorted"],
        json!([
            { "name": "shop-frontend", "id": frontend_id, "value": "3", "refId": null },
            { "name": "shop-backend", "id": backend_id, "value": "3", "refId": null },
        ])
    );
    assert_eq!(older["records"], json!([{ "name": "SELECT 30", "value": "30", "refId": "trace-api-a-2" }]));
    assert_eq!(older["type"], "LABELED_VALUE");
    assert_eq!(
        older["list"],
        json!([
            { "name": "service_cpm", "type": "REGULAR_VALUE", "catalog": "SERVICE" },
            { "name": "service_sla", "type": "REGULAR_VALUE", "catalog": "SERVICE" },
        ])
    );

    // A month ago lies beyond every TTL (metrics 7 days, records 3): the same queries answer
    // with empty points, empty lists and no errors.
    let month_ago = now - 30 * 86_400_000;
    let (old_start, old_end) =
        (buckets.minute(month_ago).expect("minute"), buckets.minute(month_ago + 120_000).expect("minute"));
    let old_minutes = json!({ "start": minute_text(old_start), "end": minute_text(old_end), "step": "MINUTE" });
    let (document, mut variables) =
        query_data(&["service_cpm", "avg(service_cpm)", "top_n(service_cpm,10,des,attr0='GENERAL')"]);
    variables["duration"] = old_minutes.clone();
    variables["entity"] = frontend.clone();
    let expired = client.data(&document, variables).await;
    let (line, card, ranking) = (&expired["expression00"], &expired["expression01"], &expired["expression02"]);
    assert_eq!((line["type"].clone(), line["error"].clone()), (json!("TIME_SERIES_VALUES"), Value::Null), "{line}");
    let first = millis(old_start);
    assert_eq!(
        points(line, 0),
        [
            (json!(first.to_string()), Value::Null),
            (json!((first + 60_000).to_string()), Value::Null),
            (json!((first + 120_000).to_string()), Value::Null)
        ]
    );
    assert_eq!((card["type"].clone(), card["error"].clone()), (json!("SINGLE_VALUE"), Value::Null), "{card}");
    assert_eq!(values(card, 0), [Value::Null], "an average of no points is empty");
    assert_eq!((ranking["type"].clone(), ranking["error"].clone()), (json!("SORTED_LIST"), Value::Null), "{ranking}");
    assert_eq!(points(ranking, 0), [], "one list, of no entities");
    let old_seconds = json!({
        "start": format!("{}00", minute_text(old_start)),
        "end": format!("{}59", minute_text(old_end)),
        "step": "SECOND",
    });
    let expired = client
        .data(
            "query expired($minutes: Duration!, $condition: MetricsCondition!, $traces: TraceQueryCondition) {
               values: readMetricsValues(condition: $condition, duration: $minutes) { values { values { value isEmptyValue } } }
               traces: queryBasicTraces(condition: $traces) { traces { segmentId } }
               topology: getGlobalTopology(duration: $minutes) { nodes { id } calls { id } }
             }",
            json!({
                "minutes": old_minutes,
                "condition": { "name": "service_cpm", "entity": frontend },
                "traces": { "queryDuration": old_seconds, "traceState": "ALL", "queryOrder": "BY_START_TIME", "paging": { "pageNum": 1, "pageSize": 20 } },
            }),
        )
        .await;
    let nothing = json!({ "value": 0, "isEmptyValue": true });
    assert_eq!(expired["values"]["values"]["values"], json!([nothing, nothing, nothing]));
    assert_eq!(expired["traces"], json!({ "traces": [] }));
    assert_eq!(expired["topology"], json!({ "nodes": [], "calls": [] }));
}
