//! Scans: the one read shape every provider answers — rows of a model within a time range that
//! pass some filters, sorted and paged (docs/reference/pipeline-and-storage.md §11.1).
//! Elasticsearch turns a scan into one search; the embedded store reads the days of the range and
//! applies [`ScanQuery::matches`] and [`ScanQuery::finish`], which define the semantics for both.

use std::cmp::Ordering;

use crate::row::{Row, Value, ValueRef};

/// Time buckets from `start` to `end`, both included, in the granularity of the rows sought
/// (a minute range never matches hour rows: their buckets have fewer digits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    /// The first bucket.
    pub start: i64,
    /// The last bucket.
    pub end: i64,
}

impl TimeRange {
    /// Whether `bucket` lies in the range.
    pub fn contains(&self, bucket: i64) -> bool {
        (self.start..=self.end).contains(&bucket)
    }
}

/// A condition on one column (by its position in the model).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// The value equals this one.
    Eq {
        /// The column.
        column: usize,
        /// The value.
        value: Value,
    },
    /// The value is one of these.
    In {
        /// The column.
        column: usize,
        /// The values.
        values: Vec<Value>,
    },
    /// The numeric value lies between the bounds (each included; `None` is unbounded).
    Range {
        /// The column.
        column: usize,
        /// The lower bound.
        min: Option<i64>,
        /// The upper bound.
        max: Option<i64>,
    },
    /// The text contains this text (endpoint search).
    Contains {
        /// The column.
        column: usize,
        /// The text sought.
        text: String,
    },
    /// The text list holds every one of these (a segment's `key=value` tags).
    HasAll {
        /// The column.
        column: usize,
        /// The texts required.
        texts: Vec<String>,
    },
    /// Every one of these holds.
    All(Vec<Filter>),
    /// At least one of these holds (topology: the service is the source or the target).
    Any(Vec<Filter>),
    /// This does not hold (`top_n(…, attr0!='GENERAL')`; a null column passes).
    Not(Box<Filter>),
}

impl Filter {
    /// Whether `row` passes.
    pub fn matches(&self, row: &Row) -> bool {
        self.passes(&borrow(row))
    }

    /// Whether a row whose values are borrowed as `values` passes (a missing column is null).
    pub fn passes(&self, values: &[ValueRef<'_>]) -> bool {
        let value_of = |column: usize| values.get(column).unwrap_or(&ValueRef::Null);
        match self {
            Filter::Eq { column, value } => value_of(*column) == value,
            Filter::In { column, values } => {
                let found = value_of(*column);
                values.iter().any(|value| found == value)
            }
            Filter::Range { column, min, max } => value_of(*column)
                .as_i64()
                .is_some_and(|value| min.is_none_or(|min| value >= min) && max.is_none_or(|max| value <= max)),
            Filter::Contains { column, text } => {
                matches!(value_of(*column), ValueRef::Text(value) if value.contains(text.as_str()))
            }
            Filter::HasAll { column, texts } => match value_of(*column) {
                ValueRef::TextList(list) => texts.iter().all(|text| list.contains(&text.as_str())),
                _ => texts.is_empty(),
            },
            Filter::All(filters) => filters.iter().all(|filter| filter.passes(values)),
            Filter::Any(filters) => filters.iter().any(|filter| filter.passes(values)),
            Filter::Not(filter) => !filter.passes(values),
        }
    }
}

fn borrow(row: &Row) -> Vec<ValueRef<'_>> {
    row.values.iter().map(Value::as_value_ref).collect()
}

/// What rows are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// The row's time bucket.
    TimeBucket,
    /// A numeric or text column.
    Column(usize),
    /// The time bucket, then a column within a bucket: the order of a column that grows with
    /// the bucket (a segment's start time), which lets a store read the newest buckets first
    /// and stop once a page is full.
    TimeBucketThen(usize),
}

/// A sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// The key.
    pub key: SortKey,
    /// Largest first.
    pub descending: bool,
}

/// Rows of one model: within `time_range` (all time if `None`), passing every filter, sorted,
/// then `offset` rows skipped and at most `limit` returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScanQuery {
    /// The buckets sought.
    pub time_range: Option<TimeRange>,
    /// Conditions every row must meet.
    pub filters: Vec<Filter>,
    /// The order; by id when `None`.
    pub sort: Option<Sort>,
    /// Rows skipped after sorting (paging).
    pub offset: usize,
    /// Rows returned at most.
    pub limit: Option<usize>,
}

impl ScanQuery {
    /// Whether `row` belongs in the result (before sorting and paging).
    pub fn matches(&self, row: &Row) -> bool {
        self.matches_values(row.time_bucket, &borrow(row))
    }

    /// Whether a row of `time_bucket` whose values are borrowed as `values` belongs in the
    /// result: [`ScanQuery::matches`] before the row is copied out of the store.
    pub fn matches_values(&self, time_bucket: i64, values: &[ValueRef<'_>]) -> bool {
        self.in_range(time_bucket) && self.filters.iter().all(|filter| filter.passes(values))
    }

    fn in_range(&self, time_bucket: i64) -> bool {
        self.time_range.is_none_or(|range| range.contains(time_bucket))
    }

    /// How many rows a store reading buckets newest first may stop after, once it has finished
    /// a bucket: the page's end, when the order is by time bucket, largest first.
    pub fn newest_first_bound(&self) -> Option<usize> {
        match self.sort {
            Some(Sort { key: SortKey::TimeBucket | SortKey::TimeBucketThen(_), descending: true }) => {
                self.limit.map(|limit| self.offset.saturating_add(limit))
            }
            _ => None,
        }
    }

    /// How many rows a paged scan needs at most to answer: the page's end (`offset + limit`);
    /// `None` when the scan is not paged.
    pub fn page_end(&self) -> Option<usize> {
        self.limit.map(|limit| self.offset.saturating_add(limit))
    }

    /// Drops the rows that cannot be in the page, however many more rows come: sorts `rows` as
    /// [`ScanQuery::finish`] does and keeps the first [`ScanQuery::page_end`]. A store that
    /// trims as it reads holds about a page in memory, not every row that matches.
    pub fn trim(&self, rows: &mut Vec<Row>) {
        if let Some(end) = self.page_end() {
            rows.sort_by(|a, b| self.order(a, b));
            rows.truncate(end);
        }
    }

    /// The order of the result: the sort, then ids.
    fn order(&self, a: &Row, b: &Row) -> Ordering {
        let by_key = self.sort.map_or(Ordering::Equal, |sort| {
            let order = compare(sort.key, a, b);
            if sort.descending { order.reverse() } else { order }
        });
        by_key.then_with(|| a.id.cmp(&b.id))
    }

    /// Sorts and pages the matching rows. Ties — and the order without a sort — go by id, so
    /// pages never overlap.
    pub fn finish(&self, mut rows: Vec<Row>) -> Vec<Row> {
        rows.sort_by(|a, b| self.order(a, b));
        let rows = rows.into_iter().skip(self.offset);
        match self.limit {
            Some(limit) => rows.take(limit).collect(),
            None => rows.collect(),
        }
    }
}

fn compare(key: SortKey, a: &Row, b: &Row) -> Ordering {
    match key {
        SortKey::TimeBucket => a.time_bucket.cmp(&b.time_bucket),
        SortKey::Column(column) => compare_column(column, a, b),
        SortKey::TimeBucketThen(column) => a.time_bucket.cmp(&b.time_bucket).then_with(|| compare_column(column, a, b)),
    }
}

fn compare_column(column: usize, a: &Row, b: &Row) -> Ordering {
    match (a.value(column), b.value(column)) {
        (Value::Text(a), Value::Text(b)) => a.cmp(b),
        (Value::Double(a), Value::Double(b)) => a.total_cmp(b),
        (a, b) => a.as_i64().cmp(&b.as_i64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A segment-like row: service (0), latency (1), tags (2).
    fn row(id: &str, second: i64, service: &str, latency: i32, tags: &[&str]) -> Row {
        Row {
            id: id.to_owned(),
            time_bucket: 20_261_121_120_000 + second,
            values: vec![
                Value::Text(service.to_owned()),
                Value::Int(latency),
                Value::TextList(tags.iter().map(|tag| (*tag).to_owned()).collect()),
            ],
        }
    }

    fn rows() -> Vec<Row> {
        vec![
            row("a", 1, "py-frontend", 30, &["http.method=GET", "http.status_code=200"]),
            row("b", 2, "py-backend", 10, &["http.method=GET", "http.status_code=500"]),
            row("c", 3, "py-frontend", 50, &["http.method=POST"]),
            row("d", 4, "py-frontend", 30, &[]),
        ]
    }

    fn ids(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|row| row.id.as_str()).collect()
    }

    fn run(query: &ScanQuery) -> Vec<Row> {
        query.finish(rows().into_iter().filter(|row| query.matches(row)).collect())
    }

    #[test]
    fn filters_and_time_range_select_rows() {
        let frontend = Filter::Eq { column: 0, value: Value::Text("py-frontend".to_owned()) };
        let query = ScanQuery { filters: vec![frontend.clone()], ..ScanQuery::default() };
        assert_eq!(ids(&run(&query)), ["a", "c", "d"]);

        let range = TimeRange { start: 20_261_121_120_002, end: 20_261_121_120_003 };
        let query = ScanQuery { time_range: Some(range), ..ScanQuery::default() };
        assert_eq!(ids(&run(&query)), ["b", "c"]);

        let slow = Filter::Range { column: 1, min: Some(30), max: None };
        let query = ScanQuery { filters: vec![frontend, slow], ..ScanQuery::default() };
        assert_eq!(ids(&run(&query)), ["a", "c", "d"]);

        let tags = Filter::HasAll { column: 2, texts: vec!["http.method=GET".to_owned()] };
        assert_eq!(ids(&run(&ScanQuery { filters: vec![tags], ..ScanQuery::default() })), ["a", "b"]);
        let both =
            Filter::HasAll { column: 2, texts: vec!["http.method=GET".to_owned(), "http.status_code=500".to_owned()] };
        assert_eq!(ids(&run(&ScanQuery { filters: vec![both], ..ScanQuery::default() })), ["b"]);

        let part = Filter::Contains { column: 0, text: "back".to_owned() };
        assert_eq!(ids(&run(&ScanQuery { filters: vec![part], ..ScanQuery::default() })), ["b"]);
        let not_frontend =
            Filter::Not(Box::new(Filter::Eq { column: 0, value: Value::Text("py-frontend".to_owned()) }));
        assert_eq!(ids(&run(&ScanQuery { filters: vec![not_frontend], ..ScanQuery::default() })), ["b"]);
        let any = Filter::In { column: 1, values: vec![Value::Int(10), Value::Int(50)] };
        assert_eq!(ids(&run(&ScanQuery { filters: vec![any], ..ScanQuery::default() })), ["b", "c"]);
        let backend = Filter::Eq { column: 0, value: Value::Text("py-backend".to_owned()) };
        let either = Filter::Any(vec![
            backend,
            Filter::All(vec![
                Filter::Contains { column: 0, text: "front".to_owned() },
                Filter::Range { column: 1, min: Some(40), max: None },
            ]),
        ]);
        assert_eq!(ids(&run(&ScanQuery { filters: vec![either], ..ScanQuery::default() })), ["b", "c"]);
    }

    #[test]
    fn sorted_pages_never_overlap() {
        let by_latency = Some(Sort { key: SortKey::Column(1), descending: true });
        let page = |offset| run(&ScanQuery { sort: by_latency, offset, limit: Some(2), ..ScanQuery::default() });
        // Latencies 50, 30, 30, 10: the tie between a and d goes by id.
        assert_eq!(ids(&page(0)), ["c", "a"]);
        assert_eq!(ids(&page(2)), ["d", "b"]);
        assert!(page(4).is_empty());
        let newest = Some(Sort { key: SortKey::TimeBucket, descending: true });
        assert_eq!(ids(&run(&ScanQuery { sort: newest, limit: Some(1), ..ScanQuery::default() })), ["d"]);
    }

    #[test]
    fn trimming_while_reading_keeps_every_page_whole() {
        let by_latency = Some(Sort { key: SortKey::Column(1), descending: true });
        for (sort, offset, limit) in [(by_latency, 0, 1), (by_latency, 1, 2), (by_latency, 3, 5), (None, 1, 1)] {
            let query = ScanQuery { sort, offset, limit: Some(limit), ..ScanQuery::default() };
            // Rows arrive one at a time and are trimmed after each: the page is the same.
            let mut held = Vec::new();
            for row in rows() {
                held.push(row);
                query.trim(&mut held);
                assert!(held.len() <= offset + limit);
            }
            assert_eq!(ids(&query.finish(held)), ids(&run(&query)), "{query:?}");
        }
        // Without a limit nothing can be dropped.
        let mut all = rows();
        ScanQuery::default().trim(&mut all);
        assert_eq!(all.len(), 4);
    }
}
