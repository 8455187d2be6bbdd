//! The corpus of broken scripts in `tests/errors/`: each `NAME.oal` must fail to load (parse
//! and compile) with exactly the errors in `NAME.expected`, one per line (worked out by hand:
//! file, line, column, message).

use std::path::Path;

#[test]
fn every_broken_script_fails_where_and_how_its_golden_file_says() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/errors");
    let mut checked = 0;
    let mut entries: Vec<_> =
        std::fs::read_dir(&dir).expect("the corpus").map(|entry| entry.expect("entry").path()).collect();
    entries.sort();
    for script in entries.iter().filter(|path| path.extension().is_some_and(|ext| ext == "oal")) {
        let name = script.file_name().and_then(|name| name.to_str()).expect("a file name");
        let text = std::fs::read_to_string(script).expect("the script");
        let expected = std::fs::read_to_string(script.with_extension("expected")).expect("its golden file");
        let errors = oap_oal::load(name, &text).expect_err(name);
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.join("\n"), expected.trim_end(), "{name}");
        checked += 1;
    }
    assert_eq!(checked, 12, "every script of the corpus was checked");
}
