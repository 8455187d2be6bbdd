//! The self-observability of a receiver, named as SkyWalking names it: every request message
//! is timed in `<family>_in_latency` and every rejected one counted in
//! `<family>_analysis_error_count`, both labelled with the `protocol` it came over.

use oap_kernel::ModuleError;
use oap_telemetry::{Counter, Histogram, MetricsCreator};
use prometheus::HistogramTimer;

/// The transports agents report over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// gRPC on `gRPCPort`.
    Grpc,
    /// HTTP/JSON on `restPort`.
    Http,
}

impl Protocol {
    /// The `protocol` label value.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::Http => "http",
        }
    }
}

/// One receiver's metrics, per protocol.
#[derive(Clone)]
pub struct ReceiverTelemetry {
    grpc: ProtocolTelemetry,
    http: ProtocolTelemetry,
}

/// One receiver's metrics over one protocol.
#[derive(Clone)]
pub struct ProtocolTelemetry {
    latency: Histogram,
    errors: Counter,
}

impl ReceiverTelemetry {
    /// Creates (or finds) `<family>_in_latency` and `<family>_analysis_error_count`; `what`
    /// completes their help texts ("The process latency of {what}").
    pub fn new(metrics: &dyn MetricsCreator, family: &str, what: &str) -> Result<Self, ModuleError> {
        let series = |protocol: Protocol| -> Result<ProtocolTelemetry, ModuleError> {
            let labels = [("protocol", protocol.label())];
            let latency = metrics.histogram(
                &format!("{family}_in_latency"),
                &format!("The process latency of {what}"),
                &labels,
                &[],
            )?;
            let errors = metrics.counter(
                &format!("{family}_analysis_error_count"),
                &format!("The error number of {what} analysis"),
                &labels,
            )?;
            Ok(ProtocolTelemetry { latency, errors })
        };
        Ok(Self { grpc: series(Protocol::Grpc)?, http: series(Protocol::Http)? })
    }

    /// The metrics of one protocol.
    pub fn of(&self, protocol: Protocol) -> &ProtocolTelemetry {
        match protocol {
            Protocol::Grpc => &self.grpc,
            Protocol::Http => &self.http,
        }
    }
}

impl ProtocolTelemetry {
    /// Starts timing one message; the time is observed when the timer drops.
    pub fn time(&self) -> HistogramTimer {
        self.latency.start_timer()
    }

    /// Counts one rejected message.
    pub fn reject(&self) {
        self.errors.inc();
    }
}
