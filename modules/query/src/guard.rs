//! The async-graphql extension that puts every request of the schema within its bounds, whoever
//! executes it (the `/graphql` route, a bench, a test): before parsing, the document's nesting
//! is checked ([`document`](crate::document)) and the request is given a
//! [`RequestBudget`](crate::budget::RequestBudget) unless its batch already gave it one; after
//! validation, the document's complexity is added to the budget, so a batch's documents share
//! `maxQueryComplexity`.

use std::any::TypeId;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextValidation};
use async_graphql::{Request, ServerError, ServerResult, ValidationResult};

use crate::budget::{Bounds, RequestBudget};
use crate::document;

/// Builds the extension for each request.
pub struct Guard {
    bounds: Bounds,
}

impl Guard {
    /// The guard of requests within `bounds`.
    pub fn new(bounds: Bounds) -> Self {
        Self { bounds }
    }
}

impl ExtensionFactory for Guard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(GuardExtension { bounds: self.bounds.clone() })
    }
}

struct GuardExtension {
    bounds: Bounds,
}

#[async_trait::async_trait]
impl Extension for GuardExtension {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        document::check_nesting(&request.query).map_err(|error| ServerError::new(error.to_string(), None))?;
        if !request.data.contains_key(&TypeId::of::<Arc<RequestBudget>>()) {
            request.data.insert(self.bounds.budget());
        }
        next.run(ctx, request).await
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if let Some(budget) = ctx.data_opt::<Arc<RequestBudget>>() {
            budget
                .charge_complexity(result.complexity)
                .map_err(|error| vec![ServerError::new(error.to_string(), None)])?;
        }
        Ok(result)
    }
}
