//! Whether this node can do its work now: the parts that can fail at run time (the store) say
//! when they fail and when they work again, and everything that answers the outside world reads
//! it — the gRPC health service says `NOT_SERVING`, `GET /healthcheck` answers 503 with the
//! reasons, and the receivers refuse agents' data with `UNAVAILABLE` at once instead of holding
//! it in memory with no store to take it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use oap_telemetry::LogLimit;
use tokio::sync::watch;
use tracing::{info, warn};

/// The node's health: a set of named problems, none when it is ready.
#[derive(Debug)]
pub struct NodeHealth {
    ready: AtomicBool,
    problems: Mutex<BTreeMap<&'static str, String>>,
    changes: watch::Sender<bool>,
}

/// The node's health, shared.
pub type NodeHealthRef = Arc<NodeHealth>;

impl Default for NodeHealth {
    fn default() -> Self {
        Self { ready: AtomicBool::new(true), problems: Mutex::new(BTreeMap::new()), changes: watch::Sender::new(true) }
    }
}

impl NodeHealth {
    /// Whether no part is failing: one atomic read, fit for every request.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// `part` fails, for `reason`; the node is not ready until it works again.
    pub fn failing(&self, part: &'static str, reason: impl std::fmt::Display) {
        let mut problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        if problems.insert(part, reason.to_string()).is_none() {
            static LOG: LogLimit = LogLimit::new(3, std::time::Duration::from_secs(60));
            if let Some(left_out) = LOG.admit() {
                warn!(part, %reason, left_out, "node not ready");
            }
        }
        self.publish(&problems);
    }

    /// `part` works (again).
    pub fn working(&self, part: &'static str) {
        if self.is_ready() {
            return;
        }
        let mut problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        if problems.remove(part).is_some() {
            static LOG: LogLimit = LogLimit::new(3, std::time::Duration::from_secs(60));
            if let Some(left_out) = LOG.admit() {
                info!(part, left_out, "works again");
            }
        }
        self.publish(&problems);
    }

    /// What fails now, as `part: reason` lines.
    pub fn problems(&self) -> Vec<String> {
        let problems = self.problems.lock().unwrap_or_else(PoisonError::into_inner);
        problems.iter().map(|(part, reason)| format!("{part}: {reason}")).collect()
    }

    /// A receiver of every change of readiness.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.changes.subscribe()
    }

    fn publish(&self, problems: &BTreeMap<&'static str, String>) {
        let ready = problems.is_empty();
        self.ready.store(ready, Ordering::Relaxed);
        self.changes.send_if_modified(|current| std::mem::replace(current, ready) != ready);
    }
}

/// `GET /healthcheck`: 200 `ready`, or 503 with what fails, one line each.
pub fn routes(health: NodeHealthRef) -> Router {
    Router::new().route("/healthcheck", get(healthcheck)).with_state(health)
}

async fn healthcheck(State(health): State<NodeHealthRef>) -> (StatusCode, String) {
    match health.problems() {
        problems if problems.is_empty() => (StatusCode::OK, "ready\n".to_owned()),
        problems => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready\n{}\n", problems.join("\n"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_is_ready_when_no_part_fails() {
        let health = NodeHealth::default();
        let mut changes = health.subscribe();
        assert!(health.is_ready());
        health.failing("storage", "no space left on device");
        health.failing("storage", "still no space");
        assert!(!health.is_ready());
        assert!(changes.has_changed().expect("open"));
        assert!(!*changes.borrow_and_update());
        assert_eq!(health.problems(), ["storage: still no space"]);
        health.working("storage");
        assert!(health.is_ready() && health.problems().is_empty());
        assert!(*changes.borrow_and_update());
    }
}
