//! Small state kept beside the log's files, in the same directory: the node's identity (which
//! outlives restarts exactly as long as its log does) and snapshots other parts of the pipeline
//! take of what the log's truncated entries told them. Each is a whole file, replaced
//! atomically (written aside, synced, renamed, the directory synced), so a crash leaves the old
//! version or the new one, never a mix.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The file holding the node's identity.
const NODE_FILE: &str = "NODE";
/// The file holding the last epoch the log was cut through: later epochs must be above it.
pub const EPOCH_FILE: &str = "EPOCH";

/// The epoch of [`EPOCH_FILE`] in `dir` (0 without one).
pub fn cut_epoch(dir: &Path) -> io::Result<u64> {
    match load(dir, EPOCH_FILE)? {
        Some(bytes) => String::from_utf8_lossy(&bytes).trim().parse().map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{}: not an epoch", dir.join(EPOCH_FILE).display()))
        }),
        None => Ok(0),
    }
}

/// The identity of the node whose log is in `dir`: read from it, or made by `fresh` (never 0) and
/// kept there on the first call.
pub fn node_id(dir: &Path, fresh: impl FnOnce() -> u64) -> io::Result<u64> {
    if let Some(bytes) = load(dir, NODE_FILE)? {
        let text = String::from_utf8_lossy(&bytes);
        return u64::from_str_radix(text.trim(), 16).ok().filter(|id| *id != 0).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: not a node identity", dir.join(NODE_FILE).display()),
            )
        });
    }
    let id = fresh().max(1);
    save(dir, NODE_FILE, format!("{id:016x}\n").as_bytes())?;
    Ok(id)
}

/// Replaces the state file `name` in `dir` with `bytes`, durably.
pub fn save(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let aside = dir.join(format!("{name}.new"));
    let mut file = OpenOptions::new().create(true).truncate(true).write(true).open(&aside)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&aside, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// The state file `name` in `dir`, if there is one.
pub fn load(dir: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(dir.join(name)) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_is_made_once_and_kept_and_state_is_replaced_whole() {
        let dir = std::env::temp_dir().join(format!("oap-log-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let first = node_id(&dir, || 0xfeed).expect("made");
        assert_eq!(first, 0xfeed);
        assert_eq!(node_id(&dir, || 7).expect("read"), 0xfeed, "kept, not made again");
        assert_eq!(load(&dir, "senders").expect("read"), None);
        save(&dir, "senders", b"one").expect("saved");
        save(&dir, "senders", b"two").expect("saved");
        assert_eq!(load(&dir, "senders").expect("read").as_deref(), Some(&b"two"[..]));
        std::fs::write(dir.join(NODE_FILE), "zz").expect("damaged");
        assert!(node_id(&dir, || 7).is_err(), "a damaged identity is an error, not a new node");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
