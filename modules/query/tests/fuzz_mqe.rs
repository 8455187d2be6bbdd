//! Fuzz target of MQE, the expressions of `execExpression`: any text is parsed into an
//! expression or refused with a sentence, and an expression that parses is evaluated — for a
//! service and an endpoint over five minutes of an embedded store holding a few metrics — to an
//! outcome or an error; nothing panics, overflows the stack (the parser bounds nesting at
//! `MAX_DEPTH`) or hangs.
//!
//! Corpus: each line of the files of `tests/fuzz-corpus/mqe/` (booster-ui's dashboard forms),
//! replayed every run, mutated by [`oap_fuzz::mutations`]. CI runs each test's default number of
//! cases (256 to 2,048; about 1.2 s for the whole target). A failure is kept in
//! `tests/fuzz_mqe.proptest-regressions`; fixed, its input joins the corpus.
//!
//! Longer by hand: `PROPTEST_CASES=1000000 cargo nextest run -p oap-query --test fuzz_mqe`

use std::path::Path;
use std::sync::Arc;

use oap_core::CoreConfig;
use oap_fuzz::{Corpus, Dictionary, Input};
use oap_model::{Granularity, TimeBuckets, ids};
use oap_oal::catalog::StreamKind;
use oap_oal::{ApdexThresholds, Catalog};
use oap_query::budget::Bounds;
use oap_query::context::QueryContext;
use oap_query::duration::QueryDuration;
use oap_query::metrics::Entity;
use oap_query::mqe::{self, Evaluation, Outcome};
use oap_query::schema::Limits;
use oap_storage::{Row, StorageRef, Value, Write};
use oap_storage_embedded::{Budget, EmbeddedStore};
use proptest::prelude::*;

const DICTIONARY: Dictionary = Dictionary {
    tokens: &[
        "service_cpm",
        "service_sla",
        "service_resp_time",
        "service_apdex",
        "service_percentile",
        "endpoint_cpm",
        "endpoint_sla",
        "top_n_database_statement",
        "service_relation_client_cpm",
        "avg(",
        "sum(",
        "max(",
        "min(",
        "count(",
        "latest(",
        "abs(",
        "ceil(",
        "floor(",
        "round(",
        "top_n(",
        "relabels(",
        "(",
        ")",
        "{",
        "}",
        ",",
        "=",
        "!=",
        "==",
        "<=",
        ">=",
        "<",
        ">",
        "+",
        "-",
        "*",
        "/",
        "%",
        "'",
        "\"",
        "p='50,75,90'",
        "_='x'",
        "attr0=",
        "attr5!=",
        "asc",
        "des",
        "'50,75,90,95,99'",
        " ",
        "\t",
        "\n",
    ],
    binary: &[],
    nests: &[("(", ")"), ("avg(", ")"), ("abs(", ")"), ("round(", ",2)"), ("1+", ""), ("-", ""), ("{", "}")],
};

const SERVICE: &str = "fuzz-service";
const ENDPOINTS: [&str; 3] = ["/a", "/b", "/c"];

fn corpus() -> Corpus {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus/mqe");
    Corpus::new().dir_with(dir, |_, text| {
        text.split(|byte| *byte == b'\n').filter(|line| !line.is_empty()).map(<[u8]>::to_vec).collect()
    })
}

/// An embedded store in a temporary directory holding five minutes of `service_cpm`,
/// `service_sla` and `service_resp_time` of one service and `endpoint_cpm` of its three
/// endpoints, and the expression context over those minutes.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    context: QueryContext,
    bounds: Bounds,
    duration: QueryDuration,
    dir: std::path::PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
        let dir =
            std::env::temp_dir().join(format!("oap-fuzz-mqe-{}-{:?}", std::process::id(), std::thread::current().id()));
        let buckets = TimeBuckets::utc();
        let now = oap_model::now_ms();
        let context = runtime.block_on(async {
            let store: StorageRef = Arc::new(EmbeddedStore::open(&dir, Budget::default()).expect("open the store"));
            let definitions = oap_oal::load("core.oal", oap_oal::CORE_OAL).expect("core.oal");
            let catalog = Catalog::new(definitions, ApdexThresholds::default()).expect("catalog");
            store.install(&oap_storage::builtin::models()).await.expect("install");
            store.install(&catalog.models()).await.expect("install");
            let service_id = ids::service_id(SERVICE, true);
            // A row of `metric` at `minute` with its value column set (and `service_id`).
            let row = |metric: &str, id: &str, minute: i64, value: Value| {
                let stream = catalog.find(metric).expect("a metric").1;
                let StreamKind::Oal(function) = stream.kind else { panic!("{metric} is no OAL metric") };
                let model = stream.model.clone();
                let mut values = vec![Value::Null; model.columns.len()];
                values[model.column(function.value_column()).expect("the value column")] = value;
                if let Some(column) = model.column("service_id") {
                    values[column] = Value::Text(service_id.clone());
                }
                let time_bucket = buckets.minute(now - minute * 60_000).expect("a minute");
                Write::Insert(model, Row { id: id.to_owned(), time_bucket, values })
            };
            let mut writes = Vec::new();
            for minute in 0..5 {
                writes.push(row("service_cpm", &service_id, minute, Value::Long(120 + minute)));
                writes.push(row("service_sla", &service_id, minute, Value::Int(9_950)));
                writes.push(row("service_resp_time", &service_id, minute, Value::Long(35 * minute)));
                let table = Value::Text(format!("{{p=50}},{minute}|{{p=75}},40|{{p=99}},9000"));
                writes.push(row("service_percentile", &service_id, minute, table));
            }
            for (rank, endpoint) in (0..).zip(ENDPOINTS) {
                let id = ids::endpoint_id(&service_id, endpoint);
                writes.push(row("endpoint_cpm", &id, 0, Value::Long(rank * 10)));
            }
            store.write(&writes).await.expect("write");
            QueryContext {
                storage: store,
                catalog: Arc::new(catalog),
                core: Arc::new(CoreConfig::default()),
                buckets: buckets.clone(),
                membership: Arc::new(oap_cluster::Membership::standalone("127.0.0.1", 11800)),
            }
        });
        let minute = |at: i64| {
            let text = buckets.minute(at).expect("a minute").to_string();
            format!("{}-{}-{} {}", &text[0..4], &text[4..6], &text[6..8], &text[8..12])
        };
        let duration = QueryDuration::parse(&minute(now - 4 * 60_000), &minute(now), Granularity::Minute, &buckets)
            .expect("a duration");
        Self { runtime, context, bounds: Bounds::new(Limits::default()), duration, dir }
    }

    /// Parses `text` and evaluates what parses for the service and for one of its endpoints.
    fn run(&self, text: &str) -> Vec<Result<Outcome, String>> {
        let Ok(expr) = mqe::parse(text) else { return Vec::new() };
        let service = Entity { service_name: Some(SERVICE.to_owned()), normal: Some(true), ..Entity::default() };
        let endpoint = Entity { endpoint_name: Some(ENDPOINTS[1].to_owned()), ..service.clone() };
        [service, endpoint]
            .iter()
            .map(|entity| {
                let budget = self.bounds.budget();
                let evaluation = Evaluation::new(&self.context, &budget, entity, self.duration).expect("an evaluation");
                self.runtime.block_on(evaluation.eval(&expr))
            })
            .collect()
    }

    fn check(&self, input: &Input) -> Result<(), TestCaseError> {
        oap_fuzz::within_time_limit(|| drop(self.run(&input.text())))
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn every_seed_of_the_corpus_is_evaluated_or_refused() {
    let fixture = Fixture::new();
    let seeds = corpus().replay(|bytes| drop(fixture.run(&String::from_utf8_lossy(bytes))));
    assert!(seeds >= 40, "{seeds} seeds");
}

/// The store answers, so that evaluation goes past the reads: a series, a ranking, a labeled
/// series.
#[test]
fn the_fixture_holds_data_for_the_expressions() {
    let fixture = Fixture::new();
    let values = |text: &str| -> Vec<Option<f64>> {
        let outcome = fixture.run(text).remove(0).expect(text);
        outcome.series.iter().flat_map(|series| series.values.iter().map(|value| value.value)).collect()
    };
    assert_eq!(values("service_cpm").iter().flatten().count(), 5);
    assert_eq!(values("top_n(endpoint_cpm,10,des)"), [Some(20.0), Some(10.0), Some(0.0)]);
    assert_eq!(values("service_percentile{p='75'}").iter().flatten().count(), 5);
}

#[test]
fn mutated_expressions_are_evaluated_or_refused() {
    let fixture = Fixture::new();
    oap_fuzz::fuzz(file!(), 1024, oap_fuzz::mutations(&corpus(), &DICTIONARY), |input| fixture.check(&input));
}

/// Expressions of MQE's grammar, well formed or nearly: metrics (labeled or not, known or not),
/// numbers as large as any, and every operator and function around them, up to 12 deep.
fn expression() -> impl Strategy<Value = String> {
    let metric = proptest::sample::select(
        &[
            "service_cpm",
            "service_sla",
            "service_resp_time",
            "service_percentile",
            "endpoint_cpm",
            "nope",
            "top_n_database_statement",
        ][..],
    );
    let labels = prop_oneof![
        3 => Just(String::new()),
        1 => Just("{p='50,75,99'}".to_owned()),
        1 => "\\{[a-z_]{1,3}='[0-9,]{0,8}'(,_='x')?\\}",
    ];
    let number = prop_oneof![
        3 => (0..10_000u32).prop_map(|n| n.to_string()),
        1 => proptest::sample::select(oap_fuzz::HOSTILE_NUMBERS).prop_map(|n| n.trim_start_matches('-').to_owned()),
    ];
    let leaf =
        prop_oneof![(metric.clone(), labels).prop_map(|(metric, labels)| format!("{metric}{labels}")), number.clone()];
    let op = proptest::sample::select(&["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">="][..]);
    let call = proptest::sample::select(&["avg", "sum", "max", "min", "count", "latest", "abs", "ceil", "floor"][..]);
    let top_n =
        (metric, number.clone(), proptest::sample::select(&["asc", "des", "x"][..]), "(,attr[0-6]!?='[A-Z]{0,4}')?")
            .prop_map(|(metric, n, order, attr)| format!("top_n({metric},{n},{order}{attr})"));
    let leaf = prop_oneof![3 => leaf, 1 => top_n];
    leaf.prop_recursive(12, 96, 2, move |inner| {
        prop_oneof![
            (inner.clone(), op.clone(), inner.clone()).prop_map(|(lhs, op, rhs)| format!("{lhs} {op} {rhs}")),
            (call.clone(), inner.clone()).prop_map(|(call, expr)| format!("{call}({expr})")),
            (inner.clone(), 0..20u32).prop_map(|(expr, places)| format!("round({expr},{places})")),
            inner.clone().prop_map(|expr| format!("relabels({expr},p='50,75,99',percentile='a,b,c')")),
            inner.prop_map(|expr| format!("({expr})")),
        ]
    })
}

#[test]
fn grammatical_expressions_are_evaluated_or_refused() {
    let fixture = Fixture::new();
    let inputs = expression().prop_map(|text| Input { origin: "grammar".to_owned(), bytes: text.into_bytes() });
    oap_fuzz::fuzz(file!(), 512, inputs, |input| fixture.check(&input));
}

#[test]
fn token_soup_and_random_bytes_are_evaluated_or_refused() {
    let fixture = Fixture::new();
    let inputs = prop_oneof![3 => oap_fuzz::token_soup(&DICTIONARY), 1 => oap_fuzz::random_bytes()];
    oap_fuzz::fuzz(file!(), 1024, inputs, |input| fixture.check(&input));
}
