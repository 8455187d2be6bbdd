//! The ingest log on a real directory: appends from several threads are durable and replay in
//! full after a reopen, a torn last entry is cut, files rotate and are truncated from the front,
//! and the bound is reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use oap_ingest_log::{EntryKind, IngestLog, LogConfig};

fn scratch(name: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "oap-ingest-log-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(dir: &Path, segment_bytes: u64) -> LogConfig {
    LogConfig { dir: dir.to_path_buf(), segment_bytes, max_bytes: 1 << 30 }
}

fn payload(thread: usize, n: usize) -> Vec<u8> {
    format!("thread {thread} entry {n} ").repeat(30).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn appends_from_many_threads_are_durable_and_replay_whole_after_a_reopen() {
    let dir = scratch("many");
    let (log, recovered) = IngestLog::open(config(&dir, 1 << 20)).expect("opens");
    assert_eq!(recovered.files, 0);
    let log = Arc::new(log);
    let tasks: Vec<_> = (0..8)
        .map(|thread| {
            let log = log.clone();
            tokio::spawn(async move {
                for n in 0..500 {
                    let ticket = log.append(1 + n as u64 / 100, EntryKind::SEGMENT, &payload(thread, n));
                    log.durable(ticket).await.expect("durable");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("appender");
    }
    assert_eq!(log.entries_written(), 4_000);
    assert!(log.files() > 1, "1 MiB files rotate: {}", log.files());
    Arc::into_inner(log).expect("the only owner").close();

    let (log, recovered) = IngestLog::open(config(&dir, 1 << 20)).expect("reopens");
    assert_eq!((recovered.entries, recovered.torn_bytes, recovered.max_epoch), (4_000, 0, 5));
    let mut seen: Vec<Vec<u8>> = log.replay().map(|entry| entry.expect("readable").payload).collect();
    let mut sent: Vec<Vec<u8>> = (0..8).flat_map(|thread| (0..500).map(move |n| payload(thread, n))).collect();
    seen.sort();
    sent.sort();
    assert!(seen == sent, "every appended entry is replayed once");
    // Within one thread, entries replay in the order they were appended.
    let firsts: Vec<Vec<u8>> = log
        .replay()
        .map(|entry| entry.expect("readable").payload)
        .filter(|payload| payload.starts_with(b"thread 3 "))
        .collect();
    assert_eq!(firsts, (0..500).map(|n| payload(3, n)).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_torn_last_entry_is_cut_and_the_entries_before_it_replay() {
    let dir = scratch("torn");
    let (log, _) = IngestLog::open(config(&dir, 1 << 30)).expect("opens");
    for n in 0..10 {
        let ticket = log.append(1, EntryKind::SEGMENT, &payload(0, n));
        log.durable(ticket).await.expect("durable");
    }
    log.close();
    // A crash in the middle of the next write: half a frame at the end of the last file.
    let last = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| std::fs::metadata(path).expect("meta").len() > 0)
        .max()
        .expect("a file with entries");
    let mut frame = Vec::new();
    oap_ingest_log::frame::encode(&mut frame, 1, EntryKind::SEGMENT, &payload(0, 10));
    let length = std::fs::metadata(&last).expect("meta").len();
    let mut bytes = std::fs::read(&last).expect("read");
    bytes.extend_from_slice(&frame[..frame.len() / 2]);
    std::fs::write(&last, &bytes).expect("write");

    let (log, recovered) = IngestLog::open(config(&dir, 1 << 30)).expect("reopens");
    assert_eq!((recovered.entries, recovered.torn_bytes), (10, frame.len() as u64 / 2));
    assert_eq!(std::fs::metadata(&last).expect("meta").len(), length, "the torn tail is cut");
    assert_eq!(log.replay().count(), 10);
    // Appends after the cut go on in a new file and replay after the old ones.
    let ticket = log.append(2, EntryKind::SEGMENT, b"after");
    log.durable(ticket).await.expect("durable");
    log.close();
    let (log, recovered) = IngestLog::open(config(&dir, 1 << 30)).expect("reopens");
    assert_eq!((recovered.entries, recovered.torn_bytes), (11, 0));
    assert_eq!(log.replay().last().expect("entries").expect("readable").payload, b"after");
}

#[tokio::test]
async fn files_are_truncated_from_the_front_once_their_epochs_are_stored_and_the_bound_is_reported() {
    let dir = scratch("truncate");
    // Entries of ~527 bytes: a file closes at its 8th (past 4,096 bytes).
    let config = LogConfig { dir: dir.clone(), segment_bytes: 4_096, max_bytes: 20_000 };
    let (log, _) = IngestLog::open(config.clone()).expect("opens");
    for epoch in 1..=10 {
        for n in 0..5 {
            let ticket = log.append(epoch, EntryKind::SEGMENT, &payload(epoch as usize, n));
            log.durable(ticket).await.expect("durable");
        }
    }
    let (files, bytes) = (log.files(), log.bytes());
    assert!(files >= 7 && bytes > 20_000 && log.is_full(), "{files} files, {bytes} bytes");
    let freed = log.truncate_through(6).expect("truncates");
    assert!(freed > 0 && log.bytes() == bytes - freed && !log.is_full(), "freed {freed} of {bytes}");
    log.close();
    let (log, recovered) = IngestLog::open(config).expect("reopens");
    let epochs: Vec<u64> = log.replay().map(|entry| entry.expect("readable").epoch).collect();
    // Only the file that holds the last of epoch 6 and the first of 7 keeps entries of 6 or before.
    assert!(epochs.iter().filter(|epoch| **epoch <= 6).count() < 8, "{epochs:?}");
    assert_eq!(epochs.iter().filter(|epoch| **epoch > 6).count(), 20, "epochs 7–10 whole");
    assert_eq!(recovered.max_epoch, 10);
}

#[tokio::test]
async fn a_clean_close_through_every_epoch_leaves_nothing_to_replay_and_one_short_of_it_keeps_the_rest() {
    let config = |dir: &std::path::Path| LogConfig { dir: dir.to_owned(), segment_bytes: 4_096, max_bytes: 1 << 30 };
    for (through, kept) in [(10, 0), (9, 5)] {
        let dir = scratch(&format!("close-through-{through}"));
        let (log, _) = IngestLog::open(config(&dir)).expect("opens");
        for epoch in 1..=10 {
            for n in 0..5 {
                let ticket = log.append(epoch, EntryKind::SEGMENT, &payload(epoch as usize, n));
                log.durable(ticket).await.expect("durable");
            }
        }
        assert!(log.close_through(through).expect("closes") > 0);
        let (log, recovered) = IngestLog::open(config(&dir)).expect("reopens");
        let epochs: Vec<u64> = log.replay().map(|entry| entry.expect("readable").epoch).collect();
        if kept == 0 {
            assert_eq!(recovered.entries, 0, "everything was stored: {epochs:?}");
        } else {
            // The file written last holds epoch 10, so it stays, with whatever shares it.
            assert_eq!(epochs.iter().filter(|epoch| **epoch == 10).count(), kept, "{epochs:?}");
        }
    }
}

#[tokio::test]
async fn waiting_with_nothing_appended_returns_at_once() {
    let dir = scratch("idle");
    let (log, _) = IngestLog::open(config(&dir, 1 << 20)).expect("opens");
    let waited = tokio::time::timeout(std::time::Duration::from_secs(5), log.durable(log.ticket_now())).await;
    assert!(matches!(waited, Ok(Ok(()))), "{waited:?}");
    let ticket = log.append(1, EntryKind::SEGMENT, b"one");
    log.durable(ticket).await.expect("durable");
    let waited = tokio::time::timeout(std::time::Duration::from_secs(5), log.durable(log.ticket_now())).await;
    assert!(matches!(waited, Ok(Ok(()))), "after an append too: {waited:?}");
}

#[test]
fn a_directory_is_one_process_s_log_at_a_time() {
    let dir = scratch("locked");
    let (log, _) = IngestLog::open(config(&dir, 1 << 20)).expect("opens");
    let second = IngestLog::open(config(&dir, 1 << 20)).err().expect("held by the first");
    assert!(second.to_string().contains("another process has it open"), "{second}");
    log.close();
    IngestLog::open(config(&dir, 1 << 20)).expect("free once closed");
}
