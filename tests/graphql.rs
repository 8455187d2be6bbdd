//! The GraphQL query API through the real binary: the server is fed the real Python agent's 100
//! segments (times moved to now) and answers the documents the SkyWalking UI sends — aliases,
//! operation names and variables as booster-ui writes them — with what the capture says: the
//! service list, instances, endpoints, the segment list with its filters, order and paging, and
//! a trace's spans in tree order with refs, tags, logs and component names, and the tag
//! suggestions of the trace page. Bad input gets
//! GraphQL errors, and the server goes on.

mod common;

use std::time::Duration;

use common::agent::{python_agent, send_segments};
use common::graphql::{Client, check_cases};
use common::{Backend, OapProcess, scratch_dir, wait_until_persisted};
use oap_model::ids;
use serde_json::{Value, json};

/// The UI's trace list document (booster-ui `queryTraces`).
const QUERY_TRACES: &str = "query queryTraces($condition: TraceQueryCondition) {
  data: queryBasicTraces(condition: $condition) {
    traces { key: segmentId endpointNames duration start isError traceIds }
  }
}";

/// The UI's trace detail document (booster-ui `queryTrace`).
const QUERY_TRACE: &str = "query queryTrace($traceId: ID!) {
  trace: queryTrace(traceId: $traceId) {
    spans {
      traceId segmentId spanId parentSpanId
      refs { traceId parentSegmentId parentSpanId type }
      serviceCode serviceInstanceName startTime endTime endpointName type peer component isError layer
      tags { key value }
      logs { time data { key value } }
      attachedEvents { startTime { seconds nanos } event endTime { seconds nanos } tags { key value } summary { key value } }
    }
  }
}";

fn second(millis: i64) -> String {
    let buckets = oap_model::TimeBuckets::system();
    let bucket = buckets.second(millis).expect("a second").to_string();
    format!("{}-{}-{} {}", &bucket[0..4], &bucket[4..6], &bucket[6..8], &bucket[8..14])
}

fn condition(start: i64, extra: Value) -> Value {
    let mut condition = json!({
        "queryDuration": { "start": second(start - 60_000), "end": second(start + 60_000), "step": "SECOND" },
        "traceState": "ALL",
        "queryOrder": "BY_START_TIME",
        "paging": { "pageNum": 1, "pageSize": 20 },
    });
    for (key, value) in extra.as_object().expect("an object") {
        condition[key] = value.clone();
    }
    json!({ "condition": condition })
}

fn traces(data: &Value) -> &Vec<Value> {
    data["data"]["traces"].as_array().expect("traces")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_documents_answer_with_the_python_agents_services_and_traces() {
    ui_documents(Backend::Embedded).await;
}

/// The same documents, the same answers, with the data in Elasticsearch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_documents_answer_the_same_from_elasticsearch() {
    ui_documents(Backend::elasticsearch()).await;
}

async fn ui_documents(backend: Backend) {
    let dir = scratch_dir("graphql");
    let mut env = backend.env(&dir);
    env.push(("SW_CORE_PERSISTENT_PERIOD", "1".to_owned()));
    env.push(("SW_CORE_OAL_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../oal").to_owned()));
    let (mut server, ports) = OapProcess::start(dir.clone(), &env, &[]);

    let start = oap_model::now_ms() - 5_000;
    let (segments, decoded) = python_agent(start);
    send_segments(ports.grpc, segments).await;
    // Segments are stored before the agent is answered; the lists, topology and metrics wait for
    // L2's rounds (one a second) in every partition.
    wait_until_persisted(&server, ports.telemetry, "minute", Duration::from_secs(60)).await;
    let client = Client { http: reqwest::Client::new(), port: ports.rest };

    // The shell.
    let shell = client
        .data(
            "query queryOAPTimeInfo { getTimeInfo { timezone currentTimestamp } version \
             getRecordsTTL { normal trace coldTrace } getMetricsTTL { minute hour day coldDay } }",
            json!({}),
        )
        .await;
    let timezone = shell["getTimeInfo"]["timezone"].as_str().expect("timezone");
    assert!(timezone.len() == 5 && (timezone.starts_with('+') || timezone.starts_with('-')), "{timezone}");
    let now = shell["getTimeInfo"]["currentTimestamp"].as_i64().expect("a Long");
    assert!((now - oap_model::now_ms()).abs() < 60_000);
    assert_eq!(shell["getRecordsTTL"], json!({ "normal": 3, "trace": 3, "coldTrace": -1 }));
    assert_eq!(shell["getMetricsTTL"], json!({ "minute": 7, "hour": 7, "day": 7, "coldDay": -1 }));

    // The dashboards, as booster-ui loads them: each configuration is JSON text of a GENERAL
    // dashboard, one of them the layer's root.
    let templates = client
        .data("query templates {\n    getAllTemplates {\n      id,\n      configuration,\n    }\n  }", json!({}))
        .await;
    let dashboards: Vec<Value> = templates["getAllTemplates"]
        .as_array()
        .expect("templates")
        .iter()
        .map(|template| serde_json::from_str(template["configuration"].as_str().expect("text")).expect("JSON"))
        .collect();
    let names: Vec<(&str, &str)> = dashboards
        .iter()
        .map(|dashboard| (dashboard["name"].as_str().expect("name"), dashboard["entity"].as_str().expect("entity")))
        .collect();
    assert_eq!(
        names,
        [
            ("General-Root", "All"),
            ("General-Service", "Service"),
            ("General-Instance", "ServiceInstance"),
            ("General-Endpoint", "Endpoint"),
            ("General-Service-Relation", "ServiceRelation"),
            ("General-Instance-Relation", "ServiceInstanceRelation"),
            ("General-Endpoint-Relation", "EndpointRelation"),
        ]
    );
    assert!(dashboards.iter().all(|dashboard| dashboard["layer"] == "GENERAL"));

    // The menu booster-ui loads first: the general services are there, no virtual database.
    let menu = client
        .data(
            "query menuItems { getMenuItems { title icon layer activate description documentLink i18nKey \
               subItems { title icon layer activate description documentLink i18nKey } } }",
            json!({}),
        )
        .await;
    let group = &menu["getMenuItems"][0];
    assert_eq!((group["layer"].clone(), group["activate"].clone()), (json!(""), json!(true)));
    let leaves: Vec<(Value, Value)> = group["subItems"]
        .as_array()
        .expect("leaves")
        .iter()
        .map(|leaf| (leaf["layer"].clone(), leaf["activate"].clone()))
        .collect();
    assert_eq!(leaves[..2], [(json!("GENERAL"), json!(true)), (json!("VIRTUAL_DATABASE"), json!(false))]);

    // The capture's minute, as the UI's duration picker sends it.
    let minute = oap_model::TimeBuckets::system().minute(start).expect("minute").to_string();
    let minute_text =
        |bucket: &str| format!("{}-{}-{} {}", &bucket[0..4], &bucket[4..6], &bucket[6..8], &bucket[8..12]);
    let duration = json!({ "start": minute_text(&minute), "end": minute_text(&minute), "step": "MINUTE" });

    // The lists, topologies, metrics and tag suggestions the UI pages ask for: tests/cases/graphql.
    check_cases(&client, &duration).await;
    let frontend = ids::service_id("py-frontend", true);

    // The segment list: 100 segments, 20 in error; newest first; pages of 15.
    let page = |number: i64, size: i64, extra: Value| {
        let mut extra = extra;
        extra["paging"] = json!({ "pageNum": number, "pageSize": size });
        condition(start, extra)
    };
    let all = client.data(QUERY_TRACES, page(1, 100, json!({}))).await;
    assert_eq!(traces(&all).len(), 100);
    let starts: Vec<i64> =
        traces(&all).iter().map(|trace| trace["start"].as_str().expect("text").parse().expect("ms")).collect();
    assert!(starts.windows(2).all(|pair| pair[0] >= pair[1]), "newest first: {starts:?}");
    let errors = client.data(QUERY_TRACES, page(1, 100, json!({ "traceState": "ERROR" }))).await;
    assert_eq!(traces(&errors).len(), 20, "10 failed traces, one segment per service each");
    let front_errors =
        client.data(QUERY_TRACES, page(1, 100, json!({ "traceState": "ERROR", "serviceId": frontend }))).await;
    assert_eq!(traces(&front_errors).len(), 10);
    assert!(traces(&front_errors).iter().all(|trace| trace["endpointNames"] == json!(["/api"])));
    let first = client.data(QUERY_TRACES, page(1, 15, json!({}))).await;
    let second_page = client.data(QUERY_TRACES, page(7, 15, json!({}))).await;
    assert_eq!((traces(&first).len(), traces(&second_page).len()), (15, 10), "100 = 6 × 15 + 10");
    assert_eq!(traces(&first)[0], traces(&all)[0]);
    let slowest = client.data(QUERY_TRACES, page(1, 1, json!({ "queryOrder": "BY_DURATION" }))).await;
    let longest = decoded
        .iter()
        .map(|segment| {
            let first = segment.spans.iter().map(|span| span.start_time).min().expect("spans");
            let last = segment.spans.iter().map(|span| span.end_time).max().expect("spans");
            last - first
        })
        .max()
        .expect("segments");
    assert_eq!(traces(&slowest)[0]["duration"], json!(longest));

    // A failed trace in detail: py-frontend-error.bin and its backend child (lines 10 and 9).
    let failed = &decoded[9];
    let child = &decoded[8];
    assert_eq!((failed.service.as_str(), child.service.as_str()), ("py-frontend", "py-backend"));
    let detail = client.data(QUERY_TRACE, json!({ "traceId": failed.trace_id })).await;
    let spans = detail["trace"]["spans"].as_array().expect("spans");
    let summary: Vec<(String, i64, String, String, String)> = spans
        .iter()
        .map(|span| {
            (
                span["serviceCode"].as_str().expect("service").to_owned(),
                span["spanId"].as_i64().expect("id"),
                span["type"].as_str().expect("type").to_owned(),
                span["endpointName"].as_str().expect("name").to_owned(),
                span["component"].as_str().expect("component").to_owned(),
            )
        })
        .collect();
    let row = |service: &str, id, kind: &str, name: &str, component: &str| {
        (service.to_owned(), id, kind.to_owned(), name.to_owned(), component.to_owned())
    };
    assert_eq!(
        summary,
        [
            row("py-frontend", 0, "Entry", "/api", "Flask"),
            row("py-frontend", 1, "Exit", "/work", "Requests"),
            row("py-backend", 0, "Entry", "/work", "Flask"),
        ]
    );
    let backend_entry = &spans[2];
    assert_eq!(
        backend_entry["refs"],
        json!([{ "traceId": failed.trace_id, "parentSegmentId": failed.trace_segment_id, "parentSpanId": 1,
                 "type": "CROSS_PROCESS" }])
    );
    assert_eq!(backend_entry["isError"], json!(true));
    assert_eq!(backend_entry["layer"], json!("Http"));
    let logs = backend_entry["logs"].as_array().expect("logs");
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["data"][0]["key"], json!("Traceback"));
    assert!(
        backend_entry["tags"].as_array().expect("tags").contains(&json!({ "key": "http.status_code", "value": "500" }))
    );
    assert_eq!(spans[1]["peer"], json!("127.0.0.1:18082"));

    // Bad input: GraphQL errors, and the server goes on.
    let bad_duration = client
        .post(
            QUERY_TRACES,
            condition(start, json!({ "queryDuration": { "start": "yesterday", "end": "today", "step": "SECOND" } })),
        )
        .await;
    let message = bad_duration["errors"][0]["message"].as_str().expect("an error");
    assert!(message.contains("is not a SECOND time"), "{message}");
    let huge_page = client.post(QUERY_TRACES, page(1, 1_000_000, json!({}))).await;
    assert!(huge_page["errors"][0]["message"].as_str().expect("an error").contains("pageSize"), "{huge_page}");
    let unknown = client.post("{ listServices { nope } }", json!({})).await;
    assert!(unknown["errors"][0]["message"].as_str().expect("an error").contains("nope"), "{unknown}");
    let normal = client.post("{ queryTrace(traceId: \"x\") { spans { logs { data { key } } } } }", json!({})).await;
    assert_eq!(normal["data"]["queryTrace"]["spans"], json!([]), "an unknown trace has no spans: {normal}");
    // 4 levels to `type`, then 25 of `ofType`: deeper than maxQueryDepth (20).
    let nested = (0..25).fold("name".to_owned(), |inner, _| format!("ofType {{ {inner} }}"));
    let deep = format!("{{ __schema {{ queryType {{ fields {{ type {{ {nested} }} }} }} }} }}");
    let rejected = client.post(&deep, json!({})).await;
    let message = rejected["errors"][0]["message"].as_str().expect("an error");
    assert!(message.contains("too deep"), "{message}");
    assert_eq!(
        client.data("{ version }", json!({})).await["version"].as_str().map(|v| v.ends_with("oap-rs")),
        Some(true)
    );

    // The settings page.
    let ttl: Value = serde_json::from_str(&client.get("/status/config/ttl", "application/json").await).expect("JSON");
    assert_eq!((ttl["metrics"]["day"].clone(), ttl["records"]["trace"].clone()), (json!(7), json!(3)));
    assert!(client.get("/status/config/ttl", "text/plain").await.contains("records.trace=3\n"));
    let nodes: Value =
        serde_json::from_str(&client.get("/status/cluster/nodes", "application/json").await).expect("JSON");
    assert_eq!(nodes["nodes"], json!([{ "host": "127.0.0.1", "port": ports.grpc, "self": true }]));

    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(30)).expect("stopped").success(), "{}", server.log());
}
