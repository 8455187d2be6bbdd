//! The Observability Analysis Language (OAL): SkyWalking's language for metric definitions,
//! e.g. `service_resp_time = from(Service.latency).longAvg();` (docs/reference/oal.md).
//!
//! - [`lexer`], [`ast`], [`parser`]: scripts into syntax trees, errors at `file:line:column`;
//! - [`scope`]: the scopes, their fields as compiled accessors, their entity ids;
//! - [`entity`]: what an entity id is built from, so that a sink can keep each id's text once;
//! - [`filter`]: compiled conditions;
//! - [`compile`]: statements into [`MetricDefinition`]s, every error collected;
//! - [`program`]: a scope's metrics compiled together, each distinct condition and input
//!   evaluated once per source;
//! - [`function`]: the aggregation functions and the values L1 and L2 merge;
//! - [`apdex`]: apdex thresholds per service;
//! - [`error`]: what can be wrong with the definitions once they parse;
//! - [`catalog`]: every stream a node aggregates — the compiled metrics and the hard-coded
//!   streams (traffic, relations, aliases) — and how a source becomes their values.
//!
//! The shipped script is `oal/core.oal` ([`CORE_OAL`]); the server reads the `.oal` files of
//! its OAL directory at start, so a user edits them without recompiling.

pub mod apdex;
pub mod ast;
pub mod catalog;
pub mod compile;
pub mod entity;
pub mod error;
pub mod filter;
pub mod function;
pub mod lexer;
pub mod parser;
pub mod program;
pub mod scope;

pub use self::apdex::ApdexThresholds;
pub use self::catalog::{Catalog, StreamId};
pub use self::compile::{Definitions, MetricDefinition, compile, load};
pub use self::entity::EntityKey;
pub use self::error::DefinitionError;
pub use self::function::{Function, MetricValue};
pub use self::parser::{OalError, parse};

/// The text of the shipped `core.oal`, for a server started without an OAL directory.
pub const CORE_OAL: &str = include_str!("../core.oal");
