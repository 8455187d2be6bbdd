//! The Elasticsearch client of `storage.elasticsearch`: every node of `clusterNodes` in turn
//! (round robin), basic authentication when `user` is set, `socketTimeout` on every request.

use std::time::Duration;

use elasticsearch::Elasticsearch;
use elasticsearch::auth::Credentials;
use elasticsearch::http::Url;
use elasticsearch::http::transport::{MultiNodeConnectionPool, TransportBuilder};
use oap_kernel::ConfigError;

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
