//! L1 merges per thread, drains everything once, and makes producers wait above its capacity.

use std::sync::Arc;
use std::time::Duration;

use oap_core::SourceConsumer;
use oap_model::source::Source;
use oap_oal::MetricValue;

use super::*;
use crate::testing::{core_catalog, service};

const MINUTE: i64 = 202_611_211_230;

fn value_sum(metrics: &[Metric], catalog: &Catalog, stream: &str, entity: &str, bucket: i64) -> Vec<MetricValue> {
    let (id, _) = catalog.find(stream).expect("stream");
    metrics
        .iter()
        .filter(|metric| metric.stream == id && *metric.entity_id == *entity && metric.time_bucket == bucket)
        .map(|metric| metric.value.clone())
        .collect()
}

#[test]
fn sources_merge_into_one_row_per_stream_entity_and_minute() {
    let catalog = core_catalog();
    let l1 = L1::new(catalog.clone(), 1000);
    l1.accept(&Source::Service(service("a", 100, true, MINUTE)));
    l1.accept(&Source::Service(service("a", 300, false, MINUTE)));
    l1.accept(&Source::Service(service("a", 50, true, MINUTE + 1)));
    // Per service and minute: resp_time, sla, cpm, percentile, apdex (the MQ metrics filter
    // these sources out) and service_traffic: 6 rows; two minutes make 12.
    assert_eq!(l1.held(), 12);
    let metrics = l1.drain();
    assert_eq!(metrics.len(), 12);
    // base64("a") = "YQ==".
    assert_eq!(value_sum(&metrics, &catalog, "service_cpm", "YQ==.1", MINUTE), [MetricValue::Cpm { total: 2 }]);
    assert_eq!(value_sum(&metrics, &catalog, "service_cpm", "YQ==.1", MINUTE + 1), [MetricValue::Cpm { total: 1 }]);
    assert_eq!(
        value_sum(&metrics, &catalog, "service_resp_time", "YQ==.1", MINUTE),
        [MetricValue::LongAvg { summation: 400, count: 2 }]
    );
    assert_eq!(l1.held(), 0);
    assert!(l1.drain().is_empty(), "drained once");
}

#[test]
fn every_thread_has_its_own_shard_and_a_drain_takes_them_all() {
    let catalog = core_catalog();
    let l1 = Arc::new(L1::new(catalog.clone(), 1000));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let l1 = l1.clone();
            std::thread::spawn(move || {
                for _ in 0..10 {
                    l1.accept(&Source::Service(service("a", 10, true, MINUTE)));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("producer");
    }
    let metrics = l1.drain();
    let totals: i64 = value_sum(&metrics, &catalog, "service_cpm", "YQ==.1", MINUTE)
        .iter()
        .map(|value| match value {
            MetricValue::Cpm { total } => *total,
            other => panic!("not a cpm: {other:?}"),
        })
        .sum();
    assert_eq!(totals, 40, "4 threads × 10 sources, in up to 4 partial rows that L2 merges");
}

#[tokio::test(start_paused = true)]
async fn producers_wait_above_the_capacity_until_a_drain() {
    let l1 = Arc::new(L1::new(core_catalog(), 10));
    let handle = L1Handle(l1.clone());
    handle.accept(&Source::Service(service("a", 10, true, MINUTE)));
    assert!(handle.settle().is_none(), "6 rows are within the capacity of 10");
    handle.accept(&Source::Service(service("b", 10, true, MINUTE)));
    let wait = tokio::spawn(handle.settle().expect("12 rows are above it"));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(!wait.is_finished(), "the producer waits while nothing drains");
    assert_eq!(l1.drain().len(), 12);
    assert_eq!(wait.await.expect("joined"), Ok(()));
}
