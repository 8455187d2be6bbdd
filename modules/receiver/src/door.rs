//! What every receiver that stores checks before it takes an agent's data and before it answers:
//! whether the node can store now, and how long an answer may wait for the store.
//!
//! - While the node is not ready (its store cannot write, or it stops), agents' data is refused
//!   at once with `UNAVAILABLE`, counted, and nothing of it is analysed: it is neither held in memory with no
//!   store to take it, nor counted in metrics the agent will not see acknowledged.
//! - A call waits at most `ackTimeout` for what it sent to be durable; past it the agent hears
//!   `UNAVAILABLE` (the store fails) or `RESOURCE_EXHAUSTED` (it is only behind) rather than
//!   hanging to its own deadline. The kinds map to statuses in `oap_core::refusal`. (What it sent is stored once the
//!   store takes writes again; the agent was not told it was.)

use std::time::Duration;

use oap_core::{NodeHealthRef, Refusal, SourceDispatcher};

/// The checks at a receiver's door.
#[derive(Debug, Clone)]
pub struct Door {
    health: NodeHealthRef,
    ack_timeout: Duration,
}

impl Door {
    /// Checks against `health`; answers wait at most `ack_timeout`.
    pub fn new(health: NodeHealthRef, ack_timeout: Duration) -> Self {
        Self { health, ack_timeout }
    }

    /// Whether data may come in now; if not, why: `Unavailable` while the node cannot store,
    /// `Busy` while the pipeline cannot take more (its ingest log is full).
    pub fn open(&self, dispatcher: &SourceDispatcher) -> Result<(), Refusal> {
        if !self.health.is_ready() {
            return Err(Refusal::unavailable(format!(
                "the server cannot store data now ({}); send again later",
                self.health.problems().join("; ")
            )));
        }
        dispatcher.admits()
    }

    /// Waits until what was received before the call is durable, at most `ackTimeout`. (The
    /// door is not asked again: what a call brought in before it closed is acknowledged once it
    /// is stored, so that a call is answered success exactly when its data is kept.)
    ///
    /// Past `ackTimeout` the refusal is `Unavailable` when the node cannot store (its store
    /// fails), else `Busy`: the store takes writes, only not as fast as they come.
    pub async fn settle(&self, dispatcher: &SourceDispatcher, what: &str) -> Result<(), Refusal> {
        match tokio::time::timeout(self.ack_timeout, dispatcher.settle()).await {
            Ok(outcome) => outcome,
            Err(_) => match self.health.problems() {
                problems if problems.is_empty() => Err(Refusal::busy(format!(
                    "{what} not stored within {:?} (ackTimeout): the server is behind; send less, or later",
                    self.ack_timeout
                ))),
                problems => Err(Refusal::unavailable(format!(
                    "{what} not stored within {:?} (ackTimeout): {}",
                    self.ack_timeout,
                    problems.join("; ")
                ))),
            },
        }
    }
}
