//! The embedded default store, provider `storage.embedded`: everything on local disk inside the
//! server's own process, so it runs with nothing else installed.
//!
//! Metrics, metadata and the small records live in fjall, an LSM-tree store: one partition per
//! group and day (so TTL drops whole days), metadata in one partition, LZ4-compressed blocks,
//! and a journal synced before a write is acknowledged. The `segment` record, most of what is
//! written, lives in append-only block files of its own with a per-day index ingested into
//! fjall in sorted tables ([`segments`]).
//!
//! - [`layout`]: partitions and keys;
//! - [`codec`]: row values on disk;
//! - [`segments`]: the `segment` record in block files with a sorted index;
//! - [`store`]: [`EmbeddedStore`], the [`Storage`](oap_storage::Storage) implementation;
//! - [`provider`]: the module provider and its settings.

pub mod codec;
pub mod layout;
pub mod provider;
pub mod segments;
pub mod store;

pub use self::provider::{EmbeddedConfig, EmbeddedProviderFactory};
pub use self::store::{Budget, EmbeddedStore, OpenError};
