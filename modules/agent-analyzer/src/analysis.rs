//! Segment analysis: one decoded `SegmentObject` in, sources out
//! (docs/reference/analysis.md §1–§7).
//!
//! [`SegmentAnalyzer::analyze`] validates the segment, then runs SkyWalking's listeners over it:
//! the segment record ([`segment_record`]), RPC traffic and topology ([`rpc`]), endpoint
//! dependencies from cross-thread refs ([`cross_thread`]), alias learning ([`alias_learning`])
//! and virtual databases, caches and brokers ([`virtual_service`]). It is synchronous, does no
//! I/O and reads no clock.
//!
//! Span order carries no meaning (agents list spans in finish order): no rule depends on the
//! position of a span, only on its id and type. The sources a segment yields are the same for
//! any order of its spans, up to the order in which they are emitted.

mod alias_learning;
mod cross_thread;
mod rpc;
mod segment_record;
mod validate;
mod virtual_service;

use std::collections::HashSet;
use std::sync::Arc;

use oap_core::CoreConfig;
use oap_kernel::ConfigError;
use oap_model::source::{RequestFacts, RequestType, SourceSink, SpanTags};
use oap_model::{NamingControl, TimeBuckets};
use oap_proto::v3::{SegmentObject, SpanLayer, SpanObject, SpanType};

pub use self::validate::{AnalysisError, MAX_AHEAD_MS, MAX_ID_LENGTH, SegmentLimits};
use crate::alias::NetworkAddressAliasCache;
use crate::settings::{AnalyzerConfig, SamplingPolicy, StatusStrategy, Thresholds};

/// `host:port`, with port 80 when it is absent or not positive (docs/reference/analysis.md §3.5).
fn gateway_address(gateway: &str) -> String {
    match gateway.rsplit_once(':') {
        Some((host, port)) if port.parse::<i32>().is_ok_and(|p| p > 0) => format!("{host}:{port}"),
        Some((host, _)) => format!("{host}:80"),
        None => format!("{gateway}:80"),
    }
}

/// The name of the caller of a segment that has no parent.
pub const USER: &str = "User";

/// The rules analysis applies, derived from the settings.
#[derive(Debug, Clone)]
pub struct AnalysisRules {
    /// Name length limits.
    pub naming: NamingControl,
    /// Slow statement thresholds per database type.
    pub slow_db_threshold: Thresholds,
    /// Slow read thresholds per cache type.
    pub slow_cache_read_threshold: Thresholds,
    /// Slow write thresholds per cache type.
    pub slow_cache_write_threshold: Thresholds,
    /// Statements are cut to this many characters.
    pub max_slow_sql_length: usize,
    /// How a segment's error flag is decided.
    pub status_strategy: StatusStrategy,
    /// Which segment records are kept.
    pub sampling: SamplingPolicy,
    /// Keep error segments whatever the sampling says.
    pub force_sample_error_segment: bool,
    /// Component ids of proxies whose peer is not the upstream instance.
    pub no_upstream_real_address_agents: Vec<i32>,
    /// Addresses (`host:port`) of uninstrumented gateways.
    pub uninstrumented_gateways: HashSet<String>,
    /// Tag keys indexed for trace search.
    pub searchable_tag_keys: HashSet<String>,
    /// What a segment may be: spans, and how old.
    pub limits: SegmentLimits,
}

impl Default for AnalysisRules {
    /// The rules of the default settings (`agent-analyzer.default` and `core.default`).
    fn default() -> Self {
        AnalysisRules::new(&AnalyzerConfig::default(), &CoreConfig::default(), SamplingPolicy::default())
            .expect("the default settings are valid")
    }
}

impl AnalysisRules {
    /// The rules of these settings, or every setting that cannot be read, by key.
    pub fn new(
        analyzer: &AnalyzerConfig,
        core: &CoreConfig,
        sampling: SamplingPolicy,
    ) -> Result<Self, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut thresholds = |key: &str, text: &str| {
            Thresholds::parse(text).unwrap_or_else(|message| {
                errors.push(ConfigError::new(key, message));
                Thresholds::default()
            })
        };
        let slow_db_threshold = thresholds("slowDBAccessThreshold", &analyzer.slow_db_access_threshold);
        let slow_cache_read_threshold = thresholds("slowCacheReadThreshold", &analyzer.slow_cache_read_threshold);
        let slow_cache_write_threshold = thresholds("slowCacheWriteThreshold", &analyzer.slow_cache_write_threshold);
        let mut no_upstream_real_address_agents = Vec::new();
        for id in &analyzer.no_upstream_real_address_agents {
            match id.parse() {
                Ok(id) => no_upstream_real_address_agents.push(id),
                Err(_) => errors
                    .push(ConfigError::new("noUpstreamRealAddressAgents", format!("`{id}` is not a component id"))),
            }
        }
        if analyzer.max_spans_per_segment == 0 {
            errors.push(ConfigError::new("maxSpansPerSegment", "must be at least 1"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Self {
            naming: core.naming(),
            slow_db_threshold,
            slow_cache_read_threshold,
            slow_cache_write_threshold,
            max_slow_sql_length: analyzer.max_slow_sql_length,
            status_strategy: StatusStrategy::from_name(&analyzer.segment_status_analysis_strategy),
            sampling,
            force_sample_error_segment: analyzer.force_sample_error_segment,
            no_upstream_real_address_agents,
            uninstrumented_gateways: analyzer.uninstrumented_gateways.iter().map(|g| gateway_address(g)).collect(),
            searchable_tag_keys: core.searchable_traces_tags.iter().cloned().collect(),
            limits: SegmentLimits {
                max_spans: analyzer.max_spans_per_segment,
                max_age_ms: i64::try_from(core.record_data_ttl.max(core.metrics_data_ttl).as_millis())
                    .unwrap_or(i64::MAX),
            },
        })
    }

    /// Whether `address` is a configured uninstrumented gateway.
    fn is_gateway(&self, address: &str) -> bool {
        !self.uninstrumented_gateways.is_empty() && self.uninstrumented_gateways.contains(address)
    }
}

/// Analyses segments into sources; shared by every receiver task.
#[derive(Debug, Clone)]
pub struct SegmentAnalyzer {
    rules: Arc<AnalysisRules>,
    buckets: TimeBuckets,
    aliases: Arc<NetworkAddressAliasCache>,
}

impl SegmentAnalyzer {
    /// An analyzer with these rules, time zone and alias cache.
    pub fn new(rules: AnalysisRules, buckets: TimeBuckets, aliases: Arc<NetworkAddressAliasCache>) -> Self {
        Self { rules: Arc::new(rules), buckets, aliases }
    }

    /// The alias cache the analyzer reads and teaches.
    pub fn aliases(&self) -> &Arc<NetworkAddressAliasCache> {
        &self.aliases
    }

    /// Analyses one segment, received at `now_ms` (the server's clock, ms since the epoch).
    /// `raw` is the segment's protobuf encoding, stored in the segment record. A segment that
    /// fails validation yields no source at all.
    pub fn analyze<S: SourceSink + ?Sized>(
        &self,
        segment: &SegmentObject,
        raw: &[u8],
        now_ms: i64,
        sink: &mut S,
    ) -> Result<(), AnalysisError> {
        validate::validate(segment, &self.rules.limits, now_ms)?;
        let service = self.rules.naming.service(&segment.service);
        let ctx = SegmentContext {
            rules: &self.rules,
            buckets: &self.buckets,
            aliases: &self.aliases,
            segment,
            service,
            instance: self.rules.naming.instance(service, &segment.service_instance),
        };
        segment_record::emit(&ctx, raw, sink);
        for span in &segment.spans {
            let Ok(span_type) = SpanType::try_from(span.span_type) else {
                continue; // validated: never reached
            };
            // Validated: 0 < start <= end, and end is representable, so start has a bucket.
            let time_bucket = self.buckets.minute(span.start_time).unwrap_or(0);
            let facts = ctx.request_facts(span, time_bucket);
            match span_type {
                SpanType::Entry => {
                    if !span.skip_analysis {
                        rpc::entry(&ctx, span, &facts, sink);
                        alias_learning::entry(&ctx, span, time_bucket, sink);
                    }
                }
                SpanType::Exit => {
                    if !span.skip_analysis {
                        rpc::exit(&ctx, span, &facts, sink);
                        cross_thread::exit_or_local(&ctx, span, &facts, sink);
                    }
                }
                SpanType::Local => {
                    if !span.skip_analysis {
                        rpc::local(&ctx, span, &facts, sink);
                        cross_thread::exit_or_local(&ctx, span, &facts, sink);
                    }
                }
            }
            virtual_service::any(&ctx, span, span_type, &facts, sink);
        }
        Ok(())
    }
}

/// What every listener needs to know about the segment being analysed.
struct SegmentContext<'a> {
    rules: &'a AnalysisRules,
    buckets: &'a TimeBuckets,
    aliases: &'a NetworkAddressAliasCache,
    segment: &'a SegmentObject,
    /// The segment's service name, cut to the limit.
    service: &'a str,
    /// The segment's instance name, cut to the limit.
    instance: &'a str,
}

impl<'a> SegmentContext<'a> {
    /// The request facts of a span (docs/reference/analysis.md §2).
    fn request_facts(&self, span: &'a SpanObject, time_bucket: i64) -> RequestFacts<'a> {
        let tags = SpanTags(&span.tags);
        let http_response_status_code = span
            .tags
            .iter()
            .find(|tag| tag.key == "http.status_code" || tag.key == "status_code")
            .and_then(|tag| tag.value.trim().parse().ok())
            .unwrap_or(0);
        RequestFacts {
            latency: span_latency(span),
            status: !span.is_error,
            http_response_status_code,
            rpc_status_code: tags.get("rpc.status_code").unwrap_or(""),
            request_type: Some(request_type(span.span_layer)),
            tags,
            time_bucket,
        }
    }

    fn second_bucket(&self, epoch_ms: i64) -> i64 {
        self.buckets.second(epoch_ms).unwrap_or(0)
    }
}

/// `endTime - startTime`, which validation keeps within `i32`.
fn span_latency(span: &SpanObject) -> i32 {
    i32::try_from(span.end_time - span.start_time).unwrap_or(i32::MAX)
}

/// The request type of a span layer (docs/reference/analysis.md §2).
fn request_type(layer: i32) -> RequestType {
    match SpanLayer::try_from(layer) {
        Ok(SpanLayer::Http) => RequestType::Http,
        Ok(SpanLayer::Database) => RequestType::Database,
        Ok(SpanLayer::Mq) => RequestType::Mq,
        Ok(SpanLayer::GenAi) => RequestType::GenAi,
        _ => RequestType::Rpc,
    }
}

fn is_layer(span: &SpanObject, layer: SpanLayer) -> bool {
    span.span_layer == layer as i32
}

#[cfg(test)]
mod tests;
