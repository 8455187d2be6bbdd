//! Settings of `agent-analyzer.default` (docs/reference/pipeline-and-storage.md §12.4) and the
//! rules derived from them: slow thresholds per database or cache type, the segment status
//! strategy, and the trace sampling policy.

use std::collections::HashMap;

use oap_kernel::config::de;
use serde::Deserialize;

/// `agent-analyzer.default`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AnalyzerConfig {
    /// `traceSamplingPolicySettingsFile` (`SW_TRACE_SAMPLING_POLICY_SETTINGS_FILE`): YAML file
    /// with the sampling policy; a missing file means "keep every segment".
    #[serde(rename = "traceSamplingPolicySettingsFile", deserialize_with = "de::scalar_string")]
    pub trace_sampling_policy_settings_file: String,
    /// `slowDBAccessThreshold` (`SW_SLOW_DB_THRESHOLD`): `type:ms` pairs, `default` for the rest.
    #[serde(rename = "slowDBAccessThreshold", deserialize_with = "de::scalar_string")]
    pub slow_db_access_threshold: String,
    /// `forceSampleErrorSegment` (`SW_FORCE_SAMPLE_ERROR_SEGMENT`): keep error segments even
    /// when sampling would drop them.
    #[serde(rename = "forceSampleErrorSegment")]
    pub force_sample_error_segment: bool,
    /// `segmentStatusAnalysisStrategy` (`SW_SEGMENT_STATUS_ANALYSIS_STRATEGY`).
    #[serde(rename = "segmentStatusAnalysisStrategy", deserialize_with = "de::scalar_string")]
    pub segment_status_analysis_strategy: String,
    /// `noUpstreamRealAddressAgents` (`SW_NO_UPSTREAM_REAL_ADDRESS`): component ids of proxies
    /// whose exit peer is not the real upstream instance.
    #[serde(rename = "noUpstreamRealAddressAgents", deserialize_with = "de::comma_list")]
    pub no_upstream_real_address_agents: Vec<String>,
    /// `slowCacheReadThreshold` (`SW_SLOW_CACHE_SLOW_READ_THRESHOLD`).
    #[serde(rename = "slowCacheReadThreshold", deserialize_with = "de::scalar_string")]
    pub slow_cache_read_threshold: String,
    /// `slowCacheWriteThreshold` (`SW_SLOW_CACHE_SLOW_WRITE_THRESHOLD`).
    #[serde(rename = "slowCacheWriteThreshold", deserialize_with = "de::scalar_string")]
    pub slow_cache_write_threshold: String,
    /// `maxSlowSQLLength` (`SW_MAX_SLOW_SQL_LENGTH`): slow statements are cut to this length.
    #[serde(rename = "maxSlowSQLLength")]
    pub max_slow_sql_length: usize,
    /// `uninstrumentedGateways` (`SW_UNINSTRUMENTED_GATEWAYS`): `host:port` addresses of
    /// gateways without an agent (a port-less host means port 80).
    #[serde(rename = "uninstrumentedGateways", deserialize_with = "de::comma_list")]
    pub uninstrumented_gateways: Vec<String>,
    /// `maxSpansPerSegment` (`SW_MAX_SPANS_PER_SEGMENT`, ours): a segment with more spans is
    /// refused (the Java agent stops at 300 by default).
    #[serde(rename = "maxSpansPerSegment")]
    pub max_spans_per_segment: usize,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        Self {
            trace_sampling_policy_settings_file: "trace-sampling-policy-settings.yml".to_owned(),
            slow_db_access_threshold: "default:200,mongodb:100".to_owned(),
            force_sample_error_segment: true,
            segment_status_analysis_strategy: "FROM_SPAN_STATUS".to_owned(),
            no_upstream_real_address_agents: vec!["6000".to_owned(), "9000".to_owned()],
            slow_cache_read_threshold: "default:20,redis:10".to_owned(),
            slow_cache_write_threshold: "default:20,redis:10".to_owned(),
            max_slow_sql_length: 2000,
            uninstrumented_gateways: Vec::new(),
            max_spans_per_segment: 10_000,
        }
    }
}

/// Latency thresholds per (lower-cased) type, with a `default` for the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Thresholds {
    by_type: HashMap<String, i64>,
    default: Option<i64>,
}

impl Thresholds {
    /// Parses `default:200,mongodb:100`.
    pub fn parse(text: &str) -> Result<Thresholds, String> {
        let mut thresholds = Thresholds::default();
        for item in text.split(',').map(str::trim).filter(|item| !item.is_empty()) {
            let (kind, millis) =
                item.split_once(':').ok_or_else(|| format!("expected `type:milliseconds`, got `{item}`"))?;
            let millis: i64 =
                millis.trim().parse().map_err(|_| format!("`{millis}` in `{item}` is not a number of milliseconds"))?;
            let kind = kind.trim().to_ascii_lowercase();
            if kind == "default" {
                thresholds.default = Some(millis);
            } else {
                thresholds.by_type.insert(kind, millis);
            }
        }
        Ok(thresholds)
    }

    /// The threshold of a type (case-insensitive), else the default, else none.
    pub fn for_type(&self, kind: &str) -> Option<i64> {
        let kind = kind.to_ascii_lowercase();
        self.by_type.get(&kind).copied().or(self.default)
    }
}

/// How a segment's error flag is decided (`segmentStatusAnalysisStrategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StatusStrategy {
    /// Any span is an error (the default).
    #[default]
    FromSpanStatus,
    /// Any entry span is an error.
    FromEntrySpan,
    /// The span with id 0 is an error.
    FromFirstSpan,
}

impl StatusStrategy {
    /// The named strategy; unknown names fall back to `FROM_SPAN_STATUS`, as in SkyWalking.
    pub fn from_name(name: &str) -> StatusStrategy {
        match name.trim() {
            "FROM_ENTRY_SPAN" => StatusStrategy::FromEntrySpan,
            "FROM_FIRST_SPAN" => StatusStrategy::FromFirstSpan,
            _ => StatusStrategy::FromSpanStatus,
        }
    }
}

/// One sampling rule: `rate` in 1/10000, `duration` in ms (`-1` = off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamplingRule {
    /// Keep this many segments out of 10000, by trace id hash.
    pub rate: i32,
    /// Also keep segments at least this slow; -1 = off.
    pub duration: i64,
}

/// The trace sampling policy file (`trace-sampling-policy-settings.yml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamplingPolicy {
    default: SamplingRule,
    services: HashMap<String, SamplingRule>,
}

impl Default for SamplingPolicy {
    fn default() -> Self {
        Self { default: SamplingRule { rate: 10_000, duration: -1 }, services: HashMap::new() }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    default: Option<PartialRule>,
    #[serde(default)]
    services: Vec<ServiceRule>,
}

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(deny_unknown_fields)]
struct PartialRule {
    rate: Option<i32>,
    duration: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceRule {
    name: String,
    rate: Option<i32>,
    duration: Option<i64>,
}

impl SamplingPolicy {
    /// Parses the policy file; a per-service field left out takes the default's value.
    pub fn parse(yaml: &str) -> Result<SamplingPolicy, String> {
        if yaml.trim().is_empty() {
            return Ok(SamplingPolicy::default());
        }
        let file: PolicyFile = serde_yaml_ng::from_str(yaml).map_err(|error| error.to_string())?;
        let defaults = file.default.unwrap_or_default();
        let default = SamplingRule { rate: defaults.rate.unwrap_or(10_000), duration: defaults.duration.unwrap_or(-1) };
        let mut services = HashMap::new();
        for rule in file.services {
            let rate = rule.rate.unwrap_or(default.rate);
            if !(0..=10_000).contains(&rate) {
                return Err(format!("service `{}`: rate {rate} is outside 0..=10000", rule.name));
            }
            services.insert(rule.name, SamplingRule { rate, duration: rule.duration.unwrap_or(default.duration) });
        }
        if !(0..=10_000).contains(&default.rate) {
            return Err(format!("default: rate {} is outside 0..=10000", default.rate));
        }
        Ok(SamplingPolicy { default, services })
    }

    /// Whether a segment is kept: `hash(traceId) % 10000 < rate`, or it is at least `duration`
    /// slow (when set), using the service's rule if it has one (docs/reference/analysis.md §6.4).
    pub fn is_sampled(&self, service: &str, trace_id: &str, segment_latency: i64) -> bool {
        let rule = self.services.get(service).unwrap_or(&self.default);
        trace_sample_number(trace_id) < rule.rate || (rule.duration > -1 && segment_latency >= rule.duration)
    }
}

/// SkyWalking's sampling number of a trace id: `abs(String.hashCode()) % 10000`, where Java's
/// `abs(Integer.MIN_VALUE)` stays negative (so that trace is always sampled).
pub fn trace_sample_number(trace_id: &str) -> i32 {
    let hash = java_string_hash(trace_id);
    if hash == i32::MIN { hash % 10_000 } else { hash.abs() % 10_000 }
}

/// Java's `String.hashCode`: `h = 31 * h + unit` over UTF-16 code units, wrapping.
pub fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(i32::from(unit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_hash_matches_java() {
        // Values of "".hashCode(), "a".hashCode() and "hello".hashCode() in Java.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("hello"), 99_162_322);
        // "polygenelubricants".hashCode() is Integer.MIN_VALUE in Java.
        assert_eq!(java_string_hash("polygenelubricants"), i32::MIN);
        assert_eq!(trace_sample_number("polygenelubricants"), i32::MIN % 10_000);
        assert_eq!(trace_sample_number("hello"), 99_162_322 % 10_000);
    }

    #[test]
    fn thresholds_parse_with_default() {
        let thresholds = Thresholds::parse("default:200,mongodb:100").expect("valid");
        assert_eq!(thresholds.for_type("MongoDB"), Some(100));
        assert_eq!(thresholds.for_type("mysql"), Some(200));
        assert_eq!(Thresholds::parse("redis:10").expect("valid").for_type("mysql"), None);
        assert!(Thresholds::parse("mysql=10").is_err());
        assert!(Thresholds::parse("mysql:ten").is_err());
    }

    #[test]
    fn status_strategy_names() {
        assert_eq!(StatusStrategy::from_name("FROM_ENTRY_SPAN"), StatusStrategy::FromEntrySpan);
        assert_eq!(StatusStrategy::from_name("FROM_FIRST_SPAN"), StatusStrategy::FromFirstSpan);
        assert_eq!(StatusStrategy::from_name("whatever"), StatusStrategy::FromSpanStatus);
    }

    #[test]
    fn sampling_by_rate_duration_and_service() {
        let yaml = "default:\n  rate: 0\n  duration: -1\nservices:\n  - name: slow-keeper\n    duration: 500\n  - name: all\n    rate: 10000\n";
        let policy = SamplingPolicy::parse(yaml).expect("valid");
        // Rate 0 keeps nothing by hash (sample numbers are >= 0 except the MIN_VALUE quirk).
        assert!(!policy.is_sampled("other", "hello", 10_000));
        assert!(policy.is_sampled("other", "polygenelubricants", 0), "negative sample number always passes");
        // A service rule with only a duration keeps the default rate (0) and adds the duration.
        assert!(!policy.is_sampled("slow-keeper", "hello", 499));
        assert!(policy.is_sampled("slow-keeper", "hello", 500));
        assert!(policy.is_sampled("all", "hello", 0));
        // The default policy keeps everything.
        assert!(SamplingPolicy::default().is_sampled("x", "hello", 0));
    }

    #[test]
    fn sampling_rate_is_a_fraction_of_ten_thousand() {
        // "hello" samples as 99_162_322 % 10000 = 2322.
        let policy = SamplingPolicy::parse("default:\n  rate: 2323\n").expect("valid");
        assert!(policy.is_sampled("x", "hello", 0));
        let policy = SamplingPolicy::parse("default:\n  rate: 2322\n").expect("valid");
        assert!(!policy.is_sampled("x", "hello", 0));
        assert!(SamplingPolicy::parse("default:\n  rate: 20000\n").is_err());
        assert!(SamplingPolicy::parse("default:\n  rat: 1\n").is_err());
    }
}
