//! MQE, the metrics query expressions of `execExpression` (docs/reference/query-api.md §5):
//! [`parse`] turns an expression into an [`Expr`] tree — metric names with label selectors,
//! scalars, arithmetic and comparisons, aggregations (`avg`, `sum`, `max`, `min`, `count`,
//! `latest`), `abs` / `ceil` / `floor` / `round`, `top_n` with attribute filters, and `relabels` —
//! and an [`Evaluation`] computes it for an entity over a duration as an [`Outcome`]. Errors are
//! text for the result's `error` field.

pub mod eval;
pub mod outcome;
pub mod parse;

pub use self::eval::Evaluation;
pub use self::outcome::{Outcome, ResultType, Series, Value, format};
pub use self::parse::{Aggregation, AttrFilter, BinaryOp, Expr, LabelSelector, MathFn, parse};
