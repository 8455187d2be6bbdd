//! What agents send is bounded at the door, through the real binary: a segment with a 64 KiB
//! trace id is refused between valid segments under load while every acknowledged segment is
//! stored, and a service reporting 100,000 distinct endpoint names is held to
//! `maxHttpUrisNumberPerService` in bounded memory, the overflow counted.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent::{RawSegmentCollection, Scrape, connect, raw_stream, raw_unary, span};
use common::graphql::Client;
use common::{OapProcess, assert_none_lost, scratch_dir, stored_segment_ids};
use oap_proto::v3::{SegmentObject, SpanLayer, SpanType};
use prost::Message;
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;

const COLLECT: &str = "/skywalking.v3.TraceSegmentReportService/collect";
const COLLECT_IN_SYNC: &str = "/skywalking.v3.TraceSegmentReportService/collectInSync";

/// A one-span segment of `service` at `endpoint`, starting now.
fn segment(id: &str, trace: &str, service: &str, endpoint: &str) -> Vec<u8> {
    let now = oap_model::now_ms();
    SegmentObject {
        trace_id: trace.to_owned(),
        trace_segment_id: id.to_owned(),
        service: service.to_owned(),
        service_instance: format!("{service}-1"),
        spans: vec![span(0, SpanType::Entry, SpanLayer::Http, endpoint, now - 5, 5)],
        ..SegmentObject::default()
    }
    .encode_to_vec()
}

/// Sends batches of 10 valid segments until `stop`, recording the ids of acknowledged calls.
async fn send_valid(channel: Channel, writer: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<String>>>) {
    for batch in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let ids: Vec<String> = (0..10).map(|item| format!("w{writer}-b{batch}-i{item}")).collect();
        let segments = ids.iter().map(|id| segment(id, &format!("trace-{id}"), "shop", "/buy")).collect();
        let reply = raw_unary(&channel, COLLECT_IN_SYNC, RawSegmentCollection { segments }.encode_to_vec()).await;
        reply.unwrap_or_else(|status| panic!("a valid batch was refused: {status}"));
        acked.lock().expect("lock").extend(ids);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_kib_trace_id_between_valid_segments_under_load_is_refused_and_nothing_acknowledged_is_lost() {
    let dir = scratch_dir("door-long-id");
    let (mut server, ports) = OapProcess::start(dir.clone(), &[], &[]);
    let channel = connect(ports.grpc).await;
    let (stop, acked) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Vec::new())));
    let writers: Vec<_> =
        (0..4).map(|writer| tokio::spawn(send_valid(channel.clone(), writer, stop.clone(), acked.clone()))).collect();

    // Long ids, in a batch and in a stream, between valid segments, while the writers go on.
    let huge = "t".repeat(65_535);
    let mut around = Vec::new();
    for round in 0..5 {
        let (before, after) = (format!("poison-{round}-before"), format!("poison-{round}-after"));
        let batch = vec![
            segment(&before, "trace-poison", "shop", "/buy"),
            segment(&format!("poison-{round}"), &huge, "shop", "/buy"),
            segment(&after, "trace-poison", "shop", "/buy"),
        ];
        let refused = raw_unary(&channel, COLLECT_IN_SYNC, RawSegmentCollection { segments: batch }.encode_to_vec())
            .await
            .expect_err("a batch with a 64 KiB trace id is refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused}");
        assert!(refused.message().contains("longer than the 255 an id may be"), "{}", refused.message());
        let good = segment(&format!("poison-stream-{round}"), "t", "shop", "/buy");
        let mut bad = SegmentObject::decode(good.as_slice()).expect("decodes");
        bad.trace_segment_id = huge.clone();
        // A stream goes on past a refused segment and is answered at its end.
        raw_stream(&channel, COLLECT, vec![bad.encode_to_vec(), good])
            .await
            .expect("the stream survives a refused segment");
        around.extend([before, after, format!("poison-stream-{round}")]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The store still takes writes after the long ids.
    let acked_then = acked.lock().expect("lock").len();
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().expect("lock").len() < acked_then + 500 {
        assert!(Instant::now() < deadline, "the store stopped taking writes:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    let scrape = Scrape::from_port(ports.telemetry).await;
    assert!(scrape.value(r#"trace_analysis_error_count{protocol="grpc"}"#) >= 10.0);
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(30)).is_some_and(|status| status.success()), "{}", server.log());

    let stored = stored_segment_ids(&dir.join("data")).await;
    let acked: BTreeSet<String> = acked.lock().expect("lock").iter().cloned().collect();
    assert_none_lost(&acked, &stored);
    let missing: Vec<&String> = around.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(missing.is_empty(), "valid segments next to a refused one were not stored: {missing:?}");
    assert!(!stored.iter().any(|id| id.len() > 255), "a segment with a 64 KiB id was stored");
    for round in 0..5 {
        assert!(
            !stored.contains(&format!("poison-{round}")),
            "the segment with a 64 KiB trace id of round {round} was stored"
        );
    }
    eprintln!("{} acknowledged, {} stored, {} beside long ids stored", acked.len(), stored.len(), around.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_endpoint_names_in_one_service_stay_bounded_and_the_overflow_is_counted() {
    const NAMES: usize = 100_000;
    let dir = scratch_dir("door-endpoints");
    let env = [("SW_CORE_PERSISTENT_PERIOD", "1".to_owned())];
    let (server, ports) = OapProcess::start(dir.clone(), &env, &[]);
    let channel = connect(ports.grpc).await;
    for call in 0..NAMES / 1_000 {
        let segments = (0..1_000)
            .map(|item| {
                let n = call * 1_000 + item;
                segment(&format!("s{n}"), &format!("t{n}"), "crawler", &format!("/page/{n}/view"))
            })
            .collect();
        raw_unary(&channel, COLLECT_IN_SYNC, RawSegmentCollection { segments }.encode_to_vec())
            .await
            .expect("accepted");
    }
    let scrape = Scrape::from_port(ports.telemetry).await;
    // The budget is checked where each endpoint is named; the counter is updated every 5 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    let abandoned = loop {
        let counted = Scrape::from_port(ports.telemetry).await.value("endpoint_name_abandoned_count");
        if counted > 0.0 {
            break counted;
        }
        assert!(Instant::now() < deadline, "the overflow is never counted:\n{}", scrape.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(abandoned >= (NAMES - 3_000) as f64, "{abandoned} names counted as abandoned");
    assert!(server.log().contains("maxHttpUrisNumberPerService"), "the overflow is logged");

    // What the UI lists: the 3,000 admitted names and `_abandoned`, once L2 has stored them.
    let client = Client::new(ports.rest);
    let query = "query($keyword: String!) { endpoints: findEndpoint(serviceId: \"Y3Jhd2xlcg==.1\", keyword: $keyword, limit: 100000) { name } }";
    let deadline = Instant::now() + Duration::from_secs(60);
    let names: Vec<String> = loop {
        let data = client.data(query, json!({ "keyword": "" })).await;
        let names: Vec<String> = data["endpoints"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|endpoint| endpoint["name"].as_str().expect("a name").to_owned())
            .collect();
        if names.len() > 3_000 || Instant::now() > deadline {
            break names;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(names.len(), 3_001, "3,000 names and `_abandoned`");
    assert!(names.iter().any(|name| name == "_abandoned"));
    let peak = server.memory_kib().1 as f64 / 1024.0;
    assert!(peak <= 512.0, "peak RSS {peak:.0} MiB");
    eprintln!("{abandoned} endpoint names abandoned, peak RSS {peak:.0} MiB");
}
