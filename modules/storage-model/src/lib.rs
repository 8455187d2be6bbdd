//! What is stored, as pure data: the models streams are stored as ([`model`]), rows with one
//! value per column ([`row`]), the hard-coded models and their typed rows ([`builtin`]), and the
//! errors a store reports ([`error`]).
//!
//! A crate of its own, below every runtime crate, so that the language (`oap-oal`) can build
//! rows without the server: no tokio, tonic, axum or hyper here (docs/architecture-invariants.md).
//! `oap-storage` re-exports it whole.

pub mod builtin;
pub mod error;
pub mod model;
pub mod row;

pub use self::error::StorageError;
pub use self::model::{Column, ColumnType, Indexing, Model, ModelKind, ModelRef};
pub use self::row::{Row, RowKey, Value, ValueRef, day_of};
