//! What one request may cost (issue 20, "queries bounded"). Every request — or every request of a
//! batch together — gets one [`RequestBudget`]:
//!
//! - **complexity**: the fields its documents select, at most `maxQueryComplexity` for the whole
//!   batch (async-graphql checks each document alone; the budget adds them up);
//! - **rows**: the stored rows its reads may return, at most `maxRowsPerRequest`. A read reserves
//!   its rows *before* it reads — a trace search `pageNum × pageSize` (the store holds the pages
//!   before the one asked for too), a trace the segments it may have, a metric read one row per
//!   point, a ranking its `n` — and gives back what it did not use, so a request past the budget
//!   is refused before it reads. Topology reads cannot know their rows beforehand and are
//!   counted once read;
//! - **heavy work**: a request that searches traces, reads a trace or a topology, or reserves
//!   more than [`LIGHT_ROWS`] rows, first takes one of `maxConcurrentHeavyQueries` permits and
//!   keeps it until its answer is written; it waits at most [`HEAVY_QUERY_WAIT`] for one.
//!
//! So the rows all requests hold at once are at most `maxConcurrentHeavyQueries ×
//! maxRowsPerRequest`, plus [`LIGHT_ROWS`] for each light request. Lists of services,
//! instances and endpoints are not counted: they grow with the estate, which the receivers bound,
//! not with what a request asks.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

use crate::schema::Limits;

/// The rows a request may reserve before it counts as heavy.
pub const LIGHT_ROWS: usize = 1_000;

/// How long a heavy request waits for a permit before it is refused.
pub const HEAVY_QUERY_WAIT: Duration = Duration::from_secs(30);

/// Why a request may not do more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    /// The batch's documents select too many fields together.
    #[error(
        "the batch's documents have a complexity of {total} together, more than maxQueryComplexity {max} \
         (a batch shares one budget)"
    )]
    Complexity {
        /// The complexity so far, this document's included.
        total: usize,
        /// `maxQueryComplexity`.
        max: usize,
    },
    /// A read would take the request past its rows.
    #[error(
        "this read needs {asked} rows and the request has used {used}, more than maxRowsPerRequest {max}; \
         ask for smaller pages, a shorter duration or fewer fields"
    )]
    Rows {
        /// The rows the read reserves.
        asked: usize,
        /// The rows the request had reserved before.
        used: usize,
        /// `maxRowsPerRequest`.
        max: usize,
    },
    /// No heavy-query permit came free in time.
    #[error(
        "the server is answering {max} heavy queries (maxConcurrentHeavyQueries) and none finished within {}s; \
         try again later",
        HEAVY_QUERY_WAIT.as_secs()
    )]
    Busy {
        /// `maxConcurrentHeavyQueries`.
        max: usize,
    },
}

/// Whether a read is heavy whatever its size: trace searches, trace reads and topology read
/// many stored rows to answer few.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    /// Heavy only once the request has reserved more than [`LIGHT_ROWS`].
    Light,
    /// Always heavy.
    Heavy,
}

/// What every request of the node shares: the limits and the heavy-query permits.
#[derive(Debug, Clone)]
pub struct Bounds {
    limits: Limits,
    heavy: Arc<Semaphore>,
}

impl Bounds {
    /// The bounds of a node with these limits.
    pub fn new(limits: Limits) -> Self {
        let heavy = Arc::new(Semaphore::new(limits.max_concurrent_heavy_queries));
        Self { limits, heavy }
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// A fresh budget for one request, or for all requests of one batch.
    pub fn budget(&self) -> Arc<RequestBudget> {
        Arc::new(RequestBudget {
            limits: self.limits,
            heavy: self.heavy.clone(),
            complexity: AtomicUsize::new(0),
            rows: AtomicUsize::new(0),
            permit: OnceCell::new(),
        })
    }
}

/// The budget of one request (or batch); see the [module](self).
#[derive(Debug)]
pub struct RequestBudget {
    limits: Limits,
    heavy: Arc<Semaphore>,
    complexity: AtomicUsize,
    rows: AtomicUsize,
    /// The heavy-query permit, once taken; given back when the budget is dropped, after the
    /// answer is written.
    permit: OnceCell<OwnedSemaphorePermit>,
}

/// Rows reserved for one read: kept whole, or [settled](RequestBudget::settle) with what the
/// read used.
#[derive(Debug, PartialEq, Eq)]
pub struct Reservation {
    rows: usize,
}

impl Reservation {
    /// The rows reserved.
    pub fn rows(&self) -> usize {
        self.rows
    }
}

impl RequestBudget {
    /// Adds a document's complexity; an error once the request's (or batch's) total passes
    /// `maxQueryComplexity`.
    pub fn charge_complexity(&self, complexity: usize) -> Result<(), BudgetError> {
        // Every document costs something, so a batch of empty documents is bounded too.
        let cost = complexity.max(1);
        let total = self.complexity.fetch_add(cost, Ordering::Relaxed).saturating_add(cost);
        let max = self.limits.max_complexity;
        if total > max { Err(BudgetError::Complexity { total, max }) } else { Ok(()) }
    }

    /// Reserves `rows` for a read, or refuses it before it reads; a heavy read (or one that
    /// makes the request heavy) first waits for a permit.
    pub async fn reserve(&self, rows: usize, weight: Weight) -> Result<Reservation, BudgetError> {
        let max = self.limits.max_rows_per_request;
        let used = self
            .rows
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(rows).filter(|total| *total <= max)
            })
            .map_err(|used| BudgetError::Rows { asked: rows, used, max })?;
        let heavy = weight == Weight::Heavy || used + rows > LIGHT_ROWS;
        if heavy && let Err(error) = self.hold_heavy_permit().await {
            self.rows.fetch_sub(rows, Ordering::Relaxed);
            return Err(error);
        }
        Ok(Reservation { rows })
    }

    /// Reserves what is left of the rows, at most `rows`, for a read that can stop there (a
    /// trace's segments); an error when nothing is left.
    pub async fn reserve_up_to(&self, rows: usize, weight: Weight) -> Result<Reservation, BudgetError> {
        let max = self.limits.max_rows_per_request;
        let left = max.saturating_sub(self.rows.load(Ordering::Relaxed));
        match self.reserve(rows.min(left).max(1), weight).await {
            Ok(reservation) => Ok(reservation),
            // Another read of the request took the rest meanwhile.
            Err(BudgetError::Rows { used, .. }) => Err(BudgetError::Rows { asked: rows, used, max }),
            Err(error) => Err(error),
        }
    }

    /// Keeps `used` rows of a reservation and gives the rest back.
    pub fn settle(&self, reservation: Reservation, used: usize) {
        let unused = reservation.rows.saturating_sub(used);
        self.rows.fetch_sub(unused, Ordering::Relaxed);
    }

    /// Counts rows already read (topology, whose rows are not known beforehand); an error when
    /// they take the request past its rows, so what is built from them is not answered.
    pub fn charge(&self, rows: usize) -> Result<(), BudgetError> {
        let max = self.limits.max_rows_per_request;
        let used = self.rows.fetch_add(rows, Ordering::Relaxed);
        if used.saturating_add(rows) > max { Err(BudgetError::Rows { asked: rows, used, max }) } else { Ok(()) }
    }

    /// Takes the request's heavy-query permit, once; later calls return at once.
    pub async fn hold_heavy_permit(&self) -> Result<(), BudgetError> {
        let max = self.limits.max_concurrent_heavy_queries;
        let acquire = || async { self.heavy.clone().acquire_owned().await.map_err(|_| BudgetError::Busy { max }) };
        match tokio::time::timeout(HEAVY_QUERY_WAIT, self.permit.get_or_try_init(acquire)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(BudgetError::Busy { max }),
        }
    }

    /// The rows reserved or counted so far.
    pub fn rows_used(&self) -> usize {
        self.rows.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(max_rows: usize, heavy: usize) -> Bounds {
        Bounds::new(Limits {
            max_complexity: 10,
            max_rows_per_request: max_rows,
            max_concurrent_heavy_queries: heavy,
            ..Limits::default()
        })
    }

    #[tokio::test]
    async fn rows_are_reserved_before_a_read_and_the_unused_given_back() {
        let budget = bounds(20_000, 4).budget();
        let page = budget.reserve(10_000, Weight::Heavy).await.expect("the first page");
        let second = budget.reserve(10_000, Weight::Heavy).await.expect("the second page");
        assert_eq!(
            budget.reserve(1, Weight::Light).await,
            Err(BudgetError::Rows { asked: 1, used: 20_000, max: 20_000 })
        );
        // The first page found 30 rows: the rest is free again.
        budget.settle(page, 30);
        assert_eq!(budget.rows_used(), 10_030);
        let third = budget.reserve(9_970, Weight::Light).await.expect("what is left");
        assert_eq!(third.rows(), 9_970);
        budget.settle(second, 10_000);
        budget.settle(third, 9_970);
        assert_eq!(budget.rows_used(), 20_000);
        // A new request starts afresh.
        assert_eq!(bounds(20_000, 4).budget().rows_used(), 0);
    }

    #[tokio::test]
    async fn a_read_that_may_stop_early_takes_what_is_left() {
        let budget = bounds(12_000, 4).budget();
        let page = budget.reserve(5_000, Weight::Heavy).await.expect("a page");
        let trace = budget.reserve_up_to(10_000, Weight::Heavy).await.expect("the rest");
        assert_eq!(trace.rows(), 7_000);
        assert_eq!(
            budget.reserve_up_to(10_000, Weight::Heavy).await,
            Err(BudgetError::Rows { asked: 10_000, used: 12_000, max: 12_000 })
        );
        budget.settle(page, 0);
        budget.settle(trace, 0);
        assert_eq!(budget.rows_used(), 0);
    }

    #[tokio::test]
    async fn rows_counted_after_a_read_past_the_budget_are_an_error() {
        let budget = bounds(100, 4).budget();
        budget.charge(60).expect("within");
        assert_eq!(budget.charge(60), Err(BudgetError::Rows { asked: 60, used: 60, max: 100 }));
    }

    #[test]
    fn a_batch_shares_one_complexity_budget() {
        let budget = bounds(100, 4).budget();
        budget.charge_complexity(4).expect("first");
        budget.charge_complexity(6).expect("second");
        assert_eq!(budget.charge_complexity(0), Err(BudgetError::Complexity { total: 11, max: 10 }));
        let error = BudgetError::Complexity { total: 11, max: 10 }.to_string();
        assert!(error.contains("maxQueryComplexity 10"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn heavy_requests_wait_for_a_permit_and_light_ones_do_not() {
        let bounds = bounds(20_000, 1);
        let first = bounds.budget();
        first.reserve(10, Weight::Heavy).await.expect("the only permit");
        // The same request reads again without waiting: it holds the permit.
        first.reserve(10, Weight::Heavy).await.expect("its own permit");
        // Another request's small metric read does not wait.
        let light = bounds.budget();
        light.reserve(LIGHT_ROWS, Weight::Light).await.expect("light");
        // Past LIGHT_ROWS it is heavy, and waits until the first request is done.
        let second = bounds.budget();
        let waiting = tokio::spawn(async move { second.reserve(LIGHT_ROWS + 1, Weight::Light).await.map(|_| ()) });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(first);
        assert_eq!(waiting.await.expect("joined"), Ok(()));
        // A request that waits longer than HEAVY_QUERY_WAIT is refused, and its rows given back.
        let holder = bounds.budget();
        holder.hold_heavy_permit().await.expect("the permit");
        let late = bounds.budget();
        assert_eq!(late.reserve(5, Weight::Heavy).await, Err(BudgetError::Busy { max: 1 }));
        assert_eq!(late.rows_used(), 0);
    }
}
