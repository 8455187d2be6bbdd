//! Reading the metric definitions at start: every `*.oal` script of `oalDir` (in name order)
//! and the apdex thresholds. A script that does not compile stops the start with every error
//! at its `file:line:column`; without the directory the built-in `core.oal` is used.

use std::path::Path;

use oap_oal::{ApdexThresholds, Catalog, Definitions};
use tracing::info;

/// The catalog of the scripts in `oal_dir` and the thresholds in `apdex_file`.
pub fn load_catalog(oal_dir: &str, apdex_file: &str) -> Result<Catalog, String> {
    let definitions = load_scripts(Path::new(oal_dir))?;
    let thresholds = match std::fs::read_to_string(apdex_file) {
        Ok(text) => ApdexThresholds::parse(&text).map_err(|error| format!("{apdex_file}: {error}"))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            info!(file = apdex_file, "no apdex threshold file; every service's threshold is 500 ms");
            ApdexThresholds::default()
        }
        Err(error) => return Err(format!("cannot read {apdex_file}: {error}")),
    };
    Catalog::new(definitions, thresholds)
}

fn load_scripts(dir: &Path) -> Result<Definitions, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            info!(dir = %dir.display(), "no OAL directory; the built-in core.oal defines the metrics");
            return oap_oal::load("core.oal", oap_oal::CORE_OAL).map_err(|errors| joined(&errors));
        }
        Err(error) => return Err(format!("cannot read the OAL directory {}: {error}", dir.display())),
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
        let text =
            std::fs::read_to_string(script).map_err(|error| format!("cannot read {}: {error}", script.display()))?;
        match oap_oal::load(&script.display().to_string(), &text) {
            Ok(more) => definitions.merge(more).map_err(|error| format!("{}: {error}", script.display()))?,
            Err(mut found) => errors.append(&mut found),
        }
    }
    if !errors.is_empty() {
        return Err(joined(&errors));
    }
    info!(dir = %dir.display(), scripts = scripts.len(), metrics = definitions.metrics.len(), "OAL scripts compiled");
    Ok(definitions)
}

fn joined(errors: &[oap_oal::OalError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!("the OAL scripts do not compile:\n{}", lines.join("\n"))
}
