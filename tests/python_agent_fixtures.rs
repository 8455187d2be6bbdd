//! The wire bytes the real Python agent sent (`tests/fixtures/python-agent/*.bin`) decode with
//! the generated types into exactly what the JSON capture of the same segment says.
//!
//! The comparison walks the JSON independently of the generated code (proto3 JSON mapping:
//! camelCase names, int64 as strings, enums by name, defaults printed), so a wrong field number
//! or type in our `.proto` files shows up as a mismatch. Separately, the generated proto3 JSON
//! mapping (pbjson) must read every capture line into the same message the bytes decode to.

use std::path::PathBuf;

use oap_proto::v3::{KeyStringValuePair, RefType, SegmentObject, SpanLayer, SpanType};
use prost::Message;
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/python-agent")
}

fn capture_lines() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("python.jsonl")).expect("read python.jsonl");
    text.lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect()
}

fn text<'a>(json: &'a Value, key: &str) -> &'a str {
    json[key].as_str().unwrap_or_else(|| panic!("`{key}` is text in {json}"))
}

fn int64(json: &Value, key: &str) -> i64 {
    text(json, key).parse().unwrap_or_else(|_| panic!("`{key}` is an int64 string in {json}"))
}

fn int32(json: &Value, key: &str) -> i32 {
    json[key].as_i64().unwrap_or_else(|| panic!("`{key}` is a number in {json}")) as i32
}

fn boolean(json: &Value, key: &str) -> bool {
    json[key].as_bool().unwrap_or_else(|| panic!("`{key}` is a boolean in {json}"))
}

fn array<'a>(json: &'a Value, key: &str) -> &'a Vec<Value> {
    json[key].as_array().unwrap_or_else(|| panic!("`{key}` is an array in {json}"))
}

fn assert_pairs(decoded: &[KeyStringValuePair], json: &[Value]) {
    assert_eq!(decoded.len(), json.len());
    for (pair, json) in decoded.iter().zip(json) {
        assert_eq!(pair.key, text(json, "key"));
        assert_eq!(pair.value, text(json, "value"));
    }
}

/// Checks every field of a decoded segment against its JSON capture.
fn assert_segment_matches(segment: &SegmentObject, json: &Value) {
    assert_eq!(segment.trace_id, text(json, "traceId"));
    assert_eq!(segment.trace_segment_id, text(json, "traceSegmentId"));
    assert_eq!(segment.service, text(json, "service"));
    assert_eq!(segment.service_instance, text(json, "serviceInstance"));
    assert_eq!(segment.is_size_limited, boolean(json, "isSizeLimited"));
    let spans = array(json, "spans");
    assert_eq!(segment.spans.len(), spans.len());
    for (span, json) in segment.spans.iter().zip(spans) {
        assert_eq!(span.span_id, int32(json, "spanId"));
        assert_eq!(span.parent_span_id, int32(json, "parentSpanId"));
        assert_eq!(span.start_time, int64(json, "startTime"));
        assert_eq!(span.end_time, int64(json, "endTime"));
        assert_eq!(span.operation_name, text(json, "operationName"));
        assert_eq!(span.peer, text(json, "peer"));
        assert_eq!(span.span_type().as_str_name(), text(json, "spanType"));
        assert_eq!(span.span_layer().as_str_name(), text(json, "spanLayer"));
        assert_eq!(span.component_id, int32(json, "componentId"));
        assert_eq!(span.is_error, boolean(json, "isError"));
        assert_eq!(span.skip_analysis, boolean(json, "skipAnalysis"));
        assert_pairs(&span.tags, array(json, "tags"));
        let logs = array(json, "logs");
        assert_eq!(span.logs.len(), logs.len());
        for (log, json) in span.logs.iter().zip(logs) {
            assert_eq!(log.time, int64(json, "time"));
            assert_pairs(&log.data, array(json, "data"));
        }
        let refs = array(json, "refs");
        assert_eq!(span.refs.len(), refs.len());
        for (reference, json) in span.refs.iter().zip(refs) {
            assert_eq!(reference.ref_type().as_str_name(), text(json, "refType"));
            assert_eq!(reference.trace_id, text(json, "traceId"));
            assert_eq!(reference.parent_trace_segment_id, text(json, "parentTraceSegmentId"));
            assert_eq!(reference.parent_span_id, int32(json, "parentSpanId"));
            assert_eq!(reference.parent_service, text(json, "parentService"));
            assert_eq!(reference.parent_service_instance, text(json, "parentServiceInstance"));
            assert_eq!(reference.parent_endpoint, text(json, "parentEndpoint"));
            assert_eq!(reference.network_address_used_at_peer, text(json, "networkAddressUsedAtPeer"));
        }
    }
}

#[test]
fn every_bin_decodes_to_its_json_capture() {
    let lines = capture_lines();
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(fixtures()).expect("list fixtures") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("bin") {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read .bin");
        let segment = SegmentObject::decode(bytes.as_slice()).expect("decodes as SegmentObject");
        let json = lines
            .iter()
            .find(|line| text(line, "traceSegmentId") == segment.trace_segment_id)
            .unwrap_or_else(|| panic!("{} has a line in python.jsonl", path.display()));
        assert_segment_matches(&segment, json);
        // Re-encoding gives the bytes back: nothing was lost or reordered in decoding.
        assert_eq!(segment.encode_to_vec(), bytes, "{} re-encodes identically", path.display());
        checked.push(path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned());
    }
    checked.sort();
    assert_eq!(
        checked,
        [
            "py-backend-0.bin",
            "py-backend-1.bin",
            "py-backend-error.bin",
            "py-frontend-0.bin",
            "py-frontend-1.bin",
            "py-frontend-error.bin"
        ]
    );
}

#[test]
fn decoded_fixtures_show_the_documented_agent_facts() {
    let decode = |name: &str| {
        let bytes = std::fs::read(fixtures().join(name)).expect("read .bin");
        SegmentObject::decode(bytes.as_slice()).expect("decodes")
    };
    // Frontend: spans in finish order, the Requests exit (7002) before the Flask entry (7001).
    let frontend = decode("py-frontend-0.bin");
    assert_eq!(frontend.service, "py-frontend");
    let kinds: Vec<(i32, SpanType, i32)> =
        frontend.spans.iter().map(|s| (s.span_id, s.span_type(), s.component_id)).collect();
    assert_eq!(kinds, [(1, SpanType::Exit, 7002), (0, SpanType::Entry, 7001)]);
    assert_eq!(frontend.spans[0].peer, "127.0.0.1:18082");
    assert!(frontend.spans.iter().all(|s| s.span_layer() == SpanLayer::Http));
    // Entry span 0 is absent on the wire but decodes as 0, and parentSpanId -1 survives.
    assert_eq!(frontend.spans[1].parent_span_id, -1);

    // Backend: one entry span whose cross-process ref points at the frontend's exit span.
    let backend = decode("py-backend-0.bin");
    let entry = &backend.spans[0];
    assert_eq!((entry.span_id, entry.span_type()), (0, SpanType::Entry));
    let reference = &entry.refs[0];
    assert_eq!(reference.ref_type(), RefType::CrossProcess);
    assert_eq!(reference.parent_trace_segment_id, frontend.trace_segment_id);
    assert_eq!(reference.parent_span_id, 1);
    assert_eq!(reference.parent_endpoint, "/work");
    assert_eq!(reference.network_address_used_at_peer, "127.0.0.1:18082");
    assert_eq!(backend.trace_id, frontend.trace_id);

    // The failed trace: every span is an error with status 500, and the backend entry has a log.
    let failed = decode("py-backend-error.bin");
    let entry = &failed.spans[0];
    assert!(entry.is_error);
    assert!(entry.tags.iter().any(|t| t.key == "http.status_code" && t.value == "500"));
    assert_eq!(entry.logs.len(), 1);
    assert_eq!(entry.logs[0].data[0].key, "Traceback");
    assert!(entry.logs[0].time < entry.start_time, "the agent stamps logs before the span start");
    assert!(decode("py-frontend-error.bin").spans.iter().all(|s| s.is_error));
}

#[test]
fn proto3_json_mapping_reads_every_capture_line() {
    let text = std::fs::read_to_string(fixtures().join("python.jsonl")).expect("read python.jsonl");
    let segments: Vec<SegmentObject> =
        text.lines().map(|line| serde_json::from_str(line).expect("pbjson reads the capture")).collect();
    assert_eq!(segments.len(), 100);
    let frontend = segments.iter().filter(|s| s.service == "py-frontend").count();
    assert_eq!((frontend, segments.len() - frontend), (50, 50));
    let errors = segments.iter().filter(|s| s.spans.iter().any(|span| span.is_error)).count();
    assert_eq!(errors, 20);
    let refs: usize = segments.iter().flat_map(|s| &s.spans).map(|span| span.refs.len()).sum();
    assert_eq!(refs, 50);

    for name in ["py-backend-0.bin", "py-frontend-error.bin"] {
        let bytes = std::fs::read(fixtures().join(name)).expect("read .bin");
        let decoded = SegmentObject::decode(bytes.as_slice()).expect("decodes");
        let from_json = segments.iter().find(|s| s.trace_segment_id == decoded.trace_segment_id).expect("same segment");
        assert_eq!(from_json, &decoded, "{name}: JSON and wire give the same message");
    }
}
