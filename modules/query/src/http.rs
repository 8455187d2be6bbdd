//! `GET` and `POST /graphql`: one request, or a batch (a JSON array of requests). A batch's
//! requests run one after another under one [`RequestBudget`](crate::budget::RequestBudget) —
//! one complexity budget, one row budget, one heavy-query permit — so a batch costs what one
//! request may. The answer is written while the budget is held and is at most
//! `maxResponseBytes`; past that, the requests are answered with an error instead.

use std::io;

use async_graphql::{BatchRequest, BatchResponse, Response as GraphqlResponse, ServerError};
use async_graphql_axum::GraphQLBatchRequest;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::budget::Bounds;
use crate::schema::QuerySchema;

/// The answer of an oversized response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the answer is larger than maxResponseBytes ({max} bytes), so it is not sent; ask for smaller pages, \
     fewer fields or a shorter duration"
)]
pub struct TooLarge {
    /// `maxResponseBytes`.
    pub max: usize,
}

#[derive(Clone)]
struct Service {
    schema: QuerySchema,
    bounds: Bounds,
}

/// The `/graphql` route over `schema`, within `bounds`.
pub fn routes(schema: QuerySchema, bounds: Bounds) -> Router {
    Router::new().route("/graphql", get(graphql).post(graphql)).with_state(Service { schema, bounds })
}

async fn graphql(State(service): State<Service>, request: GraphQLBatchRequest) -> Response {
    let budget = service.bounds.budget();
    let response = match request.into_inner() {
        BatchRequest::Single(request) => {
            BatchResponse::Single(service.schema.execute(request.data(budget.clone())).await)
        }
        BatchRequest::Batch(requests) => {
            let mut responses = Vec::with_capacity(requests.len());
            for request in requests {
                responses.push(service.schema.execute(request.data(budget.clone())).await);
            }
            BatchResponse::Batch(responses)
        }
    };
    let max = service.bounds.limits().max_response_bytes;
    let answer = match write_capped(&response, max) {
        Ok(body) => answer(&response, body),
        Err(_) => async_graphql_axum::GraphQLResponse(refused(&response, &TooLarge { max })).into_response(),
    };
    // The budget, and with it the heavy-query permit, is held until the answer is written.
    drop(budget);
    answer
}

/// The same shape of answer, each request refused with `error`.
fn refused(response: &BatchResponse, error: &TooLarge) -> BatchResponse {
    let refusal = || GraphqlResponse::from_errors(vec![ServerError::new(error.to_string(), None)]);
    match response {
        BatchResponse::Single(_) => BatchResponse::Single(refusal()),
        BatchResponse::Batch(responses) => BatchResponse::Batch(responses.iter().map(|_| refusal()).collect()),
    }
}

/// The HTTP answer of `response`, written as `body`, with the headers async-graphql's own
/// handler gives.
fn answer(response: &BatchResponse, body: Vec<u8>) -> Response {
    let mut answer = Response::new(body.into());
    answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/graphql-response+json"));
    if response.is_ok()
        && let Some(cache_control) = response.cache_control().value()
        && let Ok(value) = HeaderValue::from_str(&cache_control)
    {
        answer.headers_mut().insert(header::CACHE_CONTROL, value);
    }
    answer.headers_mut().extend(response.http_headers());
    answer
}

/// `response` as JSON, or an error once it passes `max` bytes (it is never written whole).
fn write_capped(response: &BatchResponse, max: usize) -> Result<Vec<u8>, serde_json::Error> {
    let mut writer = Capped { bytes: Vec::new(), max };
    serde_json::to_writer(&mut writer, response)?;
    Ok(writer.bytes)
}

/// A buffer that refuses to grow past `max` bytes.
struct Capped {
    bytes: Vec<u8>,
    max: usize,
}

impl io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > self.max {
            return Err(io::Error::other("the answer is too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_written_up_to_its_cap() {
        let response = BatchResponse::Single(GraphqlResponse::new(async_graphql::Value::String("x".repeat(100))));
        let whole = write_capped(&response, usize::MAX).expect("uncapped");
        assert_eq!(write_capped(&response, whole.len()).expect("exactly the cap"), whole);
        assert!(write_capped(&response, whole.len() - 1).is_err());
    }
}
