//! The UI's durations (docs/reference/query-api.md §2.1): `start` and `end` strings at a step —
//! `yyyy-MM-dd HHmmss`, `yyyy-MM-dd HHmm`, `yyyy-MM-dd HH` or `yyyy-MM-dd`, in the OAP's zone — as
//! time buckets of that step, as the chart points between them, and as the wider ranges trace and
//! metadata searches use.

use oap_model::{Granularity, TimeBuckets};
use oap_storage::TimeRange;

/// The most points one duration may have.
pub const MAX_POINTS: usize = 500;

/// A duration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// A string is not a time of the step's format.
    #[error("`{text}` is not a {step} time (expected {format})")]
    Format {
        /// The string.
        text: String,
        /// The step's name.
        step: &'static str,
        /// The format expected.
        format: &'static str,
    },
    /// The end is before the start.
    #[error("the duration ends ({end}) before it starts ({start})")]
    Reversed {
        /// The start bucket.
        start: i64,
        /// The end bucket.
        end: i64,
    },
    /// Too many points.
    #[error("the duration has more than {MAX_POINTS} points at its step; can't exceed {MAX_POINTS}")]
    TooLong,
}

/// A duration as buckets of its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryDuration {
    /// The step.
    pub step: Granularity,
    /// The first bucket.
    pub start: i64,
    /// The last bucket (inclusive).
    pub end: i64,
}

/// One point of a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    /// The bucket at the duration's step.
    pub bucket: i64,
    /// Its start, epoch ms (the point's id in a time series).
    pub millis: i64,
}

fn format_of(step: Granularity) -> (&'static str, &'static str, usize) {
    match step {
        Granularity::Second => ("SECOND", "yyyy-MM-dd HHmmss", 14),
        Granularity::Minute => ("MINUTE", "yyyy-MM-dd HHmm", 12),
        Granularity::Hour => ("HOUR", "yyyy-MM-dd HH", 10),
        Granularity::Day => ("DAY", "yyyy-MM-dd", 8),
    }
}

fn parse_bucket(text: &str, step: Granularity) -> Result<i64, DurationError> {
    let (name, format, digits) = format_of(step);
    let error = || DurationError::Format { text: text.to_owned(), step: name, format };
    let compact: String = text.trim().chars().filter(|c| *c != '-' && *c != ' ').collect();
    if compact.len() != digits || !compact.bytes().all(|b| b.is_ascii_digit()) {
        return Err(error());
    }
    let bucket: i64 = compact.parse().map_err(|_| error())?;
    Ok(bucket)
}

impl QueryDuration {
    /// Parses `start` and `end` at `step`; the buckets must be real times of the zone.
    pub fn parse(start: &str, end: &str, step: Granularity, buckets: &TimeBuckets) -> Result<Self, DurationError> {
        let first = parse_bucket(start, step)?;
        let last = parse_bucket(end, step)?;
        for (text, bucket) in [(start, first), (end, last)] {
            if buckets.start_millis(bucket).is_none() {
                let (name, format, _) = format_of(step);
                return Err(DurationError::Format { text: text.to_owned(), step: name, format });
            }
        }
        if last < first {
            return Err(DurationError::Reversed { start: first, end: last });
        }
        Ok(Self { step, start: first, end: last })
    }

    /// Every point from the start to the end, inclusive; at most [`MAX_POINTS`].
    pub fn points(&self, buckets: &TimeBuckets) -> Result<Vec<Point>, DurationError> {
        let mut points = Vec::new();
        // `parse` proved the start a real time of the zone.
        let Some(mut millis) = buckets.start_millis(self.start) else { return Ok(points) };
        while let Some(bucket) = buckets.bucket(millis, self.step).filter(|bucket| *bucket <= self.end) {
            if points.len() == MAX_POINTS {
                return Err(DurationError::TooLong);
            }
            // Daylight-saving shifts can make a step land in the same bucket; keep each once.
            if points.last().is_none_or(|last: &Point| last.bucket != bucket) {
                points.push(Point { bucket, millis: buckets.start_millis(bucket).unwrap_or(millis) });
            }
            millis += step_millis(self.step);
        }
        Ok(points)
    }

    /// The second buckets the duration covers, for record searches: the start's first second to
    /// the end's last.
    pub fn second_range(&self) -> TimeRange {
        let (start, end) = match self.step {
            Granularity::Second => (self.start, self.end),
            Granularity::Minute => (self.start * 100, self.end * 100 + 59),
            Granularity::Hour => (self.start * 10_000, self.end * 10_000 + 5_959),
            Granularity::Day => (self.start * 1_000_000, self.end * 1_000_000 + 235_959),
        };
        TimeRange { start, end }
    }

    /// The minute buckets the duration covers, for metadata (`last_ping`) searches.
    pub fn minute_range(&self) -> (i64, i64) {
        match self.step {
            Granularity::Second => (self.start / 100, self.end / 100),
            Granularity::Minute => (self.start, self.end),
            Granularity::Hour => (self.start * 100, self.end * 100 + 59),
            Granularity::Day => (self.start * 10_000, self.end * 10_000 + 2_359),
        }
    }

    /// The buckets at the step, as a range filter on `time_bucket`.
    pub fn bucket_range(&self) -> TimeRange {
        TimeRange { start: self.start, end: self.end }
    }
}

fn step_millis(step: Granularity) -> i64 {
    match step {
        Granularity::Second => 1_000,
        Granularity::Minute => 60_000,
        Granularity::Hour => 3_600_000,
        // A day is stepped by an hour's worth and de-duplicated, so a 23- or 25-hour day is fine.
        Granularity::Day => 3_600_000,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(start: &str, end: &str, step: Granularity) -> Result<QueryDuration, DurationError> {
        QueryDuration::parse(start, end, step, &TimeBuckets::utc())
    }

    #[test]
    fn strings_become_buckets_of_the_step() {
        let minute = utc("2026-11-21 1230", "2026-11-21 1245", Granularity::Minute).expect("minute");
        assert_eq!((minute.start, minute.end), (202_611_211_230, 202_611_211_245));
        let second = utc("2026-11-21 123045", "2026-11-21 123100", Granularity::Second).expect("second");
        assert_eq!(second.start, 20_261_121_123_045);
        assert_eq!(utc("2026-11-21 12", "2026-11-21 13", Granularity::Hour).expect("hour").end, 2_026_112_113);
        assert_eq!(utc("2026-11-20", "2026-11-21", Granularity::Day).expect("day").start, 20_261_120);
    }

    #[test]
    fn a_wrong_format_a_reversed_or_an_impossible_time_is_an_error() {
        let error = utc("2026-11-21 12", "2026-11-21 1245", Granularity::Minute).expect_err("hour text");
        assert_eq!(error.to_string(), "`2026-11-21 12` is not a MINUTE time (expected yyyy-MM-dd HHmm)");
        assert!(matches!(
            utc("2026-11-21 1245", "2026-11-21 1230", Granularity::Minute),
            Err(DurationError::Reversed { .. })
        ));
        assert!(utc("2026-11-21 1261", "2026-11-21 1262", Granularity::Minute).is_err(), "minute 61");
        assert!(utc("2026-13-01", "2026-13-02", Granularity::Day).is_err(), "month 13");
    }

    #[test]
    fn points_run_from_start_to_end_inclusive_across_hours_and_days() {
        let buckets = TimeBuckets::utc();
        let minutes = utc("2026-11-21 2358", "2026-11-22 0001", Granularity::Minute).expect("minutes");
        let points = minutes.points(&buckets).expect("points");
        let bucket_list: Vec<i64> = points.iter().map(|point| point.bucket).collect();
        assert_eq!(bucket_list, [202_611_212_358, 202_611_212_359, 202_611_220_000, 202_611_220_001]);
        // 2026-11-21T23:58:00Z.
        assert_eq!(points[0].millis, 1_795_305_480_000);
        assert_eq!(points[1].millis - points[0].millis, 60_000);
        let days = utc("2026-02-27", "2026-03-01", Granularity::Day).expect("days").points(&buckets).expect("points");
        let day_list: Vec<i64> = days.iter().map(|point| point.bucket).collect();
        assert_eq!(day_list, [20_260_227, 20_260_228, 20_260_301]);
    }

    #[test]
    fn more_than_500_points_is_an_error() {
        let buckets = TimeBuckets::utc();
        // 00:00 to 08:19 is 500 minutes; one more is too many.
        let fits = utc("2026-11-21 0000", "2026-11-21 0819", Granularity::Minute).expect("parse");
        assert_eq!(fits.points(&buckets).expect("500").len(), 500);
        let over = utc("2026-11-21 0000", "2026-11-21 0820", Granularity::Minute).expect("parse");
        assert_eq!(over.points(&buckets), Err(DurationError::TooLong));
    }

    #[test]
    fn searches_widen_to_seconds_and_minutes() {
        let minute = utc("2026-11-21 1230", "2026-11-21 1245", Granularity::Minute).expect("minute");
        assert_eq!(minute.second_range(), TimeRange { start: 20_261_121_123_000, end: 20_261_121_124_559 });
        let day = utc("2026-11-20", "2026-11-21", Granularity::Day).expect("day");
        assert_eq!(day.minute_range(), (202_611_200_000, 202_611_212_359));
        assert_eq!(day.second_range(), TimeRange { start: 20_261_120_000_000, end: 20_261_121_235_959 });
    }
}
