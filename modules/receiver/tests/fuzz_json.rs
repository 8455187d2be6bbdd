//! Fuzz target of the HTTP/JSON receivers: any body posted to `/v3/segment`, `/v3/segments`,
//! `/v3/management/keepAlive` or `/v3/management/reportProperties` is answered `{}` or refused
//! with a 400 and its reason, through the handlers the routes call (`http::reply_one` and
//! `reply_array` over `TraceReceiver::receive_json` and the `ManagementReceiver`), and no body
//! panics or hangs. The same bytes go to the gRPC side too (`receive_encoded`, and the
//! management messages in protobuf).
//!
//! Corpus: `tests/fuzz-corpus/json/`, the Python agent's segments and management messages, and the
//! JSON segments of the agent-analyzer's corpus, their times moved to the present, replayed every
//! run, mutated by [`oap_fuzz::mutations`]. CI runs each test's default number of cases (256 to
//! 2,048; about 0.9 s for the whole target). A failure is kept in
//! `tests/fuzz_json.proptest-regressions`; fixed, its input joins the corpus.
//!
//! Longer by hand: `PROPTEST_CASES=1000000 cargo nextest run -p oap-receiver --test fuzz_json`

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use oap_agent_analyzer::{AnalysisRules, NetworkAddressAliasCache, SegmentAnalyzer};
use oap_core::{NodeHealth, SourceDispatcher};
use oap_fuzz::{Corpus, Dictionary, Input};
use oap_model::{NamingControl, TimeBuckets};
use oap_receiver::door::Door;
use oap_receiver::register::Encoded;
use oap_receiver::telemetry::{Protocol, ReceiverTelemetry};
use oap_receiver::{ManagementReceiver, TraceReceiver, http};
use proptest::prelude::*;

const DICTIONARY: Dictionary = Dictionary {
    tokens: &[
        "{",
        "}",
        "[",
        "]",
        "\"",
        ":",
        ",",
        "null",
        "true",
        "false",
        "\"\\ud800\"",
        "\"\\u0000\"",
        "\\",
        "\"\"",
        "\"traceId\":",
        "\"traceSegmentId\":",
        "\"spans\":[",
        "\"refs\":[",
        "\"tags\":[",
        "\"logs\":[",
        "\"data\":[",
        "\"spanId\":",
        "\"parentSpanId\":",
        "\"startTime\":",
        "\"endTime\":",
        "\"spanType\":",
        "\"spanLayer\":",
        "\"refType\":",
        "\"componentId\":",
        "\"service\":",
        "\"serviceInstance\":",
        "\"properties\":[",
        "\"layer\":",
        "\"key\":",
        "\"value\":",
        "\"Entry\"",
        "\"Exit\"",
        "\"Local\"",
        "\"CrossThread\"",
        "\"Database\"",
        "\"MQ\"",
        "\"9223372036854775808\"",
        "\"-1e3\"",
        "\"0x10\"",
        "1.5",
        "-0",
        "1e400",
    ],
    binary: &[b"\xff\xfe", b"\xc0\x80", b"\xed\xa0\x80"],
    nests: &[("[", "]"), ("{\"a\":", "}"), ("{\"spans\":[{\"refs\":[", "]}]}"), ("\"", "")],
};

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `text` with every time of the Python fixtures' day (`1795…`, November 2026) moved by the
/// same amount to the present, so that analysis does not refuse it as too old.
fn moved_to_now(text: &[u8]) -> Vec<u8> {
    const FIXTURE_EPOCH: &[u8] = b"179526";
    let shift = oap_model::now_ms() - 1_795_262_904_000;
    let mut out = Vec::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let digits = text[at..].iter().take_while(|byte| byte.is_ascii_digit()).count();
        let number = &text[at..at + digits];
        let time = std::str::from_utf8(number).ok().and_then(|number| number.parse::<i64>().ok());
        match time {
            Some(time) if digits == 13 && number.starts_with(FIXTURE_EPOCH) => {
                out.extend_from_slice((time + shift).to_string().as_bytes());
                at += digits;
            }
            _ if digits > 0 => {
                out.extend_from_slice(number);
                at += digits;
            }
            _ => {
                out.push(text[at]);
                at += 1;
            }
        }
    }
    out
}

fn corpus() -> Corpus {
    let fixtures = manifest().join("../../tests/fixtures/python-agent");
    let moved = |_: &Path, bytes: Vec<u8>| vec![moved_to_now(&bytes)];
    let management = |line: &[u8]| {
        let rpc: serde_json::Value = serde_json::from_slice(line).expect("a JSON line");
        let method = rpc["rpc"].as_str().unwrap_or_default();
        method.starts_with("/skywalking.v3.ManagementService/").then(|| rpc["msg"].to_string().into_bytes())
    };
    Corpus::new()
        .dir_with(manifest().join("tests/fuzz-corpus/json"), moved)
        .dir_with(manifest().join("../agent-analyzer/tests/fuzz-corpus/segment"), moved)
        .lines(fixtures.join("python.jsonl"), |line| Some(moved_to_now(line)))
        .lines(fixtures.join("python.rpcs.jsonl"), management)
}

/// The receivers, feeding a dispatcher with no consumer.
struct Receivers {
    trace: TraceReceiver,
    management: ManagementReceiver,
}

impl Receivers {
    fn new() -> Self {
        let dispatcher = Arc::new(SourceDispatcher::new());
        let registry = oap_telemetry::MetricsRegistry::new();
        let analyzer = SegmentAnalyzer::new(
            AnalysisRules::default(),
            TimeBuckets::utc(),
            Arc::new(NetworkAddressAliasCache::new()),
        );
        let trace_metrics = ReceiverTelemetry::new(&registry, "trace", "trace").expect("metrics");
        let management_metrics = ReceiverTelemetry::new(&registry, "management", "management").expect("metrics");
        Self {
            trace: TraceReceiver::new(
                analyzer,
                dispatcher.clone(),
                trace_metrics,
                Door::new(Arc::new(NodeHealth::default()), Duration::from_secs(10)),
            ),
            management: ManagementReceiver::new(
                dispatcher,
                TimeBuckets::utc(),
                NamingControl::default(),
                management_metrics,
            ),
        }
    }

    /// `body` through every door; returns how many took it. A reply other than 200 or 400 is a
    /// failure (no body is too large here).
    fn post(&self, body: &[u8]) -> usize {
        let body = Bytes::copy_from_slice(body);
        let replies = [
            http::reply_one(Ok(body.clone()), || {}, |json| self.trace.receive_json(json)),
            http::reply_array(
                Ok(body.clone()),
                "SegmentObject",
                || {},
                |json| self.trace.receive_json(json.as_bytes()),
            ),
            http::reply_one(Ok(body.clone()), || {}, |json| self.management.keep_alive(Encoded::Json(json))),
            http::reply_one(Ok(body.clone()), || {}, |json| self.management.report_properties(Encoded::Json(json))),
        ];
        let _ = self.trace.receive_encoded(Protocol::Grpc, &body);
        let _ = self.management.keep_alive(Encoded::Protobuf(&body));
        let _ = self.management.report_properties(Encoded::Protobuf(&body));
        for reply in &replies {
            assert!(matches!(reply.status(), StatusCode::OK | StatusCode::BAD_REQUEST), "{}", reply.status());
        }
        replies.iter().filter(|reply| reply.status() == StatusCode::OK).count()
    }

    fn check(&self, input: &Input) -> Result<(), TestCaseError> {
        oap_fuzz::within_time_limit(|| {
            self.post(&input.bytes);
        })
    }
}

#[test]
fn every_seed_of_the_corpus_is_taken_or_refused() {
    let receivers = Receivers::new();
    let taken = std::cell::Cell::new(0);
    let seeds = corpus().replay(|bytes| taken.set(taken.get() + receivers.post(bytes)));
    assert!(seeds >= 4 + 3 + 100 + 4, "{seeds} seeds");
    // The real segments are analysed and taken (one door each), and so is the array (its
    // reply tallies the bad elements) and the management messages (two doors each).
    assert!(taken.get() >= 100 + 4 * 2, "{} of {seeds} taken", taken.get());
}

#[test]
fn mutated_bodies_are_taken_or_refused() {
    let receivers = Receivers::new();
    oap_fuzz::fuzz(file!(), 1024, oap_fuzz::mutations(&corpus(), &DICTIONARY), |input| receivers.check(&input));
}

#[test]
fn token_soup_and_random_bytes_are_taken_or_refused() {
    let receivers = Receivers::new();
    let inputs = prop_oneof![3 => oap_fuzz::token_soup(&DICTIONARY), 1 => oap_fuzz::random_bytes()];
    oap_fuzz::fuzz(file!(), 1024, inputs, |input| receivers.check(&input));
}
