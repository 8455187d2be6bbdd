//! The storage test suite against the embedded store, each store in a directory of its own.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use oap_storage::StorageRef;
use oap_storage::testsuite::Target;
use oap_storage_embedded::{Budget, EmbeddedStore};

struct Embedded;

static PLACES: AtomicUsize = AtomicUsize::new(0);

impl Target for Embedded {
    fn place(&self) -> String {
        let n = PLACES.fetch_add(1, Ordering::Relaxed);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("storage-suite-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.to_string_lossy().into_owned()
    }

    async fn open(&self, place: &str) -> StorageRef {
        let budget = Budget { cache_size: 8 << 20, memtable_size: 4 << 20 };
        Arc::new(EmbeddedStore::open(place, budget).expect("open the embedded store"))
    }
}

oap_storage::storage_suite!(Embedded);
