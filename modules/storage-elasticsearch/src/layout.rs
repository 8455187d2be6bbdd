//! Where a row lives in Elasticsearch (docs/reference/pipeline-and-storage.md §10.1, §10.3): every
//! metric stream in the daily `<prefix>metrics-all-<yyyyMMdd>` index, discriminated by
//! `metric_table`; records that are not a super dataset in `<prefix>records-all-<yyyyMMdd>`; each
//! super dataset (`segment`) in an index of its own, `<prefix><model>-<yyyyMMdd>`. Minute, hour and
//! day rows share the index of their day; `dayStep` groups days, counted from 2000-01-01.
//!
//! Every document carries its row's id in a keyword field — `entity_id` in `metrics-all` (what
//! SkyWalking calls it), `id` in `records-all`, `<model>_id` in a super dataset (`segment_id`) —
//! and `time_bucket`; rows of merged tables carry their model's name in `metric_table` or
//! `record_table`.

use jiff::civil::Date;
use oap_storage::{Model, ModelKind, TimeRange, day_of};

/// The table every metric stream shares.
pub const METRICS_ALL: &str = "metrics-all";
/// The table records share unless they are a super dataset.
pub const RECORDS_ALL: &str = "records-all";
/// The field of every document's time bucket.
pub const TIME_BUCKET: &str = "time_bucket";

/// Physical indices a search names at most; a longer range searches the alias (a URL naming
/// hundreds of indices passes Elasticsearch's 4 KB limit on the request line).
const MAX_NAMED_INDICES: usize = 40;

/// Index names and document ids of one deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `namespace_`, lower-cased; `sw_` for an empty namespace.
    prefix: String,
    day_step: u32,
    super_dataset_day_step: u32,
}

impl Layout {
    /// The layout of `namespace` with `dayStep` and `superDatasetDayStep` (0 or less: as
    /// `dayStep`).
    pub fn new(namespace: &str, day_step: u32, super_dataset_day_step: i32) -> Self {
        let namespace = namespace.trim();
        let namespace = if namespace.is_empty() { "sw" } else { namespace };
        let day_step = day_step.max(1);
        let super_dataset_day_step = u32::try_from(super_dataset_day_step).ok().filter(|step| *step > 0);
        Self {
            prefix: format!("{}_", namespace.to_lowercase()),
            day_step,
            super_dataset_day_step: super_dataset_day_step.unwrap_or(day_step),
        }
    }

    /// The logical table (and alias, and template name without the prefix) of `model`.
    pub fn table<'m>(&self, model: &'m Model) -> &'m str {
        match model.kind {
            ModelKind::Metrics { .. } => METRICS_ALL,
            ModelKind::Record { super_dataset: false } => RECORDS_ALL,
            ModelKind::Record { super_dataset: true } => &model.name,
        }
    }

    /// The alias over every daily index of `model`'s table, e.g. `sw_metrics-all`.
    pub fn alias(&self, model: &Model) -> String {
        self.alias_of(self.table(model))
    }

    /// The alias (and index template name) of `table`.
    pub fn alias_of(&self, table: &str) -> String {
        format!("{}{table}", self.prefix)
    }

    /// The field naming a merged table's model: `metric_table`, `record_table`; none for a
    /// super dataset, whose table holds one model.
    pub fn table_field(&self, model: &Model) -> Option<&'static str> {
        table_field(model.kind)
    }

    /// The field holding a row's id: `entity_id`, `id`, or `<model>_id` for a super dataset.
    pub fn id_field(&self, model: &Model) -> String {
        match model.kind {
            ModelKind::Metrics { .. } => "entity_id".to_owned(),
            ModelKind::Record { super_dataset: false } => "id".to_owned(),
            ModelKind::Record { super_dataset: true } => format!("{}_id", model.name),
        }
    }

    fn step(&self, model: &Model) -> u32 {
        match model.kind {
            ModelKind::Record { super_dataset: true } => self.super_dataset_day_step,
            _ => self.day_step,
        }
    }

    /// The indices a search of `model`'s rows in `range` reads: the physical index of each day
    /// group the range touches, or the alias for all time and for ranges longer than
    /// `MAX_NAMED_INDICES` groups (the search filters on the time bucket as well).
    pub fn search_indices(&self, model: &Model, range: Option<TimeRange>) -> Vec<String> {
        let alias = || vec![self.alias(model)];
        let Some(range) = range else { return alias() };
        let (Some(first), Some(last)) = (date(day_of(range.start)), date(day_of(range.end))) else { return alias() };
        let step = i64::from(self.step(model));
        if (last - first).get_days() >= i32::try_from(MAX_NAMED_INDICES as i64 * step).unwrap_or(i32::MAX) {
            return alias();
        }
        let mut indices: Vec<String> = Vec::new();
        for day in first.series(jiff::Span::new().days(1)).take_while(|day| *day <= last) {
            let Some(name) = self.index(model, yyyymmdd(day)) else { return alias() };
            if indices.last() != Some(&name) {
                indices.push(name);
            }
        }
        if indices.is_empty() { alias() } else { indices }
    }

    /// The last day (yyyyMMdd) whose rows a physical index of `table` holds, from its name;
    /// `None` for an index that is not one of the table's daily indices.
    pub fn last_day_of_index(&self, table: &str, super_dataset: bool, index: &str) -> Option<i64> {
        let first = index.strip_prefix(&self.alias_of(table))?.strip_prefix('-')?;
        if first.len() != 8 {
            return None;
        }
        let first = date(first.parse().ok()?)?;
        let step = if super_dataset { self.super_dataset_day_step } else { self.day_step };
        let last = first.checked_add(jiff::Span::new().days(i64::from(step) - 1)).ok()?;
        Some(yyyymmdd(last))
    }

    /// The physical index of `model`'s rows of `time_bucket` (any granularity), e.g.
    /// `sw_metrics-all-20261121`; `None` for a bucket that is not a date.
    pub fn index(&self, model: &Model, time_bucket: i64) -> Option<String> {
        let day = grouped_day(day_of(time_bucket), self.step(model))?;
        Some(format!("{}-{day}", self.alias(model)))
    }

    /// The document id of a row: `<stream>_<bucket>_<entity>` for time-relative metrics,
    /// `<stream>_<id>` for metadata and `records-all` rows, the id alone for a super dataset's.
    pub fn document_id(&self, model: &Model, id: &str, time_bucket: i64) -> String {
        match model.kind {
            ModelKind::Metrics { time_relative: true, .. } => format!("{}_{time_bucket}_{id}", model.name),
            ModelKind::Metrics { time_relative: false, .. } | ModelKind::Record { super_dataset: false } => {
                format!("{}_{id}", model.name)
            }
            ModelKind::Record { super_dataset: true } => id.to_owned(),
        }
    }
}

/// The discriminator field of a merged table's documents, by the kind of model.
pub fn table_field(kind: ModelKind) -> Option<&'static str> {
    match kind {
        ModelKind::Metrics { .. } => Some("metric_table"),
        ModelKind::Record { super_dataset: false } => Some("record_table"),
        ModelKind::Record { super_dataset: true } => None,
    }
}

/// `day` (yyyyMMdd) moved back to the first day of its group of `step` days, counted from
/// 2000-01-01 as SkyWalking counts them; `None` when `day` is not a date.
fn grouped_day(day: i64, step: u32) -> Option<i64> {
    if step <= 1 {
        return date(day).map(|_| day);
    }
    let date = date(day)?;
    let epoch = Date::constant(2000, 1, 1);
    let days = i64::from((date - epoch).get_days());
    let start = date.checked_sub(jiff::Span::new().days(days.rem_euclid(i64::from(step)))).ok()?;
    Some(yyyymmdd(start))
}

fn yyyymmdd(date: Date) -> i64 {
    i64::from(date.year()) * 10_000 + i64::from(date.month()) * 100 + i64::from(date.day())
}

fn date(day: i64) -> Option<Date> {
    let (year, month, day) = (day / 10_000, day / 100 % 100, day % 100);
    Date::new(i16::try_from(year).ok()?, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

#[cfg(test)]
mod tests;
