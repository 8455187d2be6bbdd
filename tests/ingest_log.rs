//! The ingest log through the real binary: under load from four agents, every segment of every
//! acknowledged call is in the log's files when the server is killed with SIGKILL — read back
//! with the log's own reader after the kill, by segment id — and the log's telemetry counts the
//! entries written. The server then starts again on the same directories (the dead process's
//! lock is gone with it) and stops cleanly.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent::{Scrape, entry_segment_call, raw_unary};
use common::{OapProcess, scratch_dir};
use oap_ingest_log::{EntryKind, IngestLog, LogConfig};
use oap_proto::v3::SegmentObject;
use prost::Message;
use tonic::transport::Channel;

const AGENTS: usize = 4;
const SEGMENTS_PER_CALL: usize = 10;

fn ids(agent: usize, number: usize) -> impl Iterator<Item = String> {
    (0..SEGMENTS_PER_CALL).map(move |n| format!("logged-{agent}-{number}-{n}"))
}

fn call(agent: usize, number: usize) -> Vec<u8> {
    entry_segment_call(ids(agent, number), "logged-svc", &format!("agent-{agent}"), "/logged")
}

/// Calls until `stop`; the ids of every acknowledged call's segments go into `acked`.
async fn agent(grpc: u16, index: usize, stop: Arc<AtomicBool>, acked: Arc<Mutex<BTreeSet<String>>>) {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{grpc}")).expect("uri").connect_lazy();
    let mut number = 0;
    while !stop.load(Ordering::Relaxed) {
        let outcome =
            raw_unary(&channel, "/skywalking.v3.TraceSegmentReportService/collectInSync", call(index, number)).await;
        if outcome.is_ok() {
            let mut acked = acked.lock().expect("lock");
            acked.extend(ids(index, number));
        }
        number += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_segment_is_in_the_log_when_the_server_is_killed() {
    let dir = scratch_dir("ingest-log");
    let env = [
        ("SW_STORAGE_EMBEDDED_DATA_DIR", dir.join("data").display().to_string()),
        ("SW_CORE_PERSISTENT_PERIOD", "1".to_owned()),
        // One file for the whole run: the keeper may rightly delete a closed file whose epochs
        // are stored, and this test reads back every entry.
        ("SW_PIPELINE_LOG_SEGMENT_SIZE", (1_u64 << 30).to_string()),
    ];
    let (server, ports) = OapProcess::start(dir.clone(), &env, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let agents: Vec<_> =
        (0..AGENTS).map(|index| tokio::spawn(agent(ports.grpc, index, stop.clone(), acked.clone()))).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("lock").len() < 5_000 {
        assert!(Instant::now() < deadline, "5,000 segments within a minute:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Counted by the log's keeper (every persistentPeriod).
    let deadline = Instant::now() + Duration::from_secs(30);
    while Scrape::from_port(ports.telemetry).await.value("ingest_log_entries_count") < 1_000.0 {
        assert!(Instant::now() < deadline, "the log's entries are never counted:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Killed while the agents still send.
    server.signal("KILL");
    let acked_before_kill = acked.lock().expect("lock").clone();
    stop.store(true, Ordering::Relaxed);
    for agent in agents {
        agent.await.expect("agent");
    }
    let mut server = server;
    server.wait_exit(Duration::from_secs(10)).expect("killed");

    let config = LogConfig { dir: dir.join("ingest-log"), segment_bytes: 64 << 20, max_bytes: u64::MAX };
    let (log, recovered) = IngestLog::open(config).expect("the log opens after the kill");
    let mut logged = BTreeSet::new();
    for entry in log.replay() {
        let entry = entry.expect("readable");
        assert_eq!(entry.kind, EntryKind::SEGMENT);
        let segment = SegmentObject::decode(entry.payload.as_slice()).expect("a segment, as it was sent");
        assert!(logged.insert(segment.trace_segment_id.clone()), "{} logged twice", segment.trace_segment_id);
    }
    let missing: Vec<&String> = acked_before_kill.difference(&logged).take(10).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged segments are not in the log (of {} acknowledged, {} logged), e.g. {missing:?}",
        acked_before_kill.difference(&logged).count(),
        acked_before_kill.len(),
        logged.len()
    );
    assert_eq!(recovered.entries as usize, logged.len());
    eprintln!(
        "{} acknowledged before the kill, {} in the log, {} bytes cut from a torn tail",
        acked_before_kill.len(),
        logged.len(),
        recovered.torn_bytes
    );
    log.close();

    let (mut again, _) = OapProcess::start(dir.clone(), &env, &[]);
    assert!(again.log().contains("the ingest log holds entries of an earlier run"), "{}", again.log());
    again.signal("TERM");
    assert!(again.wait_exit(Duration::from_secs(30)).expect("stopped").success(), "{}", again.log());
}
