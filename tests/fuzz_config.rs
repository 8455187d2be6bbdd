//! Fuzz target of the config loader: any `application.yml` text — YAML, `${NAME:default}`
//! placeholders nested any depth, selectors, every provider's typed settings (the whole catalog
//! of `oap_server::catalog()`) — and any `--set` override is loaded into a boot plan or refused
//! with errors; it never panics, overflows the stack or hangs.
//!
//! Corpus: `tests/fuzz-corpus/config/` and the shipped `application.yml`, replayed every run,
//! mutated by [`oap_fuzz::mutations`]. CI runs each test's default number of cases (256 to 2,048;
//! about 3 s for the whole target). A failure is kept in `tests/fuzz_config.proptest-regressions`;
//! fixed, its input joins the corpus.
//!
//! Longer by hand: `PROPTEST_CASES=1000000 cargo nextest run -p oap-server --test fuzz_config`

use std::path::Path;

use oap_fuzz::{Corpus, Dictionary, Input};
use oap_kernel::{BootPlan, ConfigOverride, ModuleCatalog};
use proptest::prelude::*;

const DICTIONARY: Dictionary = Dictionary {
    tokens: &[
        "${",
        "}",
        ":",
        "${SW_ROLE:",
        "${SW_UNSET}",
        "${SW_EMPTY:x}",
        "${SW_LITERAL}",
        "${SW_LONG}",
        "\n",
        "\n  ",
        "\n    ",
        "- ",
        "selector: ",
        "default:",
        "-",
        "~",
        "null",
        "true",
        "&a ",
        "*a",
        "<<: ",
        "!!binary ",
        "!!str ",
        "!tag ",
        "? ",
        "|\n",
        ">\n",
        "'",
        "\"",
        "\\u0000",
        "#",
        "---\n",
        "...\n",
        "core:\n",
        "storage:\n",
        "elasticsearch:\n",
        "embedded:\n",
        "query:\n",
        "graphql:\n",
        "gRPCPort: ",
        "restPort: ",
        "role: ",
        "clusterNodes: ",
        "recordDataTTL: ",
        "maxMessageSize: ",
        "slowDBAccessThreshold: ",
        "maxQueryComplexity: ",
        "1s",
        "100ms",
        "1h",
        "3d",
        "65536",
        "0x10",
        ".nan",
        ".inf",
        "1e3",
    ],
    binary: &[],
    nests: &[("${", "}"), ("${A:", "}"), ("[", "]"), ("{", "}"), ("- ", ""), ("{a: ", "}"), ("*", "")],
};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn corpus() -> Corpus {
    Corpus::new().dir(root().join("tests/fuzz-corpus/config")).file(root().join("application.yml"))
}

/// The environment placeholders read: a few names set, one to the empty string, one to text
/// that looks like a placeholder (taken literally), one long.
fn env(name: &str) -> Option<String> {
    match name {
        "SW_ROLE" => Some("Receiver".to_owned()),
        "SW_EMPTY" => Some(String::new()),
        "SW_LITERAL" => Some("${SW_ROLE}".to_owned()),
        "SW_LONG" => Some("x".repeat(10_000)),
        "SW_STORAGE_ES_CLUSTER_NODES" => Some("es1:9200".to_owned()),
        _ => None,
    }
}

/// Loads `text` (with `overrides`) as the server does; a panic fails the case.
fn load(catalog: &ModuleCatalog, text: &str, overrides: &[ConfigOverride]) {
    let _ = BootPlan::from_yaml(text, "fuzz.yml", &env, overrides, catalog);
}

fn check(catalog: &ModuleCatalog, input: &Input) -> Result<(), TestCaseError> {
    oap_fuzz::within_time_limit(|| load(catalog, &input.text(), &[]))
}

#[test]
fn every_seed_of_the_corpus_loads_or_is_refused() {
    let catalog = oap_server::catalog();
    let seeds = corpus().replay(|bytes| load(&catalog, &String::from_utf8_lossy(bytes), &[]));
    assert!(seeds >= 5, "{seeds} seeds");
}

/// A setting's value: a placeholder nested 0 to 20,000 deep (closed or not) around a hostile
/// default, or a hostile value alone.
fn value() -> impl Strategy<Value = String> {
    let name = proptest::sample::select(&["SW_ROLE", "SW_UNSET", "SW_EMPTY", "SW_LITERAL", "SW_LONG", ""][..]);
    let plain = prop_oneof![
        proptest::sample::select(oap_fuzz::HOSTILE_NUMBERS).prop_map(str::to_owned),
        proptest::sample::select(&["1s", "-5m", "99999999999d", "", "~", "a,,b", "[]", "{}", "'", "\"", "-"][..])
            .prop_map(str::to_owned),
        "[ -~]{0,40}",
        (any::<char>(), 1..20_000usize).prop_map(|(c, n)| c.to_string().repeat(n)),
    ];
    let depth = prop_oneof![4 => 0..4usize, 1 => 4..40usize, 1 => 1_000..20_000usize];
    (name, depth, plain, any::<bool>()).prop_map(|(name, depth, plain, closed)| {
        let open = format!("${{{name}:");
        let close = if closed { "}" } else { "" };
        format!("{}{plain}{}", open.repeat(depth), close.repeat(depth))
    })
}

/// The shipped `application.yml` with the values of one to six of its settings replaced.
fn settings_replaced() -> impl Strategy<Value = Input> {
    let shipped: Vec<String> = oap_server::BUILTIN_CONFIG.lines().map(str::to_owned).collect();
    let settings: Vec<usize> = (0..shipped.len())
        .filter(|&line| shipped[line].starts_with("    ") && !shipped[line].trim_start().starts_with('#'))
        .collect();
    proptest::collection::vec((proptest::sample::select(settings), value()), 1..6).prop_map(move |replaced| {
        let mut lines = shipped.clone();
        for (line, value) in replaced {
            let key = lines[line].split_once(':').map_or(lines[line].as_str(), |(key, _)| key).to_owned();
            lines[line] = format!("{key}: {value}");
        }
        Input { origin: "application.yml with settings replaced".to_owned(), bytes: lines.join("\n").into_bytes() }
    })
}

/// An override as `--set` takes it: a dotted key, `=`, a value.
fn set() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        Just("core".to_owned()),
        Just("default".to_owned()),
        Just("storage".to_owned()),
        Just("selector".to_owned()),
        Just("embedded".to_owned()),
        Just("gRPCPort".to_owned()),
        "[a-zA-Z-]{0,12}",
    ];
    let value = prop_oneof![
        "[ -~]{0,24}",
        proptest::sample::select(oap_fuzz::HOSTILE_NUMBERS).prop_map(str::to_owned),
        Just("${SW_ROLE:${SW_UNSET}}".to_owned()),
    ];
    (proptest::collection::vec(part, 1..5), value).prop_map(|(path, value)| format!("{}={value}", path.join(".")))
}

proptest! {
    #![proptest_config(oap_fuzz::config(256))]

    #[test]
    fn mutated_configs_load_or_are_refused(input in oap_fuzz::mutations(&corpus(), &DICTIONARY)) {
        check(&oap_server::catalog(), &input)?;
    }

    #[test]
    fn shipped_config_with_hostile_settings_loads_or_is_refused(input in settings_replaced()) {
        check(&oap_server::catalog(), &input)?;
    }

    #[test]
    fn token_soup_and_random_bytes_load_or_are_refused(
        input in prop_oneof![oap_fuzz::token_soup(&DICTIONARY), oap_fuzz::random_bytes()],
    ) {
        check(&oap_server::catalog(), &input)?;
    }

    #[test]
    fn any_override_applies_or_is_refused(sets in proptest::collection::vec(set(), 0..4)) {
        let overrides: Vec<ConfigOverride> = sets.iter().filter_map(|set| set.parse().ok()).collect();
        load(&oap_server::catalog(), oap_server::BUILTIN_CONFIG, &overrides);
    }
}
