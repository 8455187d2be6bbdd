//! Crash points, for the tests that prove the pipeline's durability by killing the real binary
//! at a chosen moment (docs/durable-ingest.md). `OAP_TEST_CRASH_AT=<point>:<n>` makes the process
//! send itself `SIGKILL` the `n`-th time it reaches `<point>` — no destructor runs, no buffer is
//! flushed, exactly as `kill -9` from outside, but at a moment a test can name instead of hit by
//! luck. Unset (always, outside those tests) a point costs one load of a value read once.
//!
//! The points: `l1-flush` (an epoch taken out of L1 and logged, not yet routed to L2),
//! `l2-persist` (a round has written its minute rows, not yet its hour and day rows) and
//! `bulk-write` (one batch of a round's rows stored, the cache not yet told, the round's other
//! batches not written).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable that arms a crash point.
pub const VARIABLE: &str = "OAP_TEST_CRASH_AT";

struct Armed {
    point: String,
    at: u64,
    reached: AtomicU64,
}

fn armed() -> Option<&'static Armed> {
    static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let value = std::env::var(VARIABLE).ok()?;
            let (point, at) = value.split_once(':').unwrap_or((value.as_str(), "1"));
            let at = at.parse().ok().filter(|at| *at > 0)?;
            Some(Armed { point: point.to_owned(), at, reached: AtomicU64::new(0) })
        })
        .as_ref()
}

/// Marks that the process is at `point`; kills it there if that is the armed point and this is
/// the armed time.
pub fn reached(point: &str) {
    let Some(armed) = armed() else { return };
    if armed.point != point || armed.reached.fetch_add(1, Ordering::SeqCst) + 1 != armed.at {
        return;
    }
    eprintln!("{VARIABLE}: killing the process at {point} (time {})", armed.at);
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
}
