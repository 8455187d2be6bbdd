//! The shell's queries (docs/reference/query-api.md §3, §8): `version`, `checkHealth`,
//! `getTimeInfo`, `getRecordsTTL`, `getMetricsTTL`.

use async_graphql::{Context, Object, SimpleObject};

use super::common::{Long, query_context};

/// The version the UI shows: the crate version and the project's name.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "-oap-rs");

/// The node's health.
#[derive(SimpleObject)]
pub struct HealthStatus {
    /// 0 healthy, above 0 unhealthy, below 0 not started.
    pub score: i32,
    /// Why, when not healthy.
    pub details: Option<String>,
}

/// The node's zone and clock.
#[derive(SimpleObject)]
pub struct TimeInfo {
    /// The zone's offset, RFC 822 style (`+0800`).
    pub timezone: Option<String>,
    /// Now, epoch ms.
    pub current_timestamp: Option<Long>,
}

/// How long records are kept, days; `-1` for a cold stage that does not exist.
#[derive(SimpleObject)]
#[graphql(name = "RecordsTTL")]
pub struct RecordsTtl {
    normal: i32,
    trace: i32,
    zipkin_trace: i32,
    log: i32,
    browser_error_log: i32,
    cold_normal: i32,
    cold_trace: i32,
    cold_zipkin_trace: i32,
    cold_log: i32,
    cold_browser_error_log: i32,
}

/// How long metrics are kept, days; `-1` for a cold stage that does not exist.
#[derive(SimpleObject)]
#[graphql(name = "MetricsTTL")]
pub struct MetricsTtl {
    metadata: i32,
    minute: i32,
    hour: i32,
    day: i32,
    cold_minute: i32,
    cold_hour: i32,
    cold_day: i32,
}

/// Whole days of a TTL setting, as GraphQL's `Int`.
pub fn days(ttl: std::time::Duration) -> i32 {
    i32::try_from(oap_model::whole_days(ttl)).unwrap_or(i32::MAX)
}

/// `+HHMM` / `-HHMM` of an offset in seconds.
pub fn rfc822_offset(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let minutes = seconds.unsigned_abs() / 60;
    format!("{sign}{:02}{:02}", minutes / 60, minutes % 60)
}

/// The shell's queries.
#[derive(Default)]
pub struct StatusQuery;

#[Object]
impl StatusQuery {
    /// The OAP's version.
    async fn version(&self) -> &'static str {
        VERSION
    }

    /// Whether the node is healthy; it is once it serves queries.
    async fn check_health(&self) -> HealthStatus {
        HealthStatus { score: 0, details: None }
    }

    /// The node's zone and clock.
    async fn get_time_info(&self, ctx: &Context<'_>) -> TimeInfo {
        let now = oap_model::now_ms();
        let offset = query_context(ctx).buckets.offset_seconds(now);
        TimeInfo { timezone: Some(rfc822_offset(offset)), current_timestamp: Some(Long(now)) }
    }

    /// How long records are kept.
    #[graphql(name = "getRecordsTTL")]
    async fn get_records_ttl(&self, ctx: &Context<'_>) -> RecordsTtl {
        let days = days(query_context(ctx).core.record_data_ttl);
        RecordsTtl {
            normal: days,
            trace: days,
            zipkin_trace: days,
            log: days,
            browser_error_log: days,
            cold_normal: -1,
            cold_trace: -1,
            cold_zipkin_trace: -1,
            cold_log: -1,
            cold_browser_error_log: -1,
        }
    }

    /// How long metrics are kept.
    #[graphql(name = "getMetricsTTL")]
    async fn get_metrics_ttl(&self, ctx: &Context<'_>) -> MetricsTtl {
        let days = days(query_context(ctx).core.metrics_data_ttl);
        MetricsTtl { metadata: days, minute: days, hour: days, day: days, cold_minute: -1, cold_hour: -1, cold_day: -1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_print_as_rfc_822() {
        assert_eq!(rfc822_offset(8 * 3600), "+0800");
        assert_eq!(rfc822_offset(-5 * 3600), "-0500");
        assert_eq!(rfc822_offset(0), "+0000");
        assert_eq!(rfc822_offset(5 * 3600 + 45 * 60), "+0545");
    }
}
