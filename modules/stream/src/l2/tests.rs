//! L2's cadence under a paused clock, its merge with what storage holds (across a restart, so
//! nothing is lost or counted twice), the fresh-minute rule, and writes skipped when nothing
//! changed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::retry::WriteTelemetry;
use oap_model::TimeBuckets;
use oap_oal::catalog::{Metric, WriterEpochs};
use oap_oal::{Catalog, MetricValue};
use oap_storage::{Row, Value};
use oap_telemetry::Counter;
use tokio::time::Instant;

use super::*;
use crate::testing::{MemoryStore, core_catalog};

const PERIOD: Duration = Duration::from_secs(25);

fn counter() -> Counter {
    Counter::new("test", "counts nowhere").expect("a counter")
}

fn start(catalog: &Arc<Catalog>, store: &Arc<MemoryStore>) -> Arc<L2> {
    start_with(catalog, store, 2)
}

/// The identity of the node the tests' L2 runs on.
const NODE: u64 = 0x5eed;

/// The epoch of `node` a stored OAL row holds.
fn writer_epoch(row: &Row, node: u64) -> u64 {
    WriterEpochs::parse(row.values.last().and_then(Value::as_str).expect("the writers' epochs")).get(node)
}

fn start_with(catalog: &Arc<Catalog>, store: &Arc<MemoryStore>, partitions: usize) -> Arc<L2> {
    start_as(catalog, store, partitions, NODE)
}

/// The L2 of node `node` over `store`.
fn start_as(catalog: &Arc<Catalog>, store: &Arc<MemoryStore>, partitions: usize, node: u64) -> Arc<L2> {
    let config = L2Config { partitions, node, ..config() };
    start_configured(catalog, store, config, counter())
}

/// The tests' settings: one partition of node [`NODE`], the default bound.
fn config() -> L2Config {
    L2Config {
        persistent_period: PERIOD,
        session_timeout: Duration::from_secs(70),
        hour: true,
        day: true,
        ttl_days: 7,
        partitions: 1,
        node: NODE,
        max_rows: crate::provider::DEFAULT_L2_MAX_ROWS,
    }
}

/// An L2 over `store` with `config`, counting its conflicts in `conflicts`.
fn start_configured(catalog: &Arc<Catalog>, store: &Arc<MemoryStore>, config: L2Config, conflicts: Counter) -> Arc<L2> {
    let metrics = L2Telemetry {
        writes: WriteTelemetry::detached(),
        expired: counter(),
        read_errors: counter(),
        conflicts,
        rounds: Vec::new(),
    };
    let store: Arc<dyn Storage> = store.clone();
    L2::start(catalog.clone(), store, config, metrics, TimeBuckets::utc())
}

fn cpm(catalog: &Catalog, minute: i64, total: i64) -> Metric {
    Metric {
        stream: catalog.find("service_cpm").expect("stream").0,
        entity_id: "YQ==.1".into(),
        time_bucket: minute,
        fixed: vec![Value::Text("GENERAL".into()), Value::Null, Value::Null, Value::Null, Value::Null, Value::Null]
            .into(),
        value: MetricValue::Cpm { total },
        epoch: 0,
    }
}

/// `total` and `value` of the stored `service_cpm` row at `bucket`.
fn stored_cpm(store: &MemoryStore, bucket: i64) -> Option<(i64, i64)> {
    let row = store.row("service_cpm", "YQ==.1", bucket)?;
    Some((row.long(6), row.long(7)))
}

/// A minute two hours ago: within the TTL, and not fresh.
fn old_minute() -> i64 {
    let buckets = TimeBuckets::utc();
    buckets.minute(oap_model::now_ms() - 2 * 3_600_000).expect("a minute")
}

#[tokio::test(start_paused = true)]
async fn minutes_persist_every_round_and_hours_and_days_every_fourth() {
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore::default()));
    let begin = Instant::now();
    let l2 = start(&catalog, &store);
    let minute = old_minute();
    l2.take(vec![cpm(&catalog, minute, 3)]).await.expect("taken");
    tokio::time::sleep(Duration::from_millis(4_900)).await;
    assert!(store.write_times("service_cpm").is_empty(), "nothing before the first round at 5 s");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(store.write_times("service_cpm"), [begin + Duration::from_secs(5)], "the minute row");
    assert_eq!(stored_cpm(&store, minute), Some((3, 3)));
    l2.take(vec![cpm(&catalog, minute, 2)]).await.expect("taken");
    // Rounds at 5 s, 30 s, 55 s, 80 s: the hour and day rows wait for the 4th.
    tokio::time::sleep(Duration::from_secs(70)).await;
    assert_eq!(stored_cpm(&store, minute), Some((5, 5)));
    assert_eq!(stored_cpm(&store, minute / 100), None, "no hour row before the 4th round");
    tokio::time::sleep(Duration::from_secs(10)).await;
    let at_80 = begin + Duration::from_secs(80);
    let times = store.write_times("service_cpm");
    assert_eq!(times, [begin + Duration::from_secs(5), begin + Duration::from_secs(30), at_80, at_80]);
    // 5 calls in the hour: 5 / 60 = 0 per minute; in the day 5 / 1440 = 0.
    assert_eq!(stored_cpm(&store, minute / 100), Some((5, 0)));
    assert_eq!(stored_cpm(&store, minute / 10_000), Some((5, 0)));
    l2.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_round_reads_and_writes_in_batches_and_a_failed_read_defers_the_stream_to_the_next_round() {
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore::default()));
    let l2 = start_with(&catalog, &store, 1);
    let minute = old_minute();
    // 2,500 entities of one stream: two batches (2,000 + 500), each read before it is written.
    let entity = |n: usize| format!("e{n}");
    let batch = |total: i64| {
        (0..2_500).map(|n| Metric { entity_id: entity(n).into(), ..cpm(&catalog, minute, total) }).collect::<Vec<_>>()
    };
    l2.take(batch(3)).await.expect("taken");
    store.failing_reads.store(1, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    assert!(store.write_times("service_cpm").is_empty(), "the first batch's read failed: nothing is written");
    l2.take(batch(2)).await.expect("taken");
    let reads_before = store.multi_gets.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(25)).await;
    let reads = store.multi_gets.load(std::sync::atomic::Ordering::Relaxed) - reads_before;
    assert_eq!(reads, 2, "2,000 keys, then 500");
    assert_eq!(store.write_times("service_cpm").len(), 2_500, "every row once");
    for n in [0, 1_999, 2_000, 2_499] {
        let row = store.row("service_cpm", &entity(n), minute).expect("stored");
        assert_eq!(row.long(6), 5, "entity {n}: 3 deferred, then 2, counted once");
    }
    l2.stop().await;
    for n in [0, 2_499] {
        for bucket in [minute / 100, minute / 10_000] {
            let row = store.row("service_cpm", &entity(n), bucket).expect("stored");
            assert_eq!(row.long(6), 5, "entity {n} at {bucket}: the deferred minute is rolled up once");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_restarted_l2_merges_with_what_is_stored_and_counts_nothing_twice() {
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore::default()));
    let minute = old_minute();
    let first = start(&catalog, &store);
    first.take(vec![cpm(&catalog, minute, 3)]).await.expect("taken");
    first.stop().await;
    assert_eq!(stored_cpm(&store, minute), Some((3, 3)));
    assert_eq!(stored_cpm(&store, minute / 100), Some((3, 0)));

    let second = start(&catalog, &store);
    let next = if minute % 100 == 59 { minute - 1 } else { minute + 1 };
    second.take(vec![cpm(&catalog, minute, 2), cpm(&catalog, next, 4)]).await.expect("taken");
    second.stop().await;
    assert_eq!(stored_cpm(&store, minute), Some((5, 5)), "3 before the restart and 2 after");
    assert_eq!(stored_cpm(&store, next), Some((4, 4)));
    assert_eq!(stored_cpm(&store, minute / 100), Some((9, 0)), "the hour holds every call once");
    assert_eq!(stored_cpm(&store, minute / 10_000), Some((9, 0)));
}

#[tokio::test(start_paused = true)]
async fn fresh_minutes_are_not_read_but_hours_and_days_are() {
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore::default()));
    let l2 = start(&catalog, &store);
    // A minute after this L2 started cannot be stored yet.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let now = TimeBuckets::utc().minute(oap_model::now_ms() + 60_000).expect("a minute");
    l2.take(vec![cpm(&catalog, now, 1)]).await.expect("taken");
    l2.flush().await;
    assert_eq!(store.multi_gets.load(Ordering::Relaxed), 2, "the hour and the day row, not the minute");
    assert_eq!(stored_cpm(&store, now), Some((1, 1)));
    l2.stop().await;
}

#[tokio::test(start_paused = true)]
async fn after_the_node_list_changes_rows_another_node_wrote_are_read_and_merged() {
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore::default()));
    let (first, second) = (start(&catalog, &store), start(&catalog, &store));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // A fresh minute for both: the first node owns the entity and writes 1 call.
    let now = TimeBuckets::utc().minute(oap_model::now_ms() + 60_000).expect("a minute");
    first.take(vec![cpm(&catalog, now, 1)]).await.expect("taken");
    first.flush().await;
    assert_eq!(stored_cpm(&store, now), Some((1, 1)));
    // The first node leaves; the entity's metrics now reach the second, which is told.
    second.owners_changed().await;
    second.take(vec![cpm(&catalog, now, 2)]).await.expect("taken");
    second.flush().await;
    assert_eq!(stored_cpm(&store, now), Some((3, 3)), "the first node's call and the second's");
    // And back: the first node's cached row is stale (3 is stored, it cached 1).
    first.owners_changed().await;
    first.take(vec![cpm(&catalog, now, 4)]).await.expect("taken");
    first.flush().await;
    assert_eq!(stored_cpm(&store, now), Some((7, 7)), "every call once");
    first.stop().await;
    second.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_relation_whose_components_did_not_grow_is_not_rewritten() {
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore::default()));
    let l2 = start(&catalog, &store);
    let minute = old_minute();
    let edge = |components: Vec<i32>| Metric {
        stream: catalog.find("service_relation_client_side").expect("stream").0,
        entity_id: "YQ==.1-Yg==.1".into(),
        time_bucket: minute,
        fixed: vec![Value::Text("YQ==.1".into()), Value::Text("Yg==.1".into())].into(),
        value: MetricValue::Components(components),
        epoch: 0,
    };
    for components in [vec![7001], vec![7001], vec![142]] {
        l2.take(vec![edge(components)]).await.expect("taken");
        l2.flush().await;
    }
    let minute_writes: Vec<String> = store
        .writes
        .lock()
        .expect("lock")
        .iter()
        .filter(|(_, model, row)| model == "service_relation_client_side" && row.time_bucket == minute)
        .map(|(_, _, row)| row.value(2).as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(minute_writes, ["7001", "142|7001"], "the repeated 7001 wrote nothing");
    l2.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_stored_row_carries_the_last_epoch_merged_into_it_at_every_level() {
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore::default()));
    let l2 = start(&catalog, &store);
    let minute = old_minute();
    let epoch_of = |bucket: i64| writer_epoch(&store.row("service_cpm", "YQ==.1", bucket).expect("stored"), NODE);
    l2.take(vec![Metric { epoch: 7, ..cpm(&catalog, minute, 2) }, Metric { epoch: 5, ..cpm(&catalog, minute, 1) }])
        .await
        .expect("taken");
    l2.flush().await;
    assert_eq!(stored_cpm(&store, minute), Some((3, 3)));
    assert_eq!([epoch_of(minute), epoch_of(minute / 100), epoch_of(minute / 10_000)], [7, 7, 7]);
    l2.take(vec![Metric { epoch: 9, ..cpm(&catalog, minute, 1) }]).await.expect("taken");
    l2.flush().await;
    assert_eq!(stored_cpm(&store, minute), Some((4, 4)));
    assert_eq!([epoch_of(minute), epoch_of(minute / 100), epoch_of(minute / 10_000)], [9, 9, 9]);
    l2.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_replayed_metric_counts_once_at_each_level_where_the_row_lacks_it() {
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore::default()));
    let minute = old_minute();
    // What a crash between a minute round and the next coarse round leaves: the minute row holds
    // epochs up to 9, its hour and day rows only up to 5.
    let stream = catalog.find("service_cpm").expect("stream").1.clone();
    let stored = |bucket: i64, epoch: u64| {
        let mut metric = cpm(&catalog, minute, 5);
        metric.time_bucket = bucket;
        let mut writers = WriterEpochs::default();
        writers.raise(NODE, epoch);
        // Another node wrote the rows too, later (it owned them while this one was away).
        writers.raise(0x0707, epoch + 1_000);
        Write::Insert(stream.model.clone(), stream.row(&metric, &writers))
    };
    store.write(&[stored(minute, 9), stored(minute / 100, 5), stored(minute / 10_000, 5)]).await.expect("stored");
    let l2 = start(&catalog, &store);
    let epoch_of = |bucket: i64| writer_epoch(&store.row("service_cpm", "YQ==.1", bucket).expect("stored"), NODE);

    // Epoch 7: already in the minute row, not in the hour and day rows.
    l2.take_replayed(vec![Metric { epoch: 7, ..cpm(&catalog, minute, 1) }]).await.expect("taken");
    l2.flush().await;
    assert_eq!(stored_cpm(&store, minute).map(|(total, _)| total), Some(5), "the minute holds epoch 7");
    assert_eq!(stored_cpm(&store, minute / 100).map(|(total, _)| total), Some(6));
    assert_eq!(stored_cpm(&store, minute / 10_000).map(|(total, _)| total), Some(6));
    assert_eq!([epoch_of(minute), epoch_of(minute / 100)], [9, 7]);

    // Epoch 9 again (replayed twice): nothing anywhere; epoch 10: everywhere once.
    l2.take_replayed(vec![Metric { epoch: 7, ..cpm(&catalog, minute, 1) }]).await.expect("taken");
    l2.take_replayed(vec![Metric { epoch: 10, ..cpm(&catalog, minute, 1) }]).await.expect("taken");
    l2.flush().await;
    assert_eq!(stored_cpm(&store, minute).map(|(total, _)| total), Some(6));
    assert_eq!(stored_cpm(&store, minute / 100).map(|(total, _)| total), Some(7));
    assert_eq!(stored_cpm(&store, minute / 10_000).map(|(total, _)| total), Some(7));
    assert_eq!([epoch_of(minute), epoch_of(minute / 100), epoch_of(minute / 10_000)], [10, 10, 10]);
    let other = writer_epoch(&store.row("service_cpm", "YQ==.1", minute).expect("stored"), 0x0707);
    assert_eq!(other, 1_009, "the other node's epoch is kept as it was");
    l2.stop().await;
}

#[tokio::test(start_paused = true)]
async fn two_nodes_writing_one_row_lose_neither_ones_increments() {
    // What a change of the cluster's node list can do: two aggregators hold increments of the
    // same row. The store keeps versions, as Elasticsearch does.
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore { versioned: true, ..MemoryStore::default() }));
    let minute = old_minute();
    let (a, b) = (start_as(&catalog, &store, 1, 0xa), start_as(&catalog, &store, 1, 0xb));
    a.take(vec![Metric { epoch: 10, ..cpm(&catalog, minute, 2) }]).await.expect("taken");
    a.flush().await;
    // B reads the row A wrote and adds to it; A's cached copy is now stale.
    b.take(vec![Metric { epoch: 20, ..cpm(&catalog, minute, 3) }]).await.expect("taken");
    b.flush().await;
    assert_eq!(stored_cpm(&store, minute).map(|(total, _)| total), Some(5));
    // A's next write finds the row changed, reads it again and merges its increment once — all
    // within the flush.
    a.take(vec![Metric { epoch: 11, ..cpm(&catalog, minute, 4) }]).await.expect("taken");
    a.flush().await;
    assert_eq!(stored_cpm(&store, minute).map(|(total, _)| total), Some(9), "2 + 3 + 4");
    for bucket in [minute / 100, minute / 10_000] {
        assert_eq!(stored_cpm(&store, bucket).map(|(total, _)| total), Some(9), "the hour and day too");
    }
    let row = store.row("service_cpm", "YQ==.1", minute).expect("stored");
    assert_eq!((writer_epoch(&row, 0xa), writer_epoch(&row, 0xb)), (11, 20));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_write_stored_but_answered_too_late_is_counted_once() {
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore { versioned: true, ..MemoryStore::default() }));
    let minute = old_minute();
    let l2 = start_with(&catalog, &store, 1);
    l2.take(vec![Metric { epoch: 10, ..cpm(&catalog, minute, 2) }]).await.expect("taken");
    l2.flush().await;
    // The next write is stored, but its answer is lost: the retry finds the row changed (by that
    // very write), reads it, sees its own epoch in it, and adds nothing.
    store.lost_answers.store(1, std::sync::atomic::Ordering::SeqCst);
    l2.take(vec![Metric { epoch: 11, ..cpm(&catalog, minute, 4) }]).await.expect("taken");
    l2.flush().await;
    assert_eq!(stored_cpm(&store, minute).map(|(total, _)| total), Some(6), "2 + 4, once");
    l2.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_write_refused_for_good_keeps_its_increment_for_the_next_round() {
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore { versioned: true, ..MemoryStore::default() }));
    let minute = old_minute();
    let l2 = start_with(&catalog, &store, 1);
    l2.take(vec![Metric { epoch: 5, ..cpm(&catalog, minute, 1) }]).await.expect("taken");
    l2.flush().await;
    // The minute row's next write is refused: its increment is read again and merged where the
    // row lacks it, not dropped — else the row would later carry epoch 7 without epoch 6's call,
    // and a replay would skip epoch 6 as held.
    store.refusals.store(1, std::sync::atomic::Ordering::SeqCst);
    l2.take(vec![Metric { epoch: 6, ..cpm(&catalog, minute, 1) }]).await.expect("taken");
    l2.flush().await;
    l2.take(vec![Metric { epoch: 7, ..cpm(&catalog, minute, 1) }]).await.expect("taken");
    l2.flush().await;
    assert_eq!(stored_cpm(&store, minute).map(|(total, _)| total), Some(3), "the minute");
    assert_eq!(stored_cpm(&store, minute / 100).map(|(total, _)| total), Some(3), "the hour");
    let row = store.row("service_cpm", "YQ==.1", minute).expect("the minute row");
    assert_eq!(writer_epoch(&row, NODE), 7);
    l2.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_bound_smaller_than_the_estate_still_writes_every_row_exactly() {
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore::default()));
    let l2 = start_configured(&catalog, &store, L2Config { max_rows: 500, ..config() }, counter());
    // The next minute's rows are fresh (written without a read: this L2 began before it) until
    // the bound drops one of them.
    let minute = TimeBuckets::utc().minute(oap_model::now_ms() + 60_000).expect("a minute");
    let entity = |n: usize| format!("e{n}");
    // 2,000 entities, 150 at a time, three times over: the increments alone pass the bound of 500
    // several times before the first timed round, and the cache can keep only a fraction.
    for pass in 1..=3 {
        for chunk in (0..2_000).collect::<Vec<_>>().chunks(150) {
            let batch = chunk.iter().map(|&n| Metric { entity_id: entity(n).into(), ..cpm(&catalog, minute, pass) });
            l2.take(batch.collect()).await.expect("taken");
        }
    }
    assert!(!store.write_times("service_cpm").is_empty(), "rounds ran before the first timed one, at the bound");
    l2.stop().await;
    for n in [0, 149, 150, 1_000, 1_999] {
        for bucket in [minute, minute / 100, minute / 10_000] {
            let row = store.row("service_cpm", &entity(n), bucket).expect("stored");
            assert_eq!(row.long(6), 1 + 2 + 3, "entity {n} at {bucket}: every increment, once");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn after_the_node_list_changes_a_row_written_ahead_of_the_clock_is_read_not_inserted() {
    let (catalog, store) = (core_catalog(), Arc::new(MemoryStore::default()));
    let conflicts = counter();
    let l2 = start_configured(&catalog, &store, config(), conflicts.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    // An agent whose clock runs ten minutes ahead: past the margin an owner change covers.
    let ahead = TimeBuckets::utc().minute(oap_model::now_ms() + 10 * 60_000).expect("a minute");
    l2.take(vec![cpm(&catalog, ahead, 1)]).await.expect("taken");
    l2.flush().await;
    l2.owners_changed().await;
    l2.take(vec![cpm(&catalog, ahead, 2)]).await.expect("taken");
    l2.flush().await;
    assert_eq!(stored_cpm(&store, ahead), Some((3, 3)));
    assert_eq!(conflicts.get(), 0, "the stored row was read before the write, not inserted blind");
    l2.stop().await;
}
