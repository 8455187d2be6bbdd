//! The Observability Analysis Language (OAL): SkyWalking's language for metric definitions,
//! e.g. `service_resp_time = from(Service.latency).longAvg();` (oal.md).
//!
//! - [`lexer`]: the tokens;
//! - [`ast`]: the syntax tree;
//! - [`parser`]: scripts into trees, with errors at `file:line:column`.
//!
//! Still to come with the metrics pipeline: the compiler (statements into metric definitions
//! executed without per-event look-ups), the functions, and the shipped `core.oal`.

pub mod ast;
pub mod lexer;
pub mod parser;

pub use self::parser::{OalError, parse};
