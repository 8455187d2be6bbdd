//! MQE, the metrics query expressions of `execExpression` (query-api.md §5): [`parse`] turns
//! an expression into an [`Expr`] tree, the forms the general dashboards use: metric names with
//! label selectors, scalars, arithmetic and comparisons, aggregations (`avg`, `sum`, `max`,
//! `min`, `count`, `latest`), `abs` / `ceil` / `floor` / `round`, `top_n` with attribute
//! filters, and `relabels`. A parse error is text for the result's `error` field.

pub mod parse;

pub use self::parse::{Aggregation, AttrFilter, BinaryOp, Expr, LabelSelector, MathFn, parse};
