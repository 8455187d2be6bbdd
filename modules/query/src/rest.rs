//! The REST status endpoints the UI's settings page reads (query-api.md §9):
//! `GET /status/config/ttl` (JSON when asked for, else `key=value` lines) and
//! `GET /status/cluster/nodes` (the aggregator list; a standalone node lists itself).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::context::QueryContext;
use crate::schema::status::days;

/// The routes, over the shared context.
pub fn routes(context: QueryContext) -> Router {
    Router::new().route("/status/config/ttl", get(ttl)).route("/status/cluster/nodes", get(nodes)).with_state(context)
}

async fn ttl(State(context): State<QueryContext>, headers: HeaderMap) -> Response {
    let records = days(context.core.record_data_ttl);
    let metrics = days(context.core.metrics_data_ttl);
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    if wants_json {
        let body = json!({
            "metrics": {
                "minute": metrics, "hour": metrics, "day": metrics,
                "coldMinute": -1, "coldHour": -1, "coldDay": -1,
            },
            "records": {
                "normal": records, "trace": records, "zipkinTrace": records, "log": records,
                "browserErrorLog": records, "coldNormal": -1, "coldTrace": -1, "coldZipkinTrace": -1,
                "coldLog": -1, "coldBrowserErrorLog": -1,
            },
        });
        return axum::Json(body).into_response();
    }
    let mut text = String::new();
    for key in ["minute", "hour", "day"] {
        text.push_str(&format!("metrics.{key}={metrics}\n"));
    }
    for key in ["coldMinute", "coldHour", "coldDay"] {
        text.push_str(&format!("metrics.{key}=-1\n"));
    }
    for key in ["normal", "trace", "zipkinTrace", "log", "browserErrorLog"] {
        text.push_str(&format!("records.{key}={records}\n"));
    }
    for key in ["coldNormal", "coldTrace", "coldZipkinTrace", "coldLog", "coldBrowserErrorLog"] {
        text.push_str(&format!("records.{key}=-1\n"));
    }
    text.into_response()
}

async fn nodes(State(context): State<QueryContext>) -> Response {
    let host = match context.core.grpc_host.as_str() {
        "" | "0.0.0.0" | "::" => "127.0.0.1".to_owned(),
        host => host.to_owned(),
    };
    axum::Json(json!({ "nodes": [{ "host": host, "port": context.core.grpc_port, "self": true }] })).into_response()
}
