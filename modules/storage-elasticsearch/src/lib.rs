//! Storage provider `elasticsearch` (`SW_STORAGE=elasticsearch`): the data in Elasticsearch
//! 7.x / 8.x or OpenSearch 2.x, laid out as SkyWalking lays it out
//! (docs/reference/pipeline-and-storage.md §8, §10, §11), using only the APIs the three share.
//!
//! - [`config`]: the settings of `storage.elasticsearch`, with SkyWalking's names and defaults;
//! - [`layout`]: which index and document id every row has, and the fields every document has;
//! - [`mapping`]: the index templates, one per table, merged from its models;
//! - [`document`]: rows as JSON documents and back;
//! - [`search`]: scans as searches;
//! - [`bulk`]: the bounded, retrying bulk writer;
//! - [`store`]: the [`Storage`](oap_storage::Storage) itself;
//! - [`client`]: the client of the configured nodes, and how its answers become results;
//! - [`provider`]: the provider the server's catalog lists.

pub mod bulk;
pub mod client;
pub mod config;
pub mod document;
pub mod layout;
pub mod mapping;
pub mod provider;
pub mod search;
pub mod store;
#[cfg(feature = "test-server")]
pub mod test_server;

pub use self::config::ElasticsearchConfig;
pub use self::layout::Layout;
pub use self::provider::{ElasticsearchProviderFactory, open_store};
pub use self::store::ElasticsearchStore;
