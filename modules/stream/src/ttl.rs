//! The data keeper (docs/reference/pipeline-and-storage.md §9): every `dataKeeperExecutePeriod` it
//! drops the days that fell out of the TTL — `recordDataTTL` for records, `metricsDataTTL` for
//! metrics and metadata. A day is kept while it is one of the last `ttl` days, today included, so a
//! 3-day TTL on the 21st keeps the 19th, 20th and 21st (SkyWalking deletes days ≤ `now − ttl`).

use std::time::Duration;

use oap_model::{Granularity, TimeBuckets, whole_days};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use oap_storage::ModelRef;
use oap_storage::StorageError;
use oap_storage::StorageRef;

const DAY_MS: i64 = 86_400_000;

/// The first day (`yyyyMMdd`) kept at `now_ms` under a TTL of `ttl_days`: today and the
/// `ttl_days - 1` days before it are kept.
pub fn first_kept_day(buckets: &TimeBuckets, ttl_days: i64, now_ms: i64) -> Option<i64> {
    buckets.bucket(now_ms.checked_sub(ttl_days.checked_sub(1)?.checked_mul(DAY_MS)?)?, Granularity::Day)
}

/// What the keeper deletes, and after how long.
#[derive(Clone)]
pub struct DataKeeper {
    storage: StorageRef,
    models: Vec<ModelRef>,
    record_ttl_days: i64,
    metrics_ttl_days: i64,
    buckets: TimeBuckets,
}

impl DataKeeper {
    /// A keeper of `models` in `storage`; TTLs in whole days (at least 1).
    pub fn new(
        storage: StorageRef,
        models: Vec<ModelRef>,
        record_ttl: Duration,
        metrics_ttl: Duration,
        buckets: TimeBuckets,
    ) -> Self {
        Self {
            storage,
            models,
            record_ttl_days: whole_days(record_ttl),
            metrics_ttl_days: whole_days(metrics_ttl),
            buckets,
        }
    }

    /// The first day a model keeps at `now_ms`.
    pub fn first_kept_day(&self, model: &ModelRef, now_ms: i64) -> Option<i64> {
        let ttl = if model.kind.is_metrics() { self.metrics_ttl_days } else { self.record_ttl_days };
        first_kept_day(&self.buckets, ttl, now_ms)
    }

    /// Deletes what expired by `now_ms`; returns how many days were dropped.
    pub async fn run_once(&self, now_ms: i64) -> Result<usize, StorageError> {
        let mut dropped = 0;
        for model in &self.models {
            if let Some(day) = self.first_kept_day(model, now_ms) {
                dropped += self.storage.delete_before(model, day).await?;
            }
        }
        Ok(dropped)
    }

    /// Runs every `period`, the first time one period from now, each time only if `leads()`
    /// says this node is the one that deletes (the first of the cluster's sorted node list).
    pub fn start(self, period: Duration, leads: impl Fn() -> bool + Send + 'static) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if !leads() {
                    continue;
                }
                let now_ms = oap_model::now_ms();
                match self.run_once(now_ms).await {
                    Ok(0) => {}
                    Ok(days) => info!(days, "expired data deleted"),
                    Err(failure) => warn!(%failure, "expired data not deleted; trying again next period"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::testing::MemoryStore;

    #[tokio::test(start_paused = true)]
    async fn only_the_node_that_leads_deletes() {
        let store = Arc::new(MemoryStore::default());
        let models = oap_storage::builtin::models();
        let count = models.len();
        let day = Duration::from_secs(86_400);
        let keeper = DataKeeper::new(store.clone(), models, 3 * day, 7 * day, TimeBuckets::utc());
        let leads = Arc::new(AtomicBool::new(false));
        let task = keeper.start(Duration::from_secs(60), {
            let leads = leads.clone();
            move || leads.load(Ordering::SeqCst)
        });
        tokio::time::sleep(Duration::from_secs(181)).await;
        assert_eq!(store.deletions.load(Ordering::SeqCst), 0, "three periods as the second node: nothing deleted");
        leads.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(store.deletions.load(Ordering::SeqCst), count, "one period as the first: every model once");
        task.abort();
    }

    #[test]
    fn a_ttl_of_n_days_keeps_today_and_the_n_minus_1_days_before() {
        let buckets = TimeBuckets::utc();
        // 2026-11-21T00:30:00Z and 23:59:59Z: the day's start and end keep the same days.
        for now in [1_795_221_000_000, 1_795_305_599_000] {
            assert_eq!(first_kept_day(&buckets, 3, now), Some(20_261_119), "recordDataTTL 3");
            assert_eq!(first_kept_day(&buckets, 7, now), Some(20_261_115), "metricsDataTTL 7");
            assert_eq!(first_kept_day(&buckets, 1, now), Some(20_261_121), "only today");
        }
        // Across a month's end: 2026-12-01T12:00:00Z.
        assert_eq!(first_kept_day(&buckets, 3, 1_796_126_400_000), Some(20_261_129));
    }
}
