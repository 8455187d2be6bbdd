//! The embedded store's disk fills up under load, through the real binary: the server's data
//! directory is a small tmpfs of the test's, filled with a ballast file while agents report.
//! Agents then hear `UNAVAILABLE` (never a hang) and the node says it is not ready; once the
//! ballast is deleted, ingest resumes by itself; the disk fills again and SIGTERM ends the
//! server within its deadline though its store cannot write; and every segment an agent saw
//! acknowledged, before and after, is in the store.
//!
//! Mounting the tmpfs needs root, as the suite's machines have.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent::{RawSegmentCollection, connect, raw_unary, span};
use common::{OapProcess, assert_none_lost, scratch_dir, stored_segment_ids};
use oap_proto::v3::{SegmentObject, SpanLayer, SpanType};
use prost::Message;
use tonic::Code;
use tonic::transport::Channel;

const COLLECT_IN_SYNC: &str = "/skywalking.v3.TraceSegmentReportService/collectInSync";

/// A tmpfs mounted for the test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&path).expect("the mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(status.success(), "cannot mount a tmpfs at {} (the test needs root)", path.display());
        Self { path }
    }

    /// Fills the disk with a ballast file until at most `left` bytes are free.
    fn fill(&self, left: u64) -> PathBuf {
        let ballast = self.path.join("ballast");
        let free = self.free();
        let size = free.saturating_sub(left);
        let block = vec![0xA5u8; 1 << 20];
        let mut file = std::fs::File::create(&ballast).expect("ballast");
        let mut written = 0;
        while written < size {
            let chunk = block.len().min(usize::try_from(size - written).expect("fits"));
            if std::io::Write::write_all(&mut file, &block[..chunk]).is_err() {
                break;
            }
            written += chunk as u64;
        }
        ballast
    }

    fn free(&self) -> u64 {
        let output = Command::new("df").args(["--output=avail", "-B1"]).arg(&self.path).output().expect("run df");
        let text = String::from_utf8_lossy(&output.stdout);
        text.lines().nth(1).and_then(|line| line.trim().parse().ok()).expect("df's free bytes")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A one-span segment starting now.
fn segment(id: &str) -> Vec<u8> {
    let now = oap_model::now_ms();
    SegmentObject {
        trace_id: format!("trace-{id}"),
        trace_segment_id: id.to_owned(),
        service: "disk".to_owned(),
        service_instance: "disk-1".to_owned(),
        spans: vec![span(0, SpanType::Entry, SpanLayer::Http, "/fill", now - 5, 5)],
        ..SegmentObject::default()
    }
    .encode_to_vec()
}

#[derive(Default)]
struct Outcomes {
    acked: Vec<String>,
    refused: Vec<(Instant, Duration, tonic::Status)>,
}

/// Sends batches of 20 segments (with a little padding each, so the disk fills) until `stop`.
async fn agent(channel: Channel, writer: usize, stop: Arc<AtomicBool>, outcomes: Arc<Mutex<Outcomes>>) {
    for batch in 0.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let ids: Vec<String> = (0..20).map(|item| format!("w{writer}-b{batch}-i{item}")).collect();
        let segments = ids.iter().map(|id| segment(id)).collect();
        let sent = Instant::now();
        let reply = raw_unary(&channel, COLLECT_IN_SYNC, RawSegmentCollection { segments }.encode_to_vec()).await;
        let refused = reply.is_err();
        match reply {
            Ok(_) => outcomes.lock().expect("lock").acked.extend(ids),
            Err(status) => outcomes.lock().expect("lock").refused.push((sent, sent.elapsed(), status)),
        }
        if refused {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn healthcheck(rest: u16) -> u16 {
    let url = format!("http://127.0.0.1:{rest}/healthcheck");
    reqwest::get(url).await.expect("GET /healthcheck").status().as_u16()
}

async fn wait_for(what: &str, deadline: Duration, mut done: impl AsyncFnMut() -> bool, log: impl Fn() -> String) {
    let until = Instant::now() + deadline;
    while !done().await {
        assert!(Instant::now() < until, "{what} within {deadline:?}:\n{}", log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_an_error_agents_see_ingest_resumes_once_freed_and_nothing_acknowledged_is_lost() {
    let dir = scratch_dir("disk-full");
    let disk = SmallDisk::mount(dir.join("data"), "96m");
    let env = [
        ("SW_STORAGE_EMBEDDED_DATA_DIR", disk.path.to_string_lossy().into_owned()),
        ("SW_CORE_PERSISTENT_PERIOD", "1".to_owned()),
        ("SW_CORE_ACK_TIMEOUT", "5".to_owned()),
        ("SW_CORE_SHUTDOWN_TIMEOUT", "10".to_owned()),
    ];
    let (mut server, ports) = OapProcess::start(dir.clone(), &env, &[]);
    let channel = connect(ports.grpc).await;
    let (stop, outcomes) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(Outcomes::default())));
    let agents: Vec<_> =
        (0..4).map(|writer| tokio::spawn(agent(channel.clone(), writer, stop.clone(), outcomes.clone()))).collect();
    let acked = || outcomes.lock().expect("lock").acked.len();
    let refused = || outcomes.lock().expect("lock").refused.len();
    wait_for("segments acknowledged", Duration::from_secs(30), async || acked() > 1_000, || server.log()).await;

    // The disk fills: agents hear of it, and the node says it is not ready.
    let ballast = disk.fill(256 << 10);
    let full_at = Instant::now();
    wait_for("agents refused", Duration::from_secs(60), async || refused() > 20, || server.log()).await;
    wait_for(
        "the node not ready",
        Duration::from_secs(30),
        async || healthcheck(ports.rest).await == 503,
        || server.log(),
    )
    .await;
    let acked_while_full = acked();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(acked() - acked_while_full <= 80, "calls are acknowledged with the disk full");

    // Space returns: ingest resumes by itself.
    std::fs::remove_file(&ballast).expect("delete the ballast");
    let freed_at = Instant::now();
    wait_for("ingest to resume", Duration::from_secs(60), async || acked() > acked_while_full + 1_000, || server.log())
        .await;
    assert_eq!(healthcheck(ports.rest).await, 200, "ready again");

    // Full again: SIGTERM under load ends the server within its deadline (10 s), though what it
    // holds cannot be written.
    let ballast = disk.fill(256 << 10);
    wait_for(
        "the node not ready again",
        Duration::from_secs(60),
        async || healthcheck(ports.rest).await == 503,
        || server.log(),
    )
    .await;
    server.signal("TERM");
    let signalled = Instant::now();
    let status = server.wait_exit(Duration::from_secs(25));
    stop.store(true, Ordering::Relaxed);
    for agent in agents {
        agent.await.expect("an agent");
    }
    assert!(status.is_some(), "SIGTERM did not end the server within 25 s:\n{}", server.log());
    let stopped_in = signalled.elapsed();
    std::fs::remove_file(&ballast).expect("delete the ballast");

    let outcomes = std::mem::take(&mut *outcomes.lock().expect("lock"));
    let refusals: Vec<&tonic::Status> = outcomes
        .refused
        .iter()
        .filter(|(sent, _, _)| *sent < freed_at || *sent < signalled)
        .map(|(_, _, status)| status)
        .collect();
    assert!(!refusals.is_empty());
    for status in &refusals {
        assert!(
            matches!(status.code(), Code::Unavailable | Code::ResourceExhausted),
            "a full disk is UNAVAILABLE or RESOURCE_EXHAUSTED: {status}"
        );
    }
    let longest = outcomes.refused.iter().map(|(_, waited, _)| *waited).max().unwrap_or_default();
    assert!(longest < Duration::from_secs(15), "an agent waited {longest:?} for its answer (ackTimeout is 5 s)");

    let stored = stored_segment_ids(&disk.path).await;
    let acked: BTreeSet<String> = outcomes.acked.into_iter().collect();
    assert_none_lost(&acked, &stored);
    eprintln!(
        "{} acknowledged, {} stored, {} refused while the disk was full (the first {:?} after it filled), stopped in {stopped_in:?}",
        acked.len(),
        stored.len(),
        refusals.len(),
        outcomes.refused.first().map(|(sent, _, _)| sent.saturating_duration_since(full_at)),
    );
}
