//! The `agent-analyzer` module: trace segments from agents analysed into sources, with every
//! rule of SkyWalking's analysis (`shared/reference/analysis.md`).
//!
//! - [`SegmentAnalyzer`]: the analysis itself — synchronous, allocation-light, no I/O, unit
//!   testable without a runtime;
//! - [`NetworkAddressAliasCache`]: which service answers at an address, learned from entry spans;
//! - [`settings`]: `agent-analyzer.default` and the rules derived from it.

pub mod alias;
mod analysis;
pub mod settings;

pub use self::alias::NetworkAddressAliasCache;
pub use self::analysis::{AnalysisError, AnalysisRules, SegmentAnalyzer, USER};
