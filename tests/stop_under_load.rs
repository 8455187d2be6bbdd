//! SIGTERM under steady load, through the real binary, on both stores: the doors close before
//! anything is flushed (receivers refuse, the servers stop once the calls in progress are
//! answered), then L1 drains, L2 persists and the records settle. Afterwards the stored
//! `service_cpm` and `endpoint_cpm` totals, at minute, hour and day, equal exactly the calls
//! the agents saw acknowledged — nothing acknowledged is missing, nothing refused is counted.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent::{entry_segment_call, raw_unary};
use common::{Backend, scratch_dir, start_server_with};
use oap_model::{TimeBuckets, ids};
use oap_oal::{ApdexThresholds, Catalog};
use oap_storage::{RowKey, StorageRef};
use tonic::transport::Channel;

const SERVICE: &str = "stopping-svc";
const AGENTS: usize = 4;
const SEGMENTS_PER_CALL: usize = 10;

/// One call of `agent`: segments of one entry span each on its agent's endpoint, ending now.
fn call(agent: usize, number: usize) -> Vec<u8> {
    let ids = (0..SEGMENTS_PER_CALL).map(|n| format!("stop-{agent}-{number}-{n}"));
    entry_segment_call(ids, SERVICE, &format!("agent-{agent}"), &endpoint(agent))
}

fn endpoint(agent: usize) -> String {
    format!("/agent-{agent}")
}

/// Calls until `stop`, counting the segments of acknowledged calls; a refused call is retried
/// after a pause, as agents do, until the server is gone.
async fn agent(grpc: u16, index: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<usize>>>) {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{grpc}")).expect("uri").connect_lazy();
    let mut number = 0;
    while !stop.load(Ordering::Relaxed) {
        let outcome =
            raw_unary(&channel, "/skywalking.v3.TraceSegmentReportService/collectInSync", call(index, number)).await;
        number += 1;
        match outcome {
            Ok(_) => acked.lock().expect("lock")[index] += SEGMENTS_PER_CALL,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The sum of a metric's `total` for `entity` over `buckets`.
async fn total(store: &StorageRef, catalog: &Catalog, metric: &str, entity: &str, buckets: &BTreeSet<i64>) -> i64 {
    let model = &catalog.find(metric).unwrap_or_else(|| panic!("no stream {metric}")).1.model;
    let column = model.column("total").expect("a total column");
    let keys: Vec<RowKey> =
        buckets.iter().map(|bucket| RowKey { id: entity.to_owned(), time_bucket: *bucket }).collect();
    let rows = store.multi_get(model, &keys).await.expect("multi-get");
    rows.iter().map(|row| row.value(column).as_i64().expect("a number")).sum()
}

async fn stop_under_load(backend: Backend) {
    let dir = scratch_dir("stop-under-load");
    let buckets = TimeBuckets::system();
    let began = oap_model::now_ms();
    let (mut server, ports) = start_server_with(&dir, &backend);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(vec![0; AGENTS]));
    let agents: Vec<_> =
        (0..AGENTS).map(|index| tokio::spawn(agent(ports.grpc, index, stop.clone(), acked.clone()))).collect();

    // Load for a few L2 rounds (one a second), then SIGTERM while the agents keep calling.
    let (loaded, deadline) = (Instant::now() + Duration::from_secs(5), Instant::now() + Duration::from_secs(30));
    while Instant::now() < loaded || acked.lock().expect("lock").iter().sum::<usize>() < 2_000 {
        assert!(Instant::now() < deadline, "too few calls acknowledged:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acked_before_stop: usize = acked.lock().expect("lock").iter().sum();
    server.signal("TERM");
    let signalled = Instant::now();
    let status = server.wait_exit(Duration::from_secs(40)).expect("the server stops");
    let stopped_in = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    for agent in agents {
        agent.await.expect("an agent");
    }
    assert!(status.success(), "{}", server.log());
    let ended = oap_model::now_ms();
    drop(server);

    let acked = acked.lock().expect("lock").clone();
    let calls: usize = acked.iter().sum();
    eprintln!(
        "{calls} segments acknowledged, {} of them after SIGTERM was sent; stopped in {stopped_in:?}",
        calls - acked_before_stop
    );
    let minutes: BTreeSet<i64> =
        (began / 60_000..=ended / 60_000).map(|minute| buckets.minute(minute * 60_000).expect("a minute")).collect();
    let levels: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::from([
        ("minute", minutes.clone()),
        ("hour", minutes.iter().map(|minute| minute / 100).collect()),
        ("day", minutes.iter().map(|minute| minute / 10_000).collect()),
    ]);
    let store = backend.open(&dir).await;
    let catalog =
        Catalog::new(oap_oal::load("core.oal", oap_oal::CORE_OAL).expect("core.oal"), ApdexThresholds::default())
            .expect("the catalog");
    let service = ids::service_id(SERVICE, true);
    for (level, buckets) in &levels {
        let counted = total(&store, &catalog, "service_cpm", &service, buckets).await;
        assert_eq!(counted, calls as i64, "service_cpm at the {level} level");
        for (index, acked) in acked.iter().enumerate() {
            let endpoint_id = ids::endpoint_id(&service, &endpoint(index));
            let counted = total(&store, &catalog, "endpoint_cpm", &endpoint_id, buckets).await;
            assert_eq!(counted, *acked as i64, "endpoint_cpm of {} at the {level} level", endpoint(index));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_keeps_exactly_the_acknowledged_calls() {
    stop_under_load(Backend::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_keeps_exactly_the_acknowledged_calls_in_elasticsearch() {
    stop_under_load(Backend::elasticsearch()).await;
}
