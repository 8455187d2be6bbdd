//! The layering of docs/architecture-invariants.md, checked on the real crate graph: each rule
//! names a crate and the crates it must never reach through normal dependencies, and
//! `cargo tree` (which resolves features for that crate alone, as a build of it would) says
//! what it reaches. A rule the code breaks today is listed in `KNOWN_VIOLATIONS`, and the test
//! fails as well when a listed violation is gone, so the list shrinks with the code.

use std::collections::BTreeSet;
use std::process::Command;

/// The runtime crates the language and model crates must not pull in.
const RUNTIME: &[&str] = &["tokio", "tonic", "axum", "hyper"];

/// (crate, crates it must not reach, why).
const RULES: &[(&str, &[&str], &str)] = &[
    ("oap-oal", RUNTIME, "the language compiles without the server"),
    ("oap-model", RUNTIME, "the data model is pure data"),
    ("oap-proto", RUNTIME, "the messages need no gRPC runtime (services only with its `grpc` feature)"),
    ("oap-storage-model", RUNTIME, "what is stored is pure data"),
    ("oap-storage-embedded", &["oap-stream", "oap-query"], "a storage provider is a store, not a pipeline"),
    ("oap-storage-elasticsearch", &["oap-stream", "oap-query"], "a storage provider is a store, not a pipeline"),
    (
        "oap-storage",
        &["oap-core", "oap-stream", "oap-query", "oap-receiver"],
        "the storage interface sits below the pipeline",
    ),
    ("oap-query", &["oap-stream", "oap-receiver"], "the query API reads the store, beside the pipeline"),
    (
        "oap-ingest-log",
        &["oap-kernel", "oap-core", "oap-model", "oap-proto", "oap-storage", "oap-stream"],
        "the ingest log stores bytes of a kind; it knows no module, message or store",
    ),
    ("oap-core", &["oap-storage", "oap-stream", "oap-query", "oap-receiver"], "core sits below every module"),
];

/// Violations the code has today, each to be removed by the issue that names it. None since
/// issue 21 made the pipeline a module of its own.
const KNOWN_VIOLATIONS: &[(&str, &str)] = &[];

/// The crates `krate` reaches through normal dependencies, by name.
fn reached(krate: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["tree", "-p", krate, "-e", "normal", "--prefix", "none", "--format", "{p}", "--offline"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("run cargo tree");
    assert!(output.status.success(), "cargo tree -p {krate}: {}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    text.lines().filter_map(|line| line.split_whitespace().next()).map(str::to_owned).collect()
}

/// The (crate, forbidden crate) pairs `reach` shows, by `rules`.
fn violations(rules: &[(&str, &[&str], &str)], reach: impl Fn(&str) -> BTreeSet<String>) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (krate, forbidden, _) in rules {
        let reached = reach(krate);
        for name in forbidden.iter().filter(|name| reached.contains(**name)) {
            found.insert(((*krate).to_owned(), (*name).to_owned()));
        }
    }
    found
}

#[test]
fn the_crate_graph_keeps_the_written_layering() {
    let found = violations(RULES, reached);
    let known: BTreeSet<(String, String)> =
        KNOWN_VIOLATIONS.iter().map(|(krate, name)| ((*krate).to_owned(), (*name).to_owned())).collect();
    let new: Vec<_> = found.difference(&known).collect();
    let gone: Vec<_> = known.difference(&found).collect();
    assert!(new.is_empty(), "forbidden dependencies (docs/architecture-invariants.md): {new:?}");
    assert!(gone.is_empty(), "fixed, so take them off KNOWN_VIOLATIONS: {gone:?}");
}

#[test]
fn a_forbidden_edge_is_found() {
    let graph = |krate: &str| -> BTreeSet<String> {
        match krate {
            "oap-oal" => ["oap-oal", "oap-model", "tokio"].map(str::to_owned).into(),
            _ => BTreeSet::from([krate.to_owned()]),
        }
    };
    let found = violations(RULES, graph);
    assert_eq!(found, BTreeSet::from([("oap-oal".to_owned(), "tokio".to_owned())]));
}
