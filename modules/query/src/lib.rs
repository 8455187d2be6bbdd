//! The `query` module (provider `graphql`): SkyWalking's GraphQL query API on the REST port
//! (`POST /graphql`), so the SkyWalking UI (booster-ui) and other tools of SkyWalking's query
//! protocol work against oap-rs unchanged, plus the `/status/*` endpoints the UI's settings
//! page reads (docs/reference/query-api.md).
//!
//! - [`duration`]: the UI's `Duration` strings as time buckets and chart points;
//! - [`schema`]: the GraphQL types and resolvers, by query family;
//! - [`metrics`]: which metric a name is, and the reads metric queries share;
//! - [`mqe`]: the metrics query expressions `execExpression` evaluates;
//! - [`components`]: component ids as the names traces and topology show;
//! - [`rest`]: `/status/config/ttl` and `/status/cluster/nodes`;
//! - [`http`]: `/graphql`, batches included;
//! - [`budget`], [`document`], [`guard`]: what one request may cost, and the checks that hold
//!   it to that;
//! - [`provider`]: the module's provider, which serves them all.

pub mod budget;
pub mod components;
pub mod context;
pub mod document;
pub mod duration;
pub mod guard;
pub mod http;
pub mod metrics;
pub mod mqe;
pub mod provider;
pub mod rest;
pub mod schema;

use oap_kernel::ModuleDefinition;

pub use self::provider::GraphqlProviderFactory;

/// The module's name in `application.yml`.
pub const MODULE_NAME: &str = "query";

/// The module's definition; it offers no service.
pub fn module_definition() -> ModuleDefinition {
    ModuleDefinition::new(MODULE_NAME, Vec::new())
}
