//! Types every query family shares (docs/reference/query-api.md §2): `Long`, `Duration`, `Step`,
//! `Order`, `Pagination`, `Scope`, `KeyValue`, and the error a storage failure becomes; and what
//! every resolver reads from a request's context: the node's [`QueryContext`] and the request's
//! [`RequestBudget`].

use std::sync::Arc;

use async_graphql::{
    Context, Enum, InputObject, InputValueError, InputValueResult, Scalar, ScalarType, SimpleObject, Value,
};
use oap_model::Granularity;

use crate::budget::RequestBudget;
use crate::context::QueryContext;
use crate::duration::QueryDuration;

/// SkyWalking's `Long` scalar: a 64-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Long(pub i64);

#[Scalar(name = "Long")]
impl ScalarType for Long {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(number) => number.as_i64().map(Long).ok_or_else(|| InputValueError::expected_type(value)),
            Value::String(text) => text.parse().map(Long).map_err(|_| InputValueError::expected_type(value)),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}

/// The step of a duration.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Days.
    Day,
    /// Hours.
    Hour,
    /// Minutes.
    Minute,
    /// Seconds (trace searches).
    Second,
}

impl From<Step> for Granularity {
    fn from(step: Step) -> Self {
        match step {
            Step::Day => Granularity::Day,
            Step::Hour => Granularity::Hour,
            Step::Minute => Granularity::Minute,
            Step::Second => Granularity::Second,
        }
    }
}

/// A time range as the UI sends it.
#[derive(InputObject, Debug, Clone)]
#[graphql(name = "Duration")]
pub struct DurationInput {
    /// The first time, in the step's format.
    pub start: String,
    /// The last time, inclusive.
    pub end: String,
    /// The step.
    pub step: Step,
    /// Whether to read the cold stage (BanyanDB only; ignored).
    pub cold_stage: Option<bool>,
}

impl DurationInput {
    /// The duration as buckets in the node's zone.
    pub fn resolve(&self, query: &QueryContext) -> async_graphql::Result<QueryDuration> {
        Ok(QueryDuration::parse(&self.start, &self.end, self.step.into(), &query.buckets)?)
    }
}

/// A sort order.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Smallest first.
    Asc,
    /// Largest first.
    Des,
}

/// A page of a list; pages start at 1.
#[derive(InputObject, Debug, Clone)]
pub struct Pagination {
    /// The page, from 1.
    pub page_num: Option<i32>,
    /// Rows per page.
    pub page_size: i32,
}

/// The largest page a query may ask for. A search reads its page and every page before it, all
/// within the request's `maxRowsPerRequest`.
pub const MAX_PAGE_SIZE: i32 = 10_000;

impl Pagination {
    /// (offset, limit), or an error for a page that is not positive or too large.
    pub fn offset_limit(&self) -> async_graphql::Result<(usize, usize)> {
        let page = self.page_num.unwrap_or(1);
        if page < 1 {
            return Err(format!("pageNum must be 1 or more, not {page}").into());
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            return Err(format!("pageSize must be between 1 and {MAX_PAGE_SIZE}, not {}", self.page_size).into());
        }
        let size = usize::try_from(self.page_size).unwrap_or(0);
        Ok((usize::try_from(page - 1).unwrap_or(0) * size, size))
    }
}

/// What an entity is.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[graphql(rename_items = "PascalCase")]
pub enum Scope {
    /// Everything (global).
    All,
    /// A service.
    Service,
    /// An instance.
    ServiceInstance,
    /// An endpoint.
    Endpoint,
    /// A process.
    Process,
    /// A service-to-service relation.
    ServiceRelation,
    /// An instance-to-instance relation.
    ServiceInstanceRelation,
    /// An endpoint-to-endpoint relation.
    EndpointRelation,
    /// A process-to-process relation.
    ProcessRelation,
}

/// A key and its value.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Option<String>,
}

/// The shared query context of a request.
pub fn query_context<'a>(ctx: &Context<'a>) -> &'a QueryContext {
    ctx.data_unchecked::<QueryContext>()
}

/// The request's budget, which the [`Guard`](crate::guard::Guard) gives every request.
pub fn request_budget<'a>(ctx: &Context<'a>) -> async_graphql::Result<&'a RequestBudget> {
    Ok(ctx.data::<Arc<RequestBudget>>()?.as_ref())
}

/// A storage failure, as the GraphQL error the client sees.
pub fn storage_error(error: oap_storage::StorageError) -> async_graphql::Error {
    async_graphql::Error::new(format!("storage: {error}"))
}
