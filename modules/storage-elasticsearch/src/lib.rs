//! Storage provider `elasticsearch` (`SW_STORAGE=elasticsearch`): the data in Elasticsearch
//! 7.x / 8.x or OpenSearch 2.x, laid out as SkyWalking lays it out (pipeline-and-storage.md §8,
//! §10), so indices written by either server read the same.
//!
//! - [`config`]: the settings of `storage.elasticsearch`, with SkyWalking's names and defaults;
//! - [`layout`]: which index and document id every row has;
//! - [`client`]: the client of the configured nodes.
//!
//! Work in progress (issue 8): the templates and mappings, the bulk writer, the reads and the
//! provider come next.

pub mod client;
pub mod config;
pub mod layout;
#[cfg(feature = "test-server")]
pub mod test_server;

pub use self::config::ElasticsearchConfig;
pub use self::layout::Layout;
