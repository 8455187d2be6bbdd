//! Tests of segment analysis. Expected sources are written from the rules of
//! `docs/reference/analysis.md` (the worked example of §14 for the Python agent fixtures),
//! with times and names read from the fixture captures. Sources are compared as sorted
//! descriptions, since the order in which they are emitted carries no meaning.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use oap_model::TimeBuckets;
use oap_model::source::Source;
use oap_proto::v3::{KeyStringValuePair, RefType, SegmentObject, SegmentReference, SpanLayer, SpanObject, SpanType};
use prost::Message;

use super::*;
use crate::settings::{SamplingPolicy, StatusStrategy};

fn describe(source: &Source<'_>) -> String {
    match source {
        Source::Service(s) => format!(
            "Service {}[{}] instance={} endpoint={} latency={} status={} http={} type={:?} bucket={}",
            s.name,
            s.layer,
            s.service_instance_name,
            s.endpoint_name,
            s.request.latency,
            s.request.status,
            s.request.http_response_status_code,
            s.request.request_type,
            s.request.time_bucket
        ),
        Source::ServiceInstance(s) => {
            format!(
                "ServiceInstance {} of {}[{}] latency={}",
                s.name, s.service_name, s.service_layer, s.request.latency
            )
        }
        Source::Endpoint(e) => format!(
            "Endpoint {}:{}[{}] instance={} latency={} status={} type={:?}",
            e.service_name,
            e.name,
            e.service_layer,
            e.service_instance_name,
            e.request.latency,
            e.request.status,
            e.request.request_type
        ),
        Source::ServiceRelation(r) => format!(
            "ServiceRelation {}[{}] -> {}[{}] {:?} component={} endpoint={} latency={}",
            r.source_service_name,
            r.source_layer,
            r.dest_service_name,
            r.dest_layer,
            r.detect_point,
            r.component_id,
            r.endpoint,
            r.request.latency
        ),
        Source::ServiceInstanceRelation(r) => format!(
            "ServiceInstanceRelation {} of {} -> {} of {} {:?}",
            r.source_service_instance_name,
            r.source_service_name,
            r.dest_service_instance_name,
            r.dest_service_name,
            r.detect_point
        ),
        Source::EndpointRelation(r) => format!(
            "EndpointRelation {}:{}[{}] -> {}:{}[{}] {:?} component={} latency={} type={:?}",
            r.service_name,
            r.endpoint,
            r.service_layer,
            r.child_service_name,
            r.child_endpoint,
            r.child_service_layer,
            r.detect_point,
            r.component_id,
            r.request.latency,
            r.request.request_type
        ),
        Source::DatabaseAccess(d) => {
            format!("DatabaseAccess {} type={} latency={} status={}", d.name, d.database_type_id, d.latency, d.status)
        }
        Source::CacheAccess(c) => {
            format!("CacheAccess {} type={} {:?} latency={}", c.name, c.cache_type_id, c.operation, c.latency)
        }
        Source::MqAccess(m) => format!(
            "MQAccess {} type={} {:?} transmission={} status={}",
            m.name, m.type_id, m.operation, m.transmission_latency, m.status
        ),
        Source::MqEndpointAccess(m) => format!("MQEndpointAccess {}:{} {:?}", m.service_name, m.endpoint, m.operation),
        Source::Segment(s) => {
            let tags: Vec<String> = s.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!(
                "Segment {} {}/{} endpoint={} start={} latency={} error={} bucket={} tags=[{}]",
                s.segment_id,
                s.service_name,
                s.service_instance_name,
                s.endpoint_name,
                s.start_time,
                s.latency,
                s.is_error,
                s.time_bucket,
                tags.join(",")
            )
        }
        Source::DatabaseSlowStatement(d) => format!(
            "SlowStatement {} from {} at {}-{} latency={} \"{}\" bucket={}",
            d.database_name, d.service_name, d.segment_id, d.span_id, d.latency, d.statement, d.time_bucket
        ),
        Source::CacheSlowAccess(c) => {
            format!(
                "CacheSlowAccess {} {:?} cmd={} key={} latency={}",
                c.cache_name, c.operation, c.command, c.key, c.latency
            )
        }
        Source::TagAutocomplete(t) => format!("Tag {}={} bucket={}", t.key, t.value, t.time_bucket),
        Source::NetworkAddressAliasSetup(a) => format!(
            "Alias {} -> {}/{} bucket={}",
            a.address, a.represent_service_name, a.represent_service_instance_name, a.time_bucket
        ),
        Source::ServiceMeta(m) => format!("ServiceMeta {}[{}]", m.name, m.layer),
        Source::EndpointMeta(m) => {
            format!("EndpointMeta {}(normal={}):{}", m.service_name, m.service_normal, m.endpoint)
        }
        Source::ServiceInstanceUpdate(u) => format!("ServiceInstanceUpdate {} of {}", u.name, u.service_name),
    }
}

fn analyzer_with(rules: AnalysisRules) -> SegmentAnalyzer {
    SegmentAnalyzer::new(rules, TimeBuckets::utc(), Arc::new(NetworkAddressAliasCache::new()))
}

fn run(analyzer: &SegmentAnalyzer, segment: &SegmentObject) -> Vec<String> {
    let raw = segment.encode_to_vec();
    let mut described = Vec::new();
    analyzer
        .analyze(segment, &raw, START, &mut |source: Source<'_>| described.push(describe(&source)))
        .expect("a valid segment");
    described.sort();
    described
}

fn sorted(expected: &[&str]) -> Vec<String> {
    let mut expected: Vec<String> = expected.iter().map(|line| (*line).to_owned()).collect();
    expected.sort();
    expected
}

fn fixture(name: &str) -> SegmentObject {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/python-agent").join(name);
    let bytes = std::fs::read(path).expect("fixture");
    SegmentObject::decode(bytes.as_slice()).expect("decodes")
}

// 1795262903572 ms is 2026-11-21 12:08:23 UTC.
const MINUTE: i64 = 202611211208;

#[test]
fn python_trace_before_the_alias_is_known() {
    let analyzer = analyzer_with(AnalysisRules::default());
    assert_eq!(
        run(&analyzer, &fixture("py-frontend-0.bin")),
        sorted(&[
            "Tag http.method=GET bucket=202611211208",
            "Tag http.status_code=200 bucket=202611211208",
            "Segment 3ff6bd3ee5a411f18fce02fc00000001 py-frontend/py-frontend-24907@127.0.0.1 endpoint=/api start=1795262903572 latency=10 error=false bucket=20261121120823 tags=[http.method=GET,http.status_code=200]",
            // Exit span 1: the peer is not an alias yet, so it is a conjectural GENERAL service.
            "ServiceRelation py-frontend[GENERAL] -> 127.0.0.1:18082[GENERAL] Client component=7002 endpoint=/work latency=7",
            "ServiceInstanceRelation py-frontend-24907@127.0.0.1 of py-frontend -> 127.0.0.1:18082 of 127.0.0.1:18082 Client",
            // Entry span 0 without refs: called by User.
            "Service py-frontend[GENERAL] instance=py-frontend-24907@127.0.0.1 endpoint=/api latency=10 status=true http=200 type=Some(Http) bucket=202611211208",
            "ServiceInstance py-frontend-24907@127.0.0.1 of py-frontend[GENERAL] latency=10",
            "ServiceRelation User[UNDEFINED] -> py-frontend[GENERAL] Server component=7001 endpoint=/api latency=10",
            "ServiceInstanceRelation User of User -> py-frontend-24907@127.0.0.1 of py-frontend Server",
            "Endpoint py-frontend:/api[GENERAL] instance=py-frontend-24907@127.0.0.1 latency=10 status=true type=Some(Http)",
            "EndpointRelation User:User[UNDEFINED] -> py-frontend:/api[GENERAL] Server component=7001 latency=10 type=Some(Http)",
        ])
    );
}

#[test]
fn python_backend_teaches_the_alias_and_the_frontend_then_resolves_it() {
    let analyzer = analyzer_with(AnalysisRules::default());
    assert_eq!(
        run(&analyzer, &fixture("py-backend-0.bin")),
        sorted(&[
            "Tag http.method=GET bucket=202611211208",
            "Tag http.status_code=200 bucket=202611211208",
            "Segment 3ff76c16e5a411f1879c02fc00000001 py-backend/py-backend-24906@127.0.0.1 endpoint=/work start=1795262903577 latency=5 error=false bucket=20261121120823 tags=[http.method=GET,http.status_code=200]",
            "Service py-backend[GENERAL] instance=py-backend-24906@127.0.0.1 endpoint=/work latency=5 status=true http=200 type=Some(Http) bucket=202611211208",
            "ServiceInstance py-backend-24906@127.0.0.1 of py-backend[GENERAL] latency=5",
            "ServiceRelation py-frontend[GENERAL] -> py-backend[GENERAL] Server component=7001 endpoint=/work latency=5",
            "ServiceInstanceRelation py-frontend-24907@127.0.0.1 of py-frontend -> py-backend-24906@127.0.0.1 of py-backend Server",
            "Endpoint py-backend:/work[GENERAL] instance=py-backend-24906@127.0.0.1 latency=5 status=true type=Some(Http)",
            // The Python agent's parentEndpoint is the callee path, so the source endpoint is /work.
            "EndpointRelation py-frontend:/work[GENERAL] -> py-backend:/work[GENERAL] Server component=7001 latency=5 type=Some(Http)",
            "Alias 127.0.0.1:18082 -> py-backend/py-backend-24906@127.0.0.1 bucket=202611211208",
        ])
    );
    // The next frontend segment's exit span resolves its peer through the alias at once.
    let frontend = run(&analyzer, &fixture("py-frontend-1.bin"));
    let client_side: Vec<&String> = frontend.iter().filter(|line| line.contains("Client")).collect();
    assert_eq!(
        client_side,
        [
            "ServiceInstanceRelation py-frontend-24907@127.0.0.1 of py-frontend -> py-backend-24906@127.0.0.1 of py-backend Client",
            "ServiceRelation py-frontend[GENERAL] -> py-backend[GENERAL] Client component=7002 endpoint=/work latency=5",
        ]
    );
}

#[test]
fn python_error_trace_is_an_error_everywhere() {
    let analyzer = analyzer_with(AnalysisRules::default());
    let backend = run(&analyzer, &fixture("py-backend-error.bin"));
    assert!(
        backend.iter().any(|l| l.starts_with("Segment 3ffb8620e5a411f194ec02fc00000001") && l.contains("error=true"))
    );
    assert!(backend.iter().any(|l| l.starts_with("Service py-backend") && l.contains("status=false http=500")));
    assert!(backend.contains(&"Tag http.status_code=500 bucket=202611211208".to_owned()));
}

// ---- synthetic segments ---------------------------------------------------------------

const START: i64 = 1_795_262_903_572;

fn tag(key: &str, value: &str) -> KeyStringValuePair {
    KeyStringValuePair { key: key.to_owned(), value: value.to_owned() }
}

fn span(id: i32, span_type: SpanType, layer: SpanLayer, operation: &str, peer: &str, latency: i64) -> SpanObject {
    SpanObject {
        span_id: id,
        parent_span_id: if id == 0 { -1 } else { 0 },
        start_time: START,
        end_time: START + latency,
        operation_name: operation.to_owned(),
        peer: peer.to_owned(),
        span_type: span_type as i32,
        span_layer: layer as i32,
        component_id: 1,
        ..Default::default()
    }
}

fn reference(parent_service: &str, parent_endpoint: &str, address: &str) -> SegmentReference {
    SegmentReference {
        ref_type: RefType::CrossProcess as i32,
        trace_id: "trace-1".to_owned(),
        parent_trace_segment_id: "parent-segment".to_owned(),
        parent_span_id: 1,
        parent_service: parent_service.to_owned(),
        parent_service_instance: format!("{parent_service}-instance"),
        parent_endpoint: parent_endpoint.to_owned(),
        network_address_used_at_peer: address.to_owned(),
    }
}

fn segment(spans: Vec<SpanObject>) -> SegmentObject {
    SegmentObject {
        trace_id: "trace-1".to_owned(),
        trace_segment_id: "segment-1".to_owned(),
        spans,
        service: "svc".to_owned(),
        service_instance: "svc-1".to_owned(),
        is_size_limited: false,
    }
}

fn lines_starting(lines: &[String], prefix: &str) -> Vec<String> {
    lines.iter().filter(|line| line.starts_with(prefix)).cloned().collect()
}

#[test]
fn span_order_does_not_change_the_sources() {
    let analyzer = analyzer_with(AnalysisRules::default());
    let mut reversed = fixture("py-frontend-0.bin");
    let in_order = run(&analyzer_with(AnalysisRules::default()), &reversed);
    reversed.spans.reverse();
    assert_eq!(run(&analyzer, &reversed), in_order);
}

#[test]
fn mq_consumer_with_a_ref_is_called_by_the_broker() {
    let mut entry = span(0, SpanType::Entry, SpanLayer::Mq, "orders/consume", "", 30);
    entry.refs.push(reference("producer", "/send", "kafka:9092"));
    entry.tags = vec![tag("mq.topic", "orders"), tag("mq.queue", "q1"), tag("transmission.latency", "12")];
    let lines = run(&analyzer_with(AnalysisRules::default()), &segment(vec![entry]));
    assert_eq!(
        lines_starting(&lines, "ServiceRelation"),
        [
            "ServiceRelation kafka:9092[VIRTUAL_MQ] -> svc[GENERAL] Server component=1 endpoint=orders/consume latency=30"
        ]
    );
    // The calling endpoint belongs to the producing service, not to the broker.
    assert_eq!(
        lines_starting(&lines, "EndpointRelation"),
        [
            "EndpointRelation producer:/send[GENERAL] -> svc:orders/consume[GENERAL] Server component=1 latency=30 type=Some(Mq)"
        ]
    );
    assert!(lines_starting(&lines, "Alias").is_empty(), "MQ entry spans teach no alias");
    assert_eq!(lines_starting(&lines, "MQAccess"), ["MQAccess kafka:9092 type=1 Consume transmission=12 status=true"]);
    assert_eq!(lines_starting(&lines, "MQEndpointAccess"), ["MQEndpointAccess kafka:9092:orders/q1 Consume"]);
    assert_eq!(lines_starting(&lines, "EndpointMeta"), ["EndpointMeta kafka:9092(normal=false):orders/q1"]);
    assert!(lines.contains(&"ServiceMeta kafka:9092[VIRTUAL_MQ]".to_owned()));
}

#[test]
fn mq_consumer_without_ref_is_called_by_its_peer_and_has_no_endpoint_relation() {
    let entry = span(0, SpanType::Entry, SpanLayer::Mq, "orders/consume", "rocketmq:9876", 30);
    let lines = run(&analyzer_with(AnalysisRules::default()), &segment(vec![entry]));
    assert_eq!(
        lines_starting(&lines, "ServiceRelation"),
        [
            "ServiceRelation rocketmq:9876[VIRTUAL_MQ] -> svc[GENERAL] Server component=1 endpoint=orders/consume latency=30"
        ]
    );
    assert!(lines_starting(&lines, "EndpointRelation").is_empty());
    assert_eq!(
        lines_starting(&lines, "Endpoint "),
        ["Endpoint svc:orders/consume[GENERAL] instance=svc-1 latency=30 status=true type=Some(Mq)"]
    );
    // Without topic or queue tags there is no MQ endpoint.
    assert!(lines_starting(&lines, "MQEndpointAccess").is_empty());
    assert_eq!(
        lines_starting(&lines, "MQAccess"),
        ["MQAccess rocketmq:9876 type=1 Consume transmission=0 status=true"]
    );
}

#[test]
fn uninstrumented_gateway_is_a_virtual_caller_and_callee() {
    let rules =
        AnalysisRules { uninstrumented_gateways: HashSet::from(["10.0.0.1:80".to_owned()]), ..Default::default() };
    let analyzer = analyzer_with(rules);
    let mut entry = span(0, SpanType::Entry, SpanLayer::Http, "/api", "", 10);
    entry.refs.push(reference("web", "/home", "10.0.0.1:80"));
    let exit = span(1, SpanType::Exit, SpanLayer::Http, "/out", "10.0.0.1:80", 4);
    let lines = run(&analyzer, &segment(vec![exit, entry]));
    assert_eq!(
        lines_starting(&lines, "ServiceRelation"),
        [
            "ServiceRelation 10.0.0.1:80[VIRTUAL_GATEWAY] -> svc[GENERAL] Server component=1 endpoint=/api latency=10",
            "ServiceRelation svc[GENERAL] -> 10.0.0.1:80[VIRTUAL_GATEWAY] Client component=1 endpoint=/out latency=4",
        ]
    );
    assert!(lines_starting(&lines, "Alias").is_empty(), "a gateway address is never an alias");
}

#[test]
fn faas_entry_has_no_endpoints() {
    let entry = span(0, SpanType::Entry, SpanLayer::Faas, "handler", "", 10);
    let lines = run(&analyzer_with(AnalysisRules::default()), &segment(vec![entry]));
    assert!(lines.iter().any(|l| l.starts_with("Service svc[FAAS]")));
    assert!(lines_starting(&lines, "ServiceRelation").iter().all(|l| l.contains("-> svc[FAAS]")));
    assert!(lines_starting(&lines, "Endpoint").is_empty());
}

#[test]
fn skip_analysis_keeps_only_record_and_virtual_services() {
    let mut entry = span(0, SpanType::Entry, SpanLayer::Http, "/api", "", 10);
    entry.skip_analysis = true;
    entry.refs.push(reference("caller", "/x", "svc:8080"));
    let mut db = span(1, SpanType::Exit, SpanLayer::Database, "SELECT", "mysql:3306", 5);
    db.skip_analysis = true;
    let lines = run(&analyzer_with(AnalysisRules::default()), &segment(vec![db, entry]));
    let kinds: HashSet<&str> = lines.iter().filter_map(|line| line.split(' ').next()).collect();
    assert_eq!(kinds, HashSet::from(["Segment", "DatabaseAccess", "ServiceMeta"]));
}

#[test]
fn alias_hit_through_a_proxy_component_has_no_instance_relation() {
    let analyzer = analyzer_with(AnalysisRules::default());
    analyzer.aliases().insert("gateway:443", "real-svc", "real-1");
    let mut exit = span(1, SpanType::Exit, SpanLayer::Http, "/out", "gateway:443", 4);
    exit.component_id = 6000; // Nginx-Lua, listed in noUpstreamRealAddressAgents
    let lines = run(&analyzer, &segment(vec![exit.clone()]));
    assert_eq!(
        lines_starting(&lines, "ServiceRelation"),
        ["ServiceRelation svc[GENERAL] -> real-svc[GENERAL] Client component=6000 endpoint=/out latency=4"]
    );
    assert!(lines_starting(&lines, "ServiceInstanceRelation").is_empty());
    exit.component_id = 2;
    let lines = run(&analyzer, &segment(vec![exit]));
    assert_eq!(
        lines_starting(&lines, "ServiceInstanceRelation"),
        ["ServiceInstanceRelation svc-1 of svc -> real-1 of real-svc Client"]
    );
}

#[test]
fn alias_miss_gives_a_conjectural_peer_by_span_layer() {
    let analyzer = analyzer_with(AnalysisRules::default());
    let layers = [
        (SpanLayer::Unknown, "UNDEFINED"),
        (SpanLayer::Database, "VIRTUAL_DATABASE"),
        (SpanLayer::RpcFramework, "GENERAL"),
        (SpanLayer::Http, "GENERAL"),
        (SpanLayer::Mq, "VIRTUAL_MQ"),
        (SpanLayer::Cache, "VIRTUAL_CACHE"),
        (SpanLayer::GenAi, "VIRTUAL_GENAI"),
    ];
    for (layer, expected) in layers {
        let exit = span(1, SpanType::Exit, layer, "op", "peer:1", 4);
        let lines = run(&analyzer, &segment(vec![exit]));
        assert_eq!(
            lines_starting(&lines, "ServiceRelation"),
            [format!("ServiceRelation svc[GENERAL] -> peer:1[{expected}] Client component=1 endpoint=op latency=4")],
            "{layer:?}"
        );
    }
    let no_peer = span(1, SpanType::Exit, SpanLayer::Http, "op", "", 4);
    assert!(lines_starting(&run(&analyzer, &segment(vec![no_peer])), "ServiceRelation").is_empty());
}

#[test]
fn sampling_drops_only_the_record() {
    let rules = AnalysisRules {
        sampling: SamplingPolicy::parse("default:\n  rate: 0\n").expect("policy"),
        ..Default::default()
    };
    let analyzer = analyzer_with(rules.clone());
    let mut ok = fixture("py-frontend-0.bin");
    ok.trace_id = "hello".to_owned(); // samples as 2322, not < 0
    let lines = run(&analyzer, &ok);
    assert!(lines_starting(&lines, "Segment").is_empty());
    assert!(lines_starting(&lines, "Tag").is_empty());
    assert_eq!(lines_starting(&lines, "Service ").len(), 1, "metrics sources stay");

    // An error segment is kept anyway, unless forced sampling is off.
    let mut failed = fixture("py-frontend-error.bin");
    failed.trace_id = "hello".to_owned();
    assert_eq!(lines_starting(&run(&analyzer, &failed), "Segment").len(), 1);
    let analyzer = analyzer_with(AnalysisRules { force_sample_error_segment: false, ..rules.clone() });
    assert!(lines_starting(&run(&analyzer, &failed), "Segment").is_empty());

    // A duration rule keeps slow segments: the frontend segment lasts 10 ms.
    let slow = AnalysisRules {
        sampling: SamplingPolicy::parse("default:\n  rate: 0\n  duration: 10\n").expect("policy"),
        ..rules
    };
    assert_eq!(lines_starting(&run(&analyzer_with(slow.clone()), &ok), "Segment").len(), 1);
    let slower = AnalysisRules {
        sampling: SamplingPolicy::parse("default:\n  rate: 0\n  duration: 11\n").expect("policy"),
        ..slow
    };
    assert!(lines_starting(&run(&analyzer_with(slower), &ok), "Segment").is_empty());
}

#[test]
fn long_names_are_cut_everywhere() {
    let mut long = segment(vec![span(0, SpanType::Entry, SpanLayer::Http, &"e".repeat(200), "", 10)]);
    long.service = "s".repeat(100);
    long.service_instance = "i".repeat(100);
    let lines = run(&analyzer_with(AnalysisRules::default()), &long);
    let (service, instance, endpoint) = ("s".repeat(70), "i".repeat(70), "e".repeat(150));
    assert!(lines.contains(&format!(
        "Endpoint {service}:{endpoint}[GENERAL] instance={instance} latency=10 status=true type=Some(Http)"
    )));
    assert!(lines.iter().all(|line| !line.contains(&"s".repeat(71)) && !line.contains(&"e".repeat(151))));
}

#[test]
fn cross_thread_refs_give_endpoint_dependencies() {
    let mut local = span(2, SpanType::Local, SpanLayer::Unknown, "async-task", "", 6);
    local.refs.push(SegmentReference { ref_type: RefType::CrossThread as i32, ..reference("svc", "/submit", "") });
    let lines = run(&analyzer_with(AnalysisRules::default()), &segment(vec![local]));
    assert_eq!(
        lines.iter().filter(|l| !l.starts_with("Segment")).cloned().collect::<Vec<_>>(),
        sorted(&[
            "EndpointMeta svc(normal=true):/submit",
            "Endpoint svc:async-task[GENERAL] instance=svc-1 latency=6 status=true type=None",
            "EndpointRelation svc:/submit[GENERAL] -> svc:async-task[GENERAL] Server component=1 latency=6 type=None",
        ])
    );
}

#[test]
fn empty_parent_endpoint_is_user() {
    let mut entry = span(0, SpanType::Entry, SpanLayer::Http, "/api", "", 10);
    entry.refs.push(reference("node-frontend", "", "svc:3000"));
    let lines = run(&analyzer_with(AnalysisRules::default()), &segment(vec![entry]));
    assert_eq!(
        lines_starting(&lines, "EndpointRelation"),
        [
            "EndpointRelation node-frontend:User[GENERAL] -> svc:/api[GENERAL] Server component=1 latency=10 type=Some(Http)"
        ]
    );
}

#[test]
fn slow_database_statements_follow_thresholds_per_type() {
    let analyzer = analyzer_with(AnalysisRules::default());
    let db = |latency: i64, kind: &str, statement: &str| {
        let mut exit = span(3, SpanType::Exit, SpanLayer::Database, "query", "db:1", latency);
        exit.tags = vec![tag("db.type", kind), tag("db.statement", statement)];
        run(&analyzer, &segment(vec![exit]))
    };
    // mysql uses the default 200 ms; strictly slower is slow.
    assert!(lines_starting(&db(200, "mysql", "select 1"), "SlowStatement").is_empty());
    assert_eq!(
        lines_starting(&db(201, "mysql", "select 1"), "SlowStatement"),
        ["SlowStatement db:1 from svc at segment-1-3 latency=201 \"select 1\" bucket=20261121120823"]
    );
    // MongoDB has its own 100 ms threshold.
    assert_eq!(lines_starting(&db(101, "MongoDB", "find"), "SlowStatement").len(), 1);
    // No statement, no slow statement; the access is still counted.
    let lines = db(500, "mysql", "  ");
    assert!(lines_starting(&lines, "SlowStatement").is_empty());
    assert_eq!(lines_starting(&lines, "DatabaseAccess"), ["DatabaseAccess db:1 type=1 latency=500 status=true"]);
    assert!(lines.contains(&"ServiceMeta db:1[VIRTUAL_DATABASE]".to_owned()));
    // Statements are cut to maxSlowSQLLength.
    let long = "x".repeat(2500);
    let lines = db(300, "mysql", &long);
    assert!(lines_starting(&lines, "SlowStatement")[0].contains(&format!("\"{}\"", "x".repeat(2000))));
}

#[test]
fn cache_accesses_and_slow_commands() {
    let analyzer = analyzer_with(AnalysisRules::default());
    let cache = |peer: &str, tags: Vec<KeyStringValuePair>, latency: i64| {
        let mut exit = span(4, SpanType::Exit, SpanLayer::Cache, "GET", peer, latency);
        exit.tags = tags;
        run(&analyzer, &segment(vec![exit]))
    };
    let read =
        vec![tag("cache.type", "Redis"), tag("cache.op", "read"), tag("cache.cmd", "GET"), tag("cache.key", "k1")];
    let lines = cache("redis:6379", read.clone(), 11);
    assert_eq!(lines_starting(&lines, "CacheAccess"), ["CacheAccess redis:6379 type=1 Read latency=11"]);
    assert_eq!(
        lines_starting(&lines, "CacheSlowAccess"),
        ["CacheSlowAccess redis:6379 Read cmd=GET key=k1 latency=11"]
    );
    assert!(lines_starting(&cache("redis:6379", read, 10), "CacheSlowAccess").is_empty(), "redis threshold is 10 ms");
    // A blank peer names the cache after its type; other operations are never slow.
    let lines = cache("", vec![tag("cache.type", "Caffeine"), tag("cache.op", "evict")], 999);
    assert_eq!(lines_starting(&lines, "CacheAccess"), ["CacheAccess caffeine-local type=1 Others latency=999"]);
    assert!(lines_starting(&lines, "CacheSlowAccess").is_empty());
    // Without cache.type the span is not a cache access.
    assert!(lines_starting(&cache("redis:6379", vec![], 50), "CacheAccess").is_empty());
}

#[test]
fn logic_endpoints_from_the_x_le_tag() {
    let mut local = span(5, SpanType::Local, SpanLayer::Unknown, "compute", "", 7);
    local.tags = vec![tag("x-le", r#"{"logic-span": true}"#)];
    let mut entry = span(0, SpanType::Entry, SpanLayer::Http, "/api", "", 20);
    entry.tags = vec![tag("x-le", r#"{"name": "checkout", "latency": 15, "status": false}"#)];
    let mut broken = span(6, SpanType::Local, SpanLayer::Unknown, "other", "", 7);
    broken.tags = vec![tag("x-le", r#"{"name": "no-latency"}"#)];
    let lines = run(&analyzer_with(AnalysisRules::default()), &segment(vec![local, entry, broken]));
    let logic: Vec<String> = lines.iter().filter(|l| l.contains("type=Some(Logic)")).cloned().collect();
    assert_eq!(
        logic,
        sorted(&[
            "Endpoint svc:checkout[GENERAL] instance=svc-1 latency=15 status=false type=Some(Logic)",
            "Endpoint svc:compute[GENERAL] instance=svc-1 latency=7 status=true type=Some(Logic)",
        ])
    );
}

#[test]
fn status_strategies_decide_the_segment_error() {
    let mut exit = span(1, SpanType::Exit, SpanLayer::Http, "/out", "peer:1", 4);
    exit.is_error = true;
    let entry = span(0, SpanType::Entry, SpanLayer::Http, "/api", "", 10);
    let failed_exit = segment(vec![exit, entry]);
    let error_of = |strategy| {
        let lines =
            run(&analyzer_with(AnalysisRules { status_strategy: strategy, ..Default::default() }), &failed_exit);
        lines_starting(&lines, "Segment")[0].contains("error=true")
    };
    assert!(error_of(StatusStrategy::FromSpanStatus));
    assert!(!error_of(StatusStrategy::FromEntrySpan));
    assert!(!error_of(StatusStrategy::FromFirstSpan));
}

#[test]
fn segment_endpoint_and_searchable_tags() {
    // No entry span: span 0 names the segment; without span 0, the lowest id.
    let lines = run(
        &analyzer_with(AnalysisRules::default()),
        &segment(vec![
            span(3, SpanType::Local, SpanLayer::Unknown, "third", "", 1),
            span(2, SpanType::Local, SpanLayer::Unknown, "second", "", 1),
        ]),
    );
    assert!(lines_starting(&lines, "Segment")[0].contains("endpoint=second"));

    let mut entry = span(0, SpanType::Entry, SpanLayer::Http, "/api", "", 10);
    entry.tags = vec![
        tag("http.method", "GET"),
        tag("http.method", "GET"),
        tag("db.type", &"v".repeat(257)),
        tag("db.instance", &"v".repeat(240)),
        tag("mq.topic", &"v".repeat(247)),
        tag("not.searchable", "x"),
    ];
    let lines = run(&analyzer_with(AnalysisRules::default()), &segment(vec![entry]));
    // `db.instance=` + 240 is 252 <= 256; `mq.topic=` + 247 is 256; the 257-long value is too long.
    let tags: Vec<String> =
        lines_starting(&lines, "Tag ").iter().map(|l| l.split('=').next().unwrap_or("").to_owned()).collect();
    assert_eq!(tags, ["Tag db.instance", "Tag http.method", "Tag mq.topic"]);
}

#[test]
fn invalid_segments_are_rejected_whole() {
    let analyzer = analyzer_with(AnalysisRules::default());
    let check = |segment: SegmentObject, expected: &str| {
        let mut emitted = 0;
        let error = analyzer.analyze(&segment, &[], START, &mut |_: Source<'_>| emitted += 1).expect_err("invalid");
        assert_eq!(error.to_string(), expected);
        assert_eq!(emitted, 0, "nothing of a rejected segment is emitted");
    };
    check(segment(vec![]), "segment `segment-1` has no spans");
    let mut no_id = segment(vec![span(0, SpanType::Entry, SpanLayer::Http, "/", "", 1)]);
    no_id.trace_segment_id.clear();
    check(no_id, "segment `` has an empty `traceSegmentId`");
    let mut no_service = segment(vec![span(0, SpanType::Entry, SpanLayer::Http, "/", "", 1)]);
    no_service.service = " ".to_owned();
    check(no_service, "segment `segment-1` has an empty `service`");
    let mut backwards = span(0, SpanType::Entry, SpanLayer::Http, "/", "", 1);
    backwards.end_time = START - 5;
    check(
        segment(vec![backwards]),
        &format!("span 0 of segment `segment-1`: ends ({}) before it starts ({START})", START - 5),
    );
    let mut negative = span(0, SpanType::Entry, SpanLayer::Http, "/", "", 1);
    negative.start_time = -1;
    check(segment(vec![negative]), "span 0 of segment `segment-1`: start time -1 is not a time");
    let mut endless = span(0, SpanType::Entry, SpanLayer::Http, "/", "", 1);
    endless.end_time = START + i64::from(i32::MAX) + 1;
    check(
        segment(vec![endless]),
        "span 0 of segment `segment-1`: lasts 2147483648 ms, longer than the 24.8 days a latency can hold",
    );
    // 9999-12-31T23:59:59.999Z is the last representable millisecond; a span may not end after it.
    let mut past_the_calendar = span(0, SpanType::Entry, SpanLayer::Http, "/", "", 1);
    past_the_calendar.start_time = 253_402_300_799_000;
    past_the_calendar.end_time = 253_402_300_801_000;
    check(
        segment(vec![past_the_calendar]),
        "span 0 of segment `segment-1`: end time 253402300801000 is outside the calendar",
    );
    let mut unknown_type = span(0, SpanType::Entry, SpanLayer::Http, "/", "", 1);
    unknown_type.span_type = 9;
    check(segment(vec![unknown_type]), "span 0 of segment `segment-1`: unknown span type 9");
}

#[test]
fn minute_constant_matches_the_fixture_time() {
    assert_eq!(TimeBuckets::utc().minute(START), Some(MINUTE));
}
