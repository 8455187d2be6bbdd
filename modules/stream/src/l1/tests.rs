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

fn cpm_total(metrics: &[Metric], catalog: &Catalog) -> i64 {
    value_sum(metrics, catalog, "service_cpm", "YQ==.1", MINUTE)
        .iter()
        .map(|value| match value {
            MetricValue::Cpm { total } => *total,
            other => panic!("not a cpm: {other:?}"),
        })
        .sum()
}

#[test]
fn an_open_entry_holds_its_epoch_back_and_later_merges_count_in_the_next() {
    let catalog = core_catalog();
    let l1 = L1::new(catalog.clone(), 1000);
    let epoch = l1.open_entry();
    l1.accept(&Source::Service(service("a", 10, true, MINUTE)));
    assert_eq!(l1.close_epoch(0), epoch, "closing the epoch the entry is in");
    let mut metrics = Vec::new();
    assert!(!l1.take_epoch(epoch, &mut metrics), "the entry is still open");
    assert!(metrics.is_empty(), "nothing of this thread's shard is taken while it is");
    // The entry's later sources count in its own epoch, not the new current one.
    l1.accept(&Source::Service(service("a", 10, true, MINUTE)));
    l1.close_entry();
    // A merge outside any entry counts in the current epoch.
    l1.accept(&Source::Service(service("a", 10, true, MINUTE)));
    assert!(l1.take_epoch(epoch, &mut metrics));
    assert_eq!(cpm_total(&metrics, &catalog), 2, "both sources of the entry, in its epoch");
    assert!(metrics.iter().all(|metric| metric.epoch == epoch), "every metric carries the epoch it was taken in");
    let next = l1.close_epoch(0);
    assert_eq!(next, epoch + 1, "a clock behind the epochs never numbers one twice");
    let mut later = Vec::new();
    assert!(l1.take_epoch(next, &mut later));
    assert_eq!(cpm_total(&later, &catalog), 1);
    assert_eq!(l1.held(), 0);
}

#[test]
fn entries_on_many_threads_are_never_split_between_two_epochs() {
    let catalog = core_catalog();
    let l1 = Arc::new(L1::new(catalog.clone(), 1_000_000));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producers: Vec<_> = (0..3)
        .map(|_| {
            let (l1, stop) = (l1.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut entries = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    l1.open_entry();
                    for _ in 0..5 {
                        l1.accept(&Source::Service(service("a", 10, true, MINUTE)));
                    }
                    l1.close_entry();
                    entries += 1;
                }
                entries
            })
        })
        .collect();
    let mut total = 0;
    for round in 0..200 {
        // Epochs numbered by a clock jump: every one even, as milliseconds may well be.
        let epoch = l1.close_epoch(10_000 + 2 * round);
        let mut metrics = Vec::new();
        while !l1.take_epoch(epoch, &mut metrics) {
            std::thread::yield_now();
        }
        let cpm = cpm_total(&metrics, &catalog);
        assert_eq!(cpm % 5, 0, "epoch {epoch} took part of an entry: {cpm} sources");
        total += cpm;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let entries: i64 = producers.into_iter().map(|producer| producer.join().expect("producer")).sum();
    total += cpm_total(&l1.drain(), &catalog);
    assert_eq!(total, entries * 5, "every source taken once");
}
