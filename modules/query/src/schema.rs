//! The GraphQL schema: one root query merged from a struct per query family, each in its own
//! file, with SkyWalking's type, field, argument and enum names. Depth and complexity are
//! bounded (`maxQueryDepth`, `maxQueryComplexity`), so no document can make the server work
//! without limit.

pub mod common;
pub mod metadata;
pub mod metrics;
pub mod status;
pub mod templates;
pub mod topology;
pub mod trace;
pub mod ui;

use async_graphql::{EmptyMutation, EmptySubscription, MergedObject, Schema};

use crate::context::QueryContext;

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

/// The bounds on one document.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest selection nesting.
    pub max_depth: usize,
    /// Most fields (each counted once, lists included).
    pub max_complexity: usize,
}

/// The schema over `context`.
pub fn build(context: QueryContext, limits: Limits) -> QuerySchema {
    Schema::build(QueryRoot::default(), EmptyMutation, EmptySubscription)
        .data(context)
        .limit_depth(limits.max_depth)
        .limit_complexity(limits.max_complexity)
        .finish()
}
