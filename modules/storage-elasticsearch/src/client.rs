//! The Elasticsearch client of `storage.elasticsearch`: every node of `clusterNodes` in turn
//! (round robin), basic authentication when `user` is set, `socketTimeout` on every request;
//! and how its answers and failures become storage results.

use std::time::Duration;

use elasticsearch::Elasticsearch;
use elasticsearch::auth::Credentials;
use elasticsearch::http::Url;
use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{MultiNodeConnectionPool, TransportBuilder};
use oap_kernel::ConfigError;
use oap_storage::StorageError;
use serde::de::DeserializeOwned;

use crate::config::ElasticsearchConfig;

/// A client for the nodes `config` names, or every setting that is wrong.
pub fn connect(config: &ElasticsearchConfig) -> Result<Elasticsearch, Vec<ConfigError>> {
    let mut urls = Vec::new();
    let mut errors = Vec::new();
    for node in config.validate()? {
        match Url::parse(&node) {
            Ok(url) => urls.push(url),
            Err(error) => errors.push(ConfigError::new("clusterNodes", format!("`{node}`: {error}"))),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut builder = TransportBuilder::new(MultiNodeConnectionPool::round_robin(urls, None))
        .disable_proxy()
        .timeout(Duration::from_millis(config.socket_timeout));
    if !config.user.is_empty() {
        builder = builder.auth(Credentials::Basic(config.user.clone(), config.password.clone()));
    }
    let transport =
        builder.build().map_err(|error| vec![ConfigError::new("clusterNodes", format!("no client: {error}"))])?;
    Ok(Elasticsearch::new(transport))
}

/// Whether a failure with this HTTP status may pass if the same request is sent again: the
/// server is busy (429), timed out (408), or failed on its side (5xx).
pub fn is_retryable(status: u16) -> bool {
    status == 429 || status == 408 || status >= 500
}

/// A request that got no answer: the server may be down, unreachable or slow, so it is retried.
pub fn unreachable(error: elasticsearch::Error) -> StorageError {
    StorageError::Unavailable(format!("elasticsearch did not answer: {error}"))
}

/// The body of a successful answer as `T`; an error status (with its body) as a storage error,
/// retryable or not by [`is_retryable`].
pub async fn answer<T: DeserializeOwned>(response: Response, what: &str) -> Result<T, StorageError> {
    let status = response.status_code().as_u16();
    if (200..300).contains(&status) {
        return response.json().await.map_err(|error| {
            StorageError::Unavailable(format!("{what}: an unreadable answer from elasticsearch: {error}"))
        });
    }
    let body = response.text().await.unwrap_or_default();
    Err(status_error(status, &format!("{what}: {body}")))
}

/// The storage error of an HTTP status.
pub fn status_error(status: u16, detail: &str) -> StorageError {
    let detail = format!("elasticsearch answered {status}: {detail}");
    if is_retryable(status) { StorageError::Unavailable(detail) } else { StorageError::Invalid(detail) }
}
