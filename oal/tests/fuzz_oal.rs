//! Fuzz target of OAL: any script is lexed, parsed and compiled into definitions or refused
//! with errors at `file:line:column`; a script that compiles becomes a catalog, which turns
//! sources of every kind — with hostile latencies and tags — into metrics, merged and written
//! as storage rows and read back. Nothing panics, overflows the stack or hangs. The apdex
//! threshold file (`service-apdex-threshold.yml`) is fuzzed alongside.
//!
//! Corpus: `tests/fuzz-corpus/oal/`, `oal/core.oal` and the broken scripts of `tests/errors/`,
//! replayed every run, mutated by [`oap_fuzz::mutations`]. CI runs each test's default number of
//! cases (256 to 2,048; about 1.1 s for the whole target). A failure is kept in
//! `tests/fuzz_oal.proptest-regressions`; fixed, its input joins the corpus.
//!
//! Longer by hand: `PROPTEST_CASES=1000000 cargo nextest run -p oap-oal --test fuzz_oal`

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use oap_fuzz::{Corpus, Dictionary, Input};
use oap_model::Layer;
use oap_model::source::{
    CacheAccess, CacheOperation, DatabaseAccess, DetectPoint, Endpoint, EndpointRelation, RequestFacts, RequestType,
    Service, ServiceInstance, ServiceRelation, Source, SpanTags,
};
use oap_oal::catalog::{GroupId, Metric, MetricSink, Slot};
use oap_oal::program::Program;
use oap_oal::scope::Scope;
use oap_oal::{ApdexThresholds, Catalog, Definitions, EntityKey, MetricDefinition};
use oap_proto::v3::KeyStringValuePair;
use proptest::prelude::*;

const DICTIONARY: Dictionary = Dictionary {
    tokens: &[
        "from(",
        "Service",
        "ServiceInstance",
        "Endpoint",
        "ServiceRelation",
        "EndpointRelation",
        "DatabaseAccess",
        "CacheAccess",
        ".",
        "*",
        "latency",
        "status",
        "name",
        "tag[\"x\"]",
        "(str->long)",
        "(int)",
        ").filter(",
        "==",
        "!=",
        ">",
        "<",
        ">=",
        "<=",
        "like",
        "in",
        "contain",
        "not contain",
        "[",
        "]",
        ",",
        "null",
        "true",
        "\"%\"",
        "\"\\u{0}\"",
        "\"\\",
        ").longAvg()",
        ").cpm()",
        ").percentile2(",
        ").histogram(",
        ").apdex(name, status)",
        ").percent(",
        ").rate(",
        ".decorator(\"ServiceDecorator\")",
        "disable(",
        ";",
        "/*",
        "*/",
        "//",
        "\n",
        "RequestType.HTTP",
        "DetectPoint.CLIENT",
        "x = ",
        "_",
    ],
    binary: &[],
    nests: &[("(", ")"), ("[", "]"), ("/*", "*/"), ("from(", ")"), ("(str->long)", "")],
};

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn corpus() -> Corpus {
    let mut errors: Vec<_> = std::fs::read_dir(manifest().join("tests/errors"))
        .expect("tests/errors")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "oal"))
        .collect();
    errors.sort();
    let corpus = Corpus::new().dir(manifest().join("tests/fuzz-corpus/oal")).file(manifest().join("core.oal"));
    errors.into_iter().fold(corpus, Corpus::file)
}

/// Rows by group, entity and bucket, as L1 keeps them.
#[derive(Default)]
struct Rows(HashMap<(GroupId, String, i64), Vec<Option<Slot>>>);

impl MetricSink for Rows {
    fn group(&mut self, group: GroupId, slots: usize, entity: &EntityKey<'_>, time_bucket: i64) -> &mut [Option<Slot>] {
        self.0.entry((group, entity.id(), time_bucket)).or_insert_with(|| vec![None; slots])
    }
}

/// Tags whose values are numbers, not quite numbers, or none.
fn tags() -> Vec<KeyStringValuePair> {
    let tag = |key: &str, value: &str| KeyStringValuePair { key: key.to_owned(), value: value.to_owned() };
    vec![
        tag("x", "9223372036854775807"),
        tag("x-le", "-2147483649"),
        tag("transmission.latency", "40"),
        tag("http.method", "GET"),
        tag("x", ""),
        tag("status_code", "1e3"),
        tag("", "é😀"),
    ]
}

/// One source of each kind the OAL scopes read, with `latency` and `status`.
fn sources<'a>(tags: &'a [KeyStringValuePair], latency: i32, status: bool) -> Vec<Source<'a>> {
    let request = RequestFacts {
        latency,
        status,
        http_response_status_code: latency,
        rpc_status_code: "UNKNOWN",
        request_type: Some(RequestType::Http),
        tags: SpanTags(tags),
        time_bucket: 202_611_211_230,
    };
    let relation = ServiceRelation {
        source_service_name: "a",
        source_service_instance_name: "a-1",
        source_layer: Layer::GENERAL,
        dest_service_name: "b",
        dest_service_instance_name: "b-1",
        dest_layer: Layer::GENERAL,
        endpoint: "/e",
        component_id: 7001,
        detect_point: if status { DetectPoint::Client } else { DetectPoint::Server },
        request,
    };
    vec![
        Source::Service(Service {
            name: "a",
            layer: Layer::GENERAL,
            service_instance_name: "a-1",
            endpoint_name: "/e",
            request,
        }),
        Source::ServiceInstance(ServiceInstance {
            name: "a-1",
            service_name: "a",
            service_layer: Layer::GENERAL,
            endpoint_name: "/e",
            request,
        }),
        Source::Endpoint(Endpoint {
            name: Cow::Borrowed("/e"),
            service_name: "a",
            service_layer: Layer::GENERAL,
            service_instance_name: "a-1",
            request,
        }),
        Source::ServiceInstanceRelation(relation.clone()),
        Source::ServiceRelation(relation),
        Source::EndpointRelation(EndpointRelation {
            endpoint: "/e",
            service_name: "a",
            service_instance_name: "a-1",
            service_layer: Layer::GENERAL,
            child_endpoint: "/f",
            child_service_name: "b",
            child_service_instance_name: "b-1",
            child_service_layer: Layer::GENERAL,
            component_id: 7001,
            detect_point: DetectPoint::Server,
            request,
        }),
        Source::DatabaseAccess(DatabaseAccess {
            name: "db:3306",
            database_type_id: 5,
            latency,
            status,
            time_bucket: 202_611_211_230,
        }),
        Source::CacheAccess(CacheAccess {
            name: Cow::Borrowed("redis:6379"),
            cache_type_id: 7,
            latency,
            status,
            operation: if status { CacheOperation::Read } else { CacheOperation::Write },
            time_bucket: 202_611_211_230,
        }),
    ]
}

/// Loads `text`; what compiles is [`aggregate`]d.
fn run(text: &str) {
    if let Ok(definitions) = oap_oal::load("fuzz.oal", text) {
        aggregate(definitions);
    }
}

/// A catalog of `definitions` aggregates every source; each metric is merged into itself, and
/// its storage row written and read back.
fn aggregate(definitions: Definitions) {
    let tags = tags();
    programs_agree(&definitions, &tags);
    let Ok(catalog) = Catalog::new(definitions, ApdexThresholds::default()) else { return };
    let mut rows = Rows::default();
    for (latency, status) in [(0, true), (-1, false), (i32::MAX, true), (i32::MIN, false), (700, true)] {
        for source in sources(&tags, latency, status) {
            catalog.aggregate(&source, &mut rows);
        }
    }
    for ((group, entity, time_bucket), slots) in rows.0 {
        for (&stream, slot) in catalog.group_streams(group).iter().zip(slots) {
            let Some(Slot { fixed, mut value }) = slot else { continue };
            let copy = value.clone();
            value.combine(&copy);
            let metric = Metric { stream, entity_id: entity.as_str().into(), time_bucket, fixed, value, epoch: 0 };
            let definition = catalog.stream(stream).expect("a stream of the catalog");
            let _ = definition
                .read(stream, definition.row(&metric.rolled_up(oap_model::Granularity::Day), &Default::default()));
        }
    }
}

/// A scope's metrics compiled together ([`Program`]) give every source exactly the inputs the
/// metrics give one by one ([`MetricDefinition::admits`], [`MetricDefinition::input`]).
fn programs_agree(definitions: &Definitions, tags: &[KeyStringValuePair]) {
    let thresholds = ApdexThresholds::default();
    for (latency, status) in [(0, true), (-1, false), (i32::MAX, true), (i32::MIN, false), (700, true)] {
        for source in sources(tags, latency, status) {
            let Some(scope) = Scope::of_source(&source) else { continue };
            let metrics: Vec<&MetricDefinition> =
                definitions.metrics.iter().filter(|metric| metric.scope == scope).collect();
            let program = Program::compile(&metrics);
            let one_by_one: Vec<(usize, oap_oal::function::Input)> = metrics
                .iter()
                .enumerate()
                .filter(|(_, metric)| metric.admits(&source))
                .filter_map(|(position, metric)| Some((position, metric.input(&source, &thresholds)?)))
                .collect();
            let mut together = Vec::new();
            program.run(
                &source,
                |position| metrics[position],
                &thresholds,
                |position, input| {
                    together.push((position, input));
                },
            );
            assert_eq!(together, one_by_one, "{scope:?}");
        }
    }
}

fn check(input: &Input) -> Result<(), TestCaseError> {
    oap_fuzz::within_time_limit(|| run(&input.text()))
}

#[test]
fn every_seed_of_the_corpus_compiles_or_is_refused() {
    let seeds = corpus().replay(|bytes| run(&String::from_utf8_lossy(bytes)));
    assert!(seeds >= 14, "{seeds} seeds");
}

#[test]
fn the_seed_of_every_form_compiles() {
    let text = std::fs::read_to_string(manifest().join("tests/fuzz-corpus/oal/every-form.oal")).expect("the seed");
    let definitions = oap_oal::load("every-form.oal", &text).expect("every form compiles");
    assert_eq!((definitions.metrics.len(), definitions.disabled.len()), (17, 2));
}

#[test]
fn mutated_scripts_compile_or_are_refused() {
    oap_fuzz::fuzz(file!(), 1024, oap_fuzz::mutations(&corpus(), &DICTIONARY), |input| check(&input));
}

#[test]
fn token_soup_and_random_bytes_compile_or_are_refused() {
    let inputs = prop_oneof![3 => oap_fuzz::token_soup(&DICTIONARY), 1 => oap_fuzz::random_bytes()];
    oap_fuzz::fuzz(file!(), 1024, inputs, |input| check(&input));
}

/// Statements of OAL's grammar, mostly well typed so that most compile and aggregate: every
/// scope, attributes cast or not, filters of every operator against numbers past every width,
/// strings and lists, every function with arguments as large or small as any; now and then a
/// part that does not fit.
fn statement() -> impl Strategy<Value = String> {
    let pick = |items: &'static [&'static str]| proptest::sample::select(items).prop_map(str::to_owned);
    let scope = prop_oneof![
        8 => pick(&["Service", "ServiceInstance", "Endpoint", "ServiceRelation", "ServiceInstanceRelation", "EndpointRelation", "DatabaseAccess", "CacheAccess"]),
        1 => pick(&["Nope", "service"]),
    ];
    let source = prop_oneof![
        8 => pick(&["*", "latency", "(str->long)tag[\"x\"]", "(str->int)tag[\"x-le\"]", "(long)tag[\"\"]"]),
        1 => pick(&["status", "name", "(str->long)latency", "nope", "tag"]),
    ];
    let number = prop_oneof![3 => (-3..200i64).prop_map(|n| n.to_string()), 1 => pick(oap_fuzz::HOSTILE_NUMBERS)];
    let string = pick(&["\"\"", "\"%\"", "\"/api/%\"", "\"%%_\\\\%\"", "\"é😀\"", "\"GET\""]);
    let filter = prop_oneof![
        (
            pick(&["latency", "httpResponseStatusCode", "componentId"]),
            pick(&["==", "!=", ">", "<", ">=", "<="]),
            number.clone()
        )
            .prop_map(|(attribute, operator, n)| format!("{attribute} {operator} {n}")),
        pick(&[
            "status == true",
            "status != false",
            "tag[\"x\"] != null",
            "type == RequestType.HTTP",
            "detectPoint == DetectPoint.CLIENT"
        ]),
        (
            pick(&["name", "tag[\"http.method\"]", "endpoint"]),
            pick(&["==", "!=", "like", "contain", "not contain"]),
            string.clone()
        )
            .prop_map(|(attribute, operator, text)| format!("{attribute} {operator} {text}")),
        (
            pick(&["componentId", "httpResponseStatusCode", "name"]),
            proptest::collection::vec(prop_oneof![number.clone(), string], 0..4)
        )
            .prop_map(|(attribute, items)| format!("{attribute} in [{}]", items.join(", "))),
    ];
    let function = prop_oneof![
        pick(&["longAvg()", "doubleAvg()", "cpm()", "count()", "sum()", "max()", "min()", "apdex(name, status)"]),
        number.clone().prop_map(|n| format!("percentile2({n})")),
        (number.clone(), number).prop_map(|(step, count)| format!("histogram({step}, {count})")),
        filter.clone().prop_map(|condition| format!("percent({condition})")),
        (filter.clone(), filter.clone()).prop_map(|(a, b)| format!("rate({a}, {b})")),
    ];
    let decorator = pick(&["", "", "", ".decorator(\"ServiceDecorator\")", ".decorator(\"EndpointDecorator\")"]);
    (scope, source, proptest::collection::vec(filter, 0..3), function, decorator).prop_map(
        |(scope, source, filters, function, decorator)| {
            let (cast, attribute) = match source.find(')') {
                Some(end) if source.starts_with('(') => source.split_at(end + 1),
                _ => ("", source.as_str()),
            };
            let filters: String = filters.iter().map(|filter| format!(".filter({filter})")).collect();
            format!("m = from({cast}{scope}.{attribute}){filters}.{function}{decorator};")
        },
    )
}

/// Each statement is loaded alone, and those that compile make one catalog, so that most cases
/// aggregate.
#[test]
fn grammatical_statements_compile_and_aggregate_or_are_refused() {
    oap_fuzz::fuzz(file!(), 512, proptest::collection::vec(statement(), 1..6), |statements| {
        oap_fuzz::within_time_limit(|| {
            let mut definitions = Definitions::default();
            for (index, statement) in statements.iter().enumerate() {
                if let Ok(compiled) = oap_oal::load("fuzz.oal", &statement.replacen("m ", &format!("m{index} "), 1)) {
                    definitions.merge(compiled).expect("names are distinct");
                }
            }
            aggregate(definitions);
        })
    });
}

/// Apdex threshold files: the shipped one mutated, and random text.
#[test]
fn apdex_thresholds_parse_or_are_refused() {
    let shipped = manifest().join("../service-apdex-threshold.yml");
    let corpus = Corpus::new().file(&shipped).seed("services", "default: 500\nsvc-a: 100\n\"svc:b\": 99999999999");
    const YAML: Dictionary = Dictionary {
        binary: &[],
        tokens: &[": ", "\n", "default", "-1", "~", "[]", "{}", "&a ", "*a"],
        nests: &[("[", "]")],
    };
    let inputs = prop_oneof![oap_fuzz::mutations(&corpus, &YAML), oap_fuzz::token_soup(&YAML)];
    oap_fuzz::fuzz(file!(), 256, inputs, |input| {
        oap_fuzz::within_time_limit(|| drop(ApdexThresholds::parse(&input.text())))
    });
}
