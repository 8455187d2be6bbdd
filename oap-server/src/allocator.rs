//! The server's allocator: mimalloc rather than glibc's malloc — the ingest path makes and frees
//! many small objects on one core, where glibc spent a quarter of the time (consolidating and
//! unlinking chunks) and kept freed memory in per-thread arenas it did not return. Built without
//! the `mimalloc` feature, the server uses glibc's, which heap profilers such as heaptrack can
//! hook.
//!
//! mimalloc gives emptied pages back to the system a second after they empty (its purge delay,
//! 1,000 ms in v3). Under load L2's rounds free and refill tens of megabytes every few seconds, so
//! with that delay the resident set stays 100 MiB and more above what is in use; purging at once
//! measured no slower (BENCHMARKS.md, "L2 bounded, pages returned at once"). mimalloc reads its
//! options from the environment when the process starts, before `main`, and setting one in code
//! takes an `unsafe` call, which this workspace forbids — so the server starts itself again, once,
//! with `MIMALLOC_PURGE_DELAY=0`. A value the operator set is kept.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option: how long, ms, an emptied page waits before it is returned.
pub const PURGE_DELAY_ENV: &str = "MIMALLOC_PURGE_DELAY";

/// Replaces this process with the same program and arguments, `MIMALLOC_PURGE_DELAY=0` added,
/// unless it is set already (the operator's, or this function's own in the process it made).
/// Returns only if it did not (set already, built without mimalloc, or the program could not be
/// run again — then the server runs with mimalloc's default).
pub fn purge_at_once() {
    #[cfg(feature = "mimalloc")]
    if std::env::var_os(PURGE_DELAY_ENV).is_none() {
        use std::os::unix::process::CommandExt as _;
        let Ok(program) = std::env::current_exe() else { return };
        let error =
            std::process::Command::new(program).args(std::env::args_os().skip(1)).env(PURGE_DELAY_ENV, "0").exec();
        // Before logging is set up; the server goes on without the setting.
        eprintln!("could not start again with {PURGE_DELAY_ENV}=0 ({error}); mimalloc keeps its default");
    }
}
