//! The `agent-analyzer` module: trace segments from agents analysed into sources, with every
//! rule of SkyWalking's analysis (`docs/reference/analysis.md`).
//!
//! - [`SegmentAnalyzer`]: the analysis itself — synchronous, allocation-light, no I/O, unit
//!   testable without a runtime;
//! - [`NetworkAddressAliasCache`]: which service answers at an address, learned from entry spans;
//! - [`settings`]: `agent-analyzer.default` and the rules derived from it;
//! - [`AnalyzerProviderFactory`]: the `default` provider, which builds the analyzer from those
//!   settings and the core module's name limits, searchable tags and time zone.

pub mod alias;
pub mod alias_reload;
mod analysis;
mod provider;
pub mod settings;

use oap_kernel::{ModuleDefinition, ServiceDecl};

pub use self::alias::NetworkAddressAliasCache;
pub use self::analysis::{
    AnalysisError, AnalysisRules, MAX_AHEAD_MS, MAX_ID_LENGTH, SegmentAnalyzer, SegmentLimits, USER,
};
pub use self::provider::AnalyzerProviderFactory;

/// The module's name in `application.yml`.
pub const MODULE_NAME: &str = "agent-analyzer";

/// The module's definition: it offers the [`SegmentAnalyzer`].
pub fn module_definition() -> ModuleDefinition {
    ModuleDefinition::new(MODULE_NAME, vec![ServiceDecl::of::<SegmentAnalyzer>()])
}
