//! The registry behind both providers: metric families by name, on a Prometheus registry.

use std::collections::HashMap;
use std::sync::Mutex;

use prometheus::core::{MetricVec, MetricVecBuilder};
use prometheus::{Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};

use crate::{Counter, Gauge, Histogram, MetricsCreator, TelemetryError};

/// Metric families by name. Creating a series takes a lock (start-up work); updating one does not.
#[derive(Default)]
pub struct MetricsRegistry {
    registry: Registry,
    families: Mutex<HashMap<String, Family>>,
    endpoint: std::sync::OnceLock<std::net::SocketAddr>,
}

#[derive(Clone)]
enum Family {
    Counter(IntCounterVec, Vec<String>),
    Gauge(GaugeVec, Vec<String>),
    Histogram(HistogramVec, Vec<String>),
}

impl Family {
    fn kind(&self) -> &'static str {
        match self {
            Family::Counter(..) => "counter",
            Family::Gauge(..) => "gauge",
            Family::Histogram(..) => "histogram",
        }
    }

    fn label_keys(&self) -> &[String] {
        match self {
            Family::Counter(_, keys) | Family::Gauge(_, keys) | Family::Histogram(_, keys) => keys,
        }
    }
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records where the metrics are served (once; later calls are ignored).
    pub fn set_endpoint(&self, address: std::net::SocketAddr) {
        let _ = self.endpoint.set(address);
    }

    /// The family called `name`, created by `create` if it does not exist yet; checks that an
    /// existing family has the same kind and label keys.
    fn family(
        &self,
        name: &str,
        kind: &'static str,
        labels: &[(&str, &str)],
        create: impl FnOnce(&[&str]) -> Result<Family, prometheus::Error>,
    ) -> Result<(Family, Vec<String>), TelemetryError> {
        let keys: Vec<&str> = labels.iter().map(|(key, _)| *key).collect();
        let values: Vec<String> = labels.iter().map(|(_, value)| (*value).to_owned()).collect();
        let mut families = self.families.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(family) = families.get(name) {
            if family.kind() != kind || family.label_keys() != keys.as_slice() {
                return Err(TelemetryError::Conflict {
                    name: name.to_owned(),
                    detail: format!(
                        "{} with labels [{}], asked for {kind} with labels [{}]",
                        family.kind(),
                        family.label_keys().join(", "),
                        keys.join(", ")
                    ),
                });
            }
            return Ok((family.clone(), values));
        }
        let invalid = |source| TelemetryError::Invalid { name: name.to_owned(), source };
        let family = create(&keys).map_err(invalid)?;
        let collector: Box<dyn prometheus::core::Collector> = match &family {
            Family::Counter(vec, _) => Box::new(vec.clone()),
            Family::Gauge(vec, _) => Box::new(vec.clone()),
            Family::Histogram(vec, _) => Box::new(vec.clone()),
        };
        self.registry.register(collector).map_err(invalid)?;
        families.insert(name.to_owned(), family.clone());
        Ok((family, values))
    }
}

fn owned(keys: &[&str]) -> Vec<String> {
    keys.iter().map(|key| (*key).to_owned()).collect()
}

/// The series of `family` with these label values.
fn series<B: MetricVecBuilder>(name: &str, family: &MetricVec<B>, values: &[String]) -> Result<B::M, TelemetryError> {
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    family
        .get_metric_with_label_values(&values)
        .map_err(|source| TelemetryError::Invalid { name: name.to_owned(), source })
}

impl MetricsCreator for MetricsRegistry {
    fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Result<Counter, TelemetryError> {
        let (family, values) = self.family(name, "counter", labels, |keys| {
            Ok(Family::Counter(IntCounterVec::new(Opts::new(name, help), keys)?, owned(keys)))
        })?;
        let Family::Counter(vec, _) = family else { unreachable!("kind checked by family()") };
        series(name, &vec, &values)
    }

    fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Result<Gauge, TelemetryError> {
        let (family, values) = self.family(name, "gauge", labels, |keys| {
            Ok(Family::Gauge(GaugeVec::new(Opts::new(name, help), keys)?, owned(keys)))
        })?;
        let Family::Gauge(vec, _) = family else { unreachable!("kind checked by family()") };
        series(name, &vec, &values)
    }

    fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[(&str, &str)],
        buckets: &[f64],
    ) -> Result<Histogram, TelemetryError> {
        let (family, values) = self.family(name, "histogram", labels, |keys| {
            let mut opts = HistogramOpts::new(name, help);
            if !buckets.is_empty() {
                opts = opts.buckets(buckets.to_vec());
            }
            Ok(Family::Histogram(HistogramVec::new(opts, keys)?, owned(keys)))
        })?;
        let Family::Histogram(vec, _) = family else { unreachable!("kind checked by family()") };
        series(name, &vec, &values)
    }

    fn endpoint(&self) -> Option<std::net::SocketAddr> {
        self.endpoint.get().copied()
    }

    fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec only fails on invalid metric data, which the registry rejects.
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "cannot encode telemetry metrics");
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_render_with_skywalking_names_and_labels() {
        let registry = MetricsRegistry::new();
        let errors = registry
            .counter("trace_analysis_error_count", "The error number of trace analysis", &[("protocol", "grpc")])
            .expect("counter");
        errors.inc();
        errors.inc();
        let latency = registry
            .histogram("trace_in_latency", "The process latency of trace data", &[("protocol", "http")], &[])
            .expect("histogram");
        latency.observe(0.003);
        latency.observe(0.2);
        registry.gauge("uptime", "oap server start up time", &[]).expect("gauge").set(1_795_262_903.0);

        let text = registry.render();
        assert!(text.contains("# TYPE trace_analysis_error_count counter"), "{text}");
        assert!(text.contains("trace_analysis_error_count{protocol=\"grpc\"} 2"), "{text}");
        assert!(text.contains("trace_in_latency_count{protocol=\"http\"} 2"), "{text}");
        // 0.003 s falls in the first default bucket (5 ms); 0.2 s in the 250 ms one.
        assert!(text.contains("trace_in_latency_bucket{protocol=\"http\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("trace_in_latency_bucket{protocol=\"http\",le=\"0.25\"} 2"), "{text}");
        assert!(text.contains("uptime 1795262903"), "{text}");
    }

    #[test]
    fn same_name_and_labels_share_one_series() {
        let registry = MetricsRegistry::new();
        let first = registry.counter("received", "help", &[("protocol", "grpc")]).expect("counter");
        let second = registry.counter("received", "help", &[("protocol", "grpc")]).expect("counter");
        let other = registry.counter("received", "help", &[("protocol", "http")]).expect("counter");
        first.inc();
        second.inc();
        other.inc();
        assert_eq!(first.get(), 2);
        assert_eq!(other.get(), 1);
    }

    #[test]
    fn conflicting_shapes_are_rejected() {
        let registry = MetricsRegistry::new();
        registry.counter("received", "help", &[("protocol", "grpc")]).expect("counter");
        let error = registry.gauge("received", "help", &[("protocol", "grpc")]).expect_err("kind differs");
        assert_eq!(
            error.to_string(),
            "metric `received` already exists with a different shape: counter with labels [protocol], asked for gauge with labels [protocol]"
        );
        assert!(registry.counter("received", "help", &[("node", "a")]).is_err());
        assert!(registry.counter("bad name", "help", &[]).is_err());
    }
}
