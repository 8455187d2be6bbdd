//! The node's ingest log: what the agents sent, appended before they hear it was taken, so that a
//! crash loses nothing acknowledged and a restart can replay what the stores had not yet stored.
//!
//! - [`frame`]: one entry on disk — length, checksum, epoch, kind, payload;
//! - [`files`]: the segment files of the directory, read frame by frame;
//! - [`log`]: [`IngestLog`] — appends from any thread, one fsync per batch for all of them,
//!   rotation, truncation from the front, the bound, replay.
//!
//! The log knows nothing of segments or metrics: an entry is bytes of a kind, taken in an epoch
//! that the pipeline numbers.

pub mod files;
pub mod frame;
pub mod log;
pub mod state;

pub use self::frame::{Entry, EntryKind};
pub use self::log::{IngestLog, LogConfig, LogError, Recovered, Replay, Ticket};
