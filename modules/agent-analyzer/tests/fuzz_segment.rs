//! Fuzz target of segment decode and analysis: any bytes are decoded into a `SegmentObject` or
//! refused, and analysis of any segment — generated field by field, decoded from random bytes,
//! or a real one mutated — takes it or refuses it without a panic, and every name it emits is
//! within the limits of `serviceNameMaxLength` / `instanceNameMaxLength` /
//! `endpointNameMaxLength`, with a minute time bucket that is a real `yyyyMMddHHmm`. The clock
//! reads each segment's own time, so that the TTL window lets analysis go deep.
//!
//! Corpus: `tests/fuzz-corpus/segment/` and the Python agent's segments
//! (`tests/fixtures/python-agent`: the `.bin` files and every line of `python.jsonl`), replayed
//! every run, mutated by [`oap_fuzz::mutations`]. CI runs each test's default number of cases (256
//! to 2,048; about 1.7 s for the whole target). A failure is kept in
//! `tests/fuzz_segment.proptest-regressions`; fixed, its input joins the corpus.
//!
//! Longer by hand: `PROPTEST_CASES=1000000 cargo nextest run -p oap-agent-analyzer --test fuzz_segment`

use std::sync::Arc;

use oap_agent_analyzer::{AnalysisRules, NetworkAddressAliasCache, SegmentAnalyzer};
use oap_fuzz::{Corpus, Dictionary};
use oap_model::TimeBuckets;
use oap_model::source::Source;
use oap_proto::v3::{KeyStringValuePair, SegmentObject, SegmentReference, SpanObject};
use proptest::prelude::*;
use prost::Message;

const SERVICE_MAX: usize = 70;
const INSTANCE_MAX: usize = 70;
const ENDPOINT_MAX: usize = 150;

fn utf16_len(text: &str) -> usize {
    text.encode_utf16().count()
}

/// Checks what the limits and the time buckets promise of one source.
fn check(source: &Source<'_>) -> Result<(), String> {
    let mut services: Vec<&str> = Vec::new();
    let mut instances: Vec<&str> = Vec::new();
    let mut endpoints: Vec<&str> = Vec::new();
    let mut minute = None;
    match source {
        Source::Service(s) => {
            services.push(s.name);
            instances.push(s.service_instance_name);
            endpoints.push(s.endpoint_name);
            minute = Some(s.request.time_bucket);
        }
        Source::ServiceInstance(s) => {
            services.push(s.service_name);
            instances.push(s.name);
            minute = Some(s.request.time_bucket);
        }
        Source::Endpoint(e) => {
            services.push(e.service_name);
            endpoints.push(&e.name);
            minute = Some(e.request.time_bucket);
        }
        Source::ServiceRelation(r) | Source::ServiceInstanceRelation(r) => {
            services.extend([r.source_service_name, r.dest_service_name]);
            instances.extend([r.source_service_instance_name, r.dest_service_instance_name]);
            minute = Some(r.request.time_bucket);
        }
        Source::EndpointRelation(r) => {
            services.extend([r.service_name, r.child_service_name]);
            endpoints.extend([r.endpoint, r.child_endpoint]);
        }
        Source::Segment(record) => {
            services.push(record.service_name);
            instances.push(record.service_instance_name);
            endpoints.push(record.endpoint_name);
        }
        _ => {}
    }
    let over = |names: &[&str], max: usize, what: &str| match names.iter().find(|name| utf16_len(name) > max) {
        Some(name) => Err(format!("{what} `{name}` is over {max} in {}", source.scope_name())),
        None => Ok(()),
    };
    over(&services, SERVICE_MAX, "service")?;
    over(&instances, INSTANCE_MAX, "instance")?;
    over(&endpoints, ENDPOINT_MAX, "endpoint")?;
    if let Some(bucket) = minute {
        let (day, clock) = (bucket / 10_000, bucket % 10_000);
        let (month, date) = (day / 100 % 100, day % 100);
        let valid = (19_700_101..=99_991_231).contains(&day)
            && (1..=12).contains(&month)
            && (1..=31).contains(&date)
            && clock / 100 < 24
            && clock % 100 < 60;
        if !valid {
            return Err(format!("minute bucket {bucket} of {}", source.scope_name()));
        }
    }
    Ok(())
}

fn analyzer() -> SegmentAnalyzer {
    SegmentAnalyzer::new(AnalysisRules::default(), TimeBuckets::utc(), Arc::new(NetworkAddressAliasCache::new()))
}

/// Analyses a segment; a panic fails the test, and so does a source that breaks a promise.
fn analyse(analyzer: &SegmentAnalyzer, segment: &SegmentObject, raw: &[u8]) -> Result<(), TestCaseError> {
    let mut broken = None;
    // The clock reads the segment's own time, so that the time window lets most through.
    let now = segment.spans.iter().map(|span| span.end_time).max().unwrap_or(0);
    let _ = analyzer.analyze(segment, raw, now, &mut |source: Source<'_>| {
        if broken.is_none() {
            broken = check(&source).err();
        }
    });
    match broken {
        Some(problem) => Err(TestCaseError::fail(problem)),
        None => Ok(()),
    }
}

/// A name: usually short, sometimes empty, long, or made of characters outside the BMP.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => "[a-z/:.0-9-]{1,12}",
        1 => Just(String::new()),
        1 => "[a-zé]{60,200}",
        1 => "[😀-🙏]{30,100}",
        1 => "127\\.0\\.0\\.1:180[0-9]{2}",
    ]
}

fn tag() -> impl Strategy<Value = KeyStringValuePair> {
    let key = prop_oneof![
        Just("http.status_code"),
        Just("status_code"),
        Just("rpc.status_code"),
        Just("http.method"),
        Just("db.type"),
        Just("db.instance"),
        Just("db.statement"),
        Just("cache.type"),
        Just("cache.op"),
        Just("cache.cmd"),
        Just("cache.key"),
        Just("mq.queue"),
        Just("mq.topic"),
        Just("mq.broker"),
        Just("transmission.latency"),
        Just("x-le"),
        Just("other"),
    ];
    let value = prop_oneof![
        3 => name(),
        1 => "-?[0-9]{1,20}",
        1 => Just(r#"{"logic-span":true}"#.to_owned()),
        1 => Just("read".to_owned()),
        1 => Just("write".to_owned()),
    ];
    (key, value).prop_map(|(key, value)| KeyStringValuePair { key: key.to_owned(), value })
}

fn reference() -> impl Strategy<Value = SegmentReference> {
    (0..3i32, name(), name(), -2..4i32, name(), name(), name(), name()).prop_map(
        |(ref_type, trace_id, parent_segment, parent_span_id, service, instance, endpoint, address)| SegmentReference {
            ref_type,
            trace_id,
            parent_trace_segment_id: parent_segment,
            parent_span_id,
            parent_service: service,
            parent_service_instance: instance,
            parent_endpoint: endpoint,
            network_address_used_at_peer: address,
        },
    )
}

/// Times around the fixtures' (November 2026), or anything at all.
fn time() -> impl Strategy<Value = i64> {
    prop_oneof![30 => 1_795_262_903_000i64..1_795_262_904_000, 1 => any::<i64>(), 1 => -5i64..5]
}

fn span() -> impl Strategy<Value = SpanObject> {
    let ids = (-2..6i32, -2..6i32);
    let times = (time(), prop_oneof![30 => 0i64..5_000, 1 => any::<i64>()]);
    let kind = (
        prop_oneof![20 => 0..3i32, 1 => any::<i32>()],
        -1..9i32,
        prop_oneof![Just(7001), Just(7002), Just(6000), Just(9000), any::<i32>()],
    );
    let flags = (any::<bool>(), any::<bool>());
    let text = (name(), name());
    let lists = (proptest::collection::vec(reference(), 0..3), proptest::collection::vec(tag(), 0..6));
    (ids, times, kind, flags, text, lists).prop_map(
        |((span_id, parent_span_id), (start, duration), (span_type, layer, component), flags, text, lists)| {
            SpanObject {
                span_id,
                parent_span_id,
                start_time: start,
                end_time: start.wrapping_add(duration),
                refs: lists.0,
                operation_name: text.0,
                peer: text.1,
                span_type,
                span_layer: layer,
                component_id: component,
                is_error: flags.0,
                tags: lists.1,
                logs: Vec::new(),
                skip_analysis: flags.1,
            }
        },
    )
}

fn segment() -> impl Strategy<Value = SegmentObject> {
    (
        name(),
        name(),
        name(),
        name(),
        prop_oneof![10 => proptest::collection::vec(span(), 1..6), 1 => Just(Vec::new())],
        any::<bool>(),
    )
        .prop_map(|(trace_id, segment_id, service, instance, spans, is_size_limited)| SegmentObject {
            trace_id,
            trace_segment_id: segment_id,
            spans,
            service,
            service_instance: instance,
            is_size_limited,
        })
}

/// Pieces of the protobuf encoding: field keys with lengths and varints past every width, so
/// that mutations reach fields and lengths rather than only bytes.
const DICTIONARY: Dictionary = Dictionary {
    tokens: &["hello", "\u{0}", "é😀"],
    binary: &[
        b"\x0a\x00",
        b"\x12\x7f",
        b"\x1a\xff\xff\xff\xff\x0f",
        b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
        b"\x10\x80\x80\x80\x80\x08",
        b"\x18\x01",
        b"\x22\x00",
        b"\x2a\x05hello",
        b"\x30\x01",
        b"\x38\x00",
        b"\x40\x7f",
        b"\x48\x01",
        b"\x52\x00",
        b"\x5a\x00",
        b"\x60\x01",
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
    ],
    // Length-delimited fields inside one another (a span's fields as if they were a span).
    nests: &[("\x1a\x02", ""), ("\x0a\x0a", "")],
};

/// The seeds: the corpus directory's segments (JSON ones encoded) and the Python agent's.
fn corpus() -> Corpus {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let fixtures = manifest.join("../../tests/fixtures/python-agent");
    let encoded = |json: &[u8]| -> Option<Vec<u8>> {
        Some(serde_json::from_slice::<SegmentObject>(json).expect("a SegmentObject in JSON").encode_to_vec())
    };
    let mut corpus = Corpus::new().dir_with(manifest.join("tests/fuzz-corpus/segment"), |path, bytes| {
        let json = path.extension().is_some_and(|ext| ext == "json");
        vec![if json { encoded(&bytes).expect("encoded") } else { bytes }]
    });
    for name in
        ["py-frontend-0", "py-backend-0", "py-frontend-1", "py-backend-1", "py-frontend-error", "py-backend-error"]
    {
        corpus = corpus.file(fixtures.join(format!("{name}.bin")));
    }
    corpus.lines(fixtures.join("python.jsonl"), encoded)
}

/// Decodes `bytes` and analyses what decodes; a panic or a broken promise fails the case.
fn decode_and_analyse(analyzer: &SegmentAnalyzer, bytes: &[u8]) -> Result<(), TestCaseError> {
    match SegmentObject::decode(bytes) {
        Ok(segment) => analyse(analyzer, &segment, bytes),
        Err(_) => Ok(()),
    }
}

#[test]
fn every_seed_of_the_corpus_is_analysed_within_the_limits() {
    let analyzer = analyzer();
    let seeds = corpus().replay(|bytes| {
        let segment = SegmentObject::decode(bytes).expect("every seed decodes");
        analyse(&analyzer, &segment, bytes).expect("within the limits");
    });
    assert_eq!(seeds, 3 + 6 + 100);
}

#[test]
fn mutated_segments_are_analysed_or_rejected_within_the_limits() {
    let analyzer = analyzer();
    oap_fuzz::fuzz(file!(), 2048, oap_fuzz::mutations(&corpus(), &DICTIONARY), |input| {
        let mut outcome = Ok(());
        oap_fuzz::within_time_limit(|| outcome = decode_and_analyse(&analyzer, &input.bytes))?;
        outcome
    });
}

#[test]
fn random_bytes_are_decoded_and_analysed_or_rejected() {
    let analyzer = analyzer();
    oap_fuzz::fuzz(file!(), 1024, oap_fuzz::random_bytes(), |input| decode_and_analyse(&analyzer, &input.bytes));
}

proptest! {
    #![proptest_config(oap_fuzz::config(512))]

    #[test]
    fn any_segment_is_analysed_or_rejected_within_the_limits(segment in segment()) {
        let analyzer = analyzer();
        // Twice: the second pass sees the aliases the first one taught.
        let raw = segment.encode_to_vec();
        analyse(&analyzer, &segment, &raw)?;
        analyse(&analyzer, &segment, &raw)?;
    }
}
