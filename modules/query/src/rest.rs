//! The REST status endpoints the UI's settings page reads (docs/reference/query-api.md §9):
//! `GET /status/config/ttl` (JSON when asked for, else `key=value` lines) and
//! `GET /status/cluster/nodes` (the aggregating nodes from the cluster coordinator; a standalone
//! node lists itself).

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
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    if wants_json {
        return axum::Json(body).into_response();
    }
    // The same settings as `group.key=value` lines.
    let mut text = String::new();
    for (group, settings) in body.as_object().into_iter().flatten() {
        for (key, value) in settings.as_object().into_iter().flatten() {
            text.push_str(&format!("{group}.{key}={value}\n"));
        }
    }
    text.into_response()
}

async fn nodes(State(context): State<QueryContext>) -> Response {
    axum::Json(json!({ "nodes": *context.membership.nodes() })).into_response()
}
