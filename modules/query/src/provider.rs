//! Provider `query.graphql` (`SW_QUERY=graphql`): serves the GraphQL API at `POST /graphql` and
//! the status endpoints on the core REST server, over the store and the stream catalog.

use async_trait::async_trait;
use oap_core::{CoreConfigRef, HttpServerRef, TimeBuckets};
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use oap_storage::StorageRef;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::budget::Bounds;
use crate::context::QueryContext;
use crate::schema::{self, Limits};
use crate::{MODULE_NAME, http as graphql, rest};

/// The settings of `query.graphql`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GraphqlConfig {
    /// `maxQueryComplexity` (`SW_QUERY_MAX_QUERY_COMPLEXITY`): the most fields one document may
    /// select, and all documents of a batch together.
    #[serde(rename = "maxQueryComplexity")]
    pub max_query_complexity: usize,
    /// `maxQueryDepth` (`SW_QUERY_MAX_QUERY_DEPTH`): the deepest nesting of one document.
    #[serde(rename = "maxQueryDepth")]
    pub max_query_depth: usize,
    /// `basicAuthUser` (`SW_QUERY_BASIC_AUTH_USER`): when set, GraphQL and `/status` require
    /// HTTP basic authentication with this user and `basicAuthPassword`. Not a SkyWalking
    /// setting (SkyWalking leaves this to a gateway in front of the OAP).
    #[serde(rename = "basicAuthUser", deserialize_with = "oap_kernel::config::de::scalar_string")]
    pub basic_auth_user: String,
    /// `basicAuthPassword` (`SW_QUERY_BASIC_AUTH_PASSWORD`).
    #[serde(rename = "basicAuthPassword", deserialize_with = "oap_kernel::config::de::scalar_string")]
    pub basic_auth_password: String,
    /// `maxRowsPerRequest` (`SW_QUERY_MAX_ROWS_PER_REQUEST`): the most stored rows the reads of
    /// one request (or batch) may return; a read past it is refused before it reads.
    #[serde(rename = "maxRowsPerRequest")]
    pub max_rows_per_request: usize,
    /// `maxResponseBytes` (`SW_QUERY_MAX_RESPONSE_BYTES`): the most bytes of one request's (or
    /// batch's) answer; a larger answer is replaced by an error.
    #[serde(rename = "maxResponseBytes")]
    pub max_response_bytes: usize,
    /// `maxConcurrentHeavyQueries` (`SW_QUERY_MAX_CONCURRENT_HEAVY_QUERIES`): how many requests
    /// that search traces, read a trace or a topology, or reserve more than 1,000 rows are
    /// answered at once; others wait for one of them to finish.
    #[serde(rename = "maxConcurrentHeavyQueries")]
    pub max_concurrent_heavy_queries: usize,
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        let limits = Limits::default();
        Self {
            max_query_complexity: limits.max_complexity,
            max_query_depth: limits.max_depth,
            max_rows_per_request: limits.max_rows_per_request,
            max_response_bytes: limits.max_response_bytes,
            max_concurrent_heavy_queries: limits.max_concurrent_heavy_queries,
            basic_auth_user: String::new(),
            basic_auth_password: String::new(),
        }
    }
}

impl GraphqlConfig {
    /// The bounds these settings give every request.
    pub fn limits(&self) -> Limits {
        Limits {
            max_depth: self.max_query_depth,
            max_complexity: self.max_query_complexity,
            max_rows_per_request: self.max_rows_per_request,
            max_response_bytes: self.max_response_bytes,
            max_concurrent_heavy_queries: self.max_concurrent_heavy_queries,
        }
    }

    /// Every setting that cannot be used.
    fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let at_least = |errors: &mut Vec<ConfigError>, key: &str, value: usize, least: usize| {
            if value < least {
                errors.push(ConfigError::new(key, format!("must be at least {least}, not {value}")));
            }
        };
        at_least(&mut errors, "maxQueryComplexity", self.max_query_complexity, 1);
        at_least(&mut errors, "maxQueryDepth", self.max_query_depth, 1);
        at_least(&mut errors, "maxRowsPerRequest", self.max_rows_per_request, 1);
        // An answer must hold at least an error.
        at_least(&mut errors, "maxResponseBytes", self.max_response_bytes, 1_024);
        at_least(&mut errors, "maxConcurrentHeavyQueries", self.max_concurrent_heavy_queries, 1);
        // tokio's semaphore holds at most this many permits.
        if self.max_concurrent_heavy_queries > Semaphore::MAX_PERMITS {
            errors.push(ConfigError::new(
                "maxConcurrentHeavyQueries",
                format!("must be at most {}, not {}", Semaphore::MAX_PERMITS, self.max_concurrent_heavy_queries),
            ));
        }
        if self.basic_auth_user.is_empty() != self.basic_auth_password.is_empty() {
            let message = "basicAuthUser and basicAuthPassword are set together or not at all";
            errors.push(ConfigError::new("basicAuthPassword", message));
        }
        errors
    }
}

/// Builds the `graphql` provider of `query`.
pub struct GraphqlProviderFactory;

impl TypedProviderFactory for GraphqlProviderFactory {
    const MODULE: &'static str = MODULE_NAME;
    const NAME: &'static str = "graphql";
    const REQUIRES: &'static [&'static str] =
        &[oap_core::MODULE_NAME, oap_storage::MODULE_NAME, oap_cluster::MODULE_NAME];
    type Config = GraphqlConfig;

    fn build(&self, config: GraphqlConfig) -> Result<Box<dyn ModuleProvider>, Vec<ConfigError>> {
        let errors = config.validate();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Box::new(GraphqlProvider { config }))
    }
}

struct GraphqlProvider {
    config: GraphqlConfig,
}

#[async_trait]
impl ModuleProvider for GraphqlProvider {
    async fn prepare(&mut self, _ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        Ok(())
    }

    async fn start(&mut self, ctx: &mut ModuleContext<'_>) -> Result<(), ModuleError> {
        let core = ctx.service::<CoreConfigRef>()?;
        let storage = ctx.service::<StorageRef>()?;
        let buckets = ctx.service::<TimeBuckets>()?;
        let membership = ctx.service::<oap_cluster::MembershipRef>()?;
        let http = ctx.service::<HttpServerRef>()?;
        // The catalog the pipeline aggregates by: each metric's model and function.
        let catalog = ctx.service::<oap_core::CatalogRef>()?;
        let context = QueryContext { storage, catalog, core, buckets, membership };
        let bounds = Bounds::new(self.config.limits());
        let schema = schema::build(context.clone(), &bounds);
        let routes = graphql::routes(schema, bounds).merge(rest::routes(context));
        let (user, password) = (&self.config.basic_auth_user, &self.config.basic_auth_password);
        http.add_routes(oap_core::basic_auth::require(routes, user, password))
    }
}
