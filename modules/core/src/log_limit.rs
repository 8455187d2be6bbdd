//! A limit on how often one kind of log line is written, for events a client can cause at will
//! (a refused call, a rejected message): the event is always counted in a metric, but only the
//! first few of each interval reach the log, and the next line written says how many were held
//! back since the last one, so a flood costs a few lines instead of one per event.
//!
//! Time is passed in ([`LogLimit::admit_at`]), so the rule is tested without a clock.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most `lines` log lines per `interval` for one kind of event.
#[derive(Debug)]
pub struct LogLimit {
    lines: u32,
    interval: Duration,
    state: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// When the current interval began; `None` before the first event.
    started: Option<Instant>,
    /// Lines written in the current interval.
    written: u32,
    /// Events held back since the last line written.
    held_back: u64,
}

impl LogLimit {
    /// A limit of `lines` lines per `interval`.
    pub const fn new(lines: u32, interval: Duration) -> Self {
        Self { lines, interval, state: Mutex::new(Window { started: None, written: 0, held_back: 0 }) }
    }

    /// Whether the line for an event happening now may be written: `Some(n)` if so, where `n`
    /// is how many events were held back since the last line written; `None` if not.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    /// [`LogLimit::admit`] for an event at `now`.
    pub fn admit_at(&self, now: Instant) -> Option<u64> {
        let mut window = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let expired = window.started.is_none_or(|started| now.saturating_duration_since(started) >= self.interval);
        if expired {
            window.started = Some(now);
            window.written = 0;
        }
        if window.written < self.lines {
            window.written += 1;
            Some(std::mem::take(&mut window.held_back))
        } else {
            window.held_back += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_a_few_lines_per_interval_and_then_says_what_it_held_back() {
        let limit = LogLimit::new(2, Duration::from_secs(10));
        let start = Instant::now();
        let at = |secs: u64| start + Duration::from_secs(secs);
        let admitted: Vec<Option<u64>> = (0..5).map(|_| limit.admit_at(at(0))).collect();
        assert_eq!(admitted, [Some(0), Some(0), None, None, None]);
        // Still the same interval.
        assert_eq!(limit.admit_at(at(9)), None);
        // A new interval: the first line tells the 4 held back.
        assert_eq!(limit.admit_at(at(10)), Some(4));
        assert_eq!(limit.admit_at(at(11)), Some(0));
        assert_eq!(limit.admit_at(at(12)), None);
        assert_eq!(limit.admit_at(at(100)), Some(1));
    }

    #[test]
    fn a_clock_that_goes_back_does_not_open_a_new_interval() {
        let limit = LogLimit::new(1, Duration::from_secs(10));
        let start = Instant::now() + Duration::from_secs(100);
        assert_eq!(limit.admit_at(start), Some(0));
        assert_eq!(limit.admit_at(start - Duration::from_secs(50)), None);
    }
}
