//! Provider `query.graphql` (`SW_QUERY=graphql`): serves the GraphQL API at `POST /graphql` and
//! the status endpoints on the core REST server, over the store and the stream catalog.

use std::sync::Arc;

use async_graphql_axum::GraphQL;
use async_trait::async_trait;
use axum::Router;
use oap_core::{CoreConfigRef, HttpServerRef, TimeBuckets};
use oap_kernel::{ConfigError, ModuleContext, ModuleError, ModuleProvider, TypedProviderFactory};
use oap_storage::StorageRef;
use serde::Deserialize;

use crate::context::QueryContext;
use crate::schema::{self, Limits};
use crate::{MODULE_NAME, rest};

/// The settings of `query.graphql`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct GraphqlConfig {
    /// `maxQueryComplexity` (`SW_QUERY_MAX_QUERY_COMPLEXITY`): the most fields one document
    /// may select.
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
}

impl Default for GraphqlConfig {
    fn default() -> Self {
        Self {
            max_query_complexity: 3_000,
            max_query_depth: 20,
            basic_auth_user: String::new(),
            basic_auth_password: String::new(),
        }
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
        let mut errors = Vec::new();
        if config.max_query_complexity == 0 {
            errors.push(ConfigError::new("maxQueryComplexity", "must be at least 1"));
        }
        if config.max_query_depth == 0 {
            errors.push(ConfigError::new("maxQueryDepth", "must be at least 1"));
        }
        if config.basic_auth_user.is_empty() != config.basic_auth_password.is_empty() {
            let message = "basicAuthUser and basicAuthPassword are set together or not at all";
            errors.push(ConfigError::new("basicAuthPassword", message));
        }
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
        // The same files the write path compiled at its start, read again: the query side
        // needs each metric's model and function, and the storage module cannot offer the
        // catalog (its crate is below the OAL compiler's).
        let catalog = oap_stream::definitions::load_catalog(&core.oal_dir, &core.apdex_threshold_file)
            .map_err(ModuleError::Config)?;
        let context = QueryContext { storage, catalog: Arc::new(catalog), core, buckets, membership };
        let limits =
            Limits { max_depth: self.config.max_query_depth, max_complexity: self.config.max_query_complexity };
        let schema = schema::build(context.clone(), limits);
        let routes = Router::new().route_service("/graphql", GraphQL::new(schema)).merge(rest::routes(context));
        let (user, password) = (&self.config.basic_auth_user, &self.config.basic_auth_password);
        http.add_routes(oap_core::basic_auth::require(routes, user, password))
    }
}
