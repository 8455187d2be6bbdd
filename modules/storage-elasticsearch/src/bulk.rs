//! The bulk writer (docs/reference/pipeline-and-storage.md §8, §13): every write of the store goes
//! out in `_bulk` requests of at most `bulkActions` documents and `batchOfBytes` bytes, at most
//! `concurrentRequests` at a time.
//!
//! Writers are answered only once Elasticsearch has acknowledged each of their documents. While
//! the requests are in flight, the writes that arrive queue and leave together in the next
//! request (group commit), so there is no timer to wait for: a write is sent as soon as a
//! request slot is free, which is never later than `flushInterval`. The queue is bounded: the
//! documents admitted and not yet answered are at most `bulkActions × (concurrentRequests + 1)`,
//! and a writer past that waits — the pressure reaches the pipeline instead of memory growing.
//!
//! Java's processor checks only the HTTP status. Here each item's status is read: items the
//! server turned away for now (429 `es_rejected_execution_exception`, 5xx, 408) are sent again,
//! alone, after a growing pause; an item refused for its content (400) fails its writer's
//! write as invalid; a request that got no answer, or a busy answer, fails every writer in it
//! as unavailable, to be retried by them. Documents have fixed ids and are written whole, so a
//! document sent twice is stored once.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use elasticsearch::params::Refresh;
use elasticsearch::{BulkParts, Elasticsearch};
use oap_storage::{RowVersion, StorageError, Written};
use oap_telemetry::{Counter, Gauge, MetricsCreator, TelemetryError};
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::debug;

use crate::client::{self, is_retryable};

/// Times items turned away for now are sent again within one request's handling.
const ITEM_RETRIES: u32 = 3;
/// The pause before the first of them; it doubles each time.
const FIRST_ITEM_PAUSE: Duration = Duration::from_millis(100);

/// The limits of the writer, from `storage.elasticsearch`.
#[derive(Debug, Clone, Copy)]
pub struct BulkLimits {
    /// `bulkActions`: documents per request at most.
    pub actions: usize,
    /// `batchOfBytes`: bytes per request at most (a larger document goes alone).
    pub bytes: usize,
    /// `concurrentRequests`: requests in flight at most.
    pub concurrent_requests: usize,
    /// `refresh` of every request (`false` but in tests: a refresh per request is costly).
    pub refresh: Refresh,
}

/// The writer's own metrics.
#[derive(Clone)]
pub struct BulkTelemetry {
    requests: Counter,
    bytes: Counter,
    documents: Counter,
    retried: Counter,
    failed: Counter,
    pending: Gauge,
}

impl BulkTelemetry {
    /// The metrics, registered in `metrics`.
    pub fn new(metrics: &dyn MetricsCreator) -> Result<Self, TelemetryError> {
        Ok(Self {
            requests: metrics.counter("elasticsearch_bulk_request_count", "_bulk requests sent", &[])?,
            bytes: metrics.counter("elasticsearch_bulk_byte_count", "Bytes of the _bulk request bodies sent", &[])?,
            documents: metrics.counter("elasticsearch_bulk_document_count", "Documents elasticsearch stored", &[])?,
            retried: metrics.counter(
                "elasticsearch_bulk_retry_count",
                "Documents elasticsearch turned away for now and that were sent again",
                &[],
            )?,
            failed: metrics.counter(
                "elasticsearch_bulk_failure_count",
                "Documents whose write failed (their writers retry or report them)",
                &[],
            )?,
            pending: metrics.gauge(
                "elasticsearch_bulk_pending_documents",
                "Documents handed to the bulk writer and not yet answered",
                &[],
            )?,
        })
    }

    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.get()
    }

    /// Documents stored so far.
    pub fn documents(&self) -> u64 {
        self.documents.get()
    }

    /// Documents sent again so far.
    pub fn retried(&self) -> u64 {
        self.retried.get()
    }
}

/// Documents of one writer that fit one request.
struct Job {
    /// Each document's action line and source line, newline-terminated.
    documents: Vec<Bytes>,
    bytes: usize,
    done: oneshot::Sender<Result<Vec<Written>, StorageError>>,
    /// Its room in the queue, given back when it is answered.
    _room: OwnedSemaphorePermit,
}

/// Hands documents to Elasticsearch in bulk.
pub struct BulkWriter {
    jobs: mpsc::UnboundedSender<Job>,
    room: Arc<Semaphore>,
    limits: BulkLimits,
    metrics: BulkTelemetry,
    sender: JoinHandle<()>,
}

impl BulkWriter {
    /// Starts the writer on `client`.
    pub fn start(client: Elasticsearch, limits: BulkLimits, metrics: BulkTelemetry) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(limits.actions.saturating_mul(limits.concurrent_requests + 1)));
        let sender = tokio::spawn(send_all(client, queue, limits, metrics.clone()));
        Self { jobs, room, limits, metrics, sender }
    }

    /// Writes `documents` (action line and source line each) and returns once every one is
    /// stored — or found in conflict with what is stored, for a conditional action — saying
    /// which, in order; or with the first reason one is not: unavailable if any may be stored by
    /// writing again, else invalid.
    pub async fn write(&self, documents: Vec<Bytes>) -> Result<Vec<Written>, StorageError> {
        let mut answers = Vec::new();
        let mut chunk = Vec::new();
        let mut bytes = 0;
        let mut documents = documents.into_iter().peekable();
        while let Some(document) = documents.next() {
            bytes += document.len();
            chunk.push(document);
            let full = chunk.len() >= self.limits.actions
                || documents.peek().is_some_and(|next| bytes + next.len() > self.limits.bytes);
            if full || documents.peek().is_none() {
                answers.push(self.enqueue(std::mem::take(&mut chunk), std::mem::take(&mut bytes)).await?);
            }
        }
        let mut outcome = Ok(());
        let mut written = Vec::new();
        for answer in answers {
            let result =
                answer.await.unwrap_or_else(|_| Err(StorageError::Unavailable("the bulk writer stopped".to_owned())));
            let result = result.map(|items| written.extend(items));
            outcome = worse(outcome, result);
        }
        outcome.map(|()| written)
    }

    async fn enqueue(
        &self,
        documents: Vec<Bytes>,
        bytes: usize,
    ) -> Result<oneshot::Receiver<Result<Vec<Written>, StorageError>>, StorageError> {
        let stopped = || StorageError::Unavailable("the bulk writer stopped".to_owned());
        let count = u32::try_from(documents.len()).map_err(|_| stopped())?;
        let room = self.room.clone().acquire_many_owned(count).await.map_err(|_| stopped())?;
        self.metrics.pending.add(f64::from(count));
        let (done, answer) = oneshot::channel();
        self.jobs.send(Job { documents, bytes, done, _room: room }).map_err(|_| stopped())?;
        Ok(answer)
    }
}

impl Drop for BulkWriter {
    fn drop(&mut self) {
        self.sender.abort();
    }
}

/// The worse of two outcomes: a retryable failure over an invalid one over success.
fn worse(a: Result<(), StorageError>, b: Result<(), StorageError>) -> Result<(), StorageError> {
    match (a, b) {
        (Err(a), _) if a.is_retryable() => Err(a),
        (_, Err(b)) if b.is_retryable() => Err(b),
        (Err(a), _) => Err(a),
        (_, b) => b,
    }
}

/// Takes the queued jobs into requests, one per free request slot.
async fn send_all(
    client: Elasticsearch,
    mut queue: mpsc::UnboundedReceiver<Job>,
    limits: BulkLimits,
    metrics: BulkTelemetry,
) {
    let slots = Arc::new(Semaphore::new(limits.concurrent_requests));
    let mut carried: Option<Job> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let first = match carried.take() {
            Some(job) => job,
            None => match queue.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let (mut documents, mut bytes) = (first.documents.len(), first.bytes);
        let mut jobs = vec![first];
        while let Ok(job) = queue.try_recv() {
            if documents + job.documents.len() > limits.actions || bytes + job.bytes > limits.bytes {
                carried = Some(job);
                break;
            }
            documents += job.documents.len();
            bytes += job.bytes;
            jobs.push(job);
        }
        let (client, metrics) = (client.clone(), metrics.clone());
        tokio::spawn(async move {
            send(&client, jobs, limits.refresh, &metrics).await;
            drop(slot);
        });
    }
}

/// One answered item of a `_bulk` response.
#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(rename = "_seq_no", default)]
    seq_no: Option<i64>,
    #[serde(rename = "_primary_term", default)]
    primary_term: Option<i64>,
}

/// The action an item answers (`index` or `create`).
#[derive(Deserialize)]
struct Action {
    #[serde(alias = "create", alias = "update", alias = "delete")]
    index: Item,
}

#[derive(Deserialize)]
struct BulkAnswer {
    items: Vec<Action>,
}

impl Item {
    fn index_missing(&self) -> bool {
        self.error.as_ref().is_some_and(|error| error["type"] == "index_not_found_exception")
    }

    fn reason(&self) -> String {
        match &self.error {
            Some(error) => format!(
                "{}: {}",
                error["type"].as_str().unwrap_or("error"),
                error["reason"].as_str().unwrap_or_default()
            ),
            None => format!("status {}", self.status),
        }
    }
}

/// Sends the documents of `jobs` as one request, sends again the items turned away for now,
/// and answers every job.
async fn send(client: &Elasticsearch, jobs: Vec<Job>, refresh: Refresh, metrics: &BulkTelemetry) {
    let mut outcomes: Vec<Result<(), StorageError>> = jobs.iter().map(|_| Ok(())).collect();
    let mut written: Vec<Vec<Written>> =
        jobs.iter().map(|job| vec![Written::Stored(None); job.documents.len()]).collect();
    // (job, document) of each document still to store.
    let mut pending: Vec<(usize, usize)> = jobs
        .iter()
        .enumerate()
        .flat_map(|(job, documents)| (0..documents.documents.len()).map(move |document| (job, document)))
        .collect();
    let mut pause = FIRST_ITEM_PAUSE;
    for attempt in 0..=ITEM_RETRIES {
        let body: Vec<Bytes> = pending.iter().map(|&(job, document)| jobs[job].documents[document].clone()).collect();
        metrics.requests.inc();
        metrics.bytes.inc_by(body.iter().map(|document| document.len() as u64).sum());
        let answer = match request(client, body, refresh).await {
            Ok(answer) if answer.items.len() == pending.len() => answer,
            Ok(answer) => {
                let error =
                    format!("elasticsearch answered {} items for {} documents", answer.items.len(), pending.len());
                fail(&mut outcomes, &pending, &StorageError::Unavailable(error), metrics);
                break;
            }
            Err(error) => {
                fail(&mut outcomes, &pending, &error, metrics);
                break;
            }
        };
        let mut again = Vec::new();
        for (&(job, document), Action { index: item }) in pending.iter().zip(answer.items) {
            if (200..300).contains(&item.status) {
                metrics.documents.inc();
                let version = item
                    .seq_no
                    .zip(item.primary_term)
                    .map(|(seq_no, primary_term)| RowVersion { seq_no, primary_term });
                written[job][document] = Written::Stored(version);
            } else if item.status == 409 {
                // A conditional write found the stored row changed (or present): the writer
                // reads it again.
                written[job][document] = Written::Conflict;
            } else if is_retryable(item.status) && attempt < ITEM_RETRIES {
                again.push((job, document));
            } else {
                metrics.failed.inc();
                let error = if item.index_missing() {
                    // Deleted since the store created it: the writer's retry creates it again.
                    StorageError::Unavailable(format!("elasticsearch: {}", item.reason()))
                } else {
                    client::status_error(item.status, &item.reason())
                };
                outcomes[job] = worse(std::mem::replace(&mut outcomes[job], Ok(())), Err(error));
            }
        }
        if again.is_empty() {
            break;
        }
        metrics.retried.inc_by(again.len() as u64);
        debug!(documents = again.len(), retry_in = ?pause, "elasticsearch turned documents away; sending them again");
        tokio::time::sleep(pause).await;
        pause *= 2;
        pending = again;
    }
    for ((job, outcome), written) in jobs.into_iter().zip(outcomes).zip(written) {
        metrics.pending.sub(job.documents.len() as f64);
        let _ = job.done.send(outcome.map(|()| written));
    }
}

fn fail(
    outcomes: &mut [Result<(), StorageError>],
    pending: &[(usize, usize)],
    error: &StorageError,
    metrics: &BulkTelemetry,
) {
    metrics.failed.inc_by(pending.len() as u64);
    for &(job, _) in pending {
        outcomes[job] = worse(std::mem::replace(&mut outcomes[job], Ok(())), Err(error.clone()));
    }
}

async fn request(client: &Elasticsearch, body: Vec<Bytes>, refresh: Refresh) -> Result<BulkAnswer, StorageError> {
    let response =
        client.bulk(BulkParts::None).body(body).refresh(refresh).send().await.map_err(client::unreachable)?;
    client::answer(response, "bulk").await
}
