//! Rate limits for log lines about what clients send: a flood of bad requests is counted in
//! full by the metrics, but logged only a few times per interval, each line saying how many
//! like it were left out since the last one — a fuzzing client cannot fill the disk with logs.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A budget of log lines per interval, for one place that logs; `const`, so it can be a
/// `static` beside the line it limits. Approximate under races, which is all a log needs.
#[derive(Debug)]
pub struct LogLimit {
    lines: u32,
    interval_ms: u64,
    window: AtomicU64,
    taken: AtomicU32,
    left_out: AtomicU64,
}

impl LogLimit {
    /// At most `lines` lines every `interval`.
    pub const fn new(lines: u32, interval: Duration) -> Self {
        let interval_ms = interval.as_millis() as u64;
        Self {
            lines,
            interval_ms: if interval_ms == 0 { 1 } else { interval_ms },
            window: AtomicU64::new(0),
            taken: AtomicU32::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    /// The usual budget: five lines every ten seconds.
    pub const fn default_budget() -> Self {
        Self::new(5, Duration::from_secs(10))
    }

    /// Whether a line may be logged now; if so, how many were left out since the last one.
    pub fn admit(&self) -> Option<u64> {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64);
        self.admit_at(now_ms)
    }

    fn admit_at(&self, now_ms: u64) -> Option<u64> {
        let window = now_ms / self.interval_ms;
        let seen = self.window.load(Ordering::Relaxed);
        if seen != window && self.window.compare_exchange(seen, window, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            self.taken.store(0, Ordering::Relaxed);
        }
        if self.taken.fetch_add(1, Ordering::Relaxed) < self.lines {
            Some(self.left_out.swap(0, Ordering::Relaxed))
        } else {
            self.left_out.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_few_lines_per_interval_then_the_count_of_those_left_out() {
        let limit = LogLimit::new(2, Duration::from_secs(10));
        let at = 1_000_000;
        assert_eq!(limit.admit_at(at), Some(0));
        assert_eq!(limit.admit_at(at + 1), Some(0));
        for offset in 0..1_000 {
            assert_eq!(limit.admit_at(at + 2 + offset), None);
        }
        assert_eq!(limit.admit_at(at + 10_000), Some(1_000), "the next interval says how many were left out");
        assert_eq!(limit.admit_at(at + 10_001), Some(0));
        assert_eq!(limit.admit_at(at + 10_002), None);
    }
}
