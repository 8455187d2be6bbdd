//! The real `oap-server` binary receiving what agents send — the Python agent's recorded
//! segments, and malformed input no agent should send — over gRPC (stream, batch, compat name)
//! and HTTP. Each bad message is refused with a clear status and counted; the stream, the
//! connection and the server go on. The counters are read back from `/metrics`.

mod common;

use common::agent::{RawSegmentCollection, Scrape, connect, raw_stream, raw_unary, segment_bytes, segment_json};
use common::{OapProcess, Ports, scratch_dir};
use oap_proto::v3::configuration_discovery_service_client::ConfigurationDiscoveryServiceClient;
use oap_proto::v3::management_service_client::ManagementServiceClient;
use oap_proto::v3::meter_report_service_client::MeterReportServiceClient;
use oap_proto::v3::profile_task_client::ProfileTaskClient;
use oap_proto::v3::{
    ConfigurationSyncRequest, InstancePingPkg, InstanceProperties, KeyStringValuePair, MeterData, MeterSingleValue,
    ProfileTaskCommandQuery, SegmentObject, meter_data,
};
use prost::Message;
use reqwest::StatusCode;
use tonic::Code;

/// Small enough that a test can send a message over it.
const MAX_MESSAGE_SIZE: usize = 64 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("test runtime")
}

/// A server on ports it picks, with a small message size limit.
fn start(name: &str) -> (OapProcess, Ports) {
    OapProcess::start(scratch_dir(name), &[("SW_CORE_GRPC_MAX_MESSAGE_SIZE", MAX_MESSAGE_SIZE.to_string())], &[])
}

/// A segment that decodes but has no spans.
fn spanless_segment() -> Vec<u8> {
    SegmentObject {
        trace_id: "t1".to_owned(),
        trace_segment_id: "s1".to_owned(),
        service: "svc".to_owned(),
        service_instance: "inst".to_owned(),
        ..SegmentObject::default()
    }
    .encode_to_vec()
}

/// Not a protobuf message: field 15, wire type 7 (there is no wire type 7).
const GARBAGE: &[u8] = &[0x7f, 0xff, 0xff];

const COLLECT: &str = "/skywalking.v3.TraceSegmentReportService/collect";
const COLLECT_IN_SYNC: &str = "/skywalking.v3.TraceSegmentReportService/collectInSync";

#[test]
fn grpc_streams_and_batches_go_on_past_bad_segments() {
    let (server, ports) = start("receive-grpc");
    runtime().block_on(async {
        let channel = connect(ports.grpc).await;
        let grpc = |scrape: &Scrape| {
            (
                scrape.value(r#"trace_in_latency_count{protocol="grpc"}"#),
                scrape.value(r#"trace_analysis_error_count{protocol="grpc"}"#),
            )
        };

        // One stream: good, garbage, spanless, good. Both bad ones are rejected, the stream
        // goes on, and the reply comes once, at the end.
        let messages =
            vec![segment_bytes("py-frontend-0"), GARBAGE.to_vec(), spanless_segment(), segment_bytes("py-backend-0")];
        let reply = raw_stream(&channel, COLLECT, messages).await.expect("the stream survives bad segments");
        assert!(reply.commands.is_empty());
        assert_eq!(grpc(&Scrape::from_port(ports.telemetry).await), (4.0, 2.0));

        // A batch with one bad segment: the good one is kept, the reply says so.
        let batch = RawSegmentCollection { segments: vec![segment_bytes("py-frontend-1"), GARBAGE.to_vec()] };
        let status = raw_unary(&channel, COLLECT_IN_SYNC, batch.encode_to_vec()).await.expect_err("one is bad");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with("1 of 2 segments rejected, the first because malformed"), "{status:?}");
        assert!(status.message().ends_with("the others were accepted"), "{status:?}");
        assert_eq!(grpc(&Scrape::from_port(ports.telemetry).await), (6.0, 3.0));

        // The package-less compat name older agents use.
        let batch = RawSegmentCollection { segments: vec![segment_bytes("py-backend-1")] };
        raw_unary(&channel, "/TraceSegmentReportService/collectInSync", batch.encode_to_vec())
            .await
            .expect("compat name served");
        assert_eq!(grpc(&Scrape::from_port(ports.telemetry).await), (7.0, 3.0));

        // A message over maxMessageSize ends its stream with RESOURCE_EXHAUSTED, after the good
        // segment before it was taken.
        let messages = vec![segment_bytes("py-frontend-error"), vec![0; MAX_MESSAGE_SIZE + 1]];
        let status = raw_stream(&channel, COLLECT, messages).await.expect_err("over the limit");
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert_eq!(grpc(&Scrape::from_port(ports.telemetry).await), (8.0, 4.0));

        // The same connection carries the next stream as if nothing happened.
        raw_stream(&channel, COLLECT, vec![segment_bytes("py-backend-error")]).await.expect("next stream");
        // An empty stream (agents open them and close them empty) is answered too.
        raw_stream(&channel, COLLECT, Vec::new()).await.expect("empty stream");
        assert_eq!(grpc(&Scrape::from_port(ports.telemetry).await), (9.0, 4.0));

        let status = raw_unary(&channel, "/skywalking.v3.TraceSegmentReportService/noSuchMethod", Vec::new())
            .await
            .expect_err("no such method");
        assert_eq!(status.code(), Code::Unimplemented);
    });
    drop(server);
}

#[test]
fn http_segments_are_accepted_and_bad_ones_get_400_or_413() {
    let (server, ports) = start("receive-http");
    runtime().block_on(async {
        let client = reqwest::Client::new();
        let url = |path: &str| format!("http://127.0.0.1:{}{path}", ports.rest);
        let post = |path: &str, body: String| client.post(url(path)).body(body).send();

        let response = post("/v3/segment", segment_json(1)).await.expect("POST");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.expect("body"), "{}", "an empty Commands");

        // Unknown fields are skipped, and 64-bit integers may be numbers instead of strings.
        let mut lenient: serde_json::Value = serde_json::from_str(&segment_json(2)).expect("JSON");
        lenient["someFutureField"] = serde_json::json!({"nested": true});
        let start = lenient["spans"][0]["startTime"].as_str().expect("a string").parse::<i64>().expect("number");
        lenient["spans"][0]["startTime"] = serde_json::json!(start);
        let response = post("/v3/segment", lenient.to_string()).await.expect("POST");
        assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap_or_default());

        let response = post("/v3/segment", "{not json".to_owned()).await.expect("POST");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.text().await.expect("body").starts_with("invalid SegmentObject JSON"));

        let mut spanless: serde_json::Value = serde_json::from_str(&segment_json(3)).expect("JSON");
        spanless["spans"] = serde_json::json!([]);
        let response = post("/v3/segment", spanless.to_string()).await.expect("POST");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.text().await.expect("body").contains("has no spans"));

        // A batch keeps its good elements and says how many it rejected.
        let batch = format!(r#"[{}, {{"traceId": 5}}]"#, segment_json(4));
        let response = post("/v3/segments", batch).await.expect("POST");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let text = response.text().await.expect("body");
        assert!(text.starts_with("1 of 2 elements rejected") && text.ends_with("the others were accepted"), "{text}");
        let response = post("/v3/segments", format!("[{}]", segment_json(5))).await.expect("POST");
        assert_eq!(response.status(), StatusCode::OK);

        let response = post("/v3/segment", " ".repeat(MAX_MESSAGE_SIZE + 1)).await.expect("POST");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

        // Timed: 2 good, bad JSON, spanless, 2 in the first batch, 1 in the second; the body
        // over the limit was never read. Rejected: bad JSON, spanless, one batch element, and
        // the body over the limit.
        let scrape = Scrape::from_port(ports.telemetry).await;
        assert_eq!(scrape.value(r#"trace_in_latency_count{protocol="http"}"#), 7.0);
        assert_eq!(scrape.value(r#"trace_analysis_error_count{protocol="http"}"#), 4.0);
        assert_eq!(scrape.value(r#"trace_in_latency_count{protocol="grpc"}"#), 0.0);
    });
    drop(server);
}

#[test]
fn management_and_the_quiet_receivers_answer_and_count() {
    let (server, ports) = start("receive-management");
    runtime().block_on(async {
        let channel = connect(ports.grpc).await;
        let mut management = ManagementServiceClient::new(channel.clone());
        let properties = InstanceProperties {
            service: "py-frontend".to_owned(),
            service_instance: "py-frontend-1@127.0.0.1".to_owned(),
            properties: vec![KeyStringValuePair { key: "language".to_owned(), value: "python".to_owned() }],
            layer: String::new(),
        };
        management.report_instance_properties(properties).await.expect("properties");
        let ping = InstancePingPkg {
            service: "py-frontend".to_owned(),
            service_instance: "py-frontend-1@127.0.0.1".to_owned(),
            layer: String::new(),
        };
        management.keep_alive(ping.clone()).await.expect("heartbeat");
        let mut compat = oap_proto::compat::management_service_client::ManagementServiceClient::new(channel.clone());
        compat.keep_alive(ping).await.expect("compat heartbeat");
        let status = management.keep_alive(InstancePingPkg::default()).await.expect_err("no names");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "InstancePingPkg has an empty `service`");

        let client = reqwest::Client::new();
        let url = |path: &str| format!("http://127.0.0.1:{}{path}", ports.rest);
        let response = client
            .post(url("/v3/management/keepAlive"))
            .body(r#"{"service": "node-frontend", "serviceInstance": "i-1"}"#)
            .send()
            .await
            .expect("POST");
        assert_eq!(response.status(), StatusCode::OK);
        let response = client.post(url("/v3/management/reportProperties")).body("[]").send().await.expect("POST");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);

        // Meters: a stream of two, and an empty stream, each answered once.
        let meter = |name: &str| MeterData {
            metric: Some(meter_data::Metric::SingleValue(MeterSingleValue {
                name: name.to_owned(),
                labels: Vec::new(),
                value: 0.5,
            })),
            service: "py-frontend".to_owned(),
            service_instance: "py-frontend-1@127.0.0.1".to_owned(),
            timestamp: 1_795_262_903_572,
        };
        let mut meters = MeterReportServiceClient::new(channel.clone());
        meters.collect(tokio_stream::iter(vec![meter("a"), meter("b")])).await.expect("meters");
        meters.collect(tokio_stream::iter(Vec::<MeterData>::new())).await.expect("empty meter stream");

        // No profiling task and no dynamic configuration: empty Commands.
        let mut profile = ProfileTaskClient::new(channel.clone());
        let query = ProfileTaskCommandQuery {
            service: "py-frontend".to_owned(),
            service_instance: "py-frontend-1@127.0.0.1".to_owned(),
            last_command_time: -1,
        };
        assert!(profile.get_profile_task_commands(query).await.expect("profile").into_inner().commands.is_empty());
        let mut discovery = ConfigurationDiscoveryServiceClient::new(channel.clone());
        let request = ConfigurationSyncRequest { service: "py-frontend".to_owned(), uuid: String::new() };
        assert!(discovery.fetch_configurations(request).await.expect("configuration").into_inner().commands.is_empty());

        // A malformed log in a stream is counted, the stream goes on; JVM metrics are counted.
        raw_stream(&channel, "/skywalking.v3.LogReportService/collect", vec![GARBAGE.to_vec()]).await.expect("logs");
        raw_stream(&channel, "/JVMMetricReportService/collect", vec![vec![0x08, 0x01]]).await.expect("jvm");

        // Events over HTTP need a layer.
        let event = r#"[{"uuid": "e1", "name": "Start", "layer": "GENERAL"}, {"uuid": "e2", "name": "Start"}]"#;
        let response = client.post(url("/v3/events")).body(event).send().await.expect("POST");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.text().await.expect("body").contains("an event needs a `layer`"));

        let scrape = Scrape::from_port(ports.telemetry).await;
        let counted = [
            (r#"management_in_latency_count{protocol="grpc"}"#, 4.0),
            (r#"management_analysis_error_count{protocol="grpc"}"#, 1.0),
            (r#"management_in_latency_count{protocol="http"}"#, 2.0),
            (r#"management_analysis_error_count{protocol="http"}"#, 1.0),
            (r#"meter_in_latency_count{protocol="grpc"}"#, 2.0),
            (r#"meter_analysis_error_count{protocol="grpc"}"#, 0.0),
            (r#"profile_in_latency_count{protocol="grpc"}"#, 1.0),
            (r#"configuration_discovery_in_latency_count{protocol="grpc"}"#, 1.0),
            (r#"log_in_latency_count{protocol="grpc"}"#, 1.0),
            (r#"log_analysis_error_count{protocol="grpc"}"#, 1.0),
            (r#"jvm_in_latency_count{protocol="grpc"}"#, 1.0),
            (r#"event_in_latency_count{protocol="http"}"#, 2.0),
            (r#"event_analysis_error_count{protocol="http"}"#, 1.0),
        ];
        for (series, expected) in counted {
            assert_eq!(scrape.value(series), expected, "{series}");
        }
    });
    drop(server);
}
