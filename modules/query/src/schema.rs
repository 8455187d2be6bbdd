//! The GraphQL schema: one root query merged from a struct per query family, each in its own
//! file, with SkyWalking's type, field, argument and enum names. Every request is bounded
//! ([`Limits`]): its document's nesting before parsing, its depth and complexity (a batch's
//! documents share one complexity budget), the rows its reads may return, the heavy queries
//! running at once and the size of its answer — so no request can make the server work or hold
//! memory without limit (see [`budget`](crate::budget)).

pub mod common;
pub mod metadata;
pub mod metrics;
pub mod status;
pub mod templates;
pub mod topology;
pub mod trace;
pub mod ui;

use async_graphql::{EmptyMutation, EmptySubscription, MergedObject, Schema};

use crate::budget::Bounds;
use crate::context::QueryContext;
use crate::guard::Guard;

/// Every query of the root type.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    status::StatusQuery,
    metadata::MetadataQuery,
    metrics::MetricsQuery,
    trace::TraceQuery,
    topology::TopologyQuery,
    ui::UiQuery,
    templates::TemplateQuery,
);

/// The schema the server runs.
pub type QuerySchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

/// The bounds on every request (`query.graphql` in `application.yml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest selection nesting (`maxQueryDepth`).
    pub max_depth: usize,
    /// Most fields (each counted once, lists included) of a request, or of a batch's requests
    /// together (`maxQueryComplexity`).
    pub max_complexity: usize,
    /// Most stored rows the reads of a request (or batch) may return (`maxRowsPerRequest`).
    pub max_rows_per_request: usize,
    /// Most bytes of a request's (or batch's) answer (`maxResponseBytes`).
    pub max_response_bytes: usize,
    /// Most heavy requests answered at once (`maxConcurrentHeavyQueries`).
    pub max_concurrent_heavy_queries: usize,
}

impl Default for Limits {
    /// The defaults of `application.yml`.
    fn default() -> Self {
        Self {
            max_depth: 20,
            max_complexity: 3_000,
            max_rows_per_request: 20_000,
            max_response_bytes: 32 << 20,
            max_concurrent_heavy_queries: 4,
        }
    }
}

/// The schema over `context`, its requests within `bounds`.
pub fn build(context: QueryContext, bounds: &Bounds) -> QuerySchema {
    let limits = bounds.limits();
    Schema::build(QueryRoot::default(), EmptyMutation, EmptySubscription)
        .data(context)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .extension(Guard::new(bounds.clone()))
        .finish()
}
