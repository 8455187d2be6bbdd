//! The cost of an append (CPU, the disk's sync excluded): one 1 KB segment framed, checksummed
//! and copied into the appending thread's buffer, and the throughput of appends made durable by
//! group commit on this machine's disk.

use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oap_ingest_log::{EntryKind, IngestLog, LogConfig};

fn open_log() -> IngestLog {
    let dir = std::env::temp_dir().join(format!("oap-ingest-log-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    IngestLog::open(LogConfig { dir, segment_bytes: 64 << 20, max_bytes: u64::MAX }).expect("opens").0
}

fn append(criterion: &mut Criterion) {
    let segment = vec![0x5a_u8; 1_024];
    let mut group = criterion.benchmark_group("ingest_log");
    group.throughput(Throughput::Bytes(segment.len() as u64));
    let mut frames = Vec::with_capacity(64 << 20);
    group.bench_function("frame_1kb", |b| {
        b.iter(|| {
            if frames.len() > 60 << 20 {
                frames.clear();
            }
            oap_ingest_log::frame::encode(&mut frames, 1, EntryKind::SEGMENT, &segment);
        })
    });
    let log = open_log();
    group.bench_function("append_1kb", |b| b.iter(|| log.append(1, EntryKind::SEGMENT, &segment)));
    drop(log);

    // 64 concurrent appenders, each waiting for its entry to be durable, as receivers do.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let log = Arc::new(open_log());
    group.throughput(Throughput::Elements(64));
    group.bench_function("durable_1kb_x64", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let tasks: Vec<_> = (0..64)
                    .map(|_| {
                        let (log, segment) = (log.clone(), segment.clone());
                        tokio::spawn(async move {
                            let ticket = log.append(1, EntryKind::SEGMENT, &segment);
                            log.durable(ticket).await.expect("durable");
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("appender");
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
