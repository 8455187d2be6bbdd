//! Elasticsearch down for 30 s under load, through the real binary, with an ingest log bounded
//! to 2 MiB — less than the agents send in the outage (about 1 KiB a segment, 400 a second).
//!
//! The server reaches its Elasticsearch-API server (osmem-server, in memory) through a TCP
//! proxy of the test's, which is cut for 30 s — every connection reset, every new one refused,
//! as when Elasticsearch stops — while four agents keep reporting. Then:
//! - no call sent while the store was down is acknowledged: the calls waiting when it went down
//!   hear `UNAVAILABLE` after `ackTimeout`, later ones at once (the node is not ready: its gRPC
//!   health says `NOT_SERVING` and `/healthcheck` 503) — agents see an error, never a hang; a
//!   call may also hear `RESOURCE_EXHAUSTED` while the log is full (its files are cut only once
//!   hours and days are stored, every 4th round);
//! - the log never holds much more than its bound, and the server's memory (RSS) grows by less
//!   than 64 MiB over the outage;
//! - the rows waiting were counted (`storage_write_waiting_rows`), and the outage logged a few
//!   times, not at every retry;
//! - once the store is back the node is ready again and calls are acknowledged;
//! - every acknowledged segment is stored, each segment once;
//! - every stored segment is counted exactly once in `service_cpm`, at minute, hour and day
//!   (segments refused at the door were never analysed; those whose call timed out are stored
//!   and counted once).

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent::{RawSegmentCollection, Scrape, connect, raw_unary, span};
use common::{OapProcess, scratch_dir};
use oap_model::ids;
use oap_proto::v3::{KeyStringValuePair, SegmentObject, SpanLayer, SpanObject, SpanType};
use oap_storage_elasticsearch::test_server::TestServer;
use prost::Message;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const SERVICE: &str = "outage-svc";
const AGENTS: usize = 4;
const SEGMENTS_PER_CALL: usize = 10;
const OUTAGE: Duration = Duration::from_secs(30);
/// `logMaxSize`, and the smallest `logSegmentSize`.
const LOG_MAX: u64 = 2 << 20;
const LOG_FILE: u64 = 1 << 20;

/// A TCP proxy that can be cut and restored on the same port.
struct Proxy {
    address: SocketAddr,
    upstream: SocketAddr,
    accepting: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("an address");
        let mut proxy = Self { address, upstream, accepting: None, connections: Arc::default() };
        proxy.accept(listener);
        proxy
    }

    fn accept(&mut self, listener: TcpListener) {
        let (upstream, connections) = (self.upstream, self.connections.clone());
        self.accepting = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let connection = tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                connections.lock().expect("lock").push(connection);
            }
        }));
    }

    /// Closes the port and resets every connection.
    fn cut(&mut self) {
        if let Some(accepting) = self.accepting.take() {
            accepting.abort();
        }
        for connection in self.connections.lock().expect("lock").drain(..) {
            connection.abort();
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.address).await.expect("the same port again");
        self.accept(listener);
    }
}

/// One agent's call: `SEGMENTS_PER_CALL` segments of one entry span each, ids `<agent>-<call>-<n>`.
fn call(agent: usize, call: usize) -> (Vec<String>, Vec<u8>) {
    let now = oap_model::now_ms();
    let mut ids = Vec::new();
    let mut segments = Vec::new();
    for n in 0..SEGMENTS_PER_CALL {
        let id = format!("outage-{agent}-{call}-{n}");
        let segment = SegmentObject {
            trace_id: id.clone(),
            trace_segment_id: id.clone(),
            spans: vec![SpanObject {
                tags: vec![KeyStringValuePair { key: "http.params".to_owned(), value: "x".repeat(900) }],
                ..span(0, SpanType::Entry, SpanLayer::Http, "/order", now - 20, 10)
            }],
            service: SERVICE.to_owned(),
            service_instance: format!("agent-{agent}"),
            ..SegmentObject::default()
        };
        segments.push(segment.encode_to_vec());
        ids.push(id);
    }
    (ids, RawSegmentCollection { segments }.encode_to_vec())
}

/// What the agents saw: per call, when it was sent and answered, and its segment ids.
#[derive(Default)]
struct Calls {
    answered: Vec<(Instant, Instant, Vec<String>)>,
    failed: Vec<(Instant, Instant, tonic::Status)>,
}

async fn agent(grpc: u16, index: usize, stop: Arc<AtomicBool>, calls: Arc<Mutex<Calls>>) {
    let channel = connect(grpc).await;
    let mut number = 0;
    while !stop.load(Ordering::Relaxed) {
        let (ids, message) = call(index, number);
        number += 1;
        let sent = Instant::now();
        let outcome = raw_unary(&channel, "/skywalking.v3.TraceSegmentReportService/collectInSync", message).await;
        {
            let mut calls = calls.lock().expect("lock");
            match outcome {
                Ok(_) => calls.answered.push((sent, Instant::now(), ids)),
                Err(status) => calls.failed.push((sent, Instant::now(), status)),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A search on the Elasticsearch-API server itself.
async fn search(es: &TestServer, index: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{}/{index}/_search", es.url))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("search");
    let text = response.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// The sum of `service_cpm`'s `total` over the rows of one granularity (buckets in
/// `[low, high)`).
async fn calls_counted(es: &TestServer, low: i64, high: i64) -> i64 {
    let service = ids::service_id(SERVICE, true);
    let body = json!({
        "size": 10_000,
        "query": { "bool": { "filter": [
            { "term": { "metric_table": "service_cpm" } },
            { "term": { "entity_id": service } },
            { "range": { "time_bucket": { "gte": low, "lt": high } } },
        ] } },
    });
    // `total` is stored, not indexed: summed here from the documents.
    let found = search(es, "sw_metrics-all", body).await;
    let hits = found["hits"]["hits"].as_array().cloned().unwrap_or_default();
    hits.iter().map(|hit| hit["_source"]["total"].as_i64().expect("a total")).sum()
}

/// `GET /healthcheck`: the status code and the body.
async fn healthcheck(rest: u16) -> (u16, String) {
    let response = reqwest::get(format!("http://127.0.0.1:{rest}/healthcheck")).await.expect("GET /healthcheck");
    (response.status().as_u16(), response.text().await.expect("a body"))
}

/// The gRPC health service's status of the server as a whole.
async fn grpc_health(grpc: u16) -> ServingStatus {
    let channel = connect(grpc).await;
    let mut client = HealthClient::new(channel);
    let reply = client.check(HealthCheckRequest { service: String::new() }).await.expect("health answers");
    ServingStatus::try_from(reply.into_inner().status).expect("a status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_s_outage_is_an_error_agents_see_and_every_acknowledged_segment_is_stored_and_counted_once() {
    let es = TestServer::start().expect("the Elasticsearch-API server starts");
    let upstream: SocketAddr = es.node().parse().expect("host:port");
    let mut proxy = Proxy::start(upstream).await;

    let dir = scratch_dir("es-outage");
    let env = [
        ("SW_STORAGE", "elasticsearch".to_owned()),
        ("SW_STORAGE_ES_CLUSTER_NODES", proxy.address.to_string()),
        ("SW_STORAGE_ES_BULK_REFRESH", "true".to_owned()),
        ("SW_STORAGE_ES_SOCKET_TIMEOUT", "3000".to_owned()),
        ("SW_CORE_PERSISTENT_PERIOD", "1".to_owned()),
        ("SW_CORE_ACK_TIMEOUT", "10".to_owned()),
        ("SW_CORE_OAL_DIR", concat!(env!("CARGO_MANIFEST_DIR"), "/../oal").to_owned()),
        ("SW_PIPELINE_LOG_DIR", dir.join("ingest-log").display().to_string()),
        ("SW_PIPELINE_LOG_SEGMENT_SIZE", LOG_FILE.to_string()),
        ("SW_PIPELINE_LOG_MAX_SIZE", LOG_MAX.to_string()),
    ];
    let (server, ports) = OapProcess::start(dir, &env, &[]);
    // The log's size and the server's memory, twice a second, until the agents stop.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = tokio::spawn({
        let (watching, pid, telemetry) = (watching.clone(), server.pid(), ports.telemetry);
        async move {
            let mut samples = Vec::new();
            while watching.load(Ordering::Relaxed) {
                let log_bytes = Scrape::from_port(telemetry).await.value("ingest_log_bytes");
                let (rss, _) = oap_loadgen::bench::memory(pid).expect("the server's memory");
                samples.push((Instant::now(), log_bytes, rss));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            samples
        }
    });

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(Mutex::new(Calls::default()));
    let agents: Vec<_> =
        (0..AGENTS).map(|index| tokio::spawn(agent(ports.grpc, index, stop.clone(), calls.clone()))).collect();

    tokio::time::sleep(Duration::from_secs(8)).await;
    proxy.cut();
    let cut = Instant::now();
    tokio::time::sleep(OUTAGE / 2).await;
    let during = Scrape::from_port(ports.telemetry).await;
    let waiting = during.value("storage_write_waiting_rows{stream=\"record\"}");
    let unstored_age_during = during.value("ingest_log_oldest_unstored_age_seconds");
    let readiness_during = healthcheck(ports.rest).await;
    let grpc_health_during = grpc_health(ports.grpc).await;
    tokio::time::sleep(OUTAGE - cut.elapsed()).await;
    proxy.restore().await;
    let restored = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let readiness_after = healthcheck(ports.rest).await;
    let grpc_health_after = grpc_health(ports.grpc).await;
    let unstored_age_after = Scrape::from_port(ports.telemetry).await.value("ingest_log_oldest_unstored_age_seconds");
    stop.store(true, Ordering::Relaxed);
    for agent in agents {
        agent.await.expect("an agent");
    }
    watching.store(false, Ordering::Relaxed);
    let samples = watcher.await.expect("the watcher");

    let calls = std::mem::take(&mut *calls.lock().expect("lock"));
    let acknowledged: Vec<&String> = calls.answered.iter().flat_map(|(_, _, ids)| ids).collect();
    let during_outage = calls.answered.iter().filter(|(sent, answered, _)| *sent > cut && *answered < restored).count();
    let longest_wait = calls.failed.iter().map(|(sent, answered, _)| answered.duration_since(*sent)).max();
    println!(
        "{} calls answered ({} segments), {} refused (the longest after {longest_wait:?}); {waiting} record rows waiting in the middle of the outage",
        calls.answered.len(),
        acknowledged.len(),
        calls.failed.len(),
    );
    assert_eq!(during_outage, 0, "a call sent while the store was down was answered before it returned");
    assert!(calls.failed.len() >= AGENTS, "the agents heard of the outage");
    for (_, _, status) in &calls.failed {
        assert!(
            matches!(status.code(), tonic::Code::Unavailable | tonic::Code::ResourceExhausted),
            "refused as UNAVAILABLE or RESOURCE_EXHAUSTED: {status}"
        );
    }
    let largest_log = samples.iter().map(|(_, bytes, _)| *bytes).fold(0.0, f64::max);
    // Past the bound by at most the calls already past the door, and the file being written.
    assert!(largest_log <= (LOG_MAX + LOG_FILE) as f64, "the log held {largest_log} bytes, bound {LOG_MAX}");
    let rss_before = samples.iter().filter(|(at, _, _)| *at < cut).map(|(_, _, rss)| *rss).max().expect("samples");
    let rss_during = samples
        .iter()
        .filter(|(at, _, _)| *at >= cut && *at < restored)
        .map(|(_, _, rss)| *rss)
        .max()
        .expect("samples");
    println!(
        "the log held at most {largest_log} bytes; RSS {rss_before} KiB before the outage, at most {rss_during} KiB in it"
    );
    assert!(rss_during < rss_before + 64 * 1024, "RSS grew from {rss_before} KiB to {rss_during} KiB in the outage");
    assert!(
        longest_wait.is_some_and(|wait| wait < Duration::from_secs(20)),
        "a call waited past ackTimeout (10 s) and the store's timeout: {longest_wait:?}"
    );
    assert!(calls.answered.iter().any(|(sent, _, _)| *sent > restored), "calls are acknowledged once it is back");
    assert!(waiting > 0.0, "the waiting rows are counted");
    // Nothing is stored while the store is down: the oldest unstored epoch began before the cut.
    let half = OUTAGE.as_secs_f64() / 2.0;
    assert!(unstored_age_during >= half - 2.0, "{unstored_age_during} s unstored {half} s into the outage");
    // With `persistentPeriod` 1 s, 8 s after the store returned everything up to a few seconds ago is.
    assert!(unstored_age_after < 5.0, "{unstored_age_after} s unstored 8 s after the store returned");
    assert!(readiness_during.0 == 503 && readiness_during.1.contains("storage"), "{readiness_during:?}");
    assert_eq!(grpc_health_during, ServingStatus::NotServing);
    assert_eq!(readiness_after.0, 200, "{readiness_after:?}");
    assert_eq!(grpc_health_after, ServingStatus::Serving);

    // Every acknowledged segment is stored (ids are the segment ids, so a second copy of one
    // cannot be); segments of calls that timed out may be stored too.
    let count = search(&es, "sw_segment", json!({ "size": 0, "track_total_hits": true })).await;
    let stored = count["hits"]["total"]["value"].as_u64().expect("a count");
    assert!(stored >= acknowledged.len() as u64, "{stored} stored, {} acknowledged", acknowledged.len());
    for chunk in acknowledged.chunks(1_000) {
        let found = search(
            &es,
            "sw_segment",
            json!({ "size": 0, "track_total_hits": true, "query": { "ids": { "values": chunk } } }),
        )
        .await;
        assert_eq!(
            found["hits"]["total"]["value"].as_u64(),
            Some(chunk.len() as u64),
            "an acknowledged segment is missing"
        );
    }

    // Every stored segment (one call each) counted once, at every level, once L2 has caught up
    // (it writes hours and days every 4th round).
    let expected = stored as i64;
    let levels = [
        ("minute", 100_000_000_000, 1_000_000_000_000),
        ("hour", 1_000_000_000, 10_000_000_000),
        ("day", 10_000_000, 100_000_000),
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut counted = Vec::new();
        for (_, low, high) in levels {
            counted.push(calls_counted(&es, low, high).await);
        }
        if counted.iter().all(|calls| *calls >= expected) || Instant::now() > deadline {
            // One more round: a count that went past the expected one would show now.
            tokio::time::sleep(Duration::from_secs(5)).await;
            for (level, low, high) in levels {
                assert_eq!(calls_counted(&es, low, high).await, expected, "calls counted at the {level} level");
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let log = server.log();
    let outage_lines = log.lines().filter(|line| line.contains("WARN") && line.contains("retrying")).count();
    assert!(outage_lines <= 12, "the outage was logged {outage_lines} times:\n{log}");
}
