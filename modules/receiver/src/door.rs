//! What every receiver that stores checks before it takes an agent's data and before it answers:
//! whether the node can store now, and how long an answer may wait for the store.
//!
//! - While the node is not ready (its store cannot write), agents' data is refused at once with
//!   `UNAVAILABLE`, counted, and nothing of it is analysed: it is neither held in memory with no
//!   store to take it, nor counted in metrics the agent will not see acknowledged.
//! - A call waits at most `ackTimeout` for what it sent to be durable; past it the agent hears
//!   `UNAVAILABLE` rather than hanging to its own deadline. (What it sent is stored once the
//!   store takes writes again; the agent was not told it was.)

use std::time::Duration;

use oap_core::{NodeHealthRef, SourceDispatcher};
use tonic::Status;

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

    /// Whether data may come in now; if not, the status to refuse it with.
    pub fn open(&self) -> Result<(), Status> {
        if self.health.is_ready() {
            return Ok(());
        }
        Err(Status::unavailable(format!(
            "the server cannot store data now ({}); send again later",
            self.health.problems().join("; ")
        )))
    }

    /// Waits until what was received before the call is durable, at most `ackTimeout`. (The
    /// door is not asked again: what a call brought in before it closed is acknowledged once it
    /// is stored, so that a call is answered success exactly when its data is kept.)
    pub async fn settle(&self, dispatcher: &SourceDispatcher, what: &str) -> Result<(), Status> {
        match tokio::time::timeout(self.ack_timeout, dispatcher.settle()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(Status::unavailable(format!("{what} may not be kept: {reason}"))),
            Err(_) => Err(Status::unavailable(format!(
                "{what} not stored within {:?} (ackTimeout){}",
                self.ack_timeout,
                match self.health.problems() {
                    problems if problems.is_empty() => String::new(),
                    problems => format!(": {}", problems.join("; ")),
                }
            ))),
        }
    }
}
