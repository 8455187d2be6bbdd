//! The top-N lists keep the 50 slowest per entity and minute however the samples are spread
//! over threads, respect `disable(...)`, and are reported every period and at stop.

use std::sync::Arc;

use crate::retry::WriteTelemetry;
use oap_model::source::{CacheSlowAccess, DatabaseSlowStatement};
use oap_storage::Row;

use super::*;
use crate::testing::{MemoryStore, core_catalog};

/// 2026-11-21 12:30:00 and 12:31:00 as second buckets.
const MINUTE_30: i64 = 20_261_121_123_000;
const MINUTE_31: i64 = 20_261_121_123_100;
/// base64("db") and base64("svc"), hand-encoded: a database is not a normal service (`.0`), the
/// calling service is (`.1`).
const DB: &str = "ZGI=.0";
const SVC: &str = "c3Zj.1";
/// base64("redis") = "cmVkaXM=".
const REDIS: &str = "cmVkaXM=.0";

fn statement(segment: &'static str, span: i32, latency: i32, second_bucket: i64) -> Source<'static> {
    Source::DatabaseSlowStatement(DatabaseSlowStatement {
        segment_id: segment,
        span_id: span,
        trace_id: "trace",
        database_name: "db",
        service_name: "svc",
        statement: "select 1",
        latency,
        time_bucket: second_bucket,
        timestamp: 1_795_000_000_000,
    })
}

fn cache(span: i32, operation: CacheOperation, latency: i32) -> Source<'static> {
    Source::CacheSlowAccess(CacheSlowAccess {
        segment_id: "seg",
        span_id: span,
        trace_id: "trace",
        cache_name: "redis".into(),
        latency,
        status: true,
        command: "GET",
        key: "k1",
        operation,
        time_bucket: MINUTE_30 + 5,
        timestamp: 1_795_000_000_000,
    })
}

/// (model, entity, second bucket, latency, id, statement) of every write, sorted.
fn rows(writes: Vec<Write>) -> Vec<(String, String, i64, i64, String, String)> {
    let mut rows: Vec<_> = writes
        .into_iter()
        .map(|write| {
            let model = write.model().name.to_string();
            let record = TopNRecord::from_row(write.row().clone());
            (model, record.entity_id, record.time_bucket, record.latency, record.id, record.statement)
        })
        .collect();
    rows.sort();
    rows
}

fn latencies(rows: &[(String, String, i64, i64, String, String)], model: &str, entity: &str, minute: i64) -> Vec<i64> {
    rows.iter()
        .filter(|row| row.0 == model && row.1 == entity && row.2 / 100 == minute / 100)
        .map(|row| row.3)
        .collect()
}

#[test]
fn each_entity_and_minute_keeps_its_50_slowest_for_the_database_and_the_calling_service() {
    let top_n = TopN::new(&core_catalog());
    // 120 statements in minute 30 with latencies 201..=320, in an order that is not sorted.
    for n in 0..120 {
        let latency = 201 + (n * 37) % 120;
        top_n.accept(&statement("seg", n, latency, MINUTE_30 + i64::from(n % 60)));
    }
    for n in 0..3 {
        top_n.accept(&statement("late", n, 500 + n, MINUTE_31));
    }
    let rows = rows(top_n.take());
    let slowest: Vec<i64> = (271..=320).collect();
    for (model, entity) in [("top_n_database_statement", DB), ("top_n_service_database_statement", SVC)] {
        let mut kept = latencies(&rows, model, entity, MINUTE_30);
        kept.sort_unstable();
        assert_eq!(kept, slowest, "{model}: the 50 slowest of minute 30");
        assert_eq!(latencies(&rows, model, entity, MINUTE_31), [500, 501, 502], "{model}: minute 31");
    }
    assert_eq!(rows.len(), 2 * (50 + 3));
    let one = rows.iter().find(|row| row.3 == 500 && row.0 == "top_n_database_statement").expect("a row");
    assert_eq!((one.2, one.4.as_str(), one.5.as_str()), (MINUTE_31, "late-0", "select 1"));
    assert!(top_n.take().is_empty(), "a report takes the lists");
}

#[test]
fn lists_split_over_threads_merge_into_the_same_50_as_one_thread() {
    // Many equal latencies, so the id decides which of them are kept.
    let latency_of = |n: i32| 200 + (n * 7) % 30;
    let one = TopN::new(&core_catalog());
    for n in 0..400 {
        one.accept(&statement("seg", n, latency_of(n), MINUTE_30));
    }
    let alone = rows(one.take());

    let spread = Arc::new(TopN::new(&core_catalog()));
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let spread = spread.clone();
            std::thread::spawn(move || {
                for n in (thread..400).step_by(4) {
                    spread.accept(&statement("seg", n, latency_of(n), MINUTE_30));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
    let merged = rows(spread.take());
    assert_eq!(merged.len(), 100, "50 per entity");
    assert_eq!(merged, alone);
}

#[test]
fn cache_reads_and_writes_have_lists_of_their_own_and_other_commands_none() {
    let top_n = TopN::new(&core_catalog());
    top_n.accept(&cache(1, CacheOperation::Read, 30));
    top_n.accept(&cache(2, CacheOperation::Write, 40));
    top_n.accept(&cache(3, CacheOperation::Others, 50));
    let rows = rows(top_n.take());
    let expected = |model: &str, latency, id: &str| {
        (model.to_owned(), REDIS.to_owned(), MINUTE_30 + 5, latency, id.to_owned(), "GET k1".to_owned())
    };
    assert_eq!(
        rows,
        [expected("top_n_cache_read_command", 30, "seg-1"), expected("top_n_cache_write_command", 40, "seg-2")]
    );
}

#[test]
fn a_disabled_stream_keeps_nothing() {
    let mut definitions = oap_oal::load("core.oal", oap_oal::CORE_OAL).expect("core.oal");
    definitions
        .merge(oap_oal::load("disable.oal", "disable(top_n_database_statement);").expect("disable.oal"))
        .expect("merged");
    let catalog = oap_oal::Catalog::new(definitions, oap_oal::ApdexThresholds::default()).expect("catalog");
    let top_n = TopN::new(&catalog);
    assert!(top_n.is_enabled());
    top_n.accept(&statement("seg", 1, 300, MINUTE_30));
    let models: Vec<String> = rows(top_n.take()).into_iter().map(|row| row.0).collect();
    assert_eq!(models, ["top_n_service_database_statement"]);
}

fn stored(store: &MemoryStore) -> Vec<Row> {
    store.writes.lock().expect("lock").iter().map(|(_, _, row)| row.clone()).collect()
}

#[tokio::test(start_paused = true)]
async fn lists_are_written_every_report_period_and_at_stop() {
    let store = Arc::new(MemoryStore::default());
    let (records, _writer) = RecordStream::start(store.clone(), WriteTelemetry::detached(), None);
    let top_n = Arc::new(TopN::new(&core_catalog()));
    let period = Duration::from_secs(600);
    let report = TopNReport::start(top_n.clone(), records.clone(), period);
    top_n.accept(&statement("seg", 1, 300, MINUTE_30));

    tokio::time::sleep(period - Duration::from_millis(1)).await;
    assert!(stored(&store).is_empty(), "nothing before the period");
    tokio::time::sleep(Duration::from_millis(2)).await;
    // The report queued the two rows; the writer stores them once it runs.
    records.settle().expect("a settle").await.expect("stored");
    assert_eq!(stored(&store).len(), 2, "the database's and the service's row");

    top_n.accept(&statement("seg", 2, 400, MINUTE_31));
    report.stop().await;
    records.settle().expect("a settle").await.expect("stored");
    let ids: Vec<String> = stored(&store).into_iter().map(|row| row.id).collect();
    assert_eq!(ids.len(), 4, "stop reports what was held: {ids:?}");
    assert_eq!(ids[2..], ["seg-2", "seg-2"]);
}
