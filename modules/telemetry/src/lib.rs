//! The `telemetry` module: oap-rs's own metrics (self-observability).
//!
//! Other modules get a [`MetricsCreatorRef`] and create counters, gauges and histograms by
//! name, with a fixed set of labels, as SkyWalking's `MetricsCreator` does; the handles are
//! cheap to clone and update lock-free, so they are fit for hot paths. Names follow SkyWalking's
//! self-observability metrics (`trace_in_latency`, `trace_analysis_error_count`, …), so its
//! so11y dashboards apply.
//!
//! Providers:
//! - `prometheus` (default): serves every metric at `GET /metrics` on its own port (1234) in
//!   the Prometheus text format;
//! - `none`: metrics are still counted (tests and other modules may read them) but not served.

mod error;
mod log_limit;
mod none;
mod prometheus_provider;
mod registry;

use std::sync::Arc;

use oap_kernel::{ModuleDefinition, ServiceDecl};

pub use self::error::TelemetryError;
pub use self::log_limit::LogLimit;
pub use self::none::NoneProviderFactory;
pub use self::prometheus_provider::{PrometheusConfig, PrometheusProviderFactory};
pub use self::registry::MetricsRegistry;

/// The module's name in `application.yml`.
pub const MODULE_NAME: &str = "telemetry";

/// A counter: only goes up.
pub type Counter = prometheus::IntCounter;
/// A gauge: a value that is set, or goes up and down.
pub type Gauge = prometheus::Gauge;
/// A histogram of observed values, e.g. latencies in seconds.
pub type Histogram = prometheus::Histogram;

/// Creates the self-observability metrics of other modules.
///
/// A name identifies one metric family; asking again for the same name and label values returns
/// the same series, so a metric may be created from several places. Creating a name with a
/// different kind or different label keys is an error.
pub trait MetricsCreator: Send + Sync {
    /// A counter series.
    fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Result<Counter, TelemetryError>;

    /// A gauge series.
    fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Result<Gauge, TelemetryError>;

    /// A histogram series; empty `buckets` means Prometheus' default buckets (5 ms to 10 s, for
    /// latencies in seconds), as SkyWalking uses.
    fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        buckets: &[f64],
    ) -> Result<Histogram, TelemetryError>;

    /// Every metric in the Prometheus text exposition format.
    fn render(&self) -> String;

    /// Where the metrics are served, once the endpoint is listening (none with provider `none`).
    fn endpoint(&self) -> Option<std::net::SocketAddr> {
        None
    }
}

/// The service other modules look up.
pub type MetricsCreatorRef = Arc<dyn MetricsCreator>;

/// The module's definition: it offers a [`MetricsCreatorRef`].
pub fn module_definition() -> ModuleDefinition {
    ModuleDefinition::new(MODULE_NAME, vec![ServiceDecl::of::<MetricsCreatorRef>()])
}
