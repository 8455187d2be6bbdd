//! The source dispatcher: analysis hands every source here, and each subscribed stream (OAL
//! metrics, traffic and relation streams, records) takes what it consumes.
//!
//! Subscriptions are made while the modules start; dispatching reads an immutable list, so it
//! takes no lock on the hot path.
//!
//! A receiver acknowledges an agent only once what it dispatched is safe: [`SourceDispatcher::settle`]
//! waits until every consumer has made durable what it accepted before the call.
//!
//! A receiver hands each message it takes through [`SourceDispatcher::take`]: the pipeline's
//! [`Journal`] (once it set one) makes the message an entry — appended to the ingest log before
//! it is analysed, its sources counted in one epoch — and the settle then also waits for the
//! log. Logging first is what lets a consumer store what it derived from a message only once
//! the log holds the message (the record writer waits for the log before each write).
//! At start, before the doors open, the pipeline reads back what the log holds and hands each
//! entry to the [`Replayer`] the receiver of its kind registered here.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use oap_ingest_log::EntryKind;
use oap_model::source::Source;

use crate::Refusal;

/// A wait until sources accepted earlier are durable; the error says why they may not be, and
/// what the agent should do about it.
pub type Settle = Pin<Box<dyn Future<Output = Result<(), Refusal>> + Send>>;

/// A stream that consumes sources.
pub trait SourceConsumer: Send + Sync {
    /// Takes one source; copies what it keeps. Must not block.
    fn accept(&self, source: &Source<'_>);

    /// A wait until everything this consumer accepted before the call (on this thread) is
    /// durable; `None` when it holds nothing that needs waiting for.
    fn settle(&self) -> Option<Settle> {
        None
    }
}

/// What the pipeline makes of each message a receiver takes (docs/durable-ingest.md): the epoch
/// its sources count in, and its place in the ingest log.
pub trait Journal: Send + Sync {
    /// Begins an entry on this thread; what is dispatched until [`Journal::close`] counts in the
    /// returned epoch.
    fn open(&self) -> u64;
    /// Appends this thread's entry of `epoch` to the log: the message, as it came, before it is
    /// analysed. (A message its analysis then refuses stays in the log; replayed, it is refused
    /// again.)
    fn append(&self, epoch: u64, kind: EntryKind, message: &[u8]);
    /// Ends this thread's entry.
    fn close(&self);
    /// A wait until every entry logged before the call is durable.
    fn settle(&self) -> Option<Settle>;
    /// Whether a new message may be taken now; `Busy` while the pipeline cannot take more.
    fn admits(&self) -> Result<(), Refusal> {
        Ok(())
    }
}

/// Why a logged message could not be analysed again.
pub type ReplayError = Box<dyn std::error::Error + Send + Sync>;

/// Analyses again, at start, a message of one [`EntryKind`] that the ingest log holds
/// (docs/durable-ingest.md §6): the receiver that took it registers one.
pub trait Replayer: Send + Sync {
    /// Decodes `message`, taken at about `received_ms`, and dispatches its sources through
    /// `dispatch` as the live analysis did; must not `await`.
    fn replay(
        &self,
        message: &[u8],
        received_ms: i64,
        dispatch: &mut dyn FnMut(&Source<'_>),
    ) -> Result<(), ReplayError>;
}

/// Fans sources out to the subscribed consumers.
#[derive(Default)]
pub struct SourceDispatcher {
    /// Consumers subscribed so far, until the first dispatch freezes the list.
    pending: RwLock<Vec<Arc<dyn SourceConsumer>>>,
    frozen: OnceLock<Vec<Arc<dyn SourceConsumer>>>,
    journal: OnceLock<Arc<dyn Journal>>,
    replayers: Mutex<Vec<(EntryKind, Arc<dyn Replayer>)>>,
}

/// Closes an entry even when the analysis panics, so that no flush waits for it forever.
struct OpenEntry<'a>(&'a dyn Journal);

impl Drop for OpenEntry<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl SourceDispatcher {
    /// A dispatcher without consumers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Subscribes a consumer; only while the modules start (before the first dispatch).
    pub fn subscribe(&self, consumer: Arc<dyn SourceConsumer>) -> Result<(), oap_kernel::ModuleError> {
        if self.frozen.get().is_some() {
            return Err(oap_kernel::ModuleError::Other(
                "cannot subscribe to sources after dispatching began; subscribe in prepare or start".to_owned(),
            ));
        }
        self.pending.write().unwrap_or_else(|poisoned| poisoned.into_inner()).push(consumer);
        Ok(())
    }

    /// Sets the pipeline's journal; once, while the modules start.
    pub fn set_journal(&self, journal: Arc<dyn Journal>) -> Result<(), oap_kernel::ModuleError> {
        self.journal
            .set(journal)
            .map_err(|_| oap_kernel::ModuleError::Other("the source dispatcher has a journal already".to_owned()))
    }

    /// Registers the replayer of `kind`'s entries; one per kind, while the modules start.
    pub fn register_replayer(
        &self,
        kind: EntryKind,
        replayer: Arc<dyn Replayer>,
    ) -> Result<(), oap_kernel::ModuleError> {
        let mut replayers = self.replayers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if replayers.iter().any(|(known, _)| *known == kind) {
            return Err(oap_kernel::ModuleError::Other(format!("entries of kind {} have a replayer already", kind.0)));
        }
        replayers.push((kind, replayer));
        Ok(())
    }

    /// The replayer of `kind`'s entries, if its receiver runs.
    pub fn replayer(&self, kind: EntryKind) -> Option<Arc<dyn Replayer>> {
        let replayers = self.replayers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        replayers.iter().find(|(known, _)| *known == kind).map(|(_, replayer)| replayer.clone())
    }

    /// Takes one message of `kind`: it is logged, then `analyse` dispatches its sources (through
    /// the function it is given) and says whether the message is taken. Analysis must not
    /// `await`.
    pub fn take<E>(
        &self,
        kind: EntryKind,
        message: &[u8],
        analyse: impl FnOnce(&mut dyn FnMut(&Source<'_>)) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(journal) = self.journal.get() else {
            return analyse(&mut |source| self.dispatch(source));
        };
        let epoch = journal.open();
        let _entry = OpenEntry(&**journal);
        journal.append(epoch, kind, message);
        analyse(&mut |source| self.dispatch(source))
    }

    /// Whether the pipeline takes a new message now (see [`Journal::admits`]).
    pub fn admits(&self) -> Result<(), Refusal> {
        self.journal.get().map_or(Ok(()), |journal| journal.admits())
    }

    /// Hands a source to every consumer. Without consumers (no stream module yet) it is dropped.
    pub fn dispatch(&self, source: &Source<'_>) {
        for consumer in self.consumers() {
            consumer.accept(source);
        }
    }

    /// Waits until every consumer has made durable what it accepted before the call.
    pub fn settle(&self) -> impl Future<Output = Result<(), Refusal>> + Send + 'static {
        let logged = self.journal.get().and_then(|journal| journal.settle());
        let waits: Vec<Settle> =
            logged.into_iter().chain(self.consumers().iter().filter_map(|consumer| consumer.settle())).collect();
        // The log's sync and the stores' writes proceed at once; the call waits for the slowest.
        async move { futures_util::future::try_join_all(waits).await.map(|_| ()) }
    }

    /// How many consumers are subscribed.
    pub fn consumer_count(&self) -> usize {
        self.consumers().len()
    }

    fn consumers(&self) -> &[Arc<dyn SourceConsumer>] {
        self.frozen.get_or_init(|| self.pending.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use oap_model::Layer;
    use oap_model::source::{ServiceMeta, Source};

    use super::*;

    #[derive(Default)]
    struct Names(Mutex<Vec<String>>);

    impl SourceConsumer for Names {
        fn accept(&self, source: &Source<'_>) {
            if let Source::ServiceMeta(meta) = source {
                self.0.lock().expect("lock").push(meta.name.to_string());
            }
        }
    }

    #[test]
    fn every_consumer_gets_every_source_and_late_subscribers_are_refused() {
        let dispatcher = SourceDispatcher::new();
        let (first, second) = (Arc::new(Names::default()), Arc::new(Names::default()));
        dispatcher.subscribe(first.clone()).expect("before dispatch");
        dispatcher.subscribe(second.clone()).expect("before dispatch");
        let meta =
            Source::ServiceMeta(ServiceMeta { name: "db:3306".into(), layer: Layer::VIRTUAL_DATABASE, time_bucket: 1 });
        dispatcher.dispatch(&meta);
        assert_eq!(*first.0.lock().expect("lock"), ["db:3306"]);
        assert_eq!(*second.0.lock().expect("lock"), ["db:3306"]);
        assert!(dispatcher.subscribe(Arc::new(Names::default())).is_err());
    }
}
