//! Deserializers for provider settings, for use with `#[serde(deserialize_with = "…")]`.
//!
//! Durations keep SkyWalking's unit for plain numbers (`persistentPeriod: 25` is 25 seconds) and
//! also accept readable text (`"25s"`, `"500ms"`, `"7days"`).

use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

macro_rules! duration_in_unit {
    ($name:ident, $unit:literal, $from_count:expr) => {
        #[doc = concat!("A duration given as a number of ", $unit, " or as readable text.")]
        pub fn $name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
            deserializer.deserialize_any(DurationVisitor { unit: $unit, from_count: $from_count })
        }
    };
}

duration_in_unit!(duration_millis, "milliseconds", |ms: u64| Some(Duration::from_millis(ms)));
duration_in_unit!(duration_secs, "seconds", |s: u64| Some(Duration::from_secs(s)));
duration_in_unit!(duration_minutes, "minutes", |m: u64| m.checked_mul(60).map(Duration::from_secs));
duration_in_unit!(duration_days, "days", |d: u64| d.checked_mul(86_400).map(Duration::from_secs));

/// The longest duration a setting may have: past it, adding it to a clock would overflow, and no
/// period or timeout means it.
const LONGEST: Duration = Duration::from_secs(100 * 366 * 86_400);

struct DurationVisitor {
    unit: &'static str,
    from_count: fn(u64) -> Option<Duration>,
}

impl DurationVisitor {
    fn bounded<E: de::Error>(&self, duration: Option<Duration>, given: &dyn std::fmt::Display) -> Result<Duration, E> {
        duration
            .filter(|duration| *duration <= LONGEST)
            .ok_or_else(|| E::custom(format!("a duration may be at most 100 years, got {given} {}", self.unit)))
    }
}

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a number of {} or a duration such as \"25s\"", self.unit)
    }

    fn visit_u64<E: de::Error>(self, count: u64) -> Result<Duration, E> {
        self.bounded((self.from_count)(count), &count)
    }

    fn visit_i64<E: de::Error>(self, count: i64) -> Result<Duration, E> {
        let count = u64::try_from(count)
            .map_err(|_| E::custom(format!("a duration cannot be negative, got {count} {}", self.unit)))?;
        self.visit_u64(count)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        if let Ok(count) = text.trim().parse::<u64>() {
            return self.visit_u64(count);
        }
        let parsed = humantime::parse_duration(text.trim())
            .map_err(|error| E::custom(format!("invalid duration `{text}`: {error}")))?;
        self.bounded(Some(parsed), &format_args!("`{text}`, in"))
    }
}

/// A list given as a YAML sequence or as comma-separated text (`a,b,c`), as SkyWalking's
/// settings such as `searchableTracesTags` are; items are trimmed and empty items dropped.
pub fn comma_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    struct ListVisitor;

    impl<'de> Visitor<'de> for ListVisitor {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list or comma-separated text")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<String>, E> {
            Ok(text.split(',').map(str::trim).filter(|item| !item.is_empty()).map(String::from).collect())
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<Vec<String>, E> {
            Ok(vec![value.to_string()])
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<Vec<String>, E> {
            Ok(vec![value.to_string()])
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<String>, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<ScalarString>()? {
                items.push(item.0);
            }
            Ok(items)
        }
    }

    deserializer.deserialize_any(ListVisitor)
}

/// Text that may have been typed as a number or boolean by placeholder typing
/// (`namespace: ${SW_NAMESPACE:""}` set to `123`).
pub fn scalar_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    ScalarString::deserialize(deserializer).map(|scalar| scalar.0)
}

struct ScalarString(String);

impl<'de> Deserialize<'de> for ScalarString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;

        impl Visitor<'_> for ScalarVisitor {
            type Value = ScalarString;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("text")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ScalarString, E> {
                Ok(ScalarString(text.to_owned()))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<ScalarString, E> {
                Ok(ScalarString(value.to_string()))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<ScalarString, E> {
                Ok(ScalarString(value.to_string()))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<ScalarString, E> {
                Ok(ScalarString(value.to_string()))
            }

            fn visit_bool<E: de::Error>(self, value: bool) -> Result<ScalarString, E> {
                Ok(ScalarString(value.to_string()))
            }

            fn visit_unit<E: de::Error>(self) -> Result<ScalarString, E> {
                Ok(ScalarString(String::new()))
            }
        }

        deserializer.deserialize_any(ScalarVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Sample {
        #[serde(deserialize_with = "duration_secs")]
        period: Duration,
        #[serde(deserialize_with = "duration_days")]
        ttl: Duration,
        #[serde(deserialize_with = "comma_list")]
        tags: Vec<String>,
        #[serde(deserialize_with = "scalar_string")]
        namespace: String,
    }

    fn sample(yaml: &str) -> Result<Sample, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(yaml)
    }

    #[test]
    fn numbers_take_the_settings_unit() {
        let parsed = sample("{period: 25, ttl: 3, tags: a, namespace: x}").expect("valid");
        assert_eq!(parsed.period, Duration::from_secs(25));
        assert_eq!(parsed.ttl, Duration::from_secs(3 * 86_400));
    }

    #[test]
    fn readable_durations_are_accepted() {
        let parsed = sample("{period: 500ms, ttl: 2days, tags: a, namespace: x}").expect("valid");
        assert_eq!(parsed.period, Duration::from_millis(500));
        assert_eq!(parsed.ttl, Duration::from_secs(2 * 86_400));
    }

    #[test]
    fn negative_and_garbage_durations_are_rejected() {
        let error = sample("{period: -5, ttl: 1, tags: a, namespace: x}").expect_err("negative");
        assert!(error.to_string().contains("cannot be negative"), "{error}");
        let error = sample("{period: soon, ttl: 1, tags: a, namespace: x}").expect_err("garbage");
        assert!(error.to_string().contains("invalid duration `soon`"), "{error}");
    }

    #[test]
    fn durations_past_a_hundred_years_are_rejected_not_overflowed() {
        for yaml in [
            "{period: 1, ttl: 18446744073709551615, tags: a, namespace: x}",
            "{period: 4000000000, ttl: 1, tags: a, namespace: x}",
            "{period: 200years, ttl: 1, tags: a, namespace: x}",
        ] {
            let error = sample(yaml).expect_err("too long");
            assert!(error.to_string().contains("at most 100 years"), "{error}");
        }
        sample("{period: 1, ttl: 36500, tags: a, namespace: x}").expect("a hundred years of TTL");
    }

    #[test]
    fn lists_come_as_sequences_or_comma_text() {
        let parsed = sample("{period: 1, ttl: 1, tags: ' http.method, db.type ,', namespace: x}").expect("valid");
        assert_eq!(parsed.tags, ["http.method", "db.type"]);
        let parsed = sample("{period: 1, ttl: 1, tags: [http.method, 200], namespace: x}").expect("valid");
        assert_eq!(parsed.tags, ["http.method", "200"]);
        let parsed = sample("{period: 1, ttl: 1, tags: 6000, namespace: x}").expect("a single number");
        assert_eq!(parsed.tags, ["6000"]);
    }

    #[test]
    fn scalar_strings_accept_typed_scalars() {
        assert_eq!(sample("{period: 1, ttl: 1, tags: a, namespace: 123}").expect("valid").namespace, "123");
        assert_eq!(sample("{period: 1, ttl: 1, tags: a, namespace: true}").expect("valid").namespace, "true");
    }
}
