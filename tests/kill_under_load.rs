//! Lose nothing, count nothing twice — through the real binary, on both stores: four agents call
//! steadily; the server dies by `SIGKILL` (sent from outside at an arbitrary moment, or sent to
//! itself at a named moment: while an L1 flush hands an epoch on, between a round's minute rows
//! and its hour and day rows, right after one batch of a round's rows is stored) or stops on
//! `SIGTERM`; then it starts again on the same data, replays its ingest log, and stops.
//!
//! The same in a cluster of two receivers and two aggregators when an aggregator, and separately
//! a receiver, is killed under load and started again on its data.
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
use common::etcd::Etcd;
use common::{Backend, OapProcess, Ports, scratch_dir, start_server_with_env};
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

/// Every segment of `acked_at_end` is stored, each once, and the metrics of [`SERVICE`] over the
/// minutes from `began` to `ended` (and their hours and days) equal what the stored segments
/// carry.
/// The epochs of the entries a log directory holds, in file order, as runs of one epoch
/// (`+ms from the first:entries`).
fn log_epochs(dir: &std::path::Path) -> String {
    let config = oap_ingest_log::LogConfig { dir: dir.to_path_buf(), segment_bytes: 64 << 20, max_bytes: 1 << 40 };
    let Ok((log, _)) = oap_ingest_log::IngestLog::open(config) else { return "unreadable".to_owned() };
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for entry in log.replay().flatten() {
        match runs.last_mut() {
            Some((epoch, count)) if *epoch == entry.epoch => *count += 1,
            _ => runs.push((entry.epoch, 1)),
        }
    }
    let first = runs.first().map_or(0, |run| run.0);
    let runs: Vec<String> = runs.iter().map(|(epoch, count)| format!("+{}:{count}", epoch - first)).collect();
    format!("epoch {first} on: {}", runs.join(" "))
}

async fn verify_exact(
    label: &str,
    store: &StorageRef,
    acked_at_end: &BTreeSet<String>,
    began: i64,
    ended: i64,
    replayed: Option<&str>,
) {
    let buckets = TimeBuckets::system();
    let rows = store.scan(&segment::MODEL, &ScanQuery::default()).await.expect("the segments");
    let stored: Vec<SegmentRow> =
        rows.into_iter().map(SegmentRow::from_row).filter(|row| row.segment_id.starts_with("crash-")).collect();
    let ids: BTreeSet<&str> = stored.iter().map(|row| row.segment_id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "{label}: a segment stored twice");
    let lost: Vec<&String> = acked_at_end.iter().filter(|id| !ids.contains(id.as_str())).take(5).collect();
    assert!(lost.is_empty(), "{label}: acknowledged segments lost, e.g. {lost:?}");
    eprintln!(
        "{label}: {} segments acknowledged, {} stored; {}",
        acked_at_end.len(),
        stored.len(),
        replayed.unwrap_or("nothing replayed")
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
    // Every figure is checked before failing, so a failure shows the whole picture.
    let mut wrong = Vec::new();
    let mut check = |what: String, counted: Vec<i64>, expected: Vec<i64>| {
        if counted != expected {
            wrong.push(format!("{what}: stored {counted:?}, the segments carry {expected:?}"));
        }
    };
    for (level, buckets) in &levels {
        let cpm = sums(store, &catalog, "service_cpm", &service, buckets, &["total"]).await;
        check(format!("service_cpm at the {level} level"), cpm, vec![calls]);
        let resp = sums(store, &catalog, "service_resp_time", &service, buckets, &["summation", "count"]).await;
        check(format!("service_resp_time at the {level} level"), resp, vec![latency, calls]);
        let relation = ids::relation_id(&user, &service);
        let server_cpm = sums(store, &catalog, "service_relation_server_cpm", &relation, buckets, &["total"]).await;
        check(format!("service_relation_server_cpm (User → service) at the {level} level"), server_cpm, vec![calls]);
        for index in 0..AGENTS {
            let endpoint_id = ids::endpoint_id(&service, &endpoint(index));
            let expected = per_endpoint.get(&endpoint_id).copied().unwrap_or(0);
            let counted = sums(store, &catalog, "endpoint_cpm", &endpoint_id, buckets, &["total"]).await;
            check(format!("endpoint_cpm of {} at the {level} level", endpoint(index)), counted, vec![expected]);
        }
    }
    assert!(wrong.is_empty(), "{label}: metrics differ from the stored segments:\n{}", wrong.join("\n"));
}

async fn crash_under_load(backend: Backend, end: End) {
    crash_under_load_with(backend, end, &[]).await;
}

/// [`crash_under_load`] with `settings` in both runs' environment.
async fn crash_under_load_with(backend: Backend, end: End, settings: &[(&'static str, String)]) {
    let dir = scratch_dir("kill-under-load");
    let began = oap_model::now_ms();
    let mut first_env = settings.to_vec();
    if let End::CrashAt(point, time) = end {
        first_env.push(("OAP_TEST_CRASH_AT", format!("{point}:{time}")));
    }
    let (mut server, ports) = start_server_with_env(&dir, &backend, &first_env);
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
    // Kept beside the second run's log, which replaces `oap.log`.
    let _ = std::fs::write(dir.join("oap-first.log"), &first_log);
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

    assert!(!first_log.contains("panicked"), "{end:?}: the first run panicked:\n{first_log}");
    // What the log holds, for a failure to show (the replay consumes it).
    eprintln!("{end:?}: the ingest log after the first run: {}", log_epochs(&dir.join("ingest-log")));
    // Again on the same data: the log is replayed before the doors open; then a clean stop.
    let (mut again, again_ports) = start_server_with_env(&dir, &backend, settings);
    let second_log = again.log();
    // What a replay reports: its entries as telemetry, as many as the log line says (after a
    // clean stop there is no replay, and no such series).
    if !matches!(end, End::Term) {
        let scrape = common::agent::Scrape::from_port(again_ports.telemetry).await;
        let replayed_entries = scrape.value("ingest_log_replay_entries_count");
        let logged_entries = second_log
            .lines()
            .find_map(|line| line.contains("replayed the ingest log").then(|| line.split("entries=").nth(1)).flatten())
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|entries| entries.parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(replayed_entries > 0.0, "{end:?}: entries replayed");
        assert_eq!(replayed_entries, logged_entries, "{end:?}: ingest_log_replay_entries_count");
    }
    again.signal("TERM");
    assert!(again.wait_exit(Duration::from_secs(40)).expect("stopped").success(), "{}", again.log());
    let second_whole = again.log();
    assert!(!second_whole.contains("panicked"), "{end:?}: the second run panicked:\n{second_whole}");
    // A failure shows what either run warned of (beyond the health changes every run has).
    let warnings: Vec<&str> = first_log
        .lines()
        .chain(second_whole.lines())
        .filter(|line| (line.contains("WARN") || line.contains("ERROR")) && !line.contains("oap_core::health"))
        .collect();
    eprintln!("{end:?}: warnings and errors of both runs:\n{}", warnings.join("\n"));
    let ended = oap_model::now_ms();
    let replayed = second_log.lines().find(|line| line.contains("replayed the ingest log")).map(str::to_owned);
    if matches!(end, End::Term) {
        assert!(replayed.is_none(), "a clean stop stored everything: nothing to replay:\n{second_log}");
    } else {
        assert!(replayed.is_some(), "{end:?}: the second run replays the log:\n{second_log}");
    }
    drop(again);

    let store = backend.open(&dir).await;
    verify_exact(&format!("{end:?}"), &store, &acked_at_end, began, ended, replayed.as_deref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_from_outside_loses_and_doubles_nothing() {
    crash_under_load(Backend::Embedded, End::Kill).await;
}

/// L2 at a bound far below this load's rows (`l2MaxRows`, 8 a partition): every arrival
/// forces a round of every level and the cache is dropped each time, so the kill lands amid
/// forced rounds and minutes that are no longer fresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_l2_at_its_bound_loses_and_doubles_nothing() {
    crash_under_load_with(Backend::Embedded, End::Kill, &[("SW_PIPELINE_L2_MAX_ROWS", "16".to_owned())]).await;
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

/// Which node of the 2+2 cluster dies.
#[derive(Debug, Clone, Copy)]
enum Victim {
    /// The aggregator that owns the service's rows, started again at once.
    Aggregator,
    /// That aggregator, started again only once the cluster has let it go and the other one has
    /// written its rows for a while (so both hold increments of them when it is back).
    AggregatorAway,
    /// One of the two receivers the agents call.
    Receiver,
}

/// A node of an etcd cluster on `backend`, with its data in `dir`, on `ports` when given (a
/// restart keeps its address).
fn cluster_node(
    etcd: &Etcd,
    backend: &Backend,
    dir: &std::path::Path,
    role: &str,
    ports: Option<Ports>,
) -> (OapProcess, Ports) {
    let mut env = vec![
        ("SW_CORE_ROLE", role.to_owned()),
        ("SW_CLUSTER", "etcd".to_owned()),
        ("SW_CLUSTER_ETCD_ENDPOINTS", etcd.endpoint.clone()),
        ("SW_CLUSTER_ETCD_LEASE_TTL", "3".to_owned()),
        ("SW_CLUSTER_ETCD_POLL_PERIOD", "1".to_owned()),
    ];
    env.extend(ports.iter().flat_map(Ports::env));
    start_server_with_env(dir, backend, &env)
}

/// How many aggregators the node on `rest` lists.
async fn aggregators_listed(rest: u16) -> usize {
    let text = common::graphql::Client::new(rest).get("/status/cluster/nodes", "application/json").await;
    let nodes: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    nodes["nodes"].as_array().map_or(0, Vec::len)
}

/// Two aggregators and two receivers on Elasticsearch; two agents call each receiver. Under load
/// the victim is killed (-9) and started again at once on its data and address; the load goes
/// on, then every node stops cleanly (receivers first). Everything acknowledged is stored once
/// and counted once.
async fn cluster_crash_under_load(victim: Victim) {
    let etcd = Etcd::start();
    let backend = Backend::elasticsearch();
    let began = oap_model::now_ms();
    let dirs: Vec<_> = ["aggregator-a", "aggregator-b", "receiver-a", "receiver-b"]
        .iter()
        .map(|name| scratch_dir(&format!("cluster-kill-{name}")))
        .collect();
    let mut nodes: Vec<(OapProcess, Ports)> = Vec::new();
    for (index, dir) in dirs.iter().enumerate() {
        let role = if index < 2 { "Aggregator" } else { "Receiver" };
        nodes.push(cluster_node(&etcd, &backend, dir, role, None));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    for (_, receiver) in &nodes[2..] {
        while aggregators_listed(receiver.rest).await < 2 {
            assert!(Instant::now() < deadline, "the receiver on {} does not list both aggregators", receiver.rest);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The aggregator of the service's own rows (the address order is SkyWalking's).
    let mut order: Vec<usize> = vec![0, 1];
    order.sort_by_key(|index| format!("127.0.0.1_{}", nodes[*index].1.grpc));
    let owner = order[oap_stream::route::target_index(&ids::service_id(SERVICE, true), 2)];
    let victim_index = match victim {
        Victim::Aggregator | Victim::AggregatorAway => owner,
        Victim::Receiver => 2,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let agents: Vec<_> = (0..AGENTS)
        .map(|index| {
            let receiver = nodes[2 + index % 2].1.grpc;
            tokio::spawn(agent(receiver, index, stop.clone(), acked.clone()))
        })
        .collect();
    let loaded = Instant::now() + Duration::from_secs(6);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < loaded || acked.lock().expect("lock").len() < 2_000 {
        assert!(Instant::now() < deadline, "{victim:?}: too few calls acknowledged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (process, ports) = &mut nodes[victim_index];
    process.signal("KILL");
    process.wait_exit(Duration::from_secs(10)).expect("killed");
    let role = if victim_index < 2 { "Aggregator" } else { "Receiver" };
    let ports = *ports;
    if let Victim::AggregatorAway = victim {
        // The lease runs out; the survivor owns every row, and writes the victim's for a while.
        for (_, receiver) in &nodes[2..] {
            while aggregators_listed(receiver.rest).await != 1 {
                assert!(Instant::now() < deadline, "the cluster does not let the killed aggregator go");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let acked_away = acked.lock().expect("lock").len();
        while acked.lock().expect("lock").len() < acked_away + 1_000 {
            assert!(Instant::now() < deadline, "no calls acknowledged while the aggregator is away");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let restarted = cluster_node(&etcd, &backend, &dirs[victim_index], role, Some(ports));
    assert_eq!(restarted.1.grpc, ports.grpc, "restarted at its address");
    nodes[victim_index] = restarted;
    let again = Instant::now() + Duration::from_secs(5);
    let acked_before = acked.lock().expect("lock").len();
    while Instant::now() < again || acked.lock().expect("lock").len() < acked_before + 500 {
        assert!(
            Instant::now() < deadline + Duration::from_secs(30),
            "{victim:?}: no calls acknowledged after the restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for agent in agents {
        agent.await.expect("an agent");
    }
    let acked_at_end = acked.lock().expect("lock").clone();
    let replayed =
        nodes[victim_index].0.log().lines().find(|line| line.contains("replayed the ingest log")).map(str::to_owned);
    assert!(replayed.is_some(), "{victim:?}: the restarted node replays its log:\n{}", nodes[victim_index].0.log());
    // Receivers first, so what they hold reaches the aggregators; then the aggregators.
    for index in [2, 3, 0, 1] {
        let process = &mut nodes[index].0;
        process.signal("TERM");
        let status = process.wait_exit(Duration::from_secs(40)).expect("stopped");
        assert!(status.success(), "node {index}: {}", process.log());
    }
    let ended = oap_model::now_ms();
    let store = backend.open(&dirs[0]).await;
    verify_exact(&format!("{victim:?} killed"), &store, &acked_at_end, began, ended, replayed.as_deref()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_killed_under_load_in_a_cluster_loses_and_doubles_nothing() {
    cluster_crash_under_load(Victim::Aggregator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregator_killed_and_away_past_its_lease_loses_and_doubles_nothing() {
    cluster_crash_under_load(Victim::AggregatorAway).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_under_load_in_a_cluster_loses_and_doubles_nothing() {
    cluster_crash_under_load(Victim::Receiver).await;
}
