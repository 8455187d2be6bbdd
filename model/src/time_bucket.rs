//! Time buckets: epoch milliseconds as `yyyyMMddHHmmss` / `yyyyMMddHHmm` / `yyyyMMddHH` /
//! `yyyyMMdd` numbers, built from calendar fields in one time zone
//! (docs/reference/analysis.md §13).
//!
//! SkyWalking uses the OAP host's zone; so does [`TimeBuckets::system`]. The same zone must be
//! used to parse query durations and is reported to the UI, so one `TimeBuckets` is shared.
//!
//! Stored rows and wire messages carry a bucket as the bare number, as SkyWalking does; whatever
//! needs its granularity — rolling up, the day a row is filed under, where a bucket starts — asks
//! a [`TimeBucket`], the one place that reads the granularity off the number.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// The size of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    /// `yyyyMMddHHmmss`: records.
    Second,
    /// `yyyyMMddHHmm`: metrics and metadata at ingest.
    Minute,
    /// `yyyyMMddHH`: downsampled metrics.
    Hour,
    /// `yyyyMMdd`: downsampled metrics and storage partitions.
    Day,
}

impl Granularity {
    /// The digits after the day's `yyyyMMdd`: 6 for seconds, 4 for minutes, 2 for hours.
    fn finer_digits(self) -> u32 {
        match self {
            Granularity::Second => 6,
            Granularity::Minute => 4,
            Granularity::Hour => 2,
            Granularity::Day => 0,
        }
    }

    /// Minutes in one bucket of this granularity (`cpm` divides by it); a second counts as one.
    pub fn minutes(self) -> i64 {
        match self {
            Granularity::Second | Granularity::Minute => 1,
            Granularity::Hour => 60,
            Granularity::Day => 1440,
        }
    }
}

/// A time bucket that knows its granularity: `yyyyMMdd`, `yyyyMMddHH`, `yyyyMMddHHmm` or
/// `yyyyMMddHHmmss`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimeBucket {
    value: i64,
    granularity: Granularity,
}

impl TimeBucket {
    /// The bucket `value` is, recognised by its number of digits; `None` for a number that is
    /// no bucket.
    pub fn of(value: i64) -> Option<TimeBucket> {
        let granularity = match value {
            10_000_000..=99_999_999 => Granularity::Day,
            1_000_000_000..=9_999_999_999 => Granularity::Hour,
            100_000_000_000..=999_999_999_999 => Granularity::Minute,
            10_000_000_000_000..=99_999_999_999_999 => Granularity::Second,
            _ => return None,
        };
        Some(TimeBucket { value, granularity })
    }

    /// The number, as stored.
    pub fn value(self) -> i64 {
        self.value
    }

    /// Its granularity.
    pub fn granularity(self) -> Granularity {
        self.granularity
    }

    /// The bucket of `granularity` this one falls in: a minute's hour is `/ 100`, its day
    /// `/ 10000`. A finer granularity than the bucket's own leaves it as it is.
    pub fn rolled_up(self, granularity: Granularity) -> TimeBucket {
        let drop = self.granularity.finer_digits().saturating_sub(granularity.finer_digits());
        if drop == 0 {
            return self;
        }
        TimeBucket { value: self.value / 10_i64.pow(drop), granularity }
    }

    /// The day (`yyyyMMdd`) it falls in.
    pub fn day(self) -> TimeBucket {
        self.rolled_up(Granularity::Day)
    }
}

/// The day (`yyyyMMdd`) of a stored bucket number of any granularity; a number that is no bucket
/// is returned as it is (rows are filed under it, and no valid day equals it).
pub fn day_of(time_bucket: i64) -> i64 {
    rolled_up(time_bucket, Granularity::Day)
}

/// The bucket of `granularity` that a stored bucket number of any granularity falls in (see
/// [`TimeBucket::rolled_up`]); a number that is no bucket is returned as it is.
pub fn rolled_up(time_bucket: i64, granularity: Granularity) -> i64 {
    TimeBucket::of(time_bucket).map_or(time_bucket, |bucket| bucket.rolled_up(granularity).value())
}

/// A time zone that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("unknown time zone `{name}`: {source}")]
pub struct TimeZoneError {
    name: String,
    #[source]
    source: jiff::Error,
}

/// Converts between epoch milliseconds and time buckets in one zone.
#[derive(Debug, Clone)]
pub struct TimeBuckets {
    zone: TimeZone,
}

impl TimeBuckets {
    /// The host's zone (`TZ`, else `/etc/localtime`), like SkyWalking; UTC if it cannot be found.
    pub fn system() -> Self {
        Self { zone: TimeZone::try_system().unwrap_or(TimeZone::UTC) }
    }

    /// UTC.
    pub fn utc() -> Self {
        Self { zone: TimeZone::UTC }
    }

    /// An IANA zone such as `Asia/Shanghai`; empty means the host's zone.
    pub fn named(name: &str) -> Result<Self, TimeZoneError> {
        if name.trim().is_empty() {
            return Ok(Self::system());
        }
        TimeZone::get(name).map(|zone| Self { zone }).map_err(|source| TimeZoneError { name: name.to_owned(), source })
    }

    /// The zone's IANA name, if it has one.
    pub fn zone_name(&self) -> Option<&str> {
        self.zone.iana_name()
    }

    /// The zone's offset from UTC at `epoch_ms`, in seconds (for `getTimeInfo`).
    pub fn offset_seconds(&self, epoch_ms: i64) -> i32 {
        Timestamp::from_millisecond(epoch_ms).map(|ts| self.zone.to_offset(ts).seconds()).unwrap_or(0)
    }

    /// Whether `epoch_ms` is within the calendar's range, so that it has buckets (no zone work).
    pub fn is_representable(epoch_ms: i64) -> bool {
        Timestamp::from_millisecond(epoch_ms).is_ok()
    }

    /// The bucket of `epoch_ms`, or `None` for a time outside the calendar's range.
    pub fn bucket(&self, epoch_ms: i64, granularity: Granularity) -> Option<i64> {
        let timestamp = Timestamp::from_millisecond(epoch_ms).ok()?;
        let civil = self.zone.to_datetime(timestamp);
        let day = i64::from(civil.year()) * 10_000 + i64::from(civil.month()) * 100 + i64::from(civil.day());
        Some(match granularity {
            Granularity::Day => day,
            Granularity::Hour => day * 100 + i64::from(civil.hour()),
            Granularity::Minute => (day * 100 + i64::from(civil.hour())) * 100 + i64::from(civil.minute()),
            Granularity::Second => {
                ((day * 100 + i64::from(civil.hour())) * 100 + i64::from(civil.minute())) * 100
                    + i64::from(civil.second())
            }
        })
    }

    /// The minute bucket of `epoch_ms`.
    pub fn minute(&self, epoch_ms: i64) -> Option<i64> {
        self.bucket(epoch_ms, Granularity::Minute)
    }

    /// The second bucket of `epoch_ms`.
    pub fn second(&self, epoch_ms: i64) -> Option<i64> {
        self.bucket(epoch_ms, Granularity::Second)
    }

    /// Epoch milliseconds of the start of `bucket` (of any granularity), if it is a valid time.
    pub fn start_millis(&self, bucket: i64) -> Option<i64> {
        let granularity = TimeBucket::of(bucket)?.granularity();
        let (date, hour, minute, second) = match granularity {
            Granularity::Day => (bucket, 0, 0, 0),
            Granularity::Hour => (bucket / 100, bucket % 100, 0, 0),
            Granularity::Minute => (bucket / 10_000, bucket / 100 % 100, bucket % 100, 0),
            Granularity::Second => (bucket / 1_000_000, bucket / 10_000 % 100, bucket / 100 % 100, bucket % 100),
        };
        let civil = DateTime::new(
            i16::try_from(date / 10_000).ok()?,
            i8::try_from(date / 100 % 100).ok()?,
            i8::try_from(date % 100).ok()?,
            i8::try_from(hour).ok()?,
            i8::try_from(minute).ok()?,
            i8::try_from(second).ok()?,
            0,
        )
        .ok()?;
        self.zone.to_ambiguous_timestamp(civil).compatible().ok().map(|ts| ts.as_millisecond())
    }
}

/// Now, epoch milliseconds (the wall clock every bucket and TTL decision starts from).
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The whole days of a TTL setting, at least 1 (the unit of every TTL decision).
pub fn whole_days(ttl: std::time::Duration) -> i64 {
    i64::try_from(ttl.as_secs() / 86_400).unwrap_or(i64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-21T12:30:45.678Z
    const MS: i64 = 1_795_264_245_678;

    #[test]
    fn buckets_in_utc() {
        let buckets = TimeBuckets::utc();
        assert_eq!(buckets.bucket(MS, Granularity::Second), Some(20261121123045));
        assert_eq!(buckets.minute(MS), Some(202611211230));
        assert_eq!(buckets.bucket(MS, Granularity::Hour), Some(2026112112));
        assert_eq!(buckets.bucket(MS, Granularity::Day), Some(20261121));
    }

    #[test]
    fn buckets_follow_the_configured_zone() {
        // Shanghai is UTC+8 with no daylight saving: 12:30 UTC is 20:30 there.
        let shanghai = TimeBuckets::named("Asia/Shanghai").expect("zone in the tz database");
        assert_eq!(shanghai.minute(MS), Some(202611212030));
        assert_eq!(shanghai.offset_seconds(MS), 8 * 3600);
        assert!(TimeBuckets::named("Mars/Olympus").is_err());
    }

    #[test]
    fn bucket_start_is_the_inverse() {
        let buckets = TimeBuckets::named("Asia/Shanghai").expect("zone");
        let minute = buckets.minute(MS).expect("in range");
        assert_eq!(buckets.start_millis(minute), Some(MS - MS % 60_000));
        assert_eq!(buckets.start_millis(20261121), buckets.start_millis(202611210000));
        assert_eq!(buckets.start_millis(202613211230), None, "month 13");
    }

    #[test]
    fn a_bucket_knows_its_granularity_by_its_digits_and_rolls_up_to_coarser_ones() {
        let granularity = |value| TimeBucket::of(value).map(TimeBucket::granularity);
        assert_eq!(granularity(20261121), Some(Granularity::Day));
        assert_eq!(granularity(2026112112), Some(Granularity::Hour));
        assert_eq!(granularity(202611211230), Some(Granularity::Minute));
        assert_eq!(granularity(20261121123045), Some(Granularity::Second));
        assert_eq!(granularity(42), None);
        assert_eq!(granularity(999_999_999_999_999), None);

        let minute = TimeBucket::of(202611211230).expect("a minute");
        assert_eq!(minute.rolled_up(Granularity::Hour), TimeBucket::of(2026112112).expect("an hour"));
        assert_eq!(minute.rolled_up(Granularity::Day).value(), 20261121);
        assert_eq!(minute.rolled_up(Granularity::Second), minute, "never finer");
        let second = TimeBucket::of(20261121123045).expect("a second");
        assert_eq!(second.rolled_up(Granularity::Minute).value(), 202611211230);
        assert_eq!(second.day().value(), 20261121);
        assert_eq!([day_of(20261121123045), day_of(202611211230), day_of(2026112112), day_of(20261121)], [20261121; 4]);
        assert_eq!(day_of(42), 42, "no bucket: filed under itself");
    }

    #[test]
    fn out_of_range_times_have_no_bucket() {
        assert_eq!(TimeBuckets::utc().minute(i64::MAX), None);
        assert!(!TimeBuckets::is_representable(i64::MAX));
        assert!(TimeBuckets::is_representable(MS));
    }
}
