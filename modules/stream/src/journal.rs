//! The pipeline's [`Journal`]: each message a receiver takes is counted in L1's current epoch
//! and appended to the ingest log under it; a call settles once the log holds what it sent
//! (docs/durable-ingest.md).

use std::sync::Arc;

use oap_core::{EntryKind, Journal, Refusal, Settle};
use oap_ingest_log::IngestLog;

use crate::l1::L1;

/// L1's epochs and the node's log, as the dispatcher sees them.
pub struct PipelineJournal {
    l1: Arc<L1>,
    log: Arc<IngestLog>,
}

impl PipelineJournal {
    /// The journal of `l1`'s epochs in `log`.
    pub fn new(l1: Arc<L1>, log: Arc<IngestLog>) -> Self {
        Self { l1, log }
    }
}

impl Journal for PipelineJournal {
    fn open(&self) -> u64 {
        self.l1.open_entry()
    }

    fn close(&self, epoch: u64, taken: Option<(EntryKind, &[u8])>) {
        if let Some((kind, message)) = taken {
            self.log.append(epoch, kind, message);
        }
        self.l1.close_entry();
    }

    fn settle(&self) -> Option<Settle> {
        let log = self.log.clone();
        let ticket = log.ticket_now();
        Some(Box::pin(async move {
            log.durable(ticket).await.map_err(|error| Refusal::unavailable(format!("not logged: {error}")))
        }))
    }
}
