//! Errors of metric creation.

/// Why a metric could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The name is taken by a metric of another kind or with other label keys.
    #[error("metric `{name}` already exists with a different shape: {detail}")]
    Conflict {
        /// The metric name.
        name: String,
        /// What differs.
        detail: String,
    },
    /// The name, labels or buckets are invalid.
    #[error("invalid metric `{name}`: {source}")]
    Invalid {
        /// The metric name.
        name: String,
        /// The underlying error.
        #[source]
        source: prometheus::Error,
    },
}

impl From<TelemetryError> for oap_kernel::ModuleError {
    /// A module that cannot create its metrics cannot start.
    fn from(error: TelemetryError) -> Self {
        oap_kernel::ModuleError::Other(error.to_string())
    }
}
