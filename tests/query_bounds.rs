//! Queries bounded (issue 20), through the real binary with its default settings: a store of
//! twelve thousand 20-span segments, then the requests a hostile or careless client sends — a
//! 20,000-deep MQE expression, GraphQL documents nested 20,000 deep, fifty aliases of a 7-day
//! `queryBasicTraces` with `pageSize: 10000`, a batch of 200 such searches. Each gets a clear
//! GraphQL error, the server keeps answering, and its peak resident memory (`VmHWM`) stays under
//! 768 MiB. A second server with small budgets shows that a batch shares one complexity budget and
//! that an answer past `maxResponseBytes` is refused.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::agent::send_segments;
use common::graphql::Client;
use common::{Backend, OapProcess, scratch_dir, start_server_with};
use oap_loadgen::pool::Pool;
use oap_loadgen::topology::{SpanShape, Topology};
use serde_json::{Value, json};

/// The bound on the server's resident memory (issue 20).
const MAX_RSS_KIB: u64 = 768 << 10;

/// Segments stored before the attacks: more than one page of 10,000, so each search reads a full
/// page.
const SEGMENTS: usize = 12_000;

/// The default `maxRowsPerRequest`.
const MAX_ROWS_PER_REQUEST: usize = 20_000;

/// The UI's trace list document (booster-ui `queryTraces`), one alias per search.
fn trace_searches(aliases: usize) -> String {
    let mut document = String::from("query queryTraces($condition: TraceQueryCondition) {");
    for alias in 0..aliases {
        document.push_str(&format!(
            " t{alias}: queryBasicTraces(condition: $condition) {{ \
               traces {{ key: segmentId endpointNames duration start isError traceIds }} }}"
        ));
    }
    document.push('}');
    document
}

fn second_text(millis: i64) -> String {
    let bucket = oap_model::TimeBuckets::system().second(millis).expect("a second").to_string();
    format!("{}-{}-{} {}", &bucket[0..4], &bucket[4..6], &bucket[6..8], &bucket[8..14])
}

/// Every segment of the last 7 days, `page_size` at a time, newest first.
fn seven_days(page_size: usize) -> Value {
    let now = oap_model::now_ms();
    json!({ "condition": {
        "queryDuration": { "start": second_text(now - 7 * 86_400_000), "end": second_text(now + 60_000), "step": "SECOND" },
        "traceState": "ALL",
        "queryOrder": "BY_START_TIME",
        "paging": { "pageNum": 1, "pageSize": page_size },
    }})
}

/// The messages of a response's errors.
fn messages(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|error| error["message"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

/// Stores `SEGMENTS` segments of the load generator's estate (5-segment traces of 20 spans each,
/// times now), in `collectInSync` batches that are answered once stored.
async fn store_segments(grpc_port: u16) -> usize {
    let topology = Topology { shape: SpanShape::Twenty, ..Topology::default() };
    let pool = Pool::build(&topology, 200, 0.1).expect("a pool of traces");
    let now = oap_model::now_ms();
    let mut arena = BytesMut::new();
    let (mut batch, mut stored, mut bytes) = (Vec::new(), 0, 0);
    let mut trace = 0;
    while stored < SEGMENTS {
        let mut segments = Vec::new();
        pool.stamp(trace, now - 60_000 + trace as i64, &mut arena, &mut segments);
        trace += 1;
        for segment in segments {
            bytes += segment.len();
            batch.push(segment.to_vec());
        }
        if batch.len() >= 500 {
            stored += batch.len();
            send_segments(grpc_port, std::mem::take(&mut batch)).await;
        }
    }
    eprintln!("stored {stored} segments, {} bytes on average", bytes / stored);
    stored
}

/// Asserts that the server still answers, and returns its peak resident memory in KiB.
async fn alive(server: &mut OapProcess, client: &Client, after: &str) -> u64 {
    assert!(server.running(), "the server died after {after}:\n{}", server.log());
    let version = client.data("{ version }", json!({})).await;
    assert!(version["version"].is_string(), "{version}");
    let (rss, peak) = server.memory_kib();
    eprintln!("after {after}: RSS {} MiB, peak {} MiB", rss >> 10, peak >> 10);
    assert!(peak <= MAX_RSS_KIB, "peak RSS {} MiB after {after}", peak >> 10);
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_queries_get_clear_errors_and_the_server_stays_alive_and_small() {
    let dir = scratch_dir("query-bounds");
    let (mut server, ports) = start_server_with(&dir, &Backend::Embedded);
    let client = Client::new(ports.rest);
    store_segments(ports.grpc).await;

    // The store really holds a full page for every search: one search of 10,000 is answered.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = client.post(&trace_searches(1), seven_days(10_000)).await;
        let found = answer["data"]["t0"]["traces"].as_array().map_or(0, Vec::len);
        if found == 10_000 {
            break;
        }
        assert!(Instant::now() < deadline, "only {found} segments found: {}", messages(&answer).join("; "));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    alive(&mut server, &client, "storing the segments").await;

    // Fifty aliases of a 7-day search of 10,000 rows: two fit in the request's row budget; the
    // others are refused before they read, each with the budget's error.
    let answer = client.post(&trace_searches(50), seven_days(10_000)).await;
    alive(&mut server, &client, "50 aliases of 10,000 rows").await;
    let errors = messages(&answer);
    assert_eq!(errors.len(), 50 - MAX_ROWS_PER_REQUEST / 10_000, "{errors:?}");
    for error in &errors {
        assert!(error.contains("maxRowsPerRequest"), "{error}");
    }
    eprintln!("50 aliases: {}", errors[0]);

    // A batch of 200 such searches shares the request's budgets: the first two are answered.
    let request = json!({ "query": trace_searches(1), "variables": seven_days(10_000) });
    let answers = client.post_body(Value::Array(vec![request; 200]).to_string()).await;
    alive(&mut server, &client, "a batch of 200 searches").await;
    let answers = answers.as_array().expect("one answer per request of the batch");
    assert_eq!(answers.len(), 200);
    for (index, answer) in answers.iter().enumerate() {
        if index < MAX_ROWS_PER_REQUEST / 10_000 {
            assert_eq!(answer["data"]["t0"]["traces"].as_array().map(Vec::len), Some(10_000), "{index}");
        } else {
            let errors = messages(answer);
            assert!(errors.len() == 1 && errors[0].contains("maxRowsPerRequest"), "{index}: {errors:?}");
        }
    }
    eprintln!("batch of 200: {}", messages(&answers[199])[0]);

    // A 20,000-deep MQE expression, as the UI sends it (in a variable).
    let expression = format!("{}service_cpm{}", "(".repeat(20_000), ")".repeat(20_000));
    let now = oap_model::now_ms();
    let minute = |millis: i64| {
        let bucket = oap_model::TimeBuckets::system().minute(millis).expect("a minute").to_string();
        format!("{}-{}-{} {}", &bucket[0..4], &bucket[4..6], &bucket[6..8], &bucket[8..12])
    };
    let answer = client
        .data(
            "query queryData($expression: String!, $entity: Entity!, $duration: Duration!) {\
               result: execExpression(expression: $expression, entity: $entity, duration: $duration) { type error } }",
            json!({
                "expression": expression,
                "entity": { "serviceName": "bench-service-1", "normal": true },
                "duration": { "start": minute(now - 1_800_000), "end": minute(now), "step": "MINUTE" },
            }),
        )
        .await;
    alive(&mut server, &client, "a 20,000-deep expression").await;
    let error = answer["result"]["error"].as_str().expect("an error");
    assert!(error.contains("nests deeper than"), "{error}");
    eprintln!("20,000-deep MQE: {error}");

    // GraphQL documents nested 20,000 deep: selections, list values, object values.
    let deep = 20_000;
    let documents = [
        format!("{{{}version{}}}", "a{".repeat(deep), "}".repeat(deep)),
        format!("{{ version(x: {}1{}) }}", "[".repeat(deep), "]".repeat(deep)),
        format!("{{ version(x: {}1{}) }}", "{a: ".repeat(deep), "}".repeat(deep)),
    ];
    for document in documents {
        let answer = client.post(&document, json!({})).await;
        let errors = messages(&answer);
        assert!(errors.len() == 1 && errors[0].contains("nested deeper than"), "{errors:?}");
        eprintln!("20,000-deep document: {}", errors[0]);
    }
    // Up to the bound the document is parsed and validated as usual (here: an unknown argument).
    let within = 64 - 2;
    for document in [
        format!("{{ version(x: {}1{}) }}", "[".repeat(within), "]".repeat(within)),
        format!("{{ version(x: {}1{}) }}", "{a: ".repeat(within), "}".repeat(within)),
    ] {
        let errors = messages(&client.post(&document, json!({})).await);
        assert!(errors.len() == 1 && errors[0].contains("Unknown argument"), "{errors:?}");
    }
    alive(&mut server, &client, "20,000-deep documents").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_shares_one_complexity_budget_and_big_answers_are_refused() {
    let dir = scratch_dir("query-bounds-small");
    let mut env = Backend::Embedded.env(&dir);
    env.push(("SW_CORE_PERSISTENT_PERIOD", "1".to_owned()));
    env.push(("SW_CORE_OAL_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../oal").to_owned()));
    env.push(("SW_QUERY_MAX_QUERY_COMPLEXITY", "20".to_owned()));
    env.push(("SW_QUERY_MAX_RESPONSE_BYTES", "4096".to_owned()));
    let (mut server, ports) = OapProcess::start(dir.clone(), &env, &[]);
    let client = Client::new(ports.rest);
    let start = oap_model::now_ms() - 5_000;
    let (segments, _) = common::agent::python_agent(start);
    send_segments(ports.grpc, segments).await;

    // Each search costs 8 (two objects, six fields): two fit in the batch's budget of 20, the
    // third does not.
    let request = json!({ "query": trace_searches(1), "variables": seven_days(5) });
    let answers = client.post_body(Value::Array(vec![request; 3]).to_string()).await;
    let answers = answers.as_array().expect("a batch answer");
    assert_eq!(answers[0]["data"]["t0"]["traces"].as_array().map(Vec::len), Some(5), "{answers:?}");
    assert_eq!(answers[1]["data"]["t0"]["traces"].as_array().map(Vec::len), Some(5), "{answers:?}");
    let errors = messages(&answers[2]);
    assert!(errors.len() == 1 && errors[0].contains("maxQueryComplexity"), "{errors:?}");

    // A hundred segments' list is more than 4 KiB of answer.
    let answer = client.post(&trace_searches(1), seven_days(100)).await;
    let errors = messages(&answer);
    assert!(errors.len() == 1 && errors[0].contains("maxResponseBytes"), "{errors:?}");
    assert_eq!(answer["data"], Value::Null);
    // A small answer is still given.
    let answer = client.data(&trace_searches(1), seven_days(2)).await;
    assert_eq!(answer["t0"]["traces"].as_array().map(Vec::len), Some(2));
    assert!(server.running());
}
