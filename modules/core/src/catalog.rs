//! The metric definitions, read once while core prepares: every `*.oal` script of `oalDir` (in
//! name order) and the apdex thresholds of `apdexThresholdFile`, compiled into one
//! [`Catalog`] that the pipeline aggregates by and the query API answers from. A script that does
//! not compile stops the start with every error at its `file:line:column`; without the
//! directory the built-in `core.oal` is used, without the thresholds file every service's
//! threshold is 500 ms.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use oap_oal::{ApdexThresholds, Catalog, DefinitionError, Definitions, OalError};
use tracing::info;

/// The catalog, as other modules look it up.
pub type CatalogRef = Arc<Catalog>;

/// Why the definitions could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogLoadError {
    /// A file or the directory exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Scripts that do not parse or compile, every error at its place.
    #[error("the OAL scripts do not compile:\n{}", lines(.0))]
    Compile(Vec<OalError>),
    /// Definitions that compile but do not fit together, or thresholds that are not valid.
    #[error("{}: {source}", path.display())]
    Definitions {
        /// The file the problem was found in.
        path: PathBuf,
        /// The problem.
        source: DefinitionError,
    },
}

fn lines(errors: &[OalError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

/// The catalog of the scripts in `oal_dir` and the thresholds in `apdex_file`.
pub fn load_catalog(oal_dir: &str, apdex_file: &str) -> Result<Catalog, CatalogLoadError> {
    let dir = Path::new(oal_dir);
    let definitions = load_scripts(dir)?;
    let definitions_error = |path: &Path| {
        let path = path.to_owned();
        move |source| CatalogLoadError::Definitions { path, source }
    };
    let thresholds = match std::fs::read_to_string(apdex_file) {
        Ok(text) => ApdexThresholds::parse(&text).map_err(definitions_error(Path::new(apdex_file)))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            info!(file = apdex_file, "no apdex threshold file; every service's threshold is 500 ms");
            ApdexThresholds::default()
        }
        Err(source) => return Err(CatalogLoadError::Read { path: apdex_file.into(), source }),
    };
    Catalog::new(definitions, thresholds).map_err(definitions_error(dir))
}

fn load_scripts(dir: &Path) -> Result<Definitions, CatalogLoadError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            info!(dir = %dir.display(), "no OAL directory; the built-in core.oal defines the metrics");
            return oap_oal::load("core.oal", oap_oal::CORE_OAL).map_err(CatalogLoadError::Compile);
        }
        Err(source) => return Err(CatalogLoadError::Read { path: dir.to_owned(), source }),
    };
    let mut scripts: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "oal"))
        .collect();
    scripts.sort();
    let mut definitions = Definitions::default();
    let mut errors = Vec::new();
    for script in &scripts {
        let text = std::fs::read_to_string(script)
            .map_err(|source| CatalogLoadError::Read { path: script.clone(), source })?;
        match oap_oal::load(&script.display().to_string(), &text) {
            Ok(more) => definitions
                .merge(more)
                .map_err(|source| CatalogLoadError::Definitions { path: script.clone(), source })?,
            Err(mut found) => errors.append(&mut found),
        }
    }
    if !errors.is_empty() {
        return Err(CatalogLoadError::Compile(errors));
    }
    info!(dir = %dir.display(), scripts = scripts.len(), metrics = definitions.metrics.len(), "OAL scripts compiled");
    Ok(definitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory holding `files`, under the system's temporary directory.
    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("oap-core-catalog-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("written");
        }
        dir
    }

    #[test]
    fn without_the_directory_the_built_in_script_defines_the_metrics() {
        let catalog = load_catalog("/no/such/oal/dir", "/no/such/apdex.yml").expect("the built-in core.oal");
        assert!(catalog.find("service_cpm").is_some());
    }

    #[test]
    fn every_compile_error_is_reported_and_a_metric_defined_twice_names_its_file() {
        let dir = dir_with(&[("a.oal", "x = from(Service.latency).nope();\ny = from(Nowhere.latency).sum();\n")]);
        let error = load_catalog(dir.to_str().expect("utf-8"), "none").expect_err("does not compile");
        let CatalogLoadError::Compile(errors) = &error else { panic!("{error}") };
        assert_eq!(errors.len(), 2, "{error}");

        let twice = "cpm_a = from(Service.*).cpm();\n";
        let dir = dir_with(&[("a.oal", twice), ("b.oal", twice)]);
        let error = load_catalog(dir.to_str().expect("utf-8"), "none").expect_err("defined twice");
        assert!(error.to_string().ends_with("b.oal: metric `cpm_a` is defined twice"), "{error}");
    }

    #[test]
    fn a_bad_threshold_file_is_named() {
        let dir = dir_with(&[("apdex.yml", "default: fast\n")]);
        let file = dir.join("apdex.yml");
        let error = load_catalog("/no/such/oal/dir", file.to_str().expect("utf-8")).expect_err("not a number");
        assert!(matches!(error, CatalogLoadError::Definitions { .. }), "{error}");
        assert!(error.to_string().contains("apdex.yml: `default`"), "{error}");
    }
}
