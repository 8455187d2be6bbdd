//! The pipeline's [`Journal`]: each message a receiver takes is appended to the ingest log under
//! L1's current epoch and counted in it; a call settles once the log holds what it sent
//! (docs/durable-ingest.md).
//!
//! While the log holds `logMaxSize` or more (the stores are behind and its files cannot be cut),
//! new messages are refused at the receivers' door with `RESOURCE_EXHAUSTED` (counted in
//! `ingest_log_full_refusal_count`) before they are analysed or logged; the log overshoots its
//! bound by at most the messages of the calls already past the door, and nothing taken is
//! dropped.

use std::sync::Arc;

use oap_core::{EntryKind, Journal, Refusal, Settle};
use oap_ingest_log::IngestLog;
use oap_telemetry::Counter;

use crate::l1::L1;

/// L1's epochs and the node's log, as the dispatcher sees them.
pub struct PipelineJournal {
    l1: Arc<L1>,
    log: Arc<IngestLog>,
    /// Messages refused while the log was full.
    full_refusals: Counter,
}

impl PipelineJournal {
    /// The journal of `l1`'s epochs in `log`; `full_refusals` counts messages refused while the
    /// log is full.
    pub fn new(l1: Arc<L1>, log: Arc<IngestLog>, full_refusals: Counter) -> Self {
        Self { l1, log, full_refusals }
    }
}

impl Journal for PipelineJournal {
    fn open(&self) -> u64 {
        self.l1.open_entry()
    }

    fn append(&self, epoch: u64, kind: EntryKind, message: &[u8]) {
        self.log.append(epoch, kind, message);
    }

    fn close(&self) {
        self.l1.close_entry();
    }

    fn settle(&self) -> Option<Settle> {
        let log = self.log.clone();
        let ticket = log.ticket_now();
        Some(Box::pin(async move {
            log.durable(ticket).await.map_err(|error| Refusal::unavailable(format!("not logged: {error}")))
        }))
    }

    fn admits(&self) -> Result<(), Refusal> {
        if !self.log.is_full() {
            return Ok(());
        }
        self.full_refusals.inc();
        Err(Refusal::busy(format!(
            "the ingest log is full ({} bytes, logMaxSize): the stores are behind; send later",
            self.log.bytes()
        )))
    }
}

#[cfg(test)]
mod tests {
    use oap_ingest_log::LogConfig;

    use super::*;
    use crate::testing::core_catalog;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_log_refuses_new_messages_as_busy_until_truncation_makes_room() {
        let dir = std::env::temp_dir().join(format!("oap-journal-full-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (log, _) =
            IngestLog::open(LogConfig { dir: dir.clone(), segment_bytes: 4_096, max_bytes: 8_192 }).expect("opens");
        let log = Arc::new(log);
        let l1 = Arc::new(L1::new(core_catalog(), 1_000));
        let refusals = Counter::new("refusals", "test").expect("counter");
        let journal = PipelineJournal::new(l1.clone(), log.clone(), refusals.clone());
        // Entries of 1,017 bytes: the 9th takes the log past 8,192.
        let mut epoch = 0;
        let mut taken = 0;
        while journal.admits().is_ok() {
            epoch = journal.open();
            journal.append(epoch, EntryKind::SEGMENT, &[7; 1_000]);
            journal.close();
            journal.settle().expect("a wait").await.expect("logged");
            taken += 1;
        }
        assert_eq!(taken, 9, "{} bytes", log.bytes());
        let refused = journal.admits().expect_err("full");
        assert_eq!(refused.kind, oap_core::RefusalKind::Busy);
        assert_eq!(refusals.get(), 2);
        log.truncate_through(epoch).expect("cut");
        assert!(journal.admits().is_ok(), "room again once the stored files are cut: {} bytes", log.bytes());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
