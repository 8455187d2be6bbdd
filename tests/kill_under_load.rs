//! Lose nothing, count nothing twice — through the real binary, on both stores: four agents call
//! steadily; the server dies by `SIGKILL` (sent from outside at an arbitrary moment, or sent to
//! itself at a named moment: while an L1 flush hands an epoch on, between a round's minute rows
//! and its hour and day rows, right after one batch of a round's rows is stored) or stops on
//! `SIGTERM`; then it starts again on the same data, replays its ingest log, and stops.
//!
//! Afterwards every segment acknowledged before the end is stored, each once, and `service_cpm`,
//! `service_resp_time`, `endpoint_cpm` and `service_relation_server_cpm` at minute, hour and day
//! equal exactly what the stored segments carry (a segment logged but not acknowledged may be
//! stored; then it is counted, once).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent::{entry_segments_call, raw_unary};
use common::{Backend, scratch_dir, start_server_with_env};
use oap_model::{TimeBuckets, ids};
use oap_oal::{ApdexThresholds, Catalog};
use oap_storage::builtin::segment::{self, SegmentRow};
use oap_storage::{RowKey, ScanQuery, StorageRef};
use tonic::transport::Channel;

const SERVICE: &str = "crashing-svc";
const AGENTS: usize = 4;
const SEGMENTS_PER_CALL: usize = 10;

/// How the first run ends.
#[derive(Debug, Clone, Copy)]
enum End {
    /// `kill -9` from outside, a few seconds into the load.
    Kill,
    /// The server kills itself the given time it reaches a crash point
    /// (`OAP_TEST_CRASH_AT`, modules/stream/src/crash_point.rs).
    CrashAt(&'static str, u32),
    /// `SIGTERM`.
    Term,
}

fn endpoint(agent: usize) -> String {
    format!("/crash-{agent}")
}

/// One call of `agent`: segments of one entry span each, of latencies 1–97 ms.
fn call(agent: usize, number: usize) -> Vec<u8> {
    let segments = (0..SEGMENTS_PER_CALL).map(|n| {
        let latency = (number * 7 + n * 13 + agent * 5) % 97 + 1;
        (format!("crash-{agent}-{number}-{n}"), latency as i64)
    });
    entry_segments_call(segments, SERVICE, &format!("agent-{agent}"), &endpoint(agent))
}

/// Calls until `stop`; the ids of every acknowledged call's segments go into `acked`. A refused
/// call is not sent again (its segments may still be stored: then they must be counted).
async fn agent(grpc: u16, index: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<BTreeSet<String>>>) {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{grpc}")).expect("uri").connect_lazy();
    let mut number = 0;
    while !stop.load(Ordering::Relaxed) {
        let outcome =
            raw_unary(&channel, "/skywalking.v3.TraceSegmentReportService/collectInSync", call(index, number)).await;
        match outcome {
            Ok(_) => acked
                .lock()
                .expect("lock")
                .extend((0..SEGMENTS_PER_CALL).map(|n| format!("crash-{index}-{number}-{n}"))),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        number += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The stored rows of a metric for `entity` over `buckets`, summed column by column.
async fn sums(
    store: &StorageRef,
    catalog: &Catalog,
    metric: &str,
    entity: &str,
    buckets: &BTreeSet<i64>,
    columns: &[&str],
) -> Vec<i64> {
    let model = &catalog.find(metric).unwrap_or_else(|| panic!("no stream {metric}")).1.model;
    let keys: Vec<RowKey> =
        buckets.iter().map(|bucket| RowKey { id: entity.to_owned(), time_bucket: *bucket }).collect();
    let rows = store.multi_get(model, &keys).await.expect("multi-get");
    columns
        .iter()
        .map(|name| {
            let column = model.column(name).unwrap_or_else(|| panic!("{metric} has no {name}"));
            rows.iter().map(|row| row.value(column).as_i64().expect("a number")).sum()
        })
        .collect()
}

async fn crash_under_load(backend: Backend, end: End) {
    let dir = scratch_dir("kill-under-load");
    let buckets = TimeBuckets::system();
    let began = oap_model::now_ms();
    let crash = match end {
        End::CrashAt(point, time) => vec![("OAP_TEST_CRASH_AT", format!("{point}:{time}"))],
        End::Kill | End::Term => Vec::new(),
    };
    let (mut server, ports) = start_server_with_env(&dir, &backend, &crash);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let agents: Vec<_> =
        (0..AGENTS).map(|index| tokio::spawn(agent(ports.grpc, index, stop.clone(), acked.clone()))).collect();

    let loaded = Instant::now() + Duration::from_secs(6);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut signalled = false;
    let status = loop {
        if let Some(status) = server.wait_exit(Duration::from_millis(50)) {
            break status;
        }
        assert!(Instant::now() < deadline, "{end:?}: the first run did not end within a minute:\n{}", server.log());
        if !signalled && Instant::now() >= loaded && acked.lock().expect("lock").len() >= 2_000 {
            signalled = true;
            match end {
                End::Kill => server.signal("KILL"),
                End::Term => server.signal("TERM"),
                End::CrashAt(..) => {}
            }
        }
    };
    let acked_at_end = acked.lock().expect("lock").clone();
    stop.store(true, Ordering::Relaxed);
    for agent in agents {
        agent.await.expect("an agent");
    }
    let first_log = server.log();
    match end {
        End::Term => assert!(status.success(), "{first_log}"),
        _ => {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "{end:?}: killed by SIGKILL, not {status}:\n{first_log}");
        }
    }
    if let End::CrashAt(point, _) = end {
        assert!(first_log.contains(&format!("killing the process at {point}")), "{first_log}");
    }

    // Again on the same data: the log is replayed before the doors open; then a clean stop.
    let (mut again, _) = start_server_with_env(&dir, &backend, &[]);
    let second_log = again.log();
    again.signal("TERM");
    assert!(again.wait_exit(Duration::from_secs(40)).expect("stopped").success(), "{}", again.log());
    let ended = oap_model::now_ms();
    let replayed = second_log.lines().find(|line| line.contains("replayed the ingest log")).map(str::to_owned);
    if !matches!(end, End::Term) {
        assert!(replayed.is_some(), "{end:?}: the second run replays the log:\n{second_log}");
    }
    drop(again);

    let store = backend.open(&dir).await;
    let rows = store.scan(&segment::MODEL, &ScanQuery::default()).await.expect("the segments");
    let stored: Vec<SegmentRow> =
        rows.into_iter().map(SegmentRow::from_row).filter(|row| row.segment_id.starts_with("crash-")).collect();
    let ids: BTreeSet<&str> = stored.iter().map(|row| row.segment_id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "{end:?}: a segment stored twice");
    let lost: Vec<&String> = acked_at_end.iter().filter(|id| !ids.contains(id.as_str())).take(5).collect();
    assert!(lost.is_empty(), "{end:?}: acknowledged segments lost, e.g. {lost:?}");
    eprintln!(
        "{end:?}: {} segments acknowledged, {} stored; {}",
        acked_at_end.len(),
        stored.len(),
        replayed.as_deref().unwrap_or("nothing replayed")
    );

    let service = ids::service_id(SERVICE, true);
    let user = ids::service_id("User", false);
    let mut per_endpoint: BTreeMap<String, i64> = BTreeMap::new();
    for row in &stored {
        *per_endpoint.entry(row.endpoint_id.clone()).or_default() += 1;
    }
    let calls = stored.len() as i64;
    let latency: i64 = stored.iter().map(|row| i64::from(row.latency)).sum();
    let minutes: BTreeSet<i64> =
        (began / 60_000..=ended / 60_000).map(|minute| buckets.minute(minute * 60_000).expect("a minute")).collect();
    let levels: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::from([
        ("minute", minutes.clone()),
        ("hour", minutes.iter().map(|minute| minute / 100).collect()),
        ("day", minutes.iter().map(|minute| minute / 10_000).collect()),
    ]);
    let catalog =
        Catalog::new(oap_oal::load("core.oal", oap_oal::CORE_OAL).expect("core.oal"), ApdexThresholds::default())
            .expect("the catalog");
    for (level, buckets) in &levels {
        let cpm = sums(&store, &catalog, "service_cpm", &service, buckets, &["total"]).await;
        assert_eq!(cpm, [calls], "{end:?}: service_cpm at the {level} level");
        let resp = sums(&store, &catalog, "service_resp_time", &service, buckets, &["summation", "count"]).await;
        assert_eq!(resp, [latency, calls], "{end:?}: service_resp_time at the {level} level");
        let relation = ids::relation_id(&user, &service);
        let server_cpm = sums(&store, &catalog, "service_relation_server_cpm", &relation, buckets, &["total"]).await;
        assert_eq!(server_cpm, [calls], "{end:?}: service_relation_server_cpm (User → service) at the {level} level");
        for index in 0..AGENTS {
            let endpoint_id = ids::endpoint_id(&service, &endpoint(index));
            let expected = per_endpoint.get(&endpoint_id).copied().unwrap_or(0);
            let counted = sums(&store, &catalog, "endpoint_cpm", &endpoint_id, buckets, &["total"]).await;
            assert_eq!(counted, [expected], "{end:?}: endpoint_cpm of {} at the {level} level", endpoint(index));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_from_outside_loses_and_doubles_nothing() {
    crash_under_load(Backend::Embedded, End::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_l1_flush_loses_and_doubles_nothing() {
    crash_under_load(Backend::Embedded, End::CrashAt("l1-flush", 10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_l2_persist_loses_and_doubles_nothing() {
    crash_under_load(Backend::Embedded, End::CrashAt("l2-persist", 2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_bulk_write_loses_and_doubles_nothing() {
    crash_under_load(Backend::Embedded, End::CrashAt("bulk-write", 120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_loses_and_doubles_nothing() {
    crash_under_load(Backend::Embedded, End::Term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_from_outside_loses_and_doubles_nothing_in_elasticsearch() {
    crash_under_load(Backend::elasticsearch(), End::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_l1_flush_loses_and_doubles_nothing_in_elasticsearch() {
    crash_under_load(Backend::elasticsearch(), End::CrashAt("l1-flush", 10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_an_l2_persist_loses_and_doubles_nothing_in_elasticsearch() {
    crash_under_load(Backend::elasticsearch(), End::CrashAt("l2-persist", 2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_bulk_write_loses_and_doubles_nothing_in_elasticsearch() {
    crash_under_load(Backend::elasticsearch(), End::CrashAt("bulk-write", 120)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_loses_and_doubles_nothing_in_elasticsearch() {
    crash_under_load(Backend::elasticsearch(), End::Term).await;
}
