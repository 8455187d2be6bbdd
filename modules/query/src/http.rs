//! `GET` and `POST /graphql`: one request, or a batch (a JSON array of requests). A batch's
//! requests run one after another under one [`RequestBudget`](crate::budget::RequestBudget) —
//! one complexity budget, one row budget, one heavy-query permit — so a batch costs what one
//! request may. The answer is written while the budget is held and is at most
//! `maxResponseBytes`; past that, the requests are answered with an error instead.

use std::io;

use async_graphql::http::{MultipartOptions, parse_query_string, receive_batch_body};
use async_graphql::{BatchRequest, BatchResponse, ParseRequestError, Response as GraphqlResponse, ServerError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
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

/// The request of a `GET` (its query string) or a `POST` (its body: JSON, one request or an
/// array; or multipart).
async fn read_request(
    method: &Method,
    headers: &HeaderMap,
    query: Option<&str>,
    body: &[u8],
) -> Result<BatchRequest, ParseRequestError> {
    if method == Method::GET {
        return parse_query_string(query.unwrap_or_default()).map(BatchRequest::Single);
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok());
    receive_batch_body(content_type, body, MultipartOptions::default()).await
}

async fn graphql(
    State(service): State<Service>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let request = match read_request(&method, &headers, query.as_deref(), &body).await {
        Ok(request) => request,
        Err(error) => return (StatusCode::BAD_REQUEST, format!("not a GraphQL request: {error}")).into_response(),
    };
    let budget = service.bounds.budget();
    let response = match request {
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
        Err(_) => {
            let refused = refused(&response, &TooLarge { max });
            match write_capped(&refused, usize::MAX) {
                Ok(body) => answer(&refused, body),
                Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
            }
        }
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

    #[tokio::test]
    async fn requests_come_as_a_query_string_a_json_body_or_a_json_array_and_anything_else_is_refused() {
        let json = HeaderMap::from_iter([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))]);
        let get = read_request(&Method::GET, &HeaderMap::new(), Some("query=%7B%20version%20%7D"), b"").await;
        assert!(matches!(get, Ok(BatchRequest::Single(request)) if request.query == "{ version }"));
        let one = read_request(&Method::POST, &json, None, br#"{"query": "{ version }"}"#).await;
        assert!(matches!(one, Ok(BatchRequest::Single(request)) if request.query == "{ version }"));
        let two = br#"[{"query": "{ version }"}, {"query": "{ getTimeInfo { timezone } }"}]"#;
        let two = read_request(&Method::POST, &json, None, two).await;
        assert!(matches!(two, Ok(BatchRequest::Batch(requests)) if requests.len() == 2));
        assert!(read_request(&Method::POST, &json, None, b"{\"query\": ").await.is_err(), "cut short");
        assert!(read_request(&Method::POST, &json, None, b"\xff\xfe").await.is_err(), "not JSON");
    }

    #[test]
    fn an_answer_is_written_up_to_its_cap() {
        let response = BatchResponse::Single(GraphqlResponse::new(async_graphql::Value::String("x".repeat(100))));
        let whole = write_capped(&response, usize::MAX).expect("uncapped");
        assert_eq!(write_capped(&response, whole.len()).expect("exactly the cap"), whole);
        assert!(write_capped(&response, whole.len() - 1).is_err());
    }
}
