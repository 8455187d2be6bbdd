//! The embedded default store, provider `storage.embedded`: everything on local disk inside the
//! server's own process, so it runs with nothing else installed.
//!
//! It is built on fjall, an LSM-tree store: one partition per group and day (so TTL drops whole
//! days), metadata in one partition, a per-day lookup index for trace ids, LZ4-compressed blocks,
//! and a journal synced before a write is acknowledged.
//!
//! - [`layout`]: partitions and keys;
//! - [`codec`]: row values on disk;
//! - [`store`]: [`EmbeddedStore`], the [`Storage`](oap_storage::Storage) implementation;
//! - [`provider`]: the module provider and its settings.

pub mod codec;
pub mod layout;
pub mod provider;
pub mod store;

pub use self::provider::{EmbeddedConfig, EmbeddedProviderFactory};
pub use self::store::{Budget, EmbeddedStore, OpenError};
