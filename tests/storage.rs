//! The embedded store under the real binary: acknowledged segments survive `kill -9`, and a data
//! directory the server cannot use stops it at start with the reason.
//!
//! The data is read back by opening the server's data directory with the store itself once the
//! server has stopped; reading through the query API comes with it.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent::{RawSegmentCollection, connect, raw_stream, raw_unary, segment_bytes};
use common::{OapProcess, Ports, assert_none_lost, scratch_dir, stored_segment_ids};
use oap_proto::v3::SegmentObject;
use prost::Message;
use tonic::transport::Channel;

const COLLECT: &str = "/skywalking.v3.TraceSegmentReportService/collect";
const COLLECT_IN_SYNC: &str = "/skywalking.v3.TraceSegmentReportService/collectInSync";

fn start(dir: &std::path::Path) -> (OapProcess, Ports) {
    OapProcess::start(dir.to_path_buf(), &[], &[])
}

/// The fixture segment under a new segment id.
fn segment(template: &SegmentObject, id: &str) -> Vec<u8> {
    SegmentObject { trace_segment_id: id.to_owned(), trace_id: format!("trace-{id}"), ..template.clone() }
        .encode_to_vec()
}

/// Sends segments until the server stops answering — batches of 10 with `collectInSync`, or
/// streams of 300 with `collect` (which wait for their data mid-stream too) — and records the
/// ids of those whose call was acknowledged.
async fn send_until_refused(channel: Channel, writer: usize, acked: Arc<Mutex<Vec<String>>>) {
    let template = SegmentObject::decode(segment_bytes("py-backend-0").as_slice()).expect("fixture");
    let streams = writer == 0;
    for batch in 0.. {
        let count = if streams { 300 } else { 10 };
        let ids: Vec<String> = (0..count).map(|item| format!("w{writer}-b{batch}-i{item}")).collect();
        let segments: Vec<Vec<u8>> = ids.iter().map(|id| segment(&template, id)).collect();
        let reply = if streams {
            raw_stream(&channel, COLLECT, segments).await
        } else {
            raw_unary(&channel, COLLECT_IN_SYNC, RawSegmentCollection { segments }.encode_to_vec()).await
        };
        match reply {
            Ok(_) => acked.lock().expect("lock").extend(ids),
            Err(_) => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_segments_survive_kill_9() {
    let dir = scratch_dir("kill-9");
    let (server, ports) = start(&dir);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let first = connect(ports.grpc).await;
    let writers: Vec<_> =
        (0..4).map(|writer| tokio::spawn(send_until_refused(first.clone(), writer, acked.clone()))).collect();

    // Kill it mid-stream, once a good number of batches were acknowledged.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked.lock().expect("lock").len() < 2_000 {
        assert!(Instant::now() < deadline, "too few acknowledged:\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.signal("KILL");
    for writer in writers {
        writer.await.expect("writer");
    }
    let acked: BTreeSet<String> = acked.lock().expect("lock").iter().cloned().collect();
    assert!(acked.iter().any(|id| id.starts_with("w0-")), "a whole stream was acknowledged before the kill");
    drop(server);

    // The server starts again on the same directory and goes on taking segments.
    let (mut server, ports) = start(&dir);
    let template = SegmentObject::decode(segment_bytes("py-backend-0").as_slice()).expect("fixture");
    let after = RawSegmentCollection { segments: vec![segment(&template, "after-restart")] };
    raw_unary(&connect(ports.grpc).await, COLLECT_IN_SYNC, after.encode_to_vec()).await.expect("taken after a restart");
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).is_some_and(|status| status.success()), "{}", server.log());

    let stored = stored_segment_ids(&dir.join("data")).await;
    assert_none_lost(&acked, &stored);
    assert!(stored.contains("after-restart"));
    eprintln!("{} acknowledged, {} stored (the difference was in flight at the kill)", acked.len(), stored.len());
}

#[test]
fn a_data_directory_that_cannot_be_written_stops_the_server_with_the_reason() {
    let dir = scratch_dir("unwritable");
    std::fs::write(dir.join("blocker"), b"a file, not a directory").expect("write a file");
    let mut env = Ports::any().env();
    env.push(("SW_STORAGE_EMBEDDED_DATA_DIR", dir.join("blocker/data").to_string_lossy().into_owned()));
    let mut server = OapProcess::spawn(dir.clone(), &env, &[]);
    let status = server.wait_exit(Duration::from_secs(20)).expect("the server stops");
    assert!(!status.success());
    let log = server.log();
    assert!(log.contains("blocker/data is not writable"), "{log}");
}

#[test]
fn a_damaged_store_stops_the_server_with_the_reason() {
    let dir = scratch_dir("damaged");
    let (mut server, _) = OapProcess::start(dir.clone(), &[], &[]);
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).is_some_and(|status| status.success()));
    drop(server);
    std::fs::write(dir.join("data/version"), b"not a version marker").expect("damage the store");

    let mut server = OapProcess::spawn(dir.clone(), &Ports::any().env(), &[]);
    let status = server.wait_exit(Duration::from_secs(20)).expect("the server stops");
    assert!(!status.success());
    let log = server.log();
    assert!(log.contains("cannot open the embedded store in ./data"), "{log}");
}
