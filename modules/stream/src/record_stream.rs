//! The record stream (docs/reference/pipeline-and-storage.md §7): records from the dispatcher to
//! storage. The dispatcher hands each record over without blocking; one writer task takes whatever
//! has queued, writes it as one batch (retrying until stored), then answers the settles that queued
//! behind it — so an agent is acknowledged only once its segments are durable, and concurrent
//! agents share each write (group commit).
//!
//! Records are written by the node that received them, whatever its role. On a node that keeps
//! an ingest log, a batch is written only once the log holds every entry appended before the
//! writer took it — and a record's entry is appended before the record is dispatched — so the
//! store never holds a record whose segment the log may have lost (a crash then would leave it
//! stored but never counted in the metrics).
//!
//! A row the store refuses for good (which the receivers' checks should make impossible) fails
//! alone: the rows around it are stored (`write_until_stored`), and only the settles queued after
//! it hear the failure — an agent's rows are queued before its settle, so no agent is
//! acknowledged for a row that was not stored.

use std::sync::Arc;

use oap_core::{Refusal, Settle, SourceConsumer};
use oap_ingest_log::IngestLog;
use oap_model::source::Source;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::info;

use crate::retry::{WriteTelemetry, write_until_stored};
use oap_storage::StorageError;
use oap_storage::builtin::segment::{self, SegmentRow};
use oap_storage::{Storage, Write};

/// The most writes in one batch.
const MAX_BATCH: usize = 2_000;

enum Message {
    Write(Write),
    Settle(oneshot::Sender<Result<(), Refusal>>),
}

/// The consumer the dispatcher feeds.
pub struct RecordStream {
    queue: mpsc::UnboundedSender<Message>,
}

impl RecordStream {
    /// Starts the writer task on the current runtime; each batch waits for `log`, if the node
    /// keeps one.
    pub fn start(
        storage: Arc<dyn Storage>,
        metrics: WriteTelemetry,
        log: Option<Arc<IngestLog>>,
    ) -> (Arc<Self>, JoinHandle<()>) {
        let (queue, messages) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_all(storage, messages, metrics, log));
        (Arc::new(Self { queue }), writer)
    }

    /// Queues writes made elsewhere (the top-N reports) behind the records already queued; a
    /// settle that follows covers them. False once the writer has stopped.
    pub fn enqueue(&self, writes: Vec<Write>) -> bool {
        writes.into_iter().all(|write| self.send(Message::Write(write)))
    }

    fn send(&self, message: Message) -> bool {
        self.queue.send(message).is_ok()
    }
}

impl SourceConsumer for RecordStream {
    fn accept(&self, source: &Source<'_>) {
        if let Source::Segment(record) = source {
            let row = SegmentRow::from_source(record).into_row();
            // A closed queue means the writer stopped; the settle that follows reports it.
            self.send(Message::Write(Write::Insert(segment::MODEL.clone(), row)));
        }
    }

    fn settle(&self) -> Option<Settle> {
        let (done, wait) = oneshot::channel();
        if !self.send(Message::Settle(done)) {
            return Some(Box::pin(async { Err(Refusal::unavailable("the record writer has stopped")) }));
        }
        Some(Box::pin(async move {
            wait.await.unwrap_or_else(|_| Err(Refusal::unavailable("the record writer has stopped")))
        }))
    }
}

async fn write_all(
    storage: Arc<dyn Storage>,
    mut messages: mpsc::UnboundedReceiver<Message>,
    metrics: WriteTelemetry,
    log: Option<Arc<IngestLog>>,
) {
    let mut taken = Vec::with_capacity(MAX_BATCH);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Each settle with the number of writes queued before it.
    let mut settles: Vec<(usize, oneshot::Sender<Result<(), Refusal>>)> = Vec::new();
    while messages.recv_many(&mut taken, MAX_BATCH).await > 0 {
        for message in taken.drain(..) {
            match message {
                Message::Write(write) => batch.push(write),
                Message::Settle(done) => settles.push((batch.len(), done)),
            }
        }
        let logged = match &log {
            Some(log) if !batch.is_empty() => log.durable(log.ticket_now()).await.map_err(|error| {
                Refusal::unavailable(format!("records of this call were not stored: the ingest log failed: {error}"))
            }),
            _ => Ok(()),
        };
        let outcome = match &logged {
            Ok(()) if !batch.is_empty() => write_until_stored(&*storage, &batch, &metrics).await,
            _ => Ok(()),
        };
        batch.clear();
        for (before, done) in settles.drain(..) {
            let answer = match (&logged, &outcome) {
                // Nothing of the batch was written; the calls are not acknowledged either (their
                // settles wait for the same log).
                (Err(refusal), _) if before > 0 => Err(refusal.clone()),
                (_, Err(refused)) if before > refused.first => Err(refusal(&refused.failure)),
                _ => Ok(()),
            };
            // The sender may have gone (the agent hung up); nothing to tell then.
            let _ = done.send(answer);
        }
    }
    info!("record writer stopped");
}

/// What an agent hears of a record the store did not keep: a record the store refuses is
/// invalid (sending it again cannot help); a store that is down or damaged is unavailable (the
/// record is fine, the server cannot keep it now).
fn refusal(failure: &StorageError) -> Refusal {
    let message = format!("records of this call were not stored: {failure}");
    match failure {
        StorageError::Invalid(_) => Refusal::invalid(message),
        StorageError::Unavailable(_) | StorageError::Corrupt(_) => Refusal::unavailable(message),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::testing::MemoryStore;

    fn segment(id: &'static str) -> Source<'static> {
        Source::Segment(oap_model::source::SegmentRecord {
            segment_id: id,
            trace_id: "t",
            service_name: "s",
            service_instance_name: "i",
            endpoint_name: "/e",
            start_time: 0,
            latency: 1,
            is_error: false,
            time_bucket: 20_261_121_000_000,
            data_binary: b"x",
            tags: Vec::new(),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_write_is_retried_and_counted_and_settles_only_once_stored() {
        let store = Arc::new(MemoryStore { failing_writes: AtomicUsize::new(3), ..MemoryStore::default() });
        let metrics = WriteTelemetry::detached();
        let (stream, _writer) = RecordStream::start(store.clone(), metrics.clone(), None);
        stream.accept(&segment("s1"));
        stream.accept(&segment("s2"));
        stream.settle().expect("records wait").await.expect("stored in the end");
        assert_eq!(store.stored(), ["s1", "s2"]);
        assert_eq!((metrics.retries(), metrics.errors(), metrics.rows()), (3, 0, 2));
        assert_eq!(metrics.waiting(), 0.0, "nothing waits once stored");
    }

    #[tokio::test]
    async fn an_unwritable_row_fails_only_itself_and_the_settles_after_it() {
        let store = Arc::new(MemoryStore { refused_id: Some("bad".to_owned()), ..MemoryStore::default() });
        let metrics = WriteTelemetry::detached();
        // Queue everything before the writer can take any of it, so it is one batch.
        let (queue, messages) = mpsc::unbounded_channel();
        let settle = |queue: &mpsc::UnboundedSender<Message>| {
            let (done, wait) = oneshot::channel();
            queue.send(Message::Settle(done)).expect("queued");
            wait
        };
        let write = |id: &'static str| {
            let Source::Segment(record) = segment(id) else { unreachable!("a segment") };
            Message::Write(Write::Insert(segment::MODEL.clone(), SegmentRow::from_source(&record).into_row()))
        };
        queue.send(write("s1")).expect("queued");
        let before = settle(&queue);
        queue.send(write("bad")).expect("queued");
        queue.send(write("s2")).expect("queued");
        let after = settle(&queue);
        let writer = tokio::spawn(write_all(store.clone(), messages, metrics.clone(), None));
        before.await.expect("answered").expect("its rows are stored");
        let refused = after.await.expect("answered").expect_err("a row before it was refused");
        assert!(refused.message.contains("refused"), "{refused}");
        assert_eq!(refused.kind, oap_core::RefusalKind::Invalid);
        assert_eq!(store.stored(), ["s1", "s2"], "the rows around the bad one are stored");
        drop(queue);
        writer.await.expect("the writer ends when its queue closes");
    }

    #[tokio::test]
    async fn other_sources_are_not_records() {
        let store = Arc::new(MemoryStore::default());
        let (stream, _writer) = RecordStream::start(store.clone(), WriteTelemetry::detached(), None);
        stream.accept(&Source::ServiceMeta(oap_model::source::ServiceMeta {
            name: "db".into(),
            layer: oap_model::Layer::VIRTUAL_DATABASE,
            time_bucket: 1,
        }));
        stream.settle().expect("records wait").await.expect("nothing to store");
        assert!(store.stored().is_empty());
    }
}
