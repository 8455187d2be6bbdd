//! A batch's outcome — `collectInSync`, `/v3/segments`, `/v3/logs`, `/v3/events` — where each
//! element is taken or rejected alone, and the reply says how many were rejected and that the
//! others were kept, so clients do not resend them.

use axum::response::{IntoResponse, Response};
use oap_telemetry::LogLimit;
use tonic::Status;
use tracing::warn;

use oap_core::Refusal;

use crate::http;

/// How a batch went: how many elements, how many rejected, and the first rejection.
pub(crate) struct Batch {
    total: usize,
    rejected: usize,
    first_error: Option<String>,
}

impl Batch {
    /// Tallies the outcomes of a batch's elements, logging rejections (a few per interval).
    pub(crate) fn of<E: std::fmt::Display>(outcomes: impl Iterator<Item = Result<(), E>>) -> Self {
        let mut batch = Batch { total: 0, rejected: 0, first_error: None };
        for outcome in outcomes {
            batch.total += 1;
            if let Err(error) = outcome {
                static LOG: LogLimit = LogLimit::default_budget();
                if let Some(left_out) = LOG.admit() {
                    warn!(%error, left_out, "batch element rejected");
                }
                batch.rejected += 1;
                batch.first_error.get_or_insert_with(|| error.to_string());
            }
        }
        batch
    }

    /// Why the batch is not wholly accepted, naming its elements `what`; `None` when it is.
    fn problem(&self, what: &str) -> Option<String> {
        self.first_error.as_ref().map(|error| {
            format!(
                "{} of {} {what} rejected, the first because {error}; the others were accepted",
                self.rejected, self.total
            )
        })
    }

    /// `Ok` when every element was accepted; else `INVALID_ARGUMENT` with the tally.
    pub(crate) fn into_status(self, what: &str) -> Result<(), Status> {
        self.problem(what).map_or(Ok(()), |problem| Err(Status::invalid_argument(problem)))
    }

    /// `{}` when every element was accepted; else a 400 with the tally.
    pub(crate) fn into_response(self) -> Response {
        let what = if self.total == 1 { "element" } else { "elements" };
        match self.problem(what) {
            None => http::commands(),
            Some(problem) => Refusal::invalid(problem).into_response(),
        }
    }
}
