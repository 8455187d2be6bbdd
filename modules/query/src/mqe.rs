//! MQE, the metrics query expressions of `execExpression` (query-api.md §5).
