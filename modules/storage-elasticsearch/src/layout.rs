//! Where a row lives in Elasticsearch (pipeline-and-storage.md §10.1, §10.3): every metric
//! stream in the daily `<prefix>metrics-all-<yyyyMMdd>` index, discriminated by `metric_table`;
//! records that are not a super dataset in `<prefix>records-all-<yyyyMMdd>`; each super dataset
//! (`segment`) in an index of its own, `<prefix><model>-<yyyyMMdd>`. Minute, hour and day rows
//! share the index of their day; `dayStep` groups days, counted from 2000-01-01.

use jiff::civil::Date;
use oap_storage::{Model, ModelKind, day_of};

/// The table every metric stream shares.
pub const METRICS_ALL: &str = "metrics-all";
/// The table records share unless they are a super dataset.
pub const RECORDS_ALL: &str = "records-all";

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
        format!("{}{}", self.prefix, self.table(model))
    }

    /// The physical index of `model`'s rows of `time_bucket` (any granularity), e.g.
    /// `sw_metrics-all-20261121`; `None` for a bucket that is not a date.
    pub fn index(&self, model: &Model, time_bucket: i64) -> Option<String> {
        let step = match model.kind {
            ModelKind::Record { super_dataset: true } => self.super_dataset_day_step,
            _ => self.day_step,
        };
        let day = grouped_day(day_of(time_bucket), step)?;
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
    Some(i64::from(start.year()) * 10_000 + i64::from(start.month()) * 100 + i64::from(start.day()))
}

fn date(day: i64) -> Option<Date> {
    let (year, month, day) = (day / 10_000, day / 100 % 100, day % 100);
    Date::new(i16::try_from(year).ok()?, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

#[cfg(test)]
mod tests;
