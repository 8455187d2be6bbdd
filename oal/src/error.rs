//! What can be wrong with a set of compiled definitions once the scripts parse: a metric
//! defined twice, a metric named like a built-in stream, more streams than an id holds, or an
//! apdex threshold file that is not a map of positive milliseconds. Each is a mistake in the
//! operator's files, found at start.

/// A problem with the definitions, the catalog built from them, or the apdex thresholds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    /// Two scripts (or one) define the same metric.
    #[error("metric `{0}` is defined twice")]
    DefinedTwice(String),
    /// A metric has the name of one of the hard-coded streams.
    #[error("metric `{0}` has the name of a built-in stream")]
    BuiltinName(String),
    /// More streams or stream groups than their ids can number.
    #[error("too many {0}")]
    TooMany(&'static str),
    /// The apdex threshold file's text.
    #[error("{0}")]
    Apdex(String),
}
